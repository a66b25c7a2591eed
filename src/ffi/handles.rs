//! The process-wide arena of resolver cells: what the FFI fast path's
//! handle points into, by construction never freed memory.
//!
//! Why not an address: a `*mut Resolver` kept by the Lua shim outlives the
//! resolver whenever Lua finalizes the userdata while the shim's weak-keyed
//! table still has it (another object's `__gc` in the same cycle, lua_close,
//! a resurrected userdata, a method fetched earlier). Lua 5.1 does not clear
//! weak keys of finalized userdata, so no table discipline can fix that.
//!
//! So a resolver lives in a *cell* of an arena that is allocated in chunks
//! and never freed (a leaked chunk per 1024 cells, at most 1024 chunks).
//! A cell's `state` word holds its generation and a lock bit. A handle is
//! `generation * 2^20 + slot`, an exact integer in a double (< 2^53):
//! - every access (fast path and mlua path alike) takes the cell's lock with
//!   one compare-and-swap that also checks the generation, so a stale handle
//!   fails the check and the caller takes the slow path, which answers
//!   `resolver is closed` from the userdata;
//! - releasing a cell (close, or the userdata's Drop) takes the resolver out
//!   and bumps the generation, so every handle issued for it goes stale;
//! - a cell whose generation would reach 2^33 is retired, never reused, so
//!   a generation never repeats (no ABA) and handles stay below 2^53.
//!
//! Threads: several Lua states on several OS threads may use the arena at
//! once. The lock bit makes access to a cell exclusive whoever holds the
//! handle, so even a handle passed to another thread cannot alias; cells
//! are taken and given back under one spin lock (off the hot path), which
//! the fork handlers hold across fork() so a child never inherits it held.

use std::cell::UnsafeCell;
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};

use treasure_core::Resolver;

const SLOT_BITS: u32 = 20;
const CHUNK_BITS: u32 = 10;
const CHUNK: usize = 1 << CHUNK_BITS;
const MAX_CHUNKS: usize = 1 << (SLOT_BITS - CHUNK_BITS);
/// How many resolvers can be open at once in one process.
pub const MAX_OPEN: usize = CHUNK * MAX_CHUNKS;
/// Generations run 1 .. GEN_LIMIT - 1; handle = gen * 2^20 + slot < 2^53.
const GEN_LIMIT: u64 = 1 << (53 - SLOT_BITS);
const LOCKED: u64 = 1;

/// What a cell holds while a resolver occupies it.
struct Occupant {
    resolver: Box<Resolver>,
    /// The fork epoch it was created in (see fork.rs): the fast path refuses
    /// it in a child without touching the resolver.
    epoch: u64,
}

struct Cell {
    /// `gen << 1 | LOCKED`.
    state: AtomicU64,
    /// Read or written only by whoever holds the lock bit of `state`.
    occupant: UnsafeCell<Option<Occupant>>,
}

// SAFETY: `occupant` is only accessed while the accessing thread holds the
// cell's lock bit (taken with an Acquire CAS, given back with a Release
// store, see `Guard`), which makes those accesses exclusive and ordered;
// `Resolver` is Send, so handing it between threads that way is sound.
unsafe impl Sync for Cell {}

type Chunk = [Cell; CHUNK];

#[allow(clippy::declare_interior_mutable_const)]
const NO_CHUNK: AtomicPtr<Chunk> = AtomicPtr::new(ptr::null_mut());
/// Chunk pointers: null until allocated, then a leaked `Box<Chunk>` forever.
static CHUNKS: [AtomicPtr<Chunk>; MAX_CHUNKS] = [NO_CHUNK; MAX_CHUNKS];

/// Slots handed out and given back: touched by new/close only.
struct FreeList {
    free: Vec<u32>,
    next: u32,
}

struct SpinLock {
    held: AtomicBool,
    list: UnsafeCell<FreeList>,
}

// SAFETY: `list` is only accessed between `acquire` and `release` of
// `held` (Acquire/Release), i.e. by one thread at a time.
unsafe impl Sync for SpinLock {}

static FREE: SpinLock = SpinLock {
    held: AtomicBool::new(false),
    list: UnsafeCell::new(FreeList {
        free: Vec::new(),
        next: 0,
    }),
};

fn acquire() {
    while FREE
        .held
        .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        std::thread::yield_now();
    }
}

fn release() {
    FREE.held.store(false, Ordering::Release);
}

/// Runs `f` on the free list under the spin lock. `f` must not panic
/// (it only pushes, pops and allocates chunks; an allocation failure aborts).
fn with_free<R>(f: impl FnOnce(&mut FreeList) -> R) -> R {
    acquire();
    // SAFETY: the spin lock is held (acquired above, released below), so
    // this is the only reference to the list.
    let r = f(unsafe { &mut *FREE.list.get() });
    release();
    r
}

/// atfork prepare: hold the spin lock across fork() so the child never
/// inherits it held by a thread that does not exist there.
pub(super) fn before_fork() {
    acquire();
}

/// atfork parent and child: give it back.
pub(super) fn after_fork() {
    release();
}

/// The cell of `slot`, if its chunk exists.
fn cell(slot: usize) -> Option<&'static Cell> {
    let chunk = CHUNKS.get(slot >> CHUNK_BITS)?.load(Ordering::Acquire);
    if chunk.is_null() {
        return None;
    }
    // SAFETY: a non-null chunk pointer is a leaked `Box<Chunk>` published
    // with a Release store after it was fully initialised; it is never
    // freed, so the reference is valid for 'static.
    let chunk: &'static Chunk = unsafe { &*chunk };
    Some(&chunk[slot & (CHUNK - 1)])
}

fn new_chunk() -> *mut Chunk {
    let cells: Vec<Cell> = (0..CHUNK)
        .map(|_| Cell {
            state: AtomicU64::new(1 << 1), // generation 1, unlocked
            occupant: UnsafeCell::new(None),
        })
        .collect();
    let boxed: Box<Chunk> = cells
        .into_boxed_slice()
        .try_into()
        .unwrap_or_else(|_| unreachable!("CHUNK cells"));
    Box::into_raw(boxed)
}

/// Exclusive access to the resolver in a cell, for the duration of a call.
pub struct Guard {
    cell: &'static Cell,
    unlocked: u64,
}

impl Guard {
    /// Locks `slot` if its generation is `gen` and nobody holds it.
    fn lock(slot: usize, gen: u64) -> Option<Guard> {
        let cell = cell(slot)?;
        let unlocked = gen << 1;
        cell.state
            .compare_exchange(
                unlocked,
                unlocked | LOCKED,
                Ordering::Acquire,
                Ordering::Relaxed,
            )
            .ok()?;
        Some(Guard { cell, unlocked })
    }

    fn occupant(&mut self) -> &mut Option<Occupant> {
        // SAFETY: this guard holds the cell's lock bit (see `lock`), so no
        // other reference to `occupant` exists until it is dropped; the
        // borrow is tied to `&mut self`.
        unsafe { &mut *self.cell.occupant.get() }
    }

    /// The resolver and the epoch it was created in (None: an empty cell,
    /// which a locked matching generation never has; callers fail safe).
    pub fn resolver(&mut self) -> Option<(&mut Resolver, u64)> {
        self.occupant()
            .as_mut()
            .map(|o| (&mut *o.resolver, o.epoch))
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.cell.state.store(self.unlocked, Ordering::Release);
    }
}

/// The fast path's entry: the cell named by `handle` if it is current.
/// Any double is accepted: one that is not a current handle gives None.
#[inline]
pub fn lock_handle(handle: f64) -> Option<Guard> {
    if !(handle >= 0.0 && handle < (GEN_LIMIT << SLOT_BITS) as f64 && handle.fract() == 0.0) {
        return None;
    }
    let h = handle as u64;
    Guard::lock((h & ((1 << SLOT_BITS) - 1)) as usize, h >> SLOT_BITS)
}

/// A resolver's place in the arena, owned by its userdata. Not Clone: the
/// one owner releases it (close or Drop) exactly once.
#[derive(Debug)]
pub struct Ticket {
    slot: u32,
    gen: u64,
}

impl Ticket {
    /// Moves `resolver` into a free cell. Gives it back when all MAX_OPEN
    /// cells are occupied (or retired).
    pub fn issue(resolver: Resolver, epoch: u64) -> Result<Ticket, Resolver> {
        let slot = with_free(|list| {
            if let Some(s) = list.free.pop() {
                return Some(s);
            }
            let s = list.next as usize;
            if s >= MAX_OPEN {
                return None;
            }
            let c = &CHUNKS[s >> CHUNK_BITS];
            if c.load(Ordering::Relaxed).is_null() {
                c.store(new_chunk(), Ordering::Release);
            }
            list.next += 1;
            Some(s as u32)
        });
        let Some(slot) = slot else {
            return Err(resolver);
        };
        let c = cell(slot as usize).expect("a handed-out slot has its chunk");
        // A free cell's generation was never handed out, so no issued handle
        // can lock it (a stale one fails the generation check); only a
        // forged number could, for the moment of one fast call, and finds
        // the cell empty. So wait for the lock like `retire` does.
        let gen = c.state.load(Ordering::Relaxed) >> 1;
        let mut g = loop {
            if let Some(g) = Guard::lock(slot as usize, gen) {
                break g;
            }
            std::thread::yield_now();
        };
        *g.occupant() = Some(Occupant {
            resolver: Box::new(resolver),
            epoch,
        });
        drop(g);
        Ok(Ticket { slot, gen })
    }

    /// The number the shim hands the fast functions.
    pub fn handle(&self) -> f64 {
        ((self.gen << SLOT_BITS) | self.slot as u64) as f64
    }

    /// Exclusive access for one call. None only if another thread holds
    /// the cell right now (a copied handle); the owner's own calls never
    /// overlap (Lua is single-threaded per state).
    pub fn lock(&self) -> Option<Guard> {
        Guard::lock(self.slot as usize, self.gen)
    }

    /// Takes the resolver out, makes every handle of this ticket stale and
    /// gives the cell back. The caller drops the resolver (which waits for
    /// its in-flight work) after the arena no longer refers to it.
    pub fn retire(self) -> Option<Box<Resolver>> {
        let mut g = loop {
            if let Some(g) = self.lock() {
                break g;
            }
            // Only a fast call on a copied handle can hold it, for a moment.
            std::thread::yield_now();
        };
        let out = g.occupant().take().map(|o| o.resolver);
        let next = self.gen + 1;
        g.unlocked = next << 1;
        drop(g);
        if next < GEN_LIMIT {
            with_free(|list| list.free.push(self.slot));
        }
        out
    }

    /// In a forked child: forget the cell without touching it. The resolver
    /// in it belongs to the parent's threads (which do not exist here), so
    /// it is leaked on purpose, never dropped or waited on; its cell stays
    /// occupied in this process and the fast path refuses it by epoch.
    pub fn abandon(self) {
        // Consuming the ticket is all: Ticket has no Drop, so the cell (and
        // the resolver in it) is simply never retired.
        let Ticket { slot: _, gen: _ } = self;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use treasure_core::Options;

    fn resolver() -> Resolver {
        Resolver::new(Options::default()).unwrap()
    }

    #[test]
    fn stale_handles_fail_and_cells_are_reused_with_a_new_generation() {
        let t = Ticket::issue(resolver(), 0).unwrap();
        let h = t.handle();
        assert!(lock_handle(h).is_some());
        {
            let _g = lock_handle(h).unwrap();
            assert!(lock_handle(h).is_none(), "a held cell is exclusive");
        }
        let slot = t.slot;
        drop(t.retire());
        assert!(lock_handle(h).is_none(), "retired handle is stale");
        let mut seen_reuse = false;
        let mut live = Vec::new();
        for _ in 0..64 {
            let t2 = Ticket::issue(resolver(), 0).unwrap();
            if t2.slot == slot {
                seen_reuse = true;
                assert_ne!(t2.handle(), h);
                assert!(lock_handle(h).is_none());
            }
            live.push(t2);
        }
        assert!(seen_reuse || live.len() == 64);
        for t in live {
            drop(t.retire());
        }
    }

    #[test]
    fn any_double_is_a_safe_handle() {
        for h in [
            -1.0,
            0.5,
            f64::NAN,
            f64::INFINITY,
            1e300,
            0.0,
            9007199254740991.0,
        ] {
            let _ = lock_handle(h);
        }
    }
}
