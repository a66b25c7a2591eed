//! Table arguments: the `opts` of `new` and the `entries` of
//! `add_loot_table`.
//!
//! The contract's checks run on the raw Lua values in its documented order
//! (unknown keys in `next()` order, then each field in turn, then an
//! entry's own rule before the next entry), so the first failure is the one
//! treasure.legacy reports; each checked field is then the typed value the
//! core takes. Keys, ranges, messages and the loot-entry rule are the
//! core's (`treasure_core::contract`).

use mlua::{Lua, LuaSerdeExt, Table, Value};
use serde::Deserialize;
use treasure_core::contract::checks::{check_loot_entry, check_total_weight};
use treasure_core::contract::limits::{CLUSTER_OPTION_FIELDS, LOOT_ENTRY_FIELDS, OPTION_FIELDS};
use treasure_core::contract::Expected;
use treasure_core::{Arg, EntriesAt, Error, ErrorKind, LootEntry, Method, Options};

use crate::args;
use crate::error;

/// Reports the first key of `t` (in `next()` order) that is not in `known`.
fn check_keys<const N: usize>(
    lua: &Lua,
    m: Method,
    arg: Arg,
    t: &Table,
    known: [&str; N],
) -> Result<(), Error> {
    for pair in t.pairs::<Value, Value>() {
        let (k, _) = pair.map_err(|e| error::lua_in(m, arg, e))?;
        let is_known =
            matches!(&k, Value::String(s) if known.iter().any(|n| s.as_bytes() == n.as_bytes()));
        if !is_known {
            let name = match &k {
                Value::String(s) => s.to_string_lossy(),
                other => error::describe(lua, other),
            };
            return Err(Error::unknown_key(m, arg, name));
        }
    }
    Ok(())
}

fn field(t: &Table, key: &str) -> Value {
    t.raw_get::<Value>(key).unwrap_or(Value::Nil)
}

/// `treasure.new(opts)`: `nil` or a table of the contract's keys.
pub fn options(lua: &Lua, opts: &Value) -> Result<Options, Error> {
    let m = Method::New;
    let mut out = Options::default();
    let t = match opts {
        Value::Nil => return Ok(out),
        Value::Table(t) => t,
        other => {
            let got = error::type_name(other);
            return Err(Error::wrong_type(
                m,
                Arg::Plain("opts"),
                Expected::Table,
                got,
            ));
        }
    };
    let [a, b, c, d, e] = OPTION_FIELDS.map(|(k, _)| k);
    let [f, g] = CLUSTER_OPTION_FIELDS.map(|(k, _)| k);
    check_keys(lua, m, Arg::Plain("opts"), t, [a, b, c, d, e, f, g])?;
    let mut values = [None; 5];
    for (slot, (key, range)) in values.iter_mut().zip(OPTION_FIELDS) {
        *slot = args::opt(&field(t, key), |v| {
            args::int(lua, m, Arg::Opt(key), v, range)
        })?;
    }
    // Each value is an exact integer within its range, so the casts are exact.
    let [seed, aoi_radius, reach, workers, max_pending_packets] = values;
    if let Some(v) = seed {
        out.seed = v as u64;
    }
    if let Some(v) = aoi_radius {
        out.aoi_radius = v as u32;
    }
    if let Some(v) = reach {
        out.reach = v as u32;
    }
    if let Some(v) = workers {
        out.workers = v as u32;
    }
    if let Some(v) = max_pending_packets {
        out.max_pending_packets = v as u64;
    }
    // Cluster mode: each in range here (type and range of the Lua value);
    // `Resolver::new` checks them together (both or neither, shard below
    // shards).
    let [shard, shards] = CLUSTER_OPTION_FIELDS.map(|(key, range)| {
        args::opt(&field(t, key), |v| {
            args::int(lua, m, Arg::Opt(key), v, range)
        })
    });
    out.shard = shard?.map(|v| v as u16);
    out.shards = shards?.map(|v| v as u16);
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

/// Applies the test-only `tuning` table (nil: none) to `opts`; `m` is the
/// function it was passed to.
pub fn tuning(lua: &Lua, m: Method, tuning: &Value, opts: &mut Options) -> Result<(), Error> {
    if tuning.is_nil() {
        return Ok(());
    }
    let de: TuningDe = lua
        .from_value(tuning.clone())
        .map_err(|e| error::lua_in(m, Arg::Plain("tuning"), e))?;
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

/// `add_loot_table(id, entries)`: the entries array, checked in full.
pub fn loot_entries(lua: &Lua, entries: &Value) -> Result<Vec<LootEntry>, Error> {
    let m = Method::AddLootTable;
    let at = EntriesAt::Argument;
    let t = match entries {
        Value::Table(t) => t,
        other => {
            let (arg, got) = (Arg::Entries(at), error::type_name(other));
            return Err(Error::wrong_type(
                m,
                arg,
                Expected::NonEmptyArrayOfTables,
                got,
            ));
        }
    };
    // A non-empty sequence: exactly the keys 1..#entries.
    let n = t.raw_len();
    let mut keys = 0usize;
    let mut shape_ok = n >= 1;
    for pair in t.pairs::<Value, Value>() {
        let (k, _) = pair.map_err(|e| error::lua_in(m, Arg::Entries(at), e))?;
        keys += 1;
        shape_ok &= match k {
            Value::Integer(i) => i >= 1 && (i as usize) <= n,
            Value::Number(f) => f.fract() == 0.0 && f >= 1.0 && f <= n as f64,
            _ => false,
        };
    }
    if !shape_ok || keys != n {
        return Err(Error::new(m, ErrorKind::EmptyEntries { at }));
    }
    let mut out = Vec::with_capacity(n);
    let mut total: u64 = 0;
    for i in 1..=n {
        let entry = match t.raw_get::<Value>(i).unwrap_or(Value::Nil) {
            Value::Table(e) => e,
            other => {
                let (arg, got) = (Arg::EntryTable(at, i), error::type_name(&other));
                return Err(Error::wrong_type(m, arg, Expected::Table, got));
            }
        };
        let known = LOOT_ENTRY_FIELDS.map(|(k, _)| k);
        check_keys(lua, m, Arg::EntryTable(at, i), &entry, known)?;
        let mut vals = [0i64; 5];
        for (slot, (key, range)) in vals.iter_mut().zip(LOOT_ENTRY_FIELDS) {
            *slot = args::int(lua, m, Arg::Entry(at, i, key), &field(&entry, key), range)?;
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
        total += check_loot_entry(m, at, i, &e)?;
        out.push(e);
    }
    check_total_weight(m, at, total)?;
    Ok(out)
}
