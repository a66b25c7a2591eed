//! Snapshot and restore: a resolver's whole state as plain data, so a game
//! can move a running resolver to another backend (or another process)
//! without a client noticing (docs/API.md, "Snapshot, restore and swap").
//!
//! [`Resolver::snapshot`](crate::Resolver::snapshot) waits for in-flight work (like `flush`) and copies
//! out the options, loot tables, sites (with their charges left), players
//! (position, party), the next seq, the counters `stats()` reports and the
//! packets not yet polled, in stream order. Everything is sorted by id, so
//! two resolvers with the same history give equal snapshots whatever their
//! internal layout (and the pure-Lua reference gives the same one too).
//!
//! [`Resolver::restore`](crate::Resolver::restore) validates the whole snapshot *before* it starts a
//! single worker thread, so a bad snapshot builds nothing. The contract's
//! validation (the error texts a Lua caller sees) lives once, in
//! `lua/treasure/snapshot.lua`; the checks here are the core's own defence,
//! because the core is also used and tested alone. They reject everything
//! that would make the restored resolver inconsistent: ranges, duplicate
//! ids, a site on an occupied block or with an unknown loot table, counters
//! that do not add up, a `next_seq` that is not `digs + 1` or not past the
//! pending packets, pending bytes that are not whole valid packets in
//! stream order.
//!
//! Restored pending packets are delivered first, in order; new digs then
//! continue at `next_seq`, and `stats()` continues from the counters.

use std::collections::HashMap;

use crate::contract::checks::{
    check_coords, check_id, check_loot_entries, check_options, check_range,
};
use crate::contract::limits::{self, COUNTER_NAMES};
use crate::contract::{Arg, EntriesAt, Error, ErrorKind, Expected, Method, SnapshotPath};
use crate::options::Options;
use crate::roll::LootEntry;
use crate::wire::{Packet, SIZE};
use crate::world::block_key;

pub use crate::contract::limits::SNAPSHOT_VERSION;

/// A loot table, entries in table order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LootTableSnapshot {
    pub id: u32,
    pub entries: Vec<LootEntry>,
}

/// A site and the charges it has left.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SiteSnapshot {
    pub id: u32,
    pub x: i32,
    pub y: i32,
    pub z: i32,
    pub loot_table_id: u32,
    pub charges: u32,
}

/// A joined player.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlayerSnapshot {
    pub id: u32,
    pub x: i32,
    pub y: i32,
    pub z: i32,
    /// 0 = no party.
    pub party: u32,
    /// Cluster mode only: the shard the player is connected to.
    pub host: Option<u16>,
}

/// A source or destination shard and a seq (`cluster.applied`,
/// `cluster.sent`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShardSeq {
    pub shard: u16,
    pub seq: u64,
}

/// What a cluster resolver's snapshot adds (`snapshot.cluster`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterSnapshot {
    /// The host seq the next applied entry gets.
    pub next_host_seq: u64,
    /// The largest `log_position` given to `apply_records` (0: none).
    pub log_position: u64,
    /// Per source shard, the highest owner seq applied (only those above
    /// 0), ascending shard.
    pub applied: Vec<ShardSeq>,
    /// Per destination, `to` of the last record cut for it (only those
    /// above 0), ascending shard.
    pub sent: Vec<ShardSeq>,
    /// The records `take_records` would return after a flush, restored as
    /// not yet taken.
    pub outgoing: Vec<u8>,
    pub counters: ClusterCounters,
}

use crate::cluster::incoming::ClusterCounters;
use crate::cluster::record::{Expect, Record};
use crate::contract::checks::check_cluster_options;
use crate::contract::limits::CLUSTER_COUNTER_NAMES;
use crate::stats::Counters;

/// A resolver's state as plain data. Lists are sorted by id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// [`SNAPSHOT_VERSION`].
    pub version: u32,
    /// The options the resolver was made with (`workers` as given, 0 = one
    /// per core). The pipeline tuning fields are carried along but are not
    /// part of the Lua snapshot.
    pub options: Options,
    pub loot_tables: Vec<LootTableSnapshot>,
    pub sites: Vec<SiteSnapshot>,
    pub players: Vec<PlayerSnapshot>,
    /// The seq the next accepted dig gets (= `counters.digs + 1`).
    pub next_seq: u64,
    pub counters: Counters,
    /// The packets not yet polled, in stream order: `n * 128` bytes (in
    /// cluster mode the host packets, numbered by host seq).
    pub pending: Vec<u8>,
    /// Cluster mode only (`options.shard`/`shards` given).
    pub cluster: Option<ClusterSnapshot>,
}

const RESTORE: Method = Method::Restore;

fn at(path: SnapshotPath) -> Arg {
    Arg::Snapshot(path)
}

/// `snapshot.<list>[i].x`, `.y`, `.z`.
fn item_xyz(list: &'static str, n: usize) -> [Arg; 3] {
    ["x", "y", "z"].map(|axis| at(SnapshotPath::ItemField(list, n, axis)))
}

/// Checks that `s` describes a consistent resolver (see the module docs).
///
/// # Errors
///
/// The first rule broken, reported for `restore`.
pub fn validate(s: &Snapshot) -> Result<(), Error> {
    if s.version != SNAPSHOT_VERSION {
        let got = s.version;
        return Err(Error::new(RESTORE, ErrorKind::SnapshotVersion { got }));
    }
    let o = &s.options;
    check_options(
        RESTORE,
        |name| at(SnapshotPath::Option(name)),
        [
            o.seed,
            o.aoi_radius as u64,
            o.reach as u64,
            o.workers as u64,
            o.max_pending_packets,
        ],
    )?;
    let cluster = check_cluster_options(
        RESTORE,
        crate::contract::OptionsAt::Snapshot,
        o.shard.map(i128::from),
        o.shards.map(i128::from),
    )?;

    let mut tables: HashMap<u32, usize> = HashMap::new();
    for (i, t) in s.loot_tables.iter().enumerate() {
        let n = i + 1;
        let list = "loot_tables";
        check_id(RESTORE, at(SnapshotPath::ItemField(list, n, "id")), t.id)?;
        if let Some(first) = tables.insert(t.id, n) {
            return Err(repeated(list, n, first, t.id));
        }
        check_loot_entries(RESTORE, EntriesAt::LootTable(n), &t.entries)?;
    }

    let mut site_ids: HashMap<u32, usize> = HashMap::new();
    let mut blocks: HashMap<u64, u32> = HashMap::new();
    for (i, site) in s.sites.iter().enumerate() {
        let n = i + 1;
        let list = "sites";
        check_id(RESTORE, at(SnapshotPath::ItemField(list, n, "id")), site.id)?;
        check_coords(RESTORE, item_xyz(list, n), [site.x, site.y, site.z])?;
        let table_arg = at(SnapshotPath::ItemField(list, n, "loot_table_id"));
        check_id(RESTORE, table_arg, site.loot_table_id)?;
        if let Some(first) = site_ids.insert(site.id, n) {
            return Err(repeated(list, n, first, site.id));
        }
        if let Some(other) = blocks.insert(block_key(site.x, site.y, site.z), site.id) {
            let kind = ErrorKind::OccupiedBlock {
                snapshot_site: Some(n),
                x: site.x,
                y: site.y,
                z: site.z,
                site: other,
            };
            return Err(Error::new(RESTORE, kind));
        }
        if !tables.contains_key(&site.loot_table_id) {
            let id = site.loot_table_id;
            let kind = ErrorKind::UnknownLootTable { arg: table_arg, id };
            return Err(Error::new(RESTORE, kind));
        }
    }

    let mut player_ids: HashMap<u32, usize> = HashMap::new();
    for (i, p) in s.players.iter().enumerate() {
        let n = i + 1;
        let list = "players";
        check_id(RESTORE, at(SnapshotPath::ItemField(list, n, "id")), p.id)?;
        check_coords(RESTORE, item_xyz(list, n), [p.x, p.y, p.z])?;
        let host_arg = at(SnapshotPath::ItemField(list, n, "host"));
        match (cluster, p.host) {
            (None, None) => {}
            (None, Some(_)) => {
                let arg = at(SnapshotPath::Item(list, n));
                return Err(Error::unknown_key(RESTORE, arg, "host"));
            }
            (Some((_, shards)), None) => {
                return Err(Error::out_of_range(
                    RESTORE,
                    host_arg,
                    limits::shard_of(shards),
                    "nil",
                ));
            }
            (Some((_, shards)), Some(h)) => {
                check_range(RESTORE, host_arg, limits::shard_of(shards), h)?;
            }
        }
        if let Some(first) = player_ids.insert(p.id, n) {
            return Err(repeated(list, n, first, p.id));
        }
    }

    let c = &s.counters;
    for (name, v) in COUNTER_NAMES.into_iter().zip(c.values()) {
        check_range(RESTORE, at(SnapshotPath::Counter(name)), limits::COUNT, v)?;
    }
    let sum = c.found as i128 + c.empty as i128 + c.nothing as i128 + c.rejected as i128;
    if c.digs as i128 != sum {
        let digs = c.digs;
        return Err(Error::new(
            RESTORE,
            ErrorKind::CountersDoNotAddUp { sum, digs },
        ));
    }

    if !s.pending.len().is_multiple_of(SIZE) {
        let arg = at(SnapshotPath::Field("pending"));
        return Err(Error::length_not_multiple(
            RESTORE,
            arg,
            SIZE,
            s.pending.len(),
        ));
    }
    let pending = (s.pending.len() / SIZE) as u64;
    let mut last: Option<(u64, u32)> = None;
    for (i, bytes) in s.pending.chunks_exact(SIZE).enumerate() {
        let index = i + 1;
        let p = Packet::new_checked(bytes)
            .map_err(|error| Error::new(RESTORE, ErrorKind::InvalidPacket { index, error }))?;
        let (seq, recipient) = (p.seq(), p.recipient());
        if seq < 1 {
            return Err(Error::new(
                RESTORE,
                ErrorKind::PendingSeqZero { index, seq },
            ));
        }
        if let Some((previous_seq, previous)) = last {
            if seq < previous_seq {
                let kind = ErrorKind::PendingSeqBelowPrevious {
                    index,
                    previous: previous_seq,
                    seq,
                };
                return Err(Error::new(RESTORE, kind));
            }
            if seq == previous_seq && recipient <= previous {
                let kind = ErrorKind::PendingRecipientNotAbove {
                    index,
                    previous,
                    seq,
                    recipient,
                };
                return Err(Error::new(RESTORE, kind));
            }
        }
        last = Some((seq, recipient));
    }
    if c.packets < pending {
        let packets = c.packets;
        return Err(Error::new(
            RESTORE,
            ErrorKind::PacketsBelowPending { pending, packets },
        ));
    }

    // 2^53 once seq 2^53-1 was used: that resolver still snapshots.
    let next_seq = s.next_seq;
    check_range(
        RESTORE,
        at(SnapshotPath::Field("next_seq")),
        limits::NEXT_SEQ,
        next_seq,
    )?;
    // In cluster mode pending packets carry host seqs, which the cluster
    // rules bound by `cluster.next_host_seq` instead.
    if let (None, Some((last, _))) = (cluster, last) {
        if next_seq <= last {
            let kind = ErrorKind::NextSeqNotAbovePending { last, next_seq };
            return Err(Error::new(RESTORE, kind));
        }
    }
    let expected = c.digs as i128 + 1;
    if next_seq as i128 != expected {
        let kind = ErrorKind::NextSeqNotDigsPlusOne { expected, next_seq };
        return Err(Error::new(RESTORE, kind));
    }
    match (cluster, &s.cluster) {
        (None, None) => Ok(()),
        (None, Some(_)) => Err(Error::unknown_key(
            RESTORE,
            at(SnapshotPath::Root),
            "cluster",
        )),
        (Some(_), None) => Err(Error::wrong_type(
            RESTORE,
            at(SnapshotPath::Field("cluster")),
            Expected::Table,
            "nil",
        )),
        (Some((shard, shards)), Some(cs)) => {
            validate_cluster(cs, shard, shards, last.map(|(seq, _)| seq))
        }
    }
}

/// `snapshot.cluster` of a resolver of `shard` among `shards`, whose last
/// pending (host) packet has seq `last_pending`. Order: `next_host_seq`,
/// `log_position`, `applied`, `sent` (each element: `shard`, `seq`, then
/// no repeated shard), `outgoing` (records first to last), `counters`,
/// then `next_host_seq` above the last pending packet's seq.
fn validate_cluster(
    cs: &ClusterSnapshot,
    shard: u16,
    shards: u16,
    last_pending: Option<u64>,
) -> Result<(), Error> {
    let field = |name| at(SnapshotPath::Cluster(name));
    check_range(
        RESTORE,
        field("next_host_seq"),
        limits::NEXT_HOST_SEQ,
        cs.next_host_seq,
    )?;
    check_range(
        RESTORE,
        field("log_position"),
        limits::LOG_POSITION,
        cs.log_position,
    )?;
    for (list, items) in [("applied", &cs.applied), ("sent", &cs.sent)] {
        let mut seen: HashMap<u16, usize> = HashMap::new();
        for (i, e) in items.iter().enumerate() {
            let n = i + 1;
            let shard_arg = at(SnapshotPath::ClusterItemField(list, n, "shard"));
            check_range(RESTORE, shard_arg, limits::shard_of(shards), e.shard)?;
            let seq_arg = at(SnapshotPath::ClusterItemField(list, n, "seq"));
            check_range(RESTORE, seq_arg, limits::CLUSTER_SEQ, e.seq)?;
            if let Some(first) = seen.insert(e.shard, n) {
                let kind = ErrorKind::RepeatedShard {
                    list,
                    index: n,
                    first,
                    shard: e.shard,
                };
                return Err(Error::new(RESTORE, kind));
            }
        }
    }
    let mut bytes = &cs.outgoing[..];
    let expect = Expect::From { shard, shards };
    let mut i = 0;
    while !bytes.is_empty() {
        i += 1;
        let (_, rest) = Record::new_checked(bytes, expect).map_err(|reason| {
            let arg = at(SnapshotPath::ClusterItem("outgoing", i));
            Error::new(
                RESTORE,
                ErrorKind::InvalidRecord {
                    arg,
                    shard,
                    reason: Box::new(reason),
                },
            )
        })?;
        bytes = rest;
    }
    for (name, v) in CLUSTER_COUNTER_NAMES.into_iter().zip(cs.counters.values()) {
        let arg = at(SnapshotPath::ClusterCounter(name));
        check_range(RESTORE, arg, limits::COUNT, v)?;
    }
    if let Some(last) = last_pending {
        if cs.next_host_seq <= last {
            let kind = ErrorKind::NextHostSeqNotAbovePending {
                last,
                next_host_seq: cs.next_host_seq,
            };
            return Err(Error::new(RESTORE, kind));
        }
    }
    Ok(())
}

fn repeated(list: &'static str, index: usize, first: usize, id: u32) -> Error {
    Error::new(
        RESTORE,
        ErrorKind::RepeatedId {
            list,
            index,
            first,
            id,
        },
    )
}

/// Sorts the lists by id (the order snapshots are written in).
pub(crate) fn sort(s: &mut Snapshot) {
    s.loot_tables.sort_unstable_by_key(|t| t.id);
    s.sites.sort_unstable_by_key(|t| t.id);
    s.players.sort_unstable_by_key(|t| t.id);
    if let Some(c) = s.cluster.as_mut() {
        c.applied.sort_unstable_by_key(|e| e.shard);
        c.sent.sort_unstable_by_key(|e| e.shard);
    }
}
