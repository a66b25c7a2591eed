//! `r:snapshot()` and `treasure.native.restore(snapshot)`: converting the
//! core's [`Snapshot`] to and from plain Lua data.
//!
//! The contract's validation (every rule, every message) runs before
//! `restore` reaches Rust: native.lua calls `lua/treasure/snapshot.lua`,
//! compiled into this library, which is the one definition both backends
//! share. Here the checked table is turned into typed data with mlua's
//! serde support (`LuaSerdeExt::from_value`) and handed to
//! `Resolver::restore`, which validates again defensively (the core is also
//! used alone) before it starts any thread.

use mlua::{Lua, LuaSerdeExt, Table, Value};
use serde::Deserialize;
use treasure_core::{
    Counters, LootEntry, LootTableSnapshot, Options, PlayerSnapshot, SiteSnapshot, Snapshot,
};

use crate::args::Fail;

#[derive(Deserialize)]
struct OptionsDe {
    seed: f64,
    aoi_radius: f64,
    reach: f64,
    workers: f64,
    max_pending_packets: f64,
}

#[derive(Deserialize)]
struct EntryDe {
    item: f64,
    weight: f64,
    min: f64,
    max: f64,
    rarity: f64,
}

#[derive(Deserialize)]
struct LootTableDe {
    id: f64,
    entries: Vec<EntryDe>,
}

#[derive(Deserialize)]
struct SiteDe {
    id: f64,
    x: f64,
    y: f64,
    z: f64,
    loot_table_id: f64,
    charges: f64,
}

#[derive(Deserialize)]
struct PlayerDe {
    id: f64,
    x: f64,
    y: f64,
    z: f64,
    party: f64,
}

#[derive(Deserialize)]
struct CountersDe {
    digs: f64,
    packets: f64,
    found: f64,
    empty: f64,
    nothing: f64,
    rejected: f64,
    busy: f64,
}

/// Everything but `pending` (a binary string, read directly).
#[derive(Deserialize)]
struct SnapshotDe {
    version: f64,
    options: OptionsDe,
    loot_tables: Vec<LootTableDe>,
    sites: Vec<SiteDe>,
    players: Vec<PlayerDe>,
    next_seq: f64,
    counters: CountersDe,
}

// The values were checked to be exact integers in range by snapshot.lua;
// the saturating `as` casts cannot change them (and the core re-checks).
fn u32_of(v: f64) -> u32 {
    v as u32
}
fn i32_of(v: f64) -> i32 {
    v as i32
}
fn u64_of(v: f64) -> u64 {
    v as u64
}

/// The checked Lua snapshot as the core's type; `base` supplies the
/// pipeline tuning (not part of a snapshot).
pub fn from_lua(lua: &Lua, v: &Value, base: Options) -> Result<Snapshot, Fail> {
    let t = match v {
        Value::Table(t) => t,
        other => {
            return Err(format!(
                "treasure: restore: snapshot must be a table, got {}",
                crate::args::type_name(other)
            ))
        }
    };
    let de: SnapshotDe = lua
        .from_value(v.clone())
        .map_err(|e| format!("treasure: restore: snapshot: {e}"))?;
    let pending = match t.raw_get::<Value>("pending") {
        Ok(Value::String(s)) => s.as_bytes().to_vec(),
        _ => return Err("treasure: restore: snapshot.pending must be a string".to_owned()),
    };
    let o = de.options;
    let c = de.counters;
    Ok(Snapshot {
        version: u32_of(de.version),
        options: Options {
            seed: u64_of(o.seed),
            aoi_radius: u32_of(o.aoi_radius),
            reach: u32_of(o.reach),
            workers: u32_of(o.workers),
            max_pending_packets: u64_of(o.max_pending_packets),
            ..base
        },
        loot_tables: de
            .loot_tables
            .into_iter()
            .map(|t| LootTableSnapshot {
                id: u32_of(t.id),
                entries: t
                    .entries
                    .into_iter()
                    .map(|e| LootEntry {
                        item: u32_of(e.item),
                        weight: u32_of(e.weight),
                        min: e.min as u16,
                        max: e.max as u16,
                        rarity: e.rarity as u8,
                    })
                    .collect(),
            })
            .collect(),
        sites: de
            .sites
            .into_iter()
            .map(|s| SiteSnapshot {
                id: u32_of(s.id),
                x: i32_of(s.x),
                y: i32_of(s.y),
                z: i32_of(s.z),
                loot_table_id: u32_of(s.loot_table_id),
                charges: u32_of(s.charges),
            })
            .collect(),
        players: de
            .players
            .into_iter()
            .map(|p| PlayerSnapshot {
                id: u32_of(p.id),
                x: i32_of(p.x),
                y: i32_of(p.y),
                z: i32_of(p.z),
                party: u32_of(p.party),
            })
            .collect(),
        next_seq: u64_of(de.next_seq),
        counters: Counters {
            digs: u64_of(c.digs),
            packets: u64_of(c.packets),
            found: u64_of(c.found),
            empty: u64_of(c.empty),
            nothing: u64_of(c.nothing),
            rejected: u64_of(c.rejected),
            busy: u64_of(c.busy),
        },
        pending,
    })
}

fn n(v: impl Into<f64>) -> Value {
    Value::Number(v.into())
}

/// The core snapshot as plain Lua data (the format of docs/API.md); lists
/// keep the core's order (sorted by id).
pub fn to_lua(lua: &Lua, s: &Snapshot) -> mlua::Result<Table> {
    let t = lua.create_table_with_capacity(0, 8)?;
    t.raw_set("version", n(s.version))?;
    let o = lua.create_table_with_capacity(0, 5)?;
    o.raw_set("seed", n(s.options.seed as f64))?;
    o.raw_set("aoi_radius", n(s.options.aoi_radius))?;
    o.raw_set("reach", n(s.options.reach))?;
    o.raw_set("workers", n(s.options.workers))?;
    o.raw_set(
        "max_pending_packets",
        n(s.options.max_pending_packets as f64),
    )?;
    t.raw_set("options", o)?;

    let lts = lua.create_table_with_capacity(s.loot_tables.len(), 0)?;
    for (i, lt) in s.loot_tables.iter().enumerate() {
        let entries = lua.create_table_with_capacity(lt.entries.len(), 0)?;
        for (j, e) in lt.entries.iter().enumerate() {
            let et = lua.create_table_with_capacity(0, 5)?;
            et.raw_set("item", n(e.item))?;
            et.raw_set("weight", n(e.weight))?;
            et.raw_set("min", n(e.min))?;
            et.raw_set("max", n(e.max))?;
            et.raw_set("rarity", n(e.rarity))?;
            entries.raw_set(j + 1, et)?;
        }
        let x = lua.create_table_with_capacity(0, 2)?;
        x.raw_set("id", n(lt.id))?;
        x.raw_set("entries", entries)?;
        lts.raw_set(i + 1, x)?;
    }
    t.raw_set("loot_tables", lts)?;

    let sites = lua.create_table_with_capacity(s.sites.len(), 0)?;
    for (i, site) in s.sites.iter().enumerate() {
        let x = lua.create_table_with_capacity(0, 6)?;
        x.raw_set("id", n(site.id))?;
        x.raw_set("x", n(site.x))?;
        x.raw_set("y", n(site.y))?;
        x.raw_set("z", n(site.z))?;
        x.raw_set("loot_table_id", n(site.loot_table_id))?;
        x.raw_set("charges", n(site.charges))?;
        sites.raw_set(i + 1, x)?;
    }
    t.raw_set("sites", sites)?;

    let players = lua.create_table_with_capacity(s.players.len(), 0)?;
    for (i, p) in s.players.iter().enumerate() {
        let x = lua.create_table_with_capacity(0, 5)?;
        x.raw_set("id", n(p.id))?;
        x.raw_set("x", n(p.x))?;
        x.raw_set("y", n(p.y))?;
        x.raw_set("z", n(p.z))?;
        x.raw_set("party", n(p.party))?;
        players.raw_set(i + 1, x)?;
    }
    t.raw_set("players", players)?;

    t.raw_set("next_seq", n(s.next_seq as f64))?;
    let c = lua.create_table_with_capacity(0, 7)?;
    let k = &s.counters;
    for (name, v) in [
        ("digs", k.digs),
        ("packets", k.packets),
        ("found", k.found),
        ("empty", k.empty),
        ("nothing", k.nothing),
        ("rejected", k.rejected),
        ("busy", k.busy),
    ] {
        c.raw_set(name, n(v as f64))?;
    }
    t.raw_set("counters", c)?;
    t.raw_set("pending", lua.create_string(&s.pending)?)?;
    Ok(t)
}
