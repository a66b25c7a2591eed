//! The resolver: validation, the sequential state machine, and the caller's
//! side of the pipeline (chunking, reordering, back-pressure, busy rule).
//!
//! Every method runs on the caller's thread and takes `&mut self`. Checks run
//! in the contract's order (closed, arguments left to right, ids against the
//! state, busy) and a failing call changes nothing.
//!
//! # Busy rule without waiting
//!
//! The contract refuses a dig when `pending_packets > max_pending_packets`,
//! where `pending_packets` counts the packets of *every* accepted dig,
//! resolved or not. The number of packets of a FOUND dig is only known once a
//! worker ran its AOI query, so the caller keeps
//!
//! * `known_pending`: packets of received chunks not yet polled (exact), and
//! * for in-flight chunks, a lower and an upper bound of their packets: a
//!   non-FOUND dig is exactly 1; a FOUND dig is at least 1 (the digger) and
//!   at most the number of players online at that dig (every recipient is a
//!   player, the digger included).
//!
//! If `known + lower > max` the dig is busy for sure; if `known + upper <=
//! max` it is accepted for sure; only in between does the caller wait for
//! in-flight chunks (one at a time, re-deciding after each) until the answer
//! is exact. With a sensible `max_pending_packets` the wait never happens in
//! normal operation, and the decision is always the reference's decision.
//!
//! # Ordering
//!
//! Chunks get consecutive indexes; results arrive in any order and are
//! placed in a ring (`VecDeque`, front = oldest unpolled chunk). `poll`
//! copies from the front onward and stops at the first chunk not done, so
//! the stream is ordered by (seq, recipient) whatever the worker count.

use crate::error::limits::{COORD_MAX, COORD_MIN, MAX_SAFE, RADIUS_MAX, WORKERS_MAX};
use crate::error::{Arg, Error, ErrorKind, Method};
use crate::grid::dist2;
use crate::histogram::Histogram;
use crate::outbox::Outbox;
use crate::pipeline::{run_chunk, start_queued, Chunk, ChunkDone, DigJob, Shared};
use crate::pool::{self, Share};
use crate::records::{dig_records, move_records};
use crate::roll::{self, LootEntry, LootTable};
use crate::snapshot::{
    Counters, LootTableSnapshot, PlayerSnapshot, SiteSnapshot, Snapshot, SnapshotError,
    SNAPSHOT_VERSION,
};
use crate::wire::{Kind, SIZE};
use crate::world::{block_key, PlayerView, Players, Site, Sites};
use crossbeam::channel::{unbounded, Receiver, RecvTimeoutError};
use crossbeam::queue::ArrayQueue;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;

/// Outboxes larger than this (bytes) are freed instead of recycled.
const MAX_RECYCLED_BUF: usize = 4 << 20;

/// Construction options. `Default` gives the contract's defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// Loot roll seed, [0, 2^53-1]. Default 0.
    pub seed: u64,
    /// AOI radius in blocks, [0, 1048576]. Default 64.
    pub aoi_radius: u32,
    /// Max digger-to-block distance, [0, 1048576]. Default 8.
    pub reach: u32,
    /// This resolver's share of the process-wide worker pool (which has
    /// one thread per core, see `pool.rs`): at most this many of its chunks
    /// run at once, [0, 256]; 0 = all pool threads. Default 0.
    pub workers: u32,
    /// Busy threshold, [1, 2^53-1]. Default 1048576.
    pub max_pending_packets: u64,
    /// Digs per worker task (not part of the Lua contract). Values below 1
    /// are treated as 1. Default 128.
    pub chunk_digs: usize,
    /// Back-pressure: chunks submitted but not yet finished by a worker
    /// before the caller waits (not part of the Lua contract). Values below
    /// 1 are treated as 1. Default 1024.
    pub max_inflight_chunks: usize,
    /// Chunks of at most this many digs are resolved inline on the caller's
    /// thread instead of being sent to a worker (not part of the Lua
    /// contract). Handing one dig to another thread costs several times
    /// more (wake-up, channel, cache transfer) than resolving it (~1 us),
    /// and an inline dig leaves no snapshot shared, so a following `move`
    /// never has to copy or wait. 0 = always use the workers. Default 0:
    /// the product's promise is that fan-out work stays off the game loop's
    /// thread, so inline resolution is an opt-in trade (measured on a busy
    /// machine in the harness's steady 20 Hz run: 20-dig batches at p50
    /// 0.31 ms / p99 0.5-1.8 ms through the workers, 0.07 / 0.2 ms inline
    /// with 32, at ~1 us of caller time per dig).
    pub inline_max_digs: usize,
    /// Once this many FOUND digs have been accepted against one player
    /// snapshot (no player change in between), the chunks sent from then on
    /// have their worker build the snapshot's frozen index first (once per
    /// snapshot; see `frozen_grid.rs`) and every later chunk on it uses it
    /// (not part of the Lua contract). ≈150 µs at 12,000 players against
    /// ≈0.15 µs saved per query, so it pays back after ~1,000 more FOUND
    /// digs on the same snapshot: in bursts, not for a few digs per tick
    /// (every tick's moves make a new snapshot) nor for mid-size batches.
    /// Queries give the same hits either way. 0 = never build. Default
    /// 1024.
    pub freeze_min_found: usize,
    /// How long [`Resolver::wait`] keeps its thread on the CPU (yielding it
    /// to any runnable thread) before parking, in microseconds (not part of
    /// the Lua contract). During a burst a chunk is published every
    /// 64–80 µs on average (94 chunks of 128 digs in a 6–7.5 ms burst); a
    /// game loop that parks and wakes for each one comes back to cold caches
    /// and, on a machine with as many busy threads as cores, behind a
    /// worker. Measured on the harness's
    /// 12,000-dig burst (2 cores, interleaved pairs of 10 s runs against
    /// 0): with 50 µs the burst mean was lower in 4 pairs of 5 (6.13–6.92
    /// against 6.17–7.08 ms) and so was p99; with 100 µs in 6 of 7, with
    /// 30 µs in 4 of 4; process CPU the same. 0 = park at once. Default 50.
    pub wait_spin_us: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            seed: 0,
            aoi_radius: 64,
            reach: 8,
            workers: 0,
            max_pending_packets: 1_048_576,
            chunk_digs: 128,
            max_inflight_chunks: 1024,
            inline_max_digs: 0,
            freeze_min_found: 1024,
            wait_spin_us: 50,
        }
    }
}

/// Counters and gauges (`r:stats()` plus pipeline metrics).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stats {
    /// Accepted digs (= found + empty + nothing + rejected).
    pub digs: u64,
    /// Packets produced so far (exact: counts in-flight digs too).
    pub packets: u64,
    pub found: u64,
    pub empty: u64,
    pub nothing: u64,
    pub rejected: u64,
    /// `dig`/`dig_batch` calls refused as busy.
    pub busy: u64,
    pub players: u64,
    pub sites: u64,
    /// Packets resolved and not yet polled: what `poll` could take now plus
    /// what is resolved behind an unfinished chunk (never waits; equal to
    /// the packets of every accepted dig not yet polled once `flush`ed).
    pub pending_packets: u64,
    /// Accepted digs whose packets are not yet all pollable (`in_flight`).
    pub inflight_digs: u64,
    /// Resolve latency in fixed cumulative buckets (`RESOLVE_BUCKETS_US`).
    pub resolve_buckets: crate::readiness::BucketCounts,
    /// Latency from acceptance to a worker publishing the dig's chunk.
    pub resolve_p50_us: f64,
    pub resolve_p99_us: f64,
    pub resolve_p999_us: f64,
    pub resolve_max_us: f64,
    /// Chunks submitted and not yet finished by a worker (0 after `stats`
    /// had to wait, see `pending_packets`).
    pub inflight_chunks: u64,
    /// Chunks finished and not yet fully polled.
    pub ready_chunks: u64,
    /// The resolver's share of the pool: at most this many of its chunks
    /// run at once (`workers`, or the pool's thread count for 0).
    pub workers: u64,
}

impl Stats {
    /// The contract's counters (`digs`, `packets`, `found`, `empty`,
    /// `nothing`, `rejected`, `busy`, `players`, `sites`, `pending_packets`),
    /// in that order: what must be identical on every backend, unlike the
    /// latency and queue gauges. Tests and fuzz targets compare these.
    pub fn counters(&self) -> [u64; 10] {
        [
            self.digs,
            self.packets,
            self.found,
            self.empty,
            self.nothing,
            self.rejected,
            self.busy,
            self.players,
            self.sites,
            self.pending_packets,
        ]
    }
}

enum Slot {
    InFlight { lower: u64, upper: u64 },
    Ready { out: Outbox, pos: usize },
    Failed,
}

/// The caller-side state of an open resolver.
struct Inner {
    seed: u64,
    /// `reach` and `workers` as given (for snapshots).
    reach: u32,
    workers_opt: u32,
    reach2: u64,
    max_pending: u64,
    chunk_digs: usize,
    max_inflight: usize,
    inline_max: usize,
    /// The share: `workers_opt`, or the pool's thread count for 0.
    workers: usize,
    /// The process this resolver was made in (see `Drop`).
    pid: u32,

    players: Arc<Players>,
    sites: Sites,
    next_seq: u64,

    digs: u64,
    found: u64,
    empty: u64,
    nothing: u64,
    rejected: u64,
    busy: u64,
    /// Packets of received chunks (polled or not).
    produced: u64,

    // Pipeline, caller side.
    shared: Arc<Shared>,
    rx: Receiver<ChunkDone>,
    /// `ring[i]` is chunk `head + i`.
    ring: VecDeque<Slot>,
    head: u64,
    /// First chunk index (>= head) that is not `Ready`.
    contiguous: u64,
    /// Packets pollable now (in ready chunks before `contiguous`).
    available: u64,
    /// Packets of received, unpolled chunks (ready or not contiguous).
    known_pending: u64,
    inflight: usize,
    inflight_lower: u64,
    inflight_upper: u64,
    ready_chunks: usize,
    /// The chunk being filled by the current call (always empty between calls).
    open: Vec<DigJob>,
    open_lower: u64,
    open_upper: u64,
    open_accepted: Instant,
    spare_jobs: Vec<Vec<DigJob>>,
    /// Player views checked by `dig_batch` validation, reused when accepting.
    scratch_views: Vec<PlayerView>,
    failed: Option<String>,
    /// `Options::freeze_min_found`.
    freeze_min_found: usize,
    /// FOUND digs accepted since the player snapshot last changed.
    found_on_snapshot: usize,
    /// `Options::wait_spin_us` (at most 1 s).
    wait_spin: std::time::Duration,
}

/// The treasure resolver. See the crate docs for the architecture.
pub struct Resolver {
    inner: Option<Box<Inner>>,
}

fn check(method: Method, arg: Arg, v: i128, lo: i128, hi: i128) -> Result<(), Error> {
    if v < lo || v > hi {
        Err(Error::range(method, arg, lo, hi, v))
    } else {
        Ok(())
    }
}

#[inline]
fn check_id(method: Method, arg: Arg, v: u32) -> Result<(), Error> {
    check(method, arg, v as i128, 1, u32::MAX as i128)
}

#[inline]
fn check_coords(method: Method, args: [Arg; 3], xyz: [i32; 3]) -> Result<(), Error> {
    for (arg, v) in args.into_iter().zip(xyz) {
        check(method, arg, v as i128, COORD_MIN as i128, COORD_MAX as i128)?;
    }
    Ok(())
}

const XYZ: [Arg; 3] = [Arg::Plain("x"), Arg::Plain("y"), Arg::Plain("z")];

/// The `player`, `x`, `y`, `z` fields of batch record `n` (1-based), in the
/// contract's check order; shared by `dig_batch` and `move_batch`.
fn check_record_place(method: Method, n: usize, player: u32, xyz: [i32; 3]) -> Result<(), Error> {
    check_id(method, Arg::Record(n, "player"), player)?;
    check_coords(
        method,
        [
            Arg::Record(n, "x"),
            Arg::Record(n, "y"),
            Arg::Record(n, "z"),
        ],
        xyz,
    )
}

/// Refuses `digs` more digs (0 for an empty batch) if the last one would
/// need a seq past 2^53-1 (docs/API.md, "Seq past 2^53").
fn check_seq(method: Method, next_seq: u64, digs: u64) -> Result<(), Error> {
    if digs == 0 {
        return Ok(());
    }
    let last = next_seq.saturating_add(digs - 1);
    if last > MAX_SAFE {
        return Err(Error::new(method, ErrorKind::SeqExhausted { got: last }));
    }
    Ok(())
}

fn not_joined(method: Method, arg: Arg, player: u32) -> Error {
    Error::new(method, ErrorKind::NotJoined { arg, player })
}

impl Resolver {
    /// Validates the options (in contract order) and starts the worker pool.
    pub fn new(opts: Options) -> Result<Resolver, Error> {
        let m = Method::New;
        check(m, Arg::Opt("seed"), opts.seed as i128, 0, MAX_SAFE as i128)?;
        let radius = RADIUS_MAX as i128;
        check(
            m,
            Arg::Opt("aoi_radius"),
            opts.aoi_radius as i128,
            0,
            radius,
        )?;
        check(m, Arg::Opt("reach"), opts.reach as i128, 0, radius)?;
        check(
            m,
            Arg::Opt("workers"),
            opts.workers as i128,
            0,
            WORKERS_MAX as i128,
        )?;
        check(
            m,
            Arg::Opt("max_pending_packets"),
            opts.max_pending_packets as i128,
            1,
            MAX_SAFE as i128,
        )?;
        let pool = pool::pool().map_err(|e| Error::new(m, ErrorKind::Internal(e)))?;
        let workers = match opts.workers {
            0 => pool.current_num_threads(),
            n => n as usize,
        };
        let max_inflight = opts.max_inflight_chunks.max(1);
        let chunk_digs = opts.chunk_digs.max(1);
        let (tx, rx) = unbounded();
        let shared = Arc::new(Shared {
            aoi_radius: opts.aoi_radius,
            free_bufs: ArrayQueue::new(max_inflight.min(4096) + workers),
            histogram: Histogram::new(),
            panic_countdown: AtomicU64::new(0),
            tx,
            pool,
            share: Share::new(workers),
            ready: Default::default(),
            buckets: Default::default(),
        });
        Ok(Resolver {
            inner: Some(Box::new(Inner {
                seed: opts.seed,
                reach: opts.reach,
                workers_opt: opts.workers,
                reach2: opts.reach as u64 * opts.reach as u64,
                max_pending: opts.max_pending_packets,
                chunk_digs,
                max_inflight,
                inline_max: opts.inline_max_digs,
                workers,
                pid: std::process::id(),
                players: Arc::new(Players::new(opts.aoi_radius)),
                sites: Sites::default(),
                next_seq: 1,
                digs: 0,
                found: 0,
                empty: 0,
                nothing: 0,
                rejected: 0,
                busy: 0,
                produced: 0,
                shared,
                rx,
                ring: VecDeque::new(),
                head: 0,
                contiguous: 0,
                available: 0,
                known_pending: 0,
                inflight: 0,
                inflight_lower: 0,
                inflight_upper: 0,
                ready_chunks: 0,
                open: Vec::with_capacity(chunk_digs),
                open_lower: 0,
                open_upper: 0,
                open_accepted: Instant::now(),
                spare_jobs: Vec::new(),
                scratch_views: Vec::new(),
                failed: None,
                freeze_min_found: opts.freeze_min_found,
                found_on_snapshot: 0,
                wait_spin: std::time::Duration::from_micros(opts.wait_spin_us.min(1_000_000)),
            })),
        })
    }

    /// The open resolver, or `resolver is closed`; then a pending worker
    /// panic, if any, as `worker panicked`.
    fn inner(&mut self, method: Method) -> Result<&mut Inner, Error> {
        let inner = self.inner.as_deref_mut().ok_or(Error::closed(method))?;
        inner.drain();
        if let Some(msg) = &inner.failed {
            return Err(Error::new(method, ErrorKind::WorkerPanicked(msg.clone())));
        }
        Ok(inner)
    }

    /// True once `close` was called.
    pub fn is_closed(&self) -> bool {
        self.inner.is_none()
    }

    /// `r:add_loot_table(id, entries)`.
    pub fn add_loot_table(&mut self, id: u32, entries: &[LootEntry]) -> Result<(), Error> {
        let m = Method::AddLootTable;
        let inner = self.inner(m)?;
        check_id(m, Arg::Plain("id"), id)?;
        if entries.is_empty() {
            return Err(Error::new(m, ErrorKind::EmptyEntries));
        }
        let mut total = 0u64;
        for (i, e) in entries.iter().enumerate() {
            let n = i + 1;
            check_id(m, Arg::Entry(n, "item"), e.item)?;
            check_id(m, Arg::Entry(n, "weight"), e.weight)?;
            if e.min > e.max {
                return Err(Error::new(
                    m,
                    ErrorKind::MinGreaterThanMax {
                        entry: n,
                        min: e.min,
                        max: e.max,
                    },
                ));
            }
            total += e.weight as u64;
        }
        if total > u32::MAX as u64 {
            return Err(Error::new(m, ErrorKind::TotalWeight { total }));
        }
        if inner.sites.has_table(id) {
            return Err(Error::new(m, ErrorKind::DuplicateLootTable(id)));
        }
        inner.sites.insert_table(id, LootTable::new(entries));
        Ok(())
    }

    /// `r:add_site(id, x, y, z, loot_table_id, charges)`.
    pub fn add_site(
        &mut self,
        id: u32,
        x: i32,
        y: i32,
        z: i32,
        loot_table_id: u32,
        charges: u32,
    ) -> Result<(), Error> {
        let m = Method::AddSite;
        let inner = self.inner(m)?;
        check_id(m, Arg::Plain("id"), id)?;
        check_coords(m, XYZ, [x, y, z])?;
        check_id(m, Arg::Plain("loot_table_id"), loot_table_id)?;
        let s = &mut inner.sites;
        if s.contains(id) {
            return Err(Error::new(m, ErrorKind::DuplicateSite(id)));
        }
        if let Some(site) = s.at(x, y, z) {
            let site = site.id;
            return Err(Error::new(m, ErrorKind::OccupiedBlock { x, y, z, site }));
        }
        if !s.has_table(loot_table_id) {
            return Err(Error::new(m, ErrorKind::UnknownLootTable(loot_table_id)));
        }
        s.insert(Site {
            id,
            x,
            y,
            z,
            loot_table: loot_table_id,
            charges,
        });
        Ok(())
    }

    /// `r:remove_site(id)`.
    pub fn remove_site(&mut self, id: u32) -> Result<(), Error> {
        let m = Method::RemoveSite;
        let inner = self.inner(m)?;
        check_id(m, Arg::Plain("id"), id)?;
        match inner.sites.remove(id) {
            Some(_) => Ok(()),
            None => Err(Error::new(m, ErrorKind::UnknownSite(id))),
        }
    }

    /// `r:join(player, x, y, z, party)` (the binding passes 0 for no party).
    pub fn join(&mut self, player: u32, x: i32, y: i32, z: i32, party: u32) -> Result<(), Error> {
        let m = Method::Join;
        let inner = self.inner(m)?;
        check_id(m, Arg::Plain("player"), player)?;
        check_coords(m, XYZ, [x, y, z])?;
        if inner.players.contains(player) {
            return Err(Error::new(m, ErrorKind::AlreadyJoined(player)));
        }
        inner.players_mut().join(player, x, y, z, party);
        Ok(())
    }

    /// `r:move(player, x, y, z)`.
    pub fn move_player(&mut self, player: u32, x: i32, y: i32, z: i32) -> Result<(), Error> {
        let m = Method::Move;
        let inner = self.inner(m)?;
        check_id(m, Arg::Plain("player"), player)?;
        check_coords(m, XYZ, [x, y, z])?;
        if !inner.players.contains(player) {
            return Err(not_joined(m, Arg::Plain("player"), player));
        }
        inner.players_mut().move_to(player, x, y, z);
        Ok(())
    }

    /// `r:set_party(player, party)`.
    pub fn set_party(&mut self, player: u32, party: u32) -> Result<(), Error> {
        let m = Method::SetParty;
        let inner = self.inner(m)?;
        check_id(m, Arg::Plain("player"), player)?;
        match inner.players.get(player) {
            None => Err(not_joined(m, Arg::Plain("player"), player)),
            Some(p) if p.party == party => Ok(()),
            Some(_) => {
                inner.players_mut().set_party(player, party);
                Ok(())
            }
        }
    }

    /// `r:leave(player)`.
    pub fn leave(&mut self, player: u32) -> Result<(), Error> {
        let m = Method::Leave;
        let inner = self.inner(m)?;
        check_id(m, Arg::Plain("player"), player)?;
        if !inner.players.contains(player) {
            return Err(not_joined(m, Arg::Plain("player"), player));
        }
        inner.players_mut().leave(player);
        Ok(())
    }

    /// `r:move_batch(records)`: 16-byte records, all-or-nothing.
    pub fn move_batch(&mut self, records: &[u8]) -> Result<(), Error> {
        let m = Method::MoveBatch;
        let inner = self.inner(m)?;
        let recs = move_records(records)?;
        for (i, r) in recs.iter().enumerate() {
            let n = i + 1;
            let player = r.player.get();
            check_record_place(m, n, player, [r.x.get(), r.y.get(), r.z.get()])?;
            if !inner.players.contains(player) {
                return Err(not_joined(m, Arg::Record(n, "player"), player));
            }
        }
        if recs.is_empty() {
            return Ok(());
        }
        let players = inner.players_mut();
        for r in recs {
            players.move_to(r.player.get(), r.x.get(), r.y.get(), r.z.get());
        }
        Ok(())
    }

    /// `r:dig(player, x, y, z, t_us)`: `Ok(Some(seq))`, or `Ok(None)` when busy.
    pub fn dig(
        &mut self,
        player: u32,
        x: i32,
        y: i32,
        z: i32,
        t_us: u64,
    ) -> Result<Option<u64>, Error> {
        let m = Method::Dig;
        let inner = self.inner(m)?;
        check_id(m, Arg::Plain("player"), player)?;
        check_coords(m, XYZ, [x, y, z])?;
        check(m, Arg::Plain("t_us"), t_us as i128, 0, MAX_SAFE as i128)?;
        let view = inner
            .players
            .get(player)
            .ok_or_else(|| not_joined(m, Arg::Plain("player"), player))?;
        check_seq(m, inner.next_seq, 1)?;
        if inner.is_busy(m)? {
            inner.count_busy();
            return Ok(None);
        }
        let seq = inner.next_seq;
        inner.open_accepted = Instant::now();
        inner.accept(view, x, y, z, t_us);
        inner.submit();
        Ok(Some(seq))
    }

    /// `r:dig_batch(records)`: 24-byte records, all-or-nothing. Returns
    /// `Ok(Some((first_seq, count)))`, or `Ok(None)` when busy (checked once,
    /// before the first record, also for an empty batch).
    pub fn dig_batch(&mut self, records: &[u8]) -> Result<Option<(u64, u64)>, Error> {
        let m = Method::DigBatch;
        let inner = self.inner(m)?;
        let recs = dig_records(records)?;
        let mut views = std::mem::take(&mut inner.scratch_views);
        views.clear();
        let validated = (|| {
            for (i, r) in recs.iter().enumerate() {
                let n = i + 1;
                let player = r.player.get();
                check_record_place(m, n, player, [r.x.get(), r.y.get(), r.z.get()])?;
                check(
                    m,
                    Arg::Record(n, "t_us"),
                    r.t_us.get() as i128,
                    0,
                    MAX_SAFE as i128,
                )?;
                let v = inner
                    .players
                    .get(player)
                    .ok_or_else(|| not_joined(m, Arg::Record(n, "player"), player))?;
                views.push(v);
            }
            Ok(())
        })();
        let result = validated
            .and_then(|()| check_seq(m, inner.next_seq, recs.len() as u64))
            .and_then(|()| inner.is_busy(m))
            .map(|busy| {
                let first = inner.next_seq;
                if busy {
                    inner.count_busy();
                    return None;
                }
                inner.open_accepted = Instant::now();
                // The site map is large (32 bytes per site) and its probe is a
                // cache miss that dominated dig_batch (perf). Probing a block
                // of records in a tight loop first, result discarded, lets the
                // CPU overlap those misses; the accepts then hit the cache.
                const WARM_BLOCK: usize = 256;
                for (recs, views) in recs.chunks(WARM_BLOCK).zip(views.chunks(WARM_BLOCK)) {
                    let warm = recs.iter().fold(0u32, |acc, r| {
                        acc ^ inner
                            .sites
                            .at(r.x.get(), r.y.get(), r.z.get())
                            .map_or(0, |s| s.charges)
                    });
                    std::hint::black_box(warm);
                    for (r, &v) in recs.iter().zip(views) {
                        inner.accept(v, r.x.get(), r.y.get(), r.z.get(), r.t_us.get());
                    }
                }
                inner.submit();
                Some((first, recs.len() as u64))
            });
        inner.scratch_views = views;
        result
    }

    /// Packets pollable now without blocking (0 when closed). Never blocks.
    pub fn available_packets(&mut self) -> usize {
        match self.inner.as_deref_mut() {
            Some(inner) => {
                inner.drain();
                inner.available as usize
            }
            None => 0,
        }
    }

    /// `r:poll_into(buf, max)`: copies up to `max` packets (`n * 128` bytes)
    /// to the start of `out`, returns `n`. `max * 128` must fit in `out`
    /// (checked before anything is copied). Never blocks.
    pub fn poll_into(&mut self, out: &mut [u8], max: usize) -> Result<usize, Error> {
        let m = Method::PollInto;
        let inner = self.inner(m)?;
        check_capacity(m, out, max)?;
        let n = (max as u64).min(inner.available) as usize;
        inner.take(n, &mut out[..n * SIZE]);
        inner.settle_ready();
        Ok(n)
    }

    /// The first half of an all-or-nothing poll: copies up to `max`
    /// pollable packets to the start of `out` (`max * 128` must fit, as for
    /// [`poll_into`]) *without* taking them off the stream, and returns how
    /// many. A caller that must still allocate or convert before its call
    /// can succeed (the Lua binding's `poll` builds a Lua string) does that
    /// next and then calls [`consume`] with the count; if it fails instead,
    /// it simply does not consume, and no packet is lost. `method` is the
    /// API function the caller is serving, for the error messages. Never
    /// blocks.
    ///
    /// [`poll_into`]: Resolver::poll_into
    /// [`consume`]: Resolver::consume
    pub fn peek_into(
        &mut self,
        method: Method,
        out: &mut [u8],
        max: usize,
    ) -> Result<usize, Error> {
        let inner = self.inner(method)?;
        check_capacity(method, out, max)?;
        let n = (max as u64).min(inner.available) as usize;
        inner.copy_out(n, &mut out[..n * SIZE]);
        Ok(n)
    }

    /// The second half of an all-or-nothing poll: takes the `n` packets a
    /// [`peek_into`] just copied off the stream. `n` must be at most what
    /// that `peek_into` returned, with no other call in between (then they
    /// are the same packets: only polling removes packets, and new ones are
    /// appended behind them).
    ///
    /// # Panics
    ///
    /// If the resolver is closed or fewer than `n` packets are pollable (the
    /// caller broke the rule above).
    ///
    /// [`peek_into`]: Resolver::peek_into
    pub fn consume(&mut self, n: usize) {
        let inner = self
            .inner
            .as_deref_mut()
            .expect("consume on a closed resolver");
        assert!(
            n as u64 <= inner.available,
            "consume({n}) with {} packets pollable",
            inner.available
        );
        inner.advance(n);
        inner.settle_ready();
    }

    /// `r:poll(max)`: appends up to `max` packets to `out` (use `usize::MAX`
    /// for "all available"); returns how many. Never blocks.
    pub fn poll(&mut self, max: usize, out: &mut Vec<u8>) -> Result<usize, Error> {
        let m = Method::Poll;
        let inner = self.inner(m)?;
        let n = (max as u64).min(inner.available) as usize;
        let start = out.len();
        out.resize(start + n * SIZE, 0);
        inner.take(n, &mut out[start..]);
        inner.settle_ready();
        Ok(n)
    }

    /// `r:flush()`: waits until every accepted dig's packets are pollable.
    pub fn flush(&mut self) -> Result<(), Error> {
        let m = Method::Flush;
        let inner = self.inner(m)?;
        inner.wait_all();
        inner.check_failed(m)
    }

    /// `r:wait([timeout_us])`: blocks until at least one packet is pollable,
    /// and returns how many are (as [`available_packets`]). Returns at once
    /// when some already are, or when no dig is in flight (then no packet can
    /// arrive before the caller's next `dig`/`dig_batch`); otherwise after at
    /// most `timeout` (`None`: until the next in-order chunk is resolved,
    /// which every dig in flight eventually is). A game loop that has polled
    /// everything calls this instead of sleeping a fixed interval. The
    /// thread first stays on the CPU for up to `Options::wait_spin_us`,
    /// yielding it to any runnable thread, then parks on the result channel:
    /// a worker publishing the next packets wakes it, and it burns no CPU
    /// meanwhile.
    ///
    /// [`available_packets`]: Resolver::available_packets
    pub fn wait(&mut self, timeout: Option<std::time::Duration>) -> Result<usize, Error> {
        let m = Method::Wait;
        let inner = self.inner(m)?;
        inner.drain();
        // A deadline past Instant's range is the same as none.
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        let spin_until = Instant::now() + inner.wait_spin;
        while inner.available == 0 && inner.inflight > 0 && inner.failed.is_none() {
            let now = Instant::now();
            if now < spin_until && deadline.is_none_or(|d| now < d) {
                // Stay on the CPU, but give it to any runnable thread (a
                // worker) first: see `Options::wait_spin_us`.
                std::thread::yield_now();
                inner.drain();
                continue;
            }
            let done = match deadline {
                Some(d) => match inner.rx.recv_deadline(d) {
                    Ok(done) => done,
                    Err(RecvTimeoutError::Timeout) => break,
                    Err(RecvTimeoutError::Disconnected) => {
                        unreachable!("the resolver holds a sender")
                    }
                },
                None => match inner.rx.recv() {
                    Ok(done) => done,
                    Err(_) => unreachable!("the resolver holds a sender"),
                },
            };
            inner.receive(done);
        }
        inner.check_failed(m)?;
        Ok(inner.available as usize)
    }

    /// `r:stats()`. Never blocks: `packets` and `pending_packets` count
    /// resolved packets (exact for every accepted dig after [`flush`]).
    ///
    /// [`flush`]: Resolver::flush
    pub fn stats(&mut self) -> Result<Stats, Error> {
        let m = Method::Stats;
        let inner = self.inner(m)?;
        let q = inner.shared.histogram.quantiles();
        let inflight_digs = inner.in_flight();
        Ok(Stats {
            inflight_digs,
            resolve_buckets: inner.shared.buckets.snapshot(),
            digs: inner.digs,
            packets: inner.produced.min(MAX_SAFE),
            found: inner.found,
            empty: inner.empty,
            nothing: inner.nothing,
            rejected: inner.rejected,
            busy: inner.busy,
            players: inner.players.len() as u64,
            sites: inner.sites.len() as u64,
            pending_packets: inner.known_pending,
            resolve_p50_us: q.p50_us,
            resolve_p99_us: q.p99_us,
            resolve_p999_us: q.p999_us,
            resolve_max_us: q.max_us,
            inflight_chunks: inner.inflight as u64,
            ready_chunks: inner.ready_chunks as u64,
            workers: inner.workers as u64,
        })
    }

    /// `r:in_flight()`: accepted digs whose packets are not yet all
    /// pollable (0: everything submitted so far is ready, `flush` would
    /// return at once). Never blocks.
    pub fn in_flight(&mut self) -> Result<u64, Error> {
        Ok(self.inner(Method::InFlight)?.in_flight())
    }

    /// Registers the readiness hook of `r:fd()` (see `readiness.rs`) and
    /// signals it at once if packets are pollable. `method` names the API
    /// function for the closed error.
    pub fn set_ready_hook(
        &mut self,
        method: Method,
        hook: Arc<dyn crate::readiness::ReadyHook>,
    ) -> Result<(), Error> {
        let inner = self.inner(method)?;
        inner.shared.ready.install(hook);
        inner.settle_ready();
        Ok(())
    }

    /// `r:close()`: waits for in-flight work, stops the workers and frees
    /// everything. Idempotent; every other method then fails with
    /// `resolver is closed`.
    pub fn close(&mut self) {
        // Inner's Drop waits for in-flight chunks.
        self.inner = None;
    }

    /// Test hook: the worker resolving the `(n+1)`-th dig from now panics.
    #[doc(hidden)]
    pub fn inject_worker_panic_after(&mut self, n: u64) {
        if let Some(inner) = self.inner.as_deref_mut() {
            inner.shared.panic_countdown.store(n + 1, Relaxed);
        }
    }

    /// Read access to the player snapshot (tests and tools).
    #[doc(hidden)]
    pub fn players(&self) -> Option<&Players> {
        self.inner.as_deref().map(|i| &*i.players)
    }
}

// Snapshot hooks (the public API and the validation are in snapshot.rs).
impl Resolver {
    /// Waits for every accepted dig, then copies the state out (lists in
    /// internal order; `snapshot()` sorts them).
    pub(crate) fn export_state(&mut self) -> Result<Snapshot, SnapshotError> {
        let m = "snapshot";
        let inner = self
            .inner
            .as_deref_mut()
            .ok_or_else(|| SnapshotError::new(m, "resolver is closed"))?;
        inner.wait_all();
        if let Some(msg) = &inner.failed {
            return Err(SnapshotError::new(m, format!("worker panicked: {msg}")));
        }
        let mut pending = Vec::with_capacity(inner.known_pending as usize * SIZE);
        for slot in &inner.ring {
            match slot {
                Slot::Ready { out, pos } => out.extend_vec(*pos, &mut pending),
                _ => unreachable!("every chunk is received after wait_all"),
            }
        }
        let sites = &inner.sites;
        Ok(Snapshot {
            version: SNAPSHOT_VERSION,
            options: Options {
                seed: inner.seed,
                aoi_radius: inner.shared.aoi_radius,
                reach: inner.reach,
                workers: inner.workers_opt,
                max_pending_packets: inner.max_pending,
                chunk_digs: inner.chunk_digs,
                max_inflight_chunks: inner.max_inflight,
                inline_max_digs: inner.inline_max,
                freeze_min_found: inner.freeze_min_found,
                wait_spin_us: inner.wait_spin.as_micros() as u64,
            },
            loot_tables: sites
                .tables
                .iter()
                .map(|(&id, t)| LootTableSnapshot {
                    id,
                    entries: t.entries().to_vec(),
                })
                .collect(),
            sites: sites
                .by_block
                .values()
                .map(|s| SiteSnapshot {
                    id: s.id,
                    x: s.x,
                    y: s.y,
                    z: s.z,
                    loot_table_id: s.loot_table,
                    charges: s.charges,
                })
                .collect(),
            players: inner
                .players
                .iter()
                .map(|p| PlayerSnapshot {
                    id: p.id,
                    x: p.x,
                    y: p.y,
                    z: p.z,
                    party: p.party,
                })
                .collect(),
            next_seq: inner.next_seq,
            counters: Counters {
                digs: inner.digs,
                packets: inner.produced,
                found: inner.found,
                empty: inner.empty,
                nothing: inner.nothing,
                rejected: inner.rejected,
                busy: inner.busy,
            },
            pending,
        })
    }

    /// Builds a resolver from a snapshot that `snapshot::validate` accepted.
    pub(crate) fn import_state(s: Snapshot) -> Result<Resolver, SnapshotError> {
        // The options were validated, so only the environment can fail here
        // (the worker threads cannot be started).
        let mut r = Resolver::new(s.options).map_err(|e| {
            let msg = match e.kind {
                ErrorKind::Internal(msg) => msg,
                _ => e.to_string(),
            };
            SnapshotError::new("restore", msg)
        })?;
        let inner = r.inner.as_deref_mut().expect("new resolver is open");
        for t in &s.loot_tables {
            inner.sites.insert_table(t.id, LootTable::new(&t.entries));
        }
        for site in &s.sites {
            inner.sites.insert(Site {
                id: site.id,
                x: site.x,
                y: site.y,
                z: site.z,
                loot_table: site.loot_table_id,
                charges: site.charges,
            });
        }
        let players = inner.players_mut();
        for p in &s.players {
            players.join(p.id, p.x, p.y, p.z, p.party);
        }
        inner.next_seq = s.next_seq;
        let c = s.counters;
        (inner.digs, inner.found, inner.empty) = (c.digs, c.found, c.empty);
        (inner.nothing, inner.rejected, inner.busy) = (c.nothing, c.rejected, c.busy);
        inner.produced = c.packets;
        let n = (s.pending.len() / SIZE) as u64;
        if n > 0 {
            // One ready chunk ahead of everything new: delivered first.
            inner.ring.push_back(Slot::Ready {
                out: Outbox::from_packets(&s.pending),
                pos: 0,
            });
            inner.contiguous = 1;
            inner.ready_chunks = 1;
            inner.available = n;
            inner.known_pending = n;
        }
        Ok(r)
    }
}

impl Inner {
    /// See [`Resolver::in_flight`]: the digs of every chunk from the first
    /// one that is not ready on (a failed chunk counts none: its error is
    /// reported at once).
    fn in_flight(&self) -> u64 {
        let from = (self.contiguous - self.head) as usize;
        self.ring
            .iter()
            .skip(from)
            .map(|slot| match slot {
                Slot::InFlight { lower, .. } => *lower,
                Slot::Ready { out, .. } => out.digs() as u64,
                Slot::Failed => 0,
            })
            .sum()
    }

    /// After a poll (and when the hook is installed): signal when packets
    /// are pollable (or a failure waits to be reported), else reset and
    /// arm for the oldest unfinished chunk, then re-check (readiness.rs).
    fn settle_ready(&mut self) {
        let ready = &self.shared.ready;
        if !ready.installed() {
            return;
        }
        if self.available > 0 || self.failed.is_some() {
            ready.ensure_signalled();
            return;
        }
        let head = self.contiguous;
        self.shared.ready.arm(head);
        self.drain();
        if self.available > 0 || self.failed.is_some() {
            self.shared.ready.disarm_and_signal(head);
        }
    }

    /// One more refused call; a statistic, so it saturates at 2^53-1.
    fn count_busy(&mut self) {
        self.busy = (self.busy + 1).min(MAX_SAFE);
    }

    /// Processes every result already published (non-blocking).
    fn drain(&mut self) {
        while let Ok(done) = self.rx.try_recv() {
            self.receive(done);
        }
    }

    /// Blocks for one result. Only called while `inflight > 0`.
    fn wait_one(&mut self) {
        debug_assert!(self.inflight > 0);
        match self.rx.recv() {
            Ok(done) => self.receive(done),
            Err(_) => unreachable!("the resolver holds a sender"),
        }
    }

    fn wait_all(&mut self) {
        while self.inflight > 0 {
            self.wait_one();
        }
    }

    fn check_failed(&self, m: Method) -> Result<(), Error> {
        match &self.failed {
            Some(msg) => Err(Error::new(m, ErrorKind::WorkerPanicked(msg.clone()))),
            None => Ok(()),
        }
    }

    fn receive(&mut self, done: ChunkDone) {
        let i = (done.index - self.head) as usize;
        let Slot::InFlight { lower, upper } = self.ring[i] else {
            unreachable!("chunk {} received twice", done.index)
        };
        self.inflight -= 1;
        self.inflight_lower -= lower;
        self.inflight_upper -= upper;
        self.spare_jobs.push(done.jobs);
        match done.result {
            Ok(out) => {
                let packets = out.len() as u64;
                debug_assert!(lower <= packets && packets <= upper);
                // A statistic: saturates at 2^53-1 (only `digs` is an id).
                self.produced = (self.produced + packets).min(MAX_SAFE);
                self.known_pending += packets;
                self.ready_chunks += 1;
                self.ring[i] = Slot::Ready { out, pos: 0 };
                while self.contiguous < self.head + self.ring.len() as u64 {
                    match &self.ring[(self.contiguous - self.head) as usize] {
                        Slot::Ready { out, pos } => {
                            self.available += (out.len() - pos) as u64;
                            self.contiguous += 1;
                        }
                        _ => break,
                    }
                }
            }
            Err(msg) => {
                self.ring[i] = Slot::Failed;
                self.failed.get_or_insert(msg);
            }
        }
        // An inline chunk has no worker to signal; for a worker's chunk this
        // only repeats its own check (readiness.rs).
        if self.shared.ready.installed() {
            self.shared.ready.published(done.index);
        }
    }

    /// The busy decision of the contract, waiting only when the bounds
    /// cannot decide it (see the module docs).
    fn is_busy(&mut self, m: Method) -> Result<bool, Error> {
        loop {
            if self.known_pending + self.inflight_lower > self.max_pending {
                return Ok(true);
            }
            if self.known_pending + self.inflight_upper <= self.max_pending {
                return Ok(false);
            }
            self.wait_one();
            self.check_failed(m)?;
        }
    }

    /// The player snapshot for writing (copy-on-write).
    ///
    /// If in-flight chunks still share the snapshot, it must be cloned
    /// before it is changed, which costs O(players) (~90 ns per player measured
    /// at 12,000 players: ~1 ms, mostly one allocation per grid cell).
    /// When the work in flight is small compared to that (typically single
    /// `dig` calls interleaved with `move` calls), waiting for those chunks
    /// is far cheaper than the clone, so the caller waits, chunk by chunk,
    /// until the snapshot is unshared. A big batch in flight (e.g. a
    /// `move_batch` right after a 12,000-dig `dig_batch`) is not waited for:
    /// the snapshot is cloned and the workers keep going. The threshold
    /// assumes ~1 us of worker time per in-flight dig (its lower bound on
    /// packets equals its dig count) against a conservative ~50 ns per player.
    fn players_mut(&mut self) -> &mut Players {
        // A changed world is a new snapshot: its frozen index is built anew.
        self.found_on_snapshot = 0;
        if Arc::strong_count(&self.players) > 1 {
            let running = self.workers.min(self.shared.pool.current_num_threads());
            let wait_ns = self.inflight_lower.saturating_mul(1000) / running.max(1) as u64;
            let clone_ns = (self.players.len() as u64 + 64) * 50;
            if wait_ns < clone_ns {
                // Workers drop their snapshot reference before publishing,
                // so once the chunks holding it are received it is unique.
                while Arc::strong_count(&self.players) > 1 && self.inflight > 0 {
                    self.wait_one();
                }
            }
        }
        Arc::make_mut(&mut self.players)
    }

    /// The sequential part of a dig: kind, charges, roll, item. Appends the
    /// job to the open chunk, submitting it when full.
    fn accept(&mut self, p: PlayerView, x: i32, y: i32, z: i32, t_us: u64) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.digs += 1;
        let d2 = dist2(p.x, p.y, p.z, x, y, z);
        let mut job = DigJob {
            seq,
            t_us,
            roll: 0,
            finder: p.id,
            party: p.party,
            x,
            y,
            z,
            site_id: 0,
            item: 0,
            charges_left: 0,
            dist2: u32::try_from(d2).unwrap_or(u32::MAX),
            quantity: 0,
            rarity: 0,
            kind: Kind::Rejected,
            last_charge: false,
        };
        let mut upper = 1;
        if d2 > self.reach2 {
            self.rejected += 1;
        } else if let Some(site) = self.sites.by_block.get_mut(&block_key(x, y, z)) {
            let site_id = site.id;
            job.site_id = site_id;
            if site.charges == 0 {
                job.kind = Kind::Empty;
                self.empty += 1;
            } else {
                let before = site.charges;
                site.charges -= 1;
                let roll = roll::roll(self.seed, site_id, before);
                let table = &self.sites.tables[&site.loot_table];
                let (e, q) = table.resolve(roll);
                job.kind = Kind::Found;
                job.roll = roll;
                job.item = e.item;
                job.quantity = q;
                job.rarity = e.rarity;
                job.charges_left = before - 1;
                job.last_charge = before == 1;
                self.found += 1;
                self.found_on_snapshot += 1;
                upper = self.players.len() as u64;
            }
        } else {
            job.kind = Kind::Nothing;
            self.nothing += 1;
        }
        self.open.push(job);
        self.open_lower += 1;
        self.open_upper += upper;
        if self.open.len() >= self.chunk_digs {
            self.submit();
        }
    }

    /// Sends the open chunk to the pool (no-op when empty), first waiting
    /// for a worker to finish if `max_inflight` chunks are already out; a
    /// chunk of at most `inline_max` digs is resolved right here instead
    /// (it still takes its place in the ring, so ordering is unchanged).
    fn submit(&mut self) {
        if self.open.is_empty() {
            return;
        }
        let inline = self.open.len() <= self.inline_max;
        while !inline && self.inflight >= self.max_inflight {
            // A failure seen here is reported by the next call: this call
            // has already accepted digs and must not fail half-way.
            self.wait_one();
        }
        let spare = self
            .spare_jobs
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(self.chunk_digs));
        let jobs = std::mem::replace(&mut self.open, spare);
        let index = self.head + self.ring.len() as u64;
        self.ring.push_back(Slot::InFlight {
            lower: self.open_lower,
            upper: self.open_upper,
        });
        self.inflight += 1;
        self.inflight_lower += self.open_lower;
        self.inflight_upper += self.open_upper;
        self.open_lower = 0;
        self.open_upper = 0;
        let chunk = Chunk {
            index,
            world: Arc::clone(&self.players),
            jobs,
            accepted: self.open_accepted,
            freeze: self.freeze_min_found > 0 && self.found_on_snapshot >= self.freeze_min_found,
        };
        if inline {
            let done = run_chunk(chunk, &self.shared);
            self.receive(done);
        } else {
            self.shared.share.push(chunk);
            start_queued(&self.shared);
        }
    }

    /// Writes the next `n <= available` packets, in stream order, into
    /// `dst` (exactly `n * SIZE` bytes) and releases fully polled chunks.
    fn take(&mut self, n: usize, dst: &mut [u8]) {
        self.copy_out(n, dst);
        self.advance(n);
    }

    /// Writes the next `n <= available` packets, in stream order, into
    /// `dst` (exactly `n * SIZE` bytes), leaving them on the stream.
    fn copy_out(&self, n: usize, dst: &mut [u8]) {
        debug_assert!(n as u64 <= self.available);
        debug_assert_eq!(dst.len(), n * SIZE);
        let mut done = 0usize;
        for slot in &self.ring {
            if done == n {
                break;
            }
            let Slot::Ready { out, pos } = slot else {
                unreachable!("available packets are in ready chunks")
            };
            let k = (n - done).min(out.len() - pos);
            out.write(*pos, &mut dst[done * SIZE..(done + k) * SIZE]);
            done += k;
        }
    }

    /// Takes the next `n <= available` packets off the stream and releases
    /// fully polled chunks.
    fn advance(&mut self, n: usize) {
        debug_assert!(n as u64 <= self.available);
        let mut done = 0usize;
        while done < n {
            let Some(Slot::Ready { out, pos }) = self.ring.front_mut() else {
                unreachable!("available packets are in ready chunks")
            };
            let k = (n - done).min(out.len() - *pos);
            *pos += k;
            done += k;
            if *pos == out.len() {
                if let Some(Slot::Ready { out, .. }) = self.ring.pop_front() {
                    // Recycle; drop instead when the free list is full or the
                    // outbox is huge (a huge-AOI burst), to bound idle memory.
                    if out.capacity_bytes() <= MAX_RECYCLED_BUF {
                        let _ = self.shared.free_bufs.push(out);
                    }
                }
                self.head += 1;
                self.ready_chunks -= 1;
            }
        }
        self.available -= n as u64;
        self.known_pending -= n as u64;
    }
}

impl Drop for Inner {
    /// Waits for this resolver's in-flight chunks (not the whole pool) so
    /// no worker outlives the resolver's state (workers hold `Arc`s, so this
    /// is about promptness and freeing memory deterministically, not about
    /// safety). In a forked child the chunks in flight at the fork will
    /// never finish (the pool's threads stayed in the parent), so it does
    /// not wait there: what they hold is leaked.
    fn drop(&mut self) {
        if std::process::id() == self.pid {
            self.wait_all();
        }
        // Closes the binding's eventfd; no worker signals after this.
        self.shared.ready.uninstall();
    }
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.inner.as_deref() {
            None => f.write_str("Resolver { closed }"),
            Some(i) => f
                .debug_struct("Resolver")
                .field("next_seq", &i.next_seq)
                .field("players", &i.players.len())
                .field("sites", &i.sites.len())
                .field("inflight", &i.inflight)
                .field("available", &i.available)
                .finish_non_exhaustive(),
        }
    }
}

impl Drop for Resolver {
    fn drop(&mut self) {
        self.close();
    }
}

/// The buffer rule of `poll_into` and `peek_into`: `max` packets must fit in
/// `out`, checked before anything is copied.
fn check_capacity(method: Method, out: &[u8], max: usize) -> Result<(), Error> {
    let capacity = out.len() / SIZE;
    if max > capacity {
        return Err(Error::new(
            method,
            ErrorKind::BufferTooSmall {
                capacity: capacity as u64,
                max: max as u64,
            },
        ));
    }
    Ok(())
}
