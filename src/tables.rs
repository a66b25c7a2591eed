//! Table arguments: the `opts` of `new` and the `entries` of
//! `add_loot_table`.
//!
//! The contract's checks run on the raw Lua values in its documented order
//! (unknown keys in `next()` order, then each field in turn), so the first
//! failure is reported with the exact message treasure.legacy gives; each
//! checked field is then the typed value the core takes.

use mlua::{Lua, LuaSerdeExt, Table, Value};
use serde::Deserialize;
use treasure_core::error::limits;
use treasure_core::{Error, ErrorKind, LootEntry, Method, Options};

use crate::args::{self, Range, ID, SAFE};
use crate::error::{self, Failure};

/// Reports the first key of `t` (in `next()` order) that is not in `known`.
fn check_keys(lua: &Lua, func: &str, path: &str, t: &Table, known: &[&str]) -> Result<(), Failure> {
    for pair in t.pairs::<Value, Value>() {
        let (k, _) = pair.map_err(|e| error::lua_in(func, path, e))?;
        let is_known =
            matches!(&k, Value::String(s) if known.iter().any(|n| s.as_bytes() == n.as_bytes()));
        if !is_known {
            let name = match &k {
                Value::String(s) => s.to_string_lossy(),
                other => error::describe(lua, other),
            };
            return Err(error::unknown_key(func, path, &name));
        }
    }
    Ok(())
}

fn field(t: &Table, key: &str) -> Value {
    t.raw_get::<Value>(key).unwrap_or(Value::Nil)
}

/// The keys of `opts`, in check order.
const OPTION_KEYS: [&str; 5] = [
    "seed",
    "aoi_radius",
    "reach",
    "workers",
    "max_pending_packets",
];
/// `aoi_radius` and `reach`.
const RADIUS: Range = Range {
    lo: 0,
    hi: limits::RADIUS_MAX as i64,
};
const WORKERS: Range = Range {
    lo: 0,
    hi: limits::WORKERS_MAX as i64,
};
const MAX_PENDING: Range = Range { lo: 1, ..SAFE };

/// `treasure.new(opts)`: `nil` or a table of the contract's keys.
pub fn options(lua: &Lua, opts: &Value) -> Result<Options, Failure> {
    let mut out = Options::default();
    let t = match opts {
        Value::Nil => return Ok(out),
        Value::Table(t) => t,
        other => {
            return Err(error::must_be(
                "new",
                "opts",
                "a table",
                error::type_name(other),
            ))
        }
    };
    check_keys(lua, "new", "opts", t, &OPTION_KEYS)?;
    let opt = |key: &str, range: Range| {
        let v = field(t, key);
        args::opt(&v, |v| {
            args::int(lua, "new", &format!("opts.{key}"), v, range)
        })
    };
    // Each value is an exact integer within its range, so the casts are exact.
    if let Some(v) = opt("seed", SAFE)? {
        out.seed = v as u64;
    }
    if let Some(v) = opt("aoi_radius", RADIUS)? {
        out.aoi_radius = v as u32;
    }
    if let Some(v) = opt("reach", RADIUS)? {
        out.reach = v as u32;
    }
    if let Some(v) = opt("workers", WORKERS)? {
        out.workers = v as u32;
    }
    if let Some(v) = opt("max_pending_packets", MAX_PENDING)? {
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

/// Applies the test-only `tuning` table (nil: none) to `opts`.
pub fn tuning(lua: &Lua, tuning: &Value, opts: &mut Options) -> Result<(), Failure> {
    if tuning.is_nil() {
        return Ok(());
    }
    let de: TuningDe = lua
        .from_value(tuning.clone())
        .map_err(|e| error::lua_in("new", "tuning", e))?;
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

/// The fields of a loot entry, in check order, with their ranges (the
/// widths of `LootEntry`'s fields).
const ENTRY_KEYS: [(&str, Range); 5] = [
    ("item", ID),
    ("weight", ID),
    (
        "min",
        Range {
            lo: 0,
            hi: u16::MAX as i64,
        },
    ),
    (
        "max",
        Range {
            lo: 0,
            hi: u16::MAX as i64,
        },
    ),
    (
        "rarity",
        Range {
            lo: 0,
            hi: u8::MAX as i64,
        },
    ),
];

const ENTRIES_RULE: &str = "a non-empty array of tables";

/// `add_loot_table(id, entries)`: the entries array, checked in full.
pub fn loot_entries(lua: &Lua, entries: &Value) -> Result<Vec<LootEntry>, Failure> {
    let func = "add_loot_table";
    let t = match entries {
        Value::Table(t) => t,
        other => {
            return Err(error::must_be(
                func,
                "entries",
                ENTRIES_RULE,
                error::type_name(other),
            ))
        }
    };
    // A non-empty sequence: exactly the keys 1..#entries.
    let n = t.raw_len();
    let mut keys = 0usize;
    let mut shape_ok = n >= 1;
    for pair in t.pairs::<Value, Value>() {
        let (k, _) = pair.map_err(|e| error::lua_in(func, "entries", e))?;
        keys += 1;
        shape_ok &= match k {
            Value::Integer(i) => i >= 1 && (i as usize) <= n,
            Value::Number(f) => f.fract() == 0.0 && f >= 1.0 && f <= n as f64,
            _ => false,
        };
    }
    if !shape_ok || keys != n {
        return Err(error::must_be(func, "entries", ENTRIES_RULE, "table"));
    }
    let known = ENTRY_KEYS.map(|(k, _)| k);
    let mut out = Vec::with_capacity(n);
    let mut total: u64 = 0;
    for i in 1..=n {
        let entry = match t.raw_get::<Value>(i).unwrap_or(Value::Nil) {
            Value::Table(e) => e,
            other => {
                let arg = format!("entries[{i}]");
                return Err(error::must_be(
                    func,
                    &arg,
                    "a table",
                    error::type_name(&other),
                ));
            }
        };
        check_keys(lua, func, &format!("entries[{i}]"), &entry, &known)?;
        let mut vals = [0i64; 5];
        for (slot, (key, range)) in vals.iter_mut().zip(ENTRY_KEYS) {
            let arg = format!("entries[{i}].{key}");
            *slot = args::int(lua, func, &arg, &field(&entry, key), range)?;
        }
        // In range, so the casts are exact.
        let [item, weight, min, max, rarity] = vals;
        let e = LootEntry {
            item: item as u32,
            weight: weight as u32,
            min: min as u16,
            max: max as u16,
            rarity: rarity as u8,
        };
        if e.min > e.max {
            let kind = ErrorKind::MinGreaterThanMax {
                entry: i,
                min: e.min,
                max: e.max,
            };
            return Err(Error::new(Method::AddLootTable, kind).into());
        }
        total += e.weight as u64;
        out.push(e);
    }
    if total > u32::MAX as u64 {
        let kind = ErrorKind::TotalWeight { total };
        return Err(Error::new(Method::AddLootTable, kind).into());
    }
    Ok(out)
}
