//! Snapshot and restore: a resolver's whole state as plain data, so a game
//! can move a running resolver to another backend (or another process)
//! without a client noticing (docs/API.md, "Snapshot, restore and swap").
//!
//! [`Resolver::snapshot`] waits for in-flight work (like `flush`) and copies
//! out the options, loot tables, sites (with their charges left), players
//! (position, party), the next seq, the counters `stats()` reports and the
//! packets not yet polled, in stream order. Everything is sorted by id, so
//! two resolvers with the same history give equal snapshots whatever their
//! internal layout (and the pure-Lua reference gives the same one too).
//!
//! [`Resolver::restore`] validates the whole snapshot *before* it starts a
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
use std::fmt;

use crate::error::limits::{COORD_MAX, COORD_MIN, MAX_SAFE, NEXT_SEQ_MAX, RADIUS_MAX, WORKERS_MAX};
use crate::resolver::{Options, Resolver};
use crate::roll::LootEntry;
use crate::wire::{Packet, SIZE};
use crate::world::block_key;

/// The snapshot format version this crate writes and reads.
pub const SNAPSHOT_VERSION: u32 = 1;

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
}

/// The counters of `stats()` that are history, not state: restoring them
/// makes `stats()` continue seamlessly. (`players`, `sites` and
/// `pending_packets` follow from the state; latency quantiles restart.)
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub digs: u64,
    pub packets: u64,
    pub found: u64,
    pub empty: u64,
    pub nothing: u64,
    pub rejected: u64,
    pub busy: u64,
}

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
    /// The packets not yet polled, in stream order: `n * 128` bytes.
    pub pending: Vec<u8>,
}

/// Why a snapshot could not be taken or restored. Displays as the contract
/// does: `treasure: <method>: <message>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotError {
    /// `snapshot` or `restore`.
    pub method: &'static str,
    pub message: String,
}

impl SnapshotError {
    pub(crate) fn new(method: &'static str, message: impl Into<String>) -> SnapshotError {
        SnapshotError {
            method,
            message: message.into(),
        }
    }
}

impl fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "treasure: {}: {}", self.method, self.message)
    }
}

impl std::error::Error for SnapshotError {}

fn bad(message: String) -> SnapshotError {
    SnapshotError::new("restore", message)
}

fn range(path: &str, v: i128, lo: i128, hi: i128) -> Result<(), SnapshotError> {
    if v < lo || v > hi {
        return Err(bad(format!(
            "{path} must be an integer in [{lo}, {hi}], got {v}"
        )));
    }
    Ok(())
}

fn coords(path: &str, x: i32, y: i32, z: i32) -> Result<(), SnapshotError> {
    for (axis, v) in [("x", x), ("y", y), ("z", z)] {
        range(
            &format!("{path}.{axis}"),
            v as i128,
            COORD_MIN as i128,
            COORD_MAX as i128,
        )?;
    }
    Ok(())
}

const ID_MAX: i128 = u32::MAX as i128;

/// Checks that `s` describes a consistent resolver (see the module docs).
pub fn validate(s: &Snapshot) -> Result<(), SnapshotError> {
    if s.version != SNAPSHOT_VERSION {
        return Err(bad(format!(
            "snapshot.version must be {SNAPSHOT_VERSION}, got {}",
            s.version
        )));
    }
    let o = &s.options;
    let safe = MAX_SAFE as i128;
    range("snapshot.options.seed", o.seed as i128, 0, safe)?;
    let radius = RADIUS_MAX as i128;
    range(
        "snapshot.options.aoi_radius",
        o.aoi_radius as i128,
        0,
        radius,
    )?;
    range("snapshot.options.reach", o.reach as i128, 0, radius)?;
    range(
        "snapshot.options.workers",
        o.workers as i128,
        0,
        WORKERS_MAX as i128,
    )?;
    range(
        "snapshot.options.max_pending_packets",
        o.max_pending_packets as i128,
        1,
        safe,
    )?;

    let mut tables: HashMap<u32, usize> = HashMap::new();
    for (i, t) in s.loot_tables.iter().enumerate() {
        let path = format!("snapshot.loot_tables[{}]", i + 1);
        range(&format!("{path}.id"), t.id as i128, 1, ID_MAX)?;
        if let Some(first) = tables.insert(t.id, i + 1) {
            return Err(bad(format!(
                "{path}.id must not repeat snapshot.loot_tables[{first}].id, got {}",
                t.id
            )));
        }
        if t.entries.is_empty() {
            return Err(bad(format!(
                "{path}.entries must be a non-empty array of tables, got table"
            )));
        }
        let mut total = 0u64;
        for (j, e) in t.entries.iter().enumerate() {
            let ep = format!("{path}.entries[{}]", j + 1);
            range(&format!("{ep}.item"), e.item as i128, 1, ID_MAX)?;
            range(&format!("{ep}.weight"), e.weight as i128, 1, ID_MAX)?;
            if e.min > e.max {
                return Err(bad(format!(
                    "{ep}.min must be <= max, got {} > {}",
                    e.min, e.max
                )));
            }
            total += e.weight as u64;
        }
        if total > u32::MAX as u64 {
            return Err(bad(format!(
                "{path}.entries total weight must be <= 4294967295, got {total}"
            )));
        }
    }

    let mut site_ids: HashMap<u32, usize> = HashMap::new();
    let mut blocks: HashMap<u64, u32> = HashMap::new();
    for (i, site) in s.sites.iter().enumerate() {
        let path = format!("snapshot.sites[{}]", i + 1);
        range(&format!("{path}.id"), site.id as i128, 1, ID_MAX)?;
        coords(&path, site.x, site.y, site.z)?;
        range(
            &format!("{path}.loot_table_id"),
            site.loot_table_id as i128,
            1,
            ID_MAX,
        )?;
        if let Some(first) = site_ids.insert(site.id, i + 1) {
            return Err(bad(format!(
                "{path}.id must not repeat snapshot.sites[{first}].id, got {}",
                site.id
            )));
        }
        if let Some(other) = blocks.insert(block_key(site.x, site.y, site.z), site.id) {
            return Err(bad(format!(
                "{path} block must not hold a site already, got {}, {}, {} (site {other})",
                site.x, site.y, site.z
            )));
        }
        if !tables.contains_key(&site.loot_table_id) {
            return Err(bad(format!(
                "{path}.loot_table_id must be an existing loot table, got {}",
                site.loot_table_id
            )));
        }
    }

    let mut player_ids: HashMap<u32, usize> = HashMap::new();
    for (i, p) in s.players.iter().enumerate() {
        let path = format!("snapshot.players[{}]", i + 1);
        range(&format!("{path}.id"), p.id as i128, 1, ID_MAX)?;
        coords(&path, p.x, p.y, p.z)?;
        if let Some(first) = player_ids.insert(p.id, i + 1) {
            return Err(bad(format!(
                "{path}.id must not repeat snapshot.players[{first}].id, got {}",
                p.id
            )));
        }
    }

    let c = &s.counters;
    for (name, v) in [
        ("digs", c.digs),
        ("packets", c.packets),
        ("found", c.found),
        ("empty", c.empty),
        ("nothing", c.nothing),
        ("rejected", c.rejected),
        ("busy", c.busy),
    ] {
        range(&format!("snapshot.counters.{name}"), v as i128, 0, safe)?;
    }
    let kinds = c.found as i128 + c.empty as i128 + c.nothing as i128 + c.rejected as i128;
    if c.digs as i128 != kinds {
        return Err(bad(format!(
            "snapshot.counters.digs must be found + empty + nothing + rejected ({kinds}), got {}",
            c.digs
        )));
    }

    if !s.pending.len().is_multiple_of(SIZE) {
        return Err(bad(format!(
            "snapshot.pending length must be a multiple of 128, got {}",
            s.pending.len()
        )));
    }
    let npending = (s.pending.len() / SIZE) as u64;
    let mut last: Option<(u64, u32)> = None;
    for (i, bytes) in s.pending.chunks_exact(SIZE).enumerate() {
        let path = format!("snapshot.pending[{}]", i + 1);
        let p = Packet::new_checked(bytes)
            .map_err(|e| bad(format!("{path} must be a valid packet, got {e}")))?;
        let (seq, rcpt) = (p.seq(), p.recipient());
        if seq < 1 {
            return Err(bad(format!("{path}.seq must be at least 1, got {seq}")));
        }
        if let Some((ls, lr)) = last {
            if seq < ls {
                return Err(bad(format!(
                    "{path}.seq must not be below the previous packet's seq {ls}, got {seq}"
                )));
            }
            if seq == ls && rcpt <= lr {
                return Err(bad(format!(
                    "{path}.recipient must be above the previous packet's recipient {lr} (same seq {seq}), got {rcpt}"
                )));
            }
        }
        last = Some((seq, rcpt));
    }
    if c.packets < npending {
        return Err(bad(format!(
            "snapshot.counters.packets must be at least the pending packets ({npending}), got {}",
            c.packets
        )));
    }

    // 2^53 once seq 2^53-1 was used: that resolver still snapshots.
    range(
        "snapshot.next_seq",
        s.next_seq as i128,
        1,
        NEXT_SEQ_MAX as i128,
    )?;
    if let Some((ls, _)) = last {
        if s.next_seq <= ls {
            return Err(bad(format!(
                "snapshot.next_seq must be above the last pending packet's seq {ls}, got {}",
                s.next_seq
            )));
        }
    }
    if s.next_seq as i128 != c.digs as i128 + 1 {
        return Err(bad(format!(
            "snapshot.next_seq must be counters.digs + 1 ({}), got {}",
            c.digs as i128 + 1,
            s.next_seq
        )));
    }
    Ok(())
}

/// Sorts the lists by id (the order snapshots are written in).
pub(crate) fn sort(s: &mut Snapshot) {
    s.loot_tables.sort_unstable_by_key(|t| t.id);
    s.sites.sort_unstable_by_key(|t| t.id);
    s.players.sort_unstable_by_key(|t| t.id);
}

impl Resolver {
    /// `r:snapshot()`: waits for every accepted dig (like `flush`), then
    /// returns the whole state, lists sorted by id. Changes nothing: the
    /// pending packets are copied, not taken.
    pub fn snapshot(&mut self) -> Result<Snapshot, SnapshotError> {
        let mut s = self.export_state()?;
        sort(&mut s);
        Ok(s)
    }

    /// `treasure.restore(snapshot)`: a new open resolver in exactly the
    /// state the snapshot describes. Everything is validated first; on an
    /// error nothing is built (no worker thread is started).
    pub fn restore(snapshot: Snapshot) -> Result<Resolver, SnapshotError> {
        validate(&snapshot)?;
        Resolver::import_state(snapshot)
    }
}
