//! The ordered packet stream, caller side: chunks go out to the pool and
//! come back here, are put in order, and are delivered to `poll`.
//!
//! # Busy rule without waiting
//!
//! The contract refuses a dig when `pending_packets > max_pending_packets`,
//! where `pending_packets` counts the packets of *every* accepted dig,
//! resolved or not. The number of packets of a FOUND dig is only known once a
//! worker ran its AOI query, and whether a dig in reach is FOUND only once
//! the ruler ruled it (`crate::ruler`), so the stream keeps
//!
//! * `known_pending`: packets of received chunks not yet polled (exact), and
//! * for in-flight chunks, a lower and an upper bound of their packets: a
//!   REJECTED dig is exactly 1; a dig in reach is at least 1 (the digger)
//!   and at most the number of players online at that dig (every recipient
//!   is a player, the digger included).
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
//!
//! Receiving a chunk is also where its packets are counted (the `packets`
//! counter), so every method that may receive takes the resolver's
//! [`Counters`].

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam::channel::{Receiver, RecvTimeoutError};

use crate::contract::limits::MAX_SAFE;
use crate::contract::{Error, ErrorKind, Method};
use crate::outbox::Outbox;
use crate::pipeline::{run_chunk, Chunk, ChunkDone, DigJob, Shared};
use crate::ruler::Ruler;
use crate::stats::Counters;
use crate::wire::SIZE;
use crate::world::Players;

mod readiness;
mod view;

/// Outboxes larger than this (bytes) are freed instead of recycled, to
/// bound idle memory after a huge-AOI burst.
const MAX_RECYCLED_BUF: usize = 4 << 20;

/// Where one chunk of the ring is.
enum ChunkState {
    /// Sent to the pool with `digs` digs; its packet count is within
    /// `lower..=upper`.
    InFlight { digs: u64, lower: u64, upper: u64 },
    /// Resolved; `pos` packets of `out` are polled already.
    Ready { out: Outbox, pos: usize },
    /// Its worker panicked: the stream has a hole here.
    Failed,
}

/// The stream's sizes, fixed at construction (see [`Options`](crate::Options)).
pub(super) struct StreamConfig {
    pub chunk_digs: usize,
    pub max_inflight: usize,
    pub inline_max: usize,
    pub freeze_min_found: usize,
    pub wait_spin: Duration,
    /// The share: `workers`, or the pool's thread count for 0.
    pub workers: usize,
}

/// The caller-side pipeline: the chunk being filled, the chunks in flight,
/// and the ordered ring of results.
pub(super) struct Stream {
    pub(super) config: StreamConfig,
    pub(super) shared: Arc<Shared>,
    rx: Receiver<ChunkDone>,
    /// `ring[i]` is chunk `head + i`.
    ring: VecDeque<ChunkState>,
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
    /// When the current call accepted its first dig (latency start).
    pub(super) open_accepted: Instant,
    spare_jobs: Vec<Vec<DigJob>>,
    /// Digs in reach (those that may be FOUND) accepted since the player
    /// snapshot last changed.
    in_reach_on_snapshot: usize,
    /// Digs in reach of the current `dig_batch` call not pushed yet (set by
    /// [`expect_in_reach`](Stream::expect_in_reach)): a batch that will
    /// bring the snapshot to `freeze_min_found` freezes from its first chunk.
    in_reach_ahead: usize,
    /// The first worker panic's message, reported by every later call.
    failed: Option<String>,
    /// Cluster mode: chunks are taken as whole dig calls by
    /// [`pop_call`](Stream::pop_call) (never polled), and their packets are
    /// not counted in `packets` (the host packets are).
    cluster: bool,
    /// Cluster mode: the index of the last chunk of each dig call not yet
    /// popped, in call order.
    call_ends: VecDeque<u64>,
    /// Issue 16: the caller drains with `poll_view`, so new chunks are
    /// written out in full by the workers (see `stream/view.rs`).
    views: bool,
    /// Blocks behind the caller's current view (and of chunks polled since
    /// the last poll): back to the pool at the next poll, `release_view`
    /// or close.
    lent: Vec<crate::view::Block>,
}

impl Stream {
    pub(super) fn new(
        config: StreamConfig,
        shared: Arc<Shared>,
        rx: Receiver<ChunkDone>,
    ) -> Stream {
        let cluster = shared.cluster;
        Stream {
            cluster,
            call_ends: VecDeque::new(),
            open: Vec::with_capacity(config.chunk_digs),
            config,
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
            open_lower: 0,
            open_upper: 0,
            open_accepted: Instant::now(),
            spare_jobs: Vec::new(),
            in_reach_on_snapshot: 0,
            in_reach_ahead: 0,
            failed: None,
            views: false,
            lent: Vec::new(),
        }
    }

    /// Packets pollable now.
    pub(super) fn available(&self) -> u64 {
        self.available
    }

    /// Chunks submitted and not yet received.
    pub(super) fn inflight_chunks(&self) -> usize {
        self.inflight
    }

    /// Chunks received and not yet fully polled.
    pub(super) fn ready_chunks(&self) -> usize {
        self.ready_chunks
    }

    /// Packets resolved and not yet polled (`stats().pending_packets`: never
    /// waits; every accepted dig's packets once nothing is in flight).
    pub(super) fn resolved_pending(&self) -> u64 {
        self.known_pending
    }

    /// `worker panicked: <msg>` once a worker panicked.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::WorkerPanicked`] for `method`.
    pub(super) fn check_failed(&self, method: Method) -> Result<(), Error> {
        match &self.failed {
            Some(msg) => Err(Error::new(method, ErrorKind::WorkerPanicked(msg.clone()))),
            None => Ok(()),
        }
    }

    /// Processes every result already published (non-blocking).
    pub(super) fn drain(&mut self, counters: &mut Counters) {
        while let Ok(done) = self.rx.try_recv() {
            self.receive(done, counters);
        }
    }

    /// Blocks for one result. Only called while `inflight > 0`.
    fn wait_one(&mut self, counters: &mut Counters) {
        debug_assert!(self.inflight > 0);
        match self.rx.recv() {
            Ok(done) => self.receive(done, counters),
            Err(_) => unreachable!("the resolver holds a sender"),
        }
    }

    /// Blocks until every submitted chunk is received.
    pub(super) fn wait_all(&mut self, counters: &mut Counters) {
        while self.inflight > 0 {
            self.wait_one(counters);
        }
    }

    /// Blocks until a packet is pollable, no chunk is in flight, a worker
    /// failed, or `deadline` passes; spinning (yielding) until `spin_until`
    /// first, then parking on the result channel.
    pub(super) fn wait_for_packets(&mut self, deadline: Option<Instant>, counters: &mut Counters) {
        let spin_until = Instant::now() + self.config.wait_spin;
        while self.available == 0 && self.inflight > 0 && self.failed.is_none() {
            let now = Instant::now();
            if now < spin_until && deadline.is_none_or(|d| now < d) {
                // Stay on the CPU, but give it to any runnable thread (a
                // worker) first: see `Options::wait_spin_us`.
                std::thread::yield_now();
                self.drain(counters);
                continue;
            }
            let done = match deadline {
                Some(d) => match self.rx.recv_deadline(d) {
                    Ok(done) => done,
                    Err(RecvTimeoutError::Timeout) => break,
                    Err(RecvTimeoutError::Disconnected) => {
                        unreachable!("the resolver holds a sender")
                    }
                },
                None => match self.rx.recv() {
                    Ok(done) => done,
                    Err(_) => unreachable!("the resolver holds a sender"),
                },
            };
            self.receive(done, counters);
        }
    }

    fn receive(&mut self, done: ChunkDone, counters: &mut Counters) {
        let i = (done.index - self.head) as usize;
        let ChunkState::InFlight { lower, upper, .. } = self.ring[i] else {
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
                if !self.cluster {
                    counters.packets = (counters.packets + packets).min(MAX_SAFE);
                }
                self.known_pending += packets;
                self.ready_chunks += 1;
                self.ring[i] = ChunkState::Ready { out, pos: 0 };
                while self.contiguous < self.head + self.ring.len() as u64 {
                    match &self.ring[(self.contiguous - self.head) as usize] {
                        ChunkState::Ready { out, pos } => {
                            self.available += (out.len() - pos) as u64;
                            self.contiguous += 1;
                        }
                        _ => break,
                    }
                }
            }
            Err(msg) => {
                self.ring[i] = ChunkState::Failed;
                self.failed.get_or_insert(msg);
            }
        }
        // An inline chunk has no worker to signal; for a worker's chunk this
        // only repeats its own check (crate::readiness).
        if self.shared.ready.installed() {
            self.shared.ready.published(done.index);
        }
    }

    /// The busy decision of the contract for `max_pending`, waiting only
    /// when the bounds cannot decide it (see the module docs).
    ///
    /// `taken_later`: packets already out of the stream that still count
    /// as pending (cluster mode: in records cut and not yet taken).
    ///
    /// # Errors
    ///
    /// `worker panicked` if a chunk it waited for failed.
    pub(super) fn is_busy(
        &mut self,
        method: Method,
        max_pending: u64,
        taken_later: u64,
        counters: &mut Counters,
    ) -> Result<bool, Error> {
        loop {
            let known = self.known_pending + taken_later;
            if known + self.inflight_lower > max_pending {
                return Ok(true);
            }
            if known + self.inflight_upper <= max_pending {
                return Ok(false);
            }
            self.wait_one(counters);
            self.check_failed(method)?;
        }
    }

    /// The player snapshot for writing (copy-on-write).
    ///
    /// If in-flight chunks still share the snapshot, it must be cloned
    /// before it is changed, which costs O(players). When the work in
    /// flight is small compared to that (typically single `dig` calls
    /// interleaved with `move` calls), waiting for those chunks is far
    /// cheaper than the clone, so the caller waits, chunk by chunk, until
    /// the snapshot is unshared; a big batch in flight is not waited for.
    /// The estimate: ~1 µs of worker time per in-flight dig (its lower
    /// bound on packets equals its dig count) against ~50 ns per player.
    pub(super) fn unshare<'a>(
        &mut self,
        players: &'a mut Arc<Players>,
        counters: &mut Counters,
    ) -> &'a mut Players {
        // A changed world is a new snapshot: its frozen index is built anew.
        self.in_reach_on_snapshot = 0;
        if Arc::strong_count(players) > 1 {
            let running = self
                .config
                .workers
                .min(self.shared.pool.current_num_threads());
            let wait_ns = self.inflight_lower.saturating_mul(1000) / running.max(1) as u64;
            let clone_ns = (players.len() as u64 + 64) * 50;
            if wait_ns < clone_ns {
                // Workers drop their snapshot reference before publishing,
                // so once the chunks holding it are received it is unique.
                while Arc::strong_count(players) > 1 && self.inflight > 0 {
                    self.wait_one(counters);
                }
            }
        }
        Arc::make_mut(players)
    }

    /// A batch is about to push `n` digs in reach, all on the current
    /// snapshot (a batch never changes the players): its chunks may freeze
    /// the snapshot as soon as the whole batch will have reached
    /// `freeze_min_found`, from its first chunk, instead of after that many
    /// digs resolved on the live grid. Reset by the batch's last push.
    pub(super) fn expect_in_reach(&mut self, n: usize) {
        self.in_reach_ahead = n;
    }

    /// Appends an accepted dig to the open chunk (`upper`: the most packets
    /// it can produce), submitting the chunk when full.
    pub(super) fn push(
        &mut self,
        job: DigJob,
        upper: u64,
        world: &Arc<Players>,
        counters: &mut Counters,
    ) {
        if job.in_reach {
            self.in_reach_on_snapshot += 1;
            self.in_reach_ahead = self.in_reach_ahead.saturating_sub(1);
        }
        self.open.push(job);
        self.open_lower += 1;
        self.open_upper += upper;
        if self.open.len() >= self.config.chunk_digs {
            self.submit(world, counters);
        }
    }

    /// Sends the open chunk to the ruler, then the pool (no-op when empty),
    /// first waiting for a worker to finish if `max_inflight` chunks are
    /// already out; a chunk of at most `inline_max` digs is ruled and
    /// resolved right here instead (it still takes its place in the ring,
    /// so ordering is unchanged).
    pub(super) fn submit(&mut self, world: &Arc<Players>, counters: &mut Counters) {
        if self.open.is_empty() {
            return;
        }
        let inline = self.open.len() <= self.config.inline_max;
        while !inline && self.inflight >= self.config.max_inflight {
            // A failure seen here is reported by the next call: this call
            // has already accepted digs and must not fail half-way.
            self.wait_one(counters);
        }
        let spare = self
            .spare_jobs
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(self.config.chunk_digs));
        let jobs = std::mem::replace(&mut self.open, spare);
        let index = self.head + self.ring.len() as u64;
        self.ring.push_back(ChunkState::InFlight {
            digs: jobs.len() as u64,
            lower: self.open_lower,
            upper: self.open_upper,
        });
        self.inflight += 1;
        self.inflight_lower += self.open_lower;
        self.inflight_upper += self.open_upper;
        self.open_lower = 0;
        self.open_upper = 0;
        let freeze_min = self.config.freeze_min_found;
        let chunk = Chunk {
            index,
            world: Arc::clone(world),
            jobs,
            accepted: self.open_accepted,
            freeze: freeze_min > 0 && self.in_reach_on_snapshot + self.in_reach_ahead >= freeze_min,
            full: self.views,
        };
        if inline {
            let done = match Ruler::rule_inline(&self.shared, counters, chunk) {
                Ok(chunk) => run_chunk(chunk, &self.shared),
                Err(failed) => *failed,
            };
            self.receive(done, counters);
        } else {
            Ruler::submit(&self.shared, chunk);
        }
    }

    /// Cluster mode: marks the end of the current dig call (its last chunk
    /// is the ring's last; a call that submitted none marks nothing).
    pub(super) fn end_call(&mut self) {
        if !self.cluster || self.ring.is_empty() {
            return;
        }
        let last = self.head + self.ring.len() as u64 - 1;
        if self.call_ends.back() != Some(&last) {
            self.call_ends.push_back(last);
        }
    }

    /// Cluster mode: when the oldest dig call is wholly resolved, takes its
    /// chunks' outboxes off the stream into `out` (in order) and returns
    /// true. Give them back with [`recycle`](Stream::recycle).
    pub(super) fn pop_call(&mut self, out: &mut Vec<Outbox>) -> bool {
        let Some(&end) = self.call_ends.front() else {
            return false;
        };
        if end >= self.contiguous {
            return false;
        }
        self.call_ends.pop_front();
        while self.head <= end {
            let Some(ChunkState::Ready { out: o, pos }) = self.ring.pop_front() else {
                unreachable!("chunks before `contiguous` are ready")
            };
            let n = (o.len() - pos) as u64;
            self.available -= n;
            self.known_pending -= n;
            self.ready_chunks -= 1;
            self.head += 1;
            out.push(o);
        }
        true
    }

    /// Returns an outbox [`pop_call`](Stream::pop_call) gave out.
    pub(super) fn recycle(&mut self, mut out: Outbox) {
        if out.capacity_bytes() <= MAX_RECYCLED_BUF {
            out.clear();
            let _ = self.shared.free_bufs.push(out);
        }
    }

    /// Writes the next `n <= available` packets, in stream order, into
    /// `dst` (exactly `n * SIZE` bytes), leaving them on the stream.
    pub(super) fn copy_out(&self, n: usize, dst: &mut [u8]) {
        debug_assert!(n as u64 <= self.available);
        debug_assert_eq!(dst.len(), n * SIZE);
        let mut done = 0usize;
        for chunk in &self.ring {
            if done == n {
                break;
            }
            let ChunkState::Ready { out, pos } = chunk else {
                unreachable!("available packets are in ready chunks")
            };
            let k = (n - done).min(out.len() - pos);
            out.write(*pos, &mut dst[done * SIZE..(done + k) * SIZE]);
            done += k;
        }
    }

    /// Takes the next `n <= available` packets off the stream and releases
    /// fully polled chunks.
    pub(super) fn advance(&mut self, n: usize) {
        debug_assert!(n as u64 <= self.available);
        let mut done = 0usize;
        while done < n {
            let Some(ChunkState::Ready { out, pos }) = self.ring.front_mut() else {
                unreachable!("available packets are in ready chunks")
            };
            let k = (n - done).min(out.len() - *pos);
            *pos += k;
            done += k;
            if *pos == out.len() {
                if let Some(ChunkState::Ready { mut out, .. }) = self.ring.pop_front() {
                    // A view may still read its blocks (issue 16).
                    self.lent.append(&mut out.take_blocks());
                    // Recycle; drop instead when the free list is full or the
                    // outbox is huge, to bound idle memory.
                    // (a viewed chunk's outbox is empty: nothing to recycle)
                    let size = out.capacity_bytes();
                    if size > 0 && size <= MAX_RECYCLED_BUF {
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

    /// Every unpolled packet, in stream order (after [`wait_all`]).
    ///
    /// [`wait_all`]: Stream::wait_all
    pub(super) fn pending_bytes(&self) -> Vec<u8> {
        let mut pending = Vec::with_capacity(self.known_pending as usize * SIZE);
        for chunk in &self.ring {
            match chunk {
                ChunkState::Ready { out, pos } => out.extend_vec(*pos, &mut pending),
                _ => unreachable!("every chunk is received after wait_all"),
            }
        }
        pending
    }

    /// Puts restored packets (whole, valid, in stream order) ahead of
    /// everything new, as one ready chunk: they are delivered first.
    /// Only on a fresh stream.
    pub(super) fn restore_pending(&mut self, packets: &[u8]) {
        debug_assert!(self.ring.is_empty());
        let n = (packets.len() / SIZE) as u64;
        if n > 0 {
            self.ring.push_back(ChunkState::Ready {
                out: Outbox::from_packets(packets),
                pos: 0,
            });
            self.contiguous = 1;
            self.ready_chunks = 1;
            self.available = n;
            self.known_pending = n;
        }
    }
}
