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
//! bytes `{u32 id, i32 x, i32 y, i32 z, u32 party}`. In cluster mode each
//! player's `host` crosses as a separate packed `u32` per player, in the
//! players' order, so a snapshot without shards is unchanged; the
//! `cluster` table goes through serde, but for its binary `outgoing`.

use mlua::{Lua, LuaSerdeExt, Table, Value};
use serde::Deserialize;
use treasure_core::contract::limits::{CLUSTER_COUNTER_NAMES, COUNTER_NAMES};
use treasure_core::contract::Expected;
use treasure_core::{
    Arg, ClusterCounters, ClusterSnapshot, Counters, Error, LootEntry, LootTableSnapshot, Method,
    Options, PlayerSnapshot, ShardSeq, SiteSnapshot, Snapshot, SnapshotPath,
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
    shard: Option<f64>,
    shards: Option<f64>,
}

#[derive(Deserialize)]
struct ShardSeqDe {
    shard: f64,
    seq: f64,
}

#[derive(Deserialize)]
struct ClusterCountersDe {
    applied_digs: f64,
    duplicate_digs: f64,
    records_out: f64,
    records_in: f64,
}

#[derive(Deserialize)]
struct ClusterDe {
    next_host_seq: f64,
    log_position: f64,
    #[serde(default)]
    applied: Vec<ShardSeqDe>,
    #[serde(default)]
    sent: Vec<ShardSeqDe>,
    counters: ClusterCountersDe,
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
    cluster: Option<ClusterDe>,
}

/// The packed parts of a snapshot (see the module docs).
pub struct Packed<'a> {
    pub sites: &'a [u8],
    pub players: &'a [u8],
    /// Cluster mode only: a `u32` host per player.
    pub hosts: Option<&'a [u8]>,
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
    parts: Packed,
    base: Options,
) -> Result<Snapshot, Error> {
    let Packed {
        sites,
        players,
        hosts,
    } = parts;
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
    let mut players: Vec<PlayerSnapshot> = packed(players, PLAYER_RECORD, "packed players")?
        .map(|b| PlayerSnapshot {
            id: u32::from_le_bytes(word(b, 0)),
            x: i32::from_le_bytes(word(b, 1)),
            y: i32::from_le_bytes(word(b, 2)),
            z: i32::from_le_bytes(word(b, 3)),
            party: u32::from_le_bytes(word(b, 4)),
            host: None,
        })
        .collect();
    if let Some(h) = hosts {
        for (p, b) in players.iter_mut().zip(packed(h, 4, "packed hosts")?) {
            p.host = Some(u32::from_le_bytes(word(b, 0)) as u16);
        }
    }
    let outgoing = match t.raw_get::<Value>("cluster") {
        Ok(Value::Table(c)) => match c.raw_get::<Value>("outgoing") {
            Ok(Value::String(s)) => s.as_bytes().to_vec(),
            _ => {
                let arg = Arg::Snapshot(SnapshotPath::Cluster("outgoing"));
                return Err(Error::wrong_type_bare(M, arg, Expected::String));
            }
        },
        _ => Vec::new(),
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
            shard: o.shard.map(|v| v as u16),
            shards: o.shards.map(|v| v as u16),
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
        cluster: de.cluster.map(|c| {
            let pairs = |v: Vec<ShardSeqDe>| {
                v.into_iter()
                    .map(|e| ShardSeq {
                        shard: e.shard as u16,
                        seq: u64_of(e.seq),
                    })
                    .collect()
            };
            ClusterSnapshot {
                next_host_seq: u64_of(c.next_host_seq),
                log_position: u64_of(c.log_position),
                applied: pairs(c.applied),
                sent: pairs(c.sent),
                outgoing,
                counters: ClusterCounters {
                    applied_digs: u64_of(c.counters.applied_digs),
                    duplicate_digs: u64_of(c.counters.duplicate_digs),
                    records_out: u64_of(c.counters.records_out),
                    records_in: u64_of(c.counters.records_in),
                },
            }
        }),
    })
}

fn n(v: impl Into<f64>) -> Value {
    Value::Number(v.into())
}

/// The core snapshot as plain Lua data (the format of docs/API.md) without
/// `sites` and `players`, which are returned packed (native.lua unpacks
/// them); lists keep the core's order (sorted by id).
pub fn to_lua(
    lua: &Lua,
    s: &Snapshot,
) -> mlua::Result<(
    Table,
    mlua::LuaString,
    mlua::LuaString,
    Option<mlua::LuaString>,
)> {
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
    if let (Some(shard), Some(shards)) = (s.options.shard, s.options.shards) {
        o.raw_set("shard", n(shard))?;
        o.raw_set("shards", n(shards))?;
    }
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
    let mut hosts = None;
    if let Some(cs) = &s.cluster {
        let c = lua.create_table_with_capacity(0, 6)?;
        c.raw_set("next_host_seq", n(cs.next_host_seq as f64))?;
        c.raw_set("log_position", n(cs.log_position as f64))?;
        for (key, list) in [("applied", &cs.applied), ("sent", &cs.sent)] {
            let l = lua.create_table_with_capacity(list.len(), 0)?;
            for (i, e) in list.iter().enumerate() {
                let x = lua.create_table_with_capacity(0, 2)?;
                x.raw_set("shard", n(e.shard))?;
                x.raw_set("seq", n(e.seq as f64))?;
                l.raw_set(i + 1, x)?;
            }
            c.raw_set(key, l)?;
        }
        c.raw_set("outgoing", lua.create_string(&cs.outgoing)?)?;
        let k = lua.create_table_with_capacity(0, 4)?;
        for (name, v) in CLUSTER_COUNTER_NAMES.into_iter().zip(cs.counters.values()) {
            k.raw_set(name, n(v as f64))?;
        }
        c.raw_set("counters", k)?;
        t.raw_set("cluster", c)?;
        let mut h = Vec::with_capacity(s.players.len() * 4);
        for p in &s.players {
            h.extend_from_slice(&u32::from(p.host.unwrap_or(0)).to_le_bytes());
        }
        hosts = Some(lua.create_string(&h)?);
    }
    Ok((
        t,
        lua.create_string(&sites)?,
        lua.create_string(&players)?,
        hosts,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use treasure_core::Resolver;

    /// A cluster resolver's snapshot survives `to_lua` then `from_lua` with
    /// the header native.lua builds (the Lua-side rules are snapshot.lua's
    /// and are not run here).
    #[test]
    fn cluster_snapshot_round_trips_through_lua() {
        let base = Options {
            shard: Some(1),
            shards: Some(3),
            aoi_radius: 50,
            ..Options::default()
        };
        let mut r = Resolver::new(base.clone()).unwrap();
        r.add_loot_table(
            1,
            &[LootEntry {
                item: 2,
                weight: 1,
                min: 1,
                max: 1,
                rarity: 0,
            }],
        )
        .unwrap();
        r.add_site(1, 0, 0, 0, 1, 5).unwrap();
        for p in 1..=4 {
            r.join(p, p as i32, 0, 0, 0).unwrap();
        }
        r.set_host(2, 0).unwrap();
        r.set_host(3, 2).unwrap();
        r.dig(1, 0, 0, 0, 5).unwrap().unwrap();
        r.flush().unwrap();
        let mut own = Vec::new();
        r.take_records(&mut own).unwrap();
        // Apply the record addressed to this shard: host packets pending.
        let mut rest = &own[..];
        let mut mine = Vec::new();
        let expect = treasure_core::cluster_record::Expect::From {
            shard: 1,
            shards: 3,
        };
        while !rest.is_empty() {
            let (rec, next) =
                treasure_core::cluster_record::Record::new_checked(rest, expect).unwrap();
            if rec.dest() == 1 {
                mine.extend_from_slice(rec.bytes());
            }
            rest = next;
        }
        r.apply_records(&mine, Some(12)).unwrap();
        r.dig(2, 0, 0, 0, 6).unwrap().unwrap();
        let s = r.snapshot().unwrap();
        let c = s.cluster.as_ref().unwrap();
        assert!(!c.outgoing.is_empty() && !c.sent.is_empty() && !c.applied.is_empty());
        assert!(!s.pending.is_empty());

        let lua = Lua::new();
        let (t, sites, players, hosts) = to_lua(&lua, &s).unwrap();
        let header = lua.create_table().unwrap();
        for key in [
            "version",
            "options",
            "loot_tables",
            "next_seq",
            "counters",
            "pending",
            "cluster",
        ] {
            header
                .raw_set(key, t.raw_get::<Value>(key).unwrap())
                .unwrap();
        }
        let hosts = hosts.expect("cluster mode packs hosts");
        let (sites, players, hosts) = (sites.as_bytes(), players.as_bytes(), hosts.as_bytes());
        let parts = Packed {
            sites: &sites,
            players: &players,
            hosts: Some(&hosts),
        };
        let back = from_lua(&lua, &Value::Table(header), parts, base).unwrap();
        assert_eq!(back, s);
        let mut restored = Resolver::restore(back).unwrap();
        assert_eq!(restored.snapshot().unwrap(), s);

        // A fresh cluster resolver: empty lists and strings convert too.
        let mut fresh = Resolver::new(Options {
            shard: Some(0),
            shards: Some(1),
            ..Options::default()
        })
        .unwrap();
        let s = fresh.snapshot().unwrap();
        let (t, sites, players, hosts) = to_lua(&lua, &s).unwrap();
        let (sites, players, hosts) = (
            sites.as_bytes(),
            players.as_bytes(),
            hosts.expect("cluster mode packs hosts").as_bytes(),
        );
        let parts = Packed {
            sites: &sites,
            players: &players,
            hosts: Some(&hosts),
        };
        let back = from_lua(&lua, &Value::Table(t), parts, Options::default()).unwrap();
        assert_eq!(back, s);

        // Outside cluster mode nothing is added.
        let mut plain = Resolver::new(Options::default()).unwrap();
        plain.join(1, 0, 0, 0, 0).unwrap();
        let (t, _, _, hosts) = to_lua(&lua, &plain.snapshot().unwrap()).unwrap();
        assert!(hosts.is_none());
        assert!(t.raw_get::<Value>("cluster").unwrap().is_nil());
        let o: Table = t.raw_get("options").unwrap();
        assert!(o.raw_get::<Value>("shard").unwrap().is_nil());
    }
}
