//! `r:snapshot()` and `treasure.native.restore(snapshot)`: converting the
//! core's [`Snapshot`] to and from plain Lua data.
//!
//! The contract's validation (every rule, every message) runs before
//! `restore` reaches Rust: native.lua calls `lua/treasure/snapshot.lua`,
//! compiled into this library, which is the one definition both backends
//! share. Here the checked data is turned into typed data and handed to
//! `Resolver::restore`, which validates again defensively (the core is also
//! used alone) before it starts any thread.
//!
//! The small parts (version, options, loot tables, counters, next seq) go
//! through mlua's serde support (`LuaSerdeExt::from_value`). The two big
//! lists, sites and players (100,000 and 12,000 in the harness), cross the
//! boundary as packed little-endian records that native.lua reads and writes
//! with the FFI in compiled Lua: building or reading one small table per
//! record through the C API costs ~1 us each, which would make a swap stall
//! the game loop for a noticeable time. Records: a site is 24 bytes `{u32
//! id, i32 x, i32 y, i32 z, u32 loot_table_id, u32 charges}`, a player 20
//! bytes `{u32 id, i32 x, i32 y, i32 z, u32 party}`.

use mlua::{Lua, LuaSerdeExt, Table, Value};
use serde::Deserialize;
use treasure_core::contract::limits::COUNTER_NAMES;
use treasure_core::contract::Expected;
use treasure_core::{
    Arg, Counters, Error, LootEntry, LootTableSnapshot, Method, Options, PlayerSnapshot,
    SiteSnapshot, Snapshot, SnapshotPath,
};

use crate::error;

/// Bytes of a packed site record (native.lua's `treasure_snapshot_site_v1`).
pub const SITE_RECORD: usize = 24;
/// Bytes of a packed player record (`treasure_snapshot_player_v1`).
pub const PLAYER_RECORD: usize = 20;

/// Every failure here is `restore`'s.
const M: Method = Method::Restore;

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
struct CountersDe {
    digs: f64,
    packets: f64,
    found: f64,
    empty: f64,
    nothing: f64,
    rejected: f64,
    busy: f64,
}

/// The small part of a snapshot: native.lua passes a table with just these
/// keys (sites and players come packed; `pending`, a binary string, is read
/// directly).
#[derive(Deserialize)]
struct HeaderDe {
    version: f64,
    options: OptionsDe,
    loot_tables: Vec<LootTableDe>,
    next_seq: f64,
    counters: CountersDe,
}

// The values were checked to be exact integers in range by snapshot.lua;
// the saturating `as` casts cannot change them (and the core re-checks).
fn u32_of(v: f64) -> u32 {
    v as u32
}
fn u64_of(v: f64) -> u64 {
    v as u64
}

fn word(b: &[u8], i: usize) -> [u8; 4] {
    [b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]]
}

fn packed<'a>(
    v: &'a [u8],
    size: usize,
    what: &'static str,
) -> Result<std::slice::ChunksExact<'a, u8>, Error> {
    if !v.len().is_multiple_of(size) {
        return Err(Error::length_not_multiple(
            M,
            Arg::Plain(what),
            size,
            v.len(),
        ));
    }
    Ok(v.chunks_exact(size))
}

/// The checked snapshot as the core's type: `header` (see [`HeaderDe`]),
/// `pending`, and the packed `sites` and `players`; `base` supplies the
/// pipeline tuning (not part of a snapshot).
pub fn from_lua(
    lua: &Lua,
    header: &Value,
    sites: &[u8],
    players: &[u8],
    base: Options,
) -> Result<Snapshot, Error> {
    let t = match header {
        Value::Table(t) => t,
        other => {
            let (arg, got) = (Arg::Snapshot(SnapshotPath::Root), error::type_name(other));
            return Err(Error::wrong_type(M, arg, Expected::Table, got));
        }
    };
    let de: HeaderDe = lua
        .from_value(header.clone())
        .map_err(|e| error::lua_in(M, Arg::Snapshot(SnapshotPath::Root), e))?;
    let pending = match t.raw_get::<Value>("pending") {
        Ok(Value::String(s)) => s.as_bytes().to_vec(),
        _ => {
            let arg = Arg::Snapshot(SnapshotPath::Field("pending"));
            return Err(Error::wrong_type_bare(M, arg, Expected::String));
        }
    };
    let sites = packed(sites, SITE_RECORD, "packed sites")?
        .map(|b| SiteSnapshot {
            id: u32::from_le_bytes(word(b, 0)),
            x: i32::from_le_bytes(word(b, 1)),
            y: i32::from_le_bytes(word(b, 2)),
            z: i32::from_le_bytes(word(b, 3)),
            loot_table_id: u32::from_le_bytes(word(b, 4)),
            charges: u32::from_le_bytes(word(b, 5)),
        })
        .collect();
    let players = packed(players, PLAYER_RECORD, "packed players")?
        .map(|b| PlayerSnapshot {
            id: u32::from_le_bytes(word(b, 0)),
            x: i32::from_le_bytes(word(b, 1)),
            y: i32::from_le_bytes(word(b, 2)),
            z: i32::from_le_bytes(word(b, 3)),
            party: u32::from_le_bytes(word(b, 4)),
        })
        .collect();
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
        sites,
        players,
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

/// The core snapshot as plain Lua data (the format of docs/API.md) without
/// `sites` and `players`, which are returned packed (native.lua unpacks
/// them); lists keep the core's order (sorted by id).
pub fn to_lua(lua: &Lua, s: &Snapshot) -> mlua::Result<(Table, mlua::LuaString, mlua::LuaString)> {
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

    let mut sites = Vec::with_capacity(s.sites.len() * SITE_RECORD);
    for site in &s.sites {
        sites.extend_from_slice(&site.id.to_le_bytes());
        sites.extend_from_slice(&site.x.to_le_bytes());
        sites.extend_from_slice(&site.y.to_le_bytes());
        sites.extend_from_slice(&site.z.to_le_bytes());
        sites.extend_from_slice(&site.loot_table_id.to_le_bytes());
        sites.extend_from_slice(&site.charges.to_le_bytes());
    }
    let mut players = Vec::with_capacity(s.players.len() * PLAYER_RECORD);
    for p in &s.players {
        players.extend_from_slice(&p.id.to_le_bytes());
        players.extend_from_slice(&p.x.to_le_bytes());
        players.extend_from_slice(&p.y.to_le_bytes());
        players.extend_from_slice(&p.z.to_le_bytes());
        players.extend_from_slice(&p.party.to_le_bytes());
    }

    t.raw_set("next_seq", n(s.next_seq as f64))?;
    let c = lua.create_table_with_capacity(0, 7)?;
    for (name, v) in COUNTER_NAMES.into_iter().zip(s.counters.values()) {
        c.raw_set(name, n(v as f64))?;
    }
    t.raw_set("counters", c)?;
    t.raw_set("pending", lua.create_string(&s.pending)?)?;
    Ok((t, lua.create_string(&sites)?, lua.create_string(&players)?))
}
