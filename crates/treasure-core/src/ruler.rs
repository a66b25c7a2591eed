//! The ordered stage between the caller and the workers: it owns the sites
//! and applies the dig rule, one chunk at a time in chunk order, off the
//! caller's thread (issue 16: the game loop's share of a burst).
//!
//! # What is decided where
//!
//! * The caller's thread (`resolver/dig.rs`) checks a dig, gives it its seq
//!   and decides REJECTED (out of reach: it needs only the digger's view).
//! * The ruler decides the rest of the rule for every dig in reach, in seq
//!   order: NOTHING without a site, EMPTY without a charge, else FOUND with
//!   the charge taken, the roll and the item. That is the only part of a dig
//!   that must be sequential ("first dig wins"), so it is the one stage that
//!   runs one chunk at a time.
//! * A worker (`crate::pipeline`) then resolves the ruled chunk's packets.
//!
//! A chunk the caller submits is pushed on a lock-free queue (the caller
//! never takes the lock to submit, so `dig_batch` never waits for a chunk
//! being ruled). If no ruler task is running, the caller spawns one on the
//! pool; it rules queued chunks front to back and hands each to the
//! resolver's share ([`start_queued`]), and ends when the queue is empty.
//! A chunk is popped and ruled under one hold of the lock, by the task or
//! by a caller that settles, so chunks are ruled in the order they were
//! pushed whoever rules them. Nothing here ever blocks on another thread
//! for longer than one chunk's rule.
//!
//! # Settling
//!
//! Every caller method that reads or writes the sites, or reads the FOUND,
//! EMPTY and NOTHING counters, first [settles](Ruler::settle): under the
//! lock, it rules every chunk still queued itself, on its own thread, and
//! takes the counts ruled so far. So `add_site` or `remove_site` right after
//! a `dig_batch` never changes that batch's digs, and `stats()` counts every
//! accepted dig, exactly as when the rule ran inside `dig_batch`. Settling
//! waits for no worker: at most it does the rule work `dig_batch` used to.
//!
//! # Panics
//!
//! The rule does not panic (every site's loot table exists: `add_site` and
//! `restore` check it, and tables are never removed). Should it, the chunk
//! is published as failed, like a worker's panic, and every later call
//! reports `worker panicked`.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crossbeam::queue::SegQueue;

use crate::pipeline::{panic_message, publish, start_queued, Chunk, ChunkDone, DigJob, Shared};
use crate::roll;
use crate::stats::Counters;
use crate::wire::Kind;
use crate::world::{block_key, Sites};

/// See the module docs. One per resolver, in its [`Shared`].
pub(crate) struct Ruler {
    state: Mutex<RulerState>,
    /// Submitted chunks not yet ruled, in chunk order (pushed by the
    /// caller only; popped only under `state`'s lock).
    queue: SegQueue<Chunk>,
    /// A ruler task is spawned or running.
    running: AtomicBool,
}

/// What the lock guards.
#[derive(Default)]
pub(crate) struct RulerState {
    /// The sites and loot tables: the rule's state.
    pub sites: Sites,
    /// The resolver's loot roll seed.
    seed: u64,
    /// FOUND, EMPTY and NOTHING digs ruled since the caller last took them.
    found: u64,
    empty: u64,
    nothing: u64,
}

impl Ruler {
    pub fn new(seed: u64) -> Ruler {
        Ruler {
            state: Mutex::new(RulerState {
                seed,
                ..RulerState::default()
            }),
            queue: SegQueue::new(),
            running: AtomicBool::new(false),
        }
    }

    /// The lock. Poison is impossible (the rule runs under `catch_unwind`
    /// inside the guard's scope), and would not make the data inconsistent.
    fn lock(&self) -> MutexGuard<'_, RulerState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sites present (no settling: the rule never adds or removes one).
    pub fn sites_len(&self) -> usize {
        self.lock().sites.len()
    }

    /// Caller: queues a chunk whose digs in reach are not ruled yet, and
    /// makes sure a ruler task will rule it.
    pub fn submit(shared: &Arc<Shared>, chunk: Chunk) {
        let ruler = &shared.ruler;
        ruler.queue.push(chunk);
        if !ruler.running.swap(true, SeqCst) {
            let s = Arc::clone(shared);
            shared.pool.spawn(move || run(&s));
        }
    }

    /// Pops and rules the next queued chunk under `st` (the lock), handing
    /// it to the share; false when the queue is empty.
    fn rule_next(st: &mut RulerState, shared: &Shared) -> bool {
        let Some(chunk) = shared.ruler.queue.pop() else {
            return false;
        };
        if let Some(chunk) = st.rule_or_fail(chunk, shared) {
            shared.share.push(chunk);
        }
        true
    }

    /// Caller: rules every queued chunk on this thread (handing each to
    /// the workers), moves the counts ruled so far into `counters`, and
    /// returns the state, which no ruler task can change while it is held.
    pub fn settle<'a>(
        shared: &'a Arc<Shared>,
        counters: &mut Counters,
    ) -> MutexGuard<'a, RulerState> {
        let mut st = shared.ruler.lock();
        let mut ruled = false;
        while Ruler::rule_next(&mut st, shared) {
            ruled = true;
        }
        if ruled {
            start_queued(shared);
        }
        st.take_counts(counters);
        st
    }

    /// Caller: settles, then rules `chunk` too, to resolve it on this
    /// thread; `Err` holds it as failed when the rule panicked.
    pub fn rule_inline(
        shared: &Arc<Shared>,
        counters: &mut Counters,
        chunk: Chunk,
    ) -> Result<Chunk, Box<ChunkDone>> {
        let mut st = Ruler::settle(shared, counters);
        st.rule_chunk(chunk)
    }
}

/// The ruler task: rules queued chunks in order until the queue is empty.
fn run(shared: &Arc<Shared>) {
    let ruler = &shared.ruler;
    loop {
        // (one chunk per hold of the lock: a settling caller waits at most
        // one chunk's rule)
        if Ruler::rule_next(&mut ruler.lock(), shared) {
            start_queued(shared);
            continue;
        }
        ruler.running.store(false, SeqCst);
        // A chunk pushed after the empty pop, before `running` was cleared,
        // saw `running` set and spawned nobody: take it on, unless a newer
        // task already did.
        if ruler.queue.is_empty() || ruler.running.swap(true, SeqCst) {
            return;
        }
    }
}

impl RulerState {
    /// Moves the FOUND, EMPTY and NOTHING counts into `counters`.
    fn take_counts(&mut self, counters: &mut Counters) {
        counters.found += std::mem::take(&mut self.found);
        counters.empty += std::mem::take(&mut self.empty);
        counters.nothing += std::mem::take(&mut self.nothing);
    }

    /// Rules `chunk`, or publishes it as failed (and returns `None`).
    fn rule_or_fail(&mut self, chunk: Chunk, shared: &Shared) -> Option<Chunk> {
        match self.rule_chunk(chunk) {
            Ok(chunk) => Some(chunk),
            Err(done) => {
                publish(*done, shared);
                None
            }
        }
    }

    /// Rules `chunk`'s digs; `Err` holds it as failed when the rule panicked.
    fn rule_chunk(&mut self, mut chunk: Chunk) -> Result<Chunk, Box<ChunkDone>> {
        match catch_unwind(AssertUnwindSafe(|| self.rule(&mut chunk.jobs))) {
            Ok(()) => Ok(chunk),
            Err(p) => Err(Box::new(ChunkDone {
                index: chunk.index,
                jobs: chunk.jobs,
                result: Err(panic_message(&*p)),
            })),
        }
    }

    /// The rule for every dig in reach, in order: the kind, the site, a
    /// charge, the roll and the item.
    ///
    /// The site map is large (32 bytes per site) and its probe is a cache
    /// miss that dominated the rule in profiles. Probing the chunk's blocks
    /// in a tight loop first, result discarded, lets the CPU overlap those
    /// misses; the rule's own probes then hit the cache.
    fn rule(&mut self, jobs: &mut [DigJob]) {
        let warm = jobs.iter().filter(|j| j.in_reach).fold(0u32, |acc, j| {
            acc ^ self.sites.at(j.x, j.y, j.z).map_or(0, |s| s.charges)
        });
        std::hint::black_box(warm);
        for job in jobs.iter_mut().filter(|j| j.in_reach) {
            let key = block_key(job.x, job.y, job.z);
            let Some(site) = self.sites.by_block.get_mut(&key) else {
                job.kind = Kind::Nothing;
                self.nothing += 1;
                continue;
            };
            job.site_id = site.id;
            if site.charges == 0 {
                job.kind = Kind::Empty;
                self.empty += 1;
                continue;
            }
            let before = site.charges;
            site.charges -= 1;
            let roll = roll::roll(self.seed, site.id, before);
            let (e, q) = self.sites.tables[&site.loot_table].resolve(roll);
            job.kind = Kind::Found;
            job.roll = roll;
            job.item = e.item;
            job.quantity = q;
            job.rarity = e.rarity;
            job.charges_left = before - 1;
            job.last_charge = before == 1;
            self.found += 1;
        }
    }
}
