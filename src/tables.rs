//! Table arguments: the `opts` of `new` and the `entries` of
//! `add_loot_table`.
//!
//! The contract's checks run first on the raw Lua values, in its documented
//! order (unknown keys in `next()` order, then each field in turn), so the
//! first failure is reported with the exact message treasure.legacy gives.
//! Then mlua's serde support (`LuaSerdeExt::from_value`, with
//! `deny_unknown_fields` as a backstop) turns the checked table into a typed
//! Rust value for the core.

use mlua::{Lua, LuaSerdeExt, Table, Value};
use serde::Deserialize;
use treasure_core::{LootEntry, Options};

use crate::args::{self, Fail, Range};

/// Reports the first key of `t` (in `next()` order) that is not in `known`.
fn check_keys(lua: &Lua, func: &str, path: &str, t: &Table, known: &[&str]) -> Result<(), Fail> {
    for pair in t.pairs::<Value, Value>() {
        let (k, _) = pair.map_err(|e| format!("treasure: {func}: {path}: {e}"))?;
        let is_known =
            matches!(&k, Value::String(s) if known.iter().any(|n| s.as_bytes() == n.as_bytes()));
        if !is_known {
            let name = match &k {
                Value::String(s) => s.to_string_lossy(),
                other => args::describe(lua, other),
            };
            return Err(format!("treasure: {func}: {path} has unknown key '{name}'"));
        }
    }
    Ok(())
}

fn field(t: &Table, key: &str) -> Value {
    t.raw_get::<Value>(key).unwrap_or(Value::Nil)
}

/// The contract's keys of `opts`, in check order, with their ranges.
const OPTION_KEYS: [(&str, Range); 5] = [
    (
        "seed",
        Range {
            lo: 0,
            hi: 9_007_199_254_740_991,
        },
    ),
    (
        "aoi_radius",
        Range {
            lo: 0,
            hi: 1_048_576,
        },
    ),
    (
        "reach",
        Range {
            lo: 0,
            hi: 1_048_576,
        },
    ),
    ("workers", Range { lo: 0, hi: 256 }),
    (
        "max_pending_packets",
        Range {
            lo: 1,
            hi: 9_007_199_254_740_991,
        },
    ),
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OptionsDe {
    seed: Option<f64>,
    aoi_radius: Option<f64>,
    reach: Option<f64>,
    workers: Option<f64>,
    max_pending_packets: Option<f64>,
}

/// `treasure.new(opts)`: `nil` or a table of the contract's keys.
pub fn options(lua: &Lua, opts: &Value) -> Result<Options, Fail> {
    let mut out = Options::default();
    let t = match opts {
        Value::Nil => return Ok(out),
        Value::Table(t) => t,
        other => {
            return Err(format!(
                "treasure: new: opts must be a table, got {}",
                args::type_name(other)
            ))
        }
    };
    let known: Vec<&str> = OPTION_KEYS.iter().map(|(k, _)| *k).collect();
    check_keys(lua, "new", "opts", t, &known)?;
    for (key, range) in OPTION_KEYS {
        args::opt_int(lua, "new", &format!("opts.{key}"), &field(t, key), range)?;
    }
    let de: OptionsDe = lua
        .from_value(Value::Table(t.clone()))
        .map_err(|e| format!("treasure: new: opts: {e}"))?;
    // Every value below was checked to be an exact integer in range.
    if let Some(v) = de.seed {
        out.seed = v as u64;
    }
    if let Some(v) = de.aoi_radius {
        out.aoi_radius = v as u32;
    }
    if let Some(v) = de.reach {
        out.reach = v as u32;
    }
    if let Some(v) = de.workers {
        out.workers = v as u32;
    }
    if let Some(v) = de.max_pending_packets {
        out.max_pending_packets = v as u64;
    }
    Ok(out)
}

/// Test-only tuning of the pipeline's internal queue sizes (see
/// `_new_with_tuning` in native.lua); not part of the contract.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TuningDe {
    chunk_digs: Option<usize>,
    max_inflight_chunks: Option<usize>,
    inline_max_digs: Option<usize>,
    freeze_min_found: Option<usize>,
    wait_spin_us: Option<u64>,
}

pub fn tuning(lua: &Lua, tuning: &Value, opts: &mut Options) -> Result<(), Fail> {
    if tuning.is_nil() {
        return Ok(());
    }
    let de: TuningDe = lua
        .from_value(tuning.clone())
        .map_err(|e| format!("treasure: new: tuning: {e}"))?;
    if let Some(v) = de.chunk_digs {
        opts.chunk_digs = v.max(1);
    }
    if let Some(v) = de.max_inflight_chunks {
        opts.max_inflight_chunks = v.max(1);
    }
    if let Some(v) = de.inline_max_digs {
        opts.inline_max_digs = v;
    }
    if let Some(v) = de.wait_spin_us {
        opts.wait_spin_us = v;
    }
    if let Some(v) = de.freeze_min_found {
        opts.freeze_min_found = v;
    }
    Ok(())
}

/// The fields of a loot entry, in check order, with their ranges.
const ENTRY_KEYS: [(&str, Range); 5] = [
    (
        "item",
        Range {
            lo: 1,
            hi: 4_294_967_295,
        },
    ),
    (
        "weight",
        Range {
            lo: 1,
            hi: 4_294_967_295,
        },
    ),
    ("min", Range { lo: 0, hi: 65_535 }),
    ("max", Range { lo: 0, hi: 65_535 }),
    ("rarity", Range { lo: 0, hi: 255 }),
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryDe {
    item: f64,
    weight: f64,
    min: f64,
    max: f64,
    rarity: f64,
}

const NOT_AN_ARRAY: &str = "must be a non-empty array of tables";

/// `add_loot_table(id, entries)`: the entries array, checked in full.
pub fn loot_entries(lua: &Lua, entries: &Value) -> Result<Vec<LootEntry>, Fail> {
    let func = "add_loot_table";
    let t = match entries {
        Value::Table(t) => t,
        other => {
            return Err(format!(
                "treasure: {func}: entries {NOT_AN_ARRAY}, got {}",
                args::type_name(other)
            ))
        }
    };
    // A non-empty sequence: exactly the keys 1..#entries.
    let n = t.raw_len();
    let mut keys = 0usize;
    let mut shape_ok = n >= 1;
    for pair in t.pairs::<Value, Value>() {
        let (k, _) = pair.map_err(|e| format!("treasure: {func}: entries: {e}"))?;
        keys += 1;
        let in_seq = match k {
            Value::Integer(i) => i >= 1 && (i as usize) <= n,
            Value::Number(f) => f.fract() == 0.0 && f >= 1.0 && f <= n as f64,
            _ => false,
        };
        shape_ok &= in_seq;
    }
    if !shape_ok || keys != n {
        return Err(format!(
            "treasure: {func}: entries {NOT_AN_ARRAY}, got table"
        ));
    }
    let known: Vec<&str> = ENTRY_KEYS.iter().map(|(k, _)| *k).collect();
    let mut total: u64 = 0;
    for i in 1..=n {
        let entry = match t.raw_get::<Value>(i).unwrap_or(Value::Nil) {
            Value::Table(e) => e,
            other => {
                return Err(format!(
                    "treasure: {func}: entries[{i}] must be a table, got {}",
                    args::type_name(&other)
                ))
            }
        };
        check_keys(lua, func, &format!("entries[{i}]"), &entry, &known)?;
        let mut vals = [0i64; 5];
        for (slot, (key, range)) in vals.iter_mut().zip(ENTRY_KEYS) {
            *slot = args::int(
                lua,
                func,
                &format!("entries[{i}].{key}"),
                &field(&entry, key),
                range,
            )?;
        }
        let (min, max) = (vals[2], vals[3]);
        if min > max {
            return Err(format!(
                "treasure: {func}: entries[{i}].min must be <= max, got {min} > {max}"
            ));
        }
        total += vals[1] as u64;
    }
    if total > u32::MAX as u64 {
        return Err(format!(
            "treasure: {func}: entries total weight must be <= 4294967295, got {total}"
        ));
    }
    let de: Vec<EntryDe> = lua
        .from_value(entries.clone())
        .map_err(|e| format!("treasure: {func}: entries: {e}"))?;
    Ok(de
        .into_iter()
        .map(|e| LootEntry {
            item: e.item as u32,
            weight: e.weight as u32,
            min: e.min as u16,
            max: e.max as u16,
            rarity: e.rarity as u8,
        })
        .collect())
}
