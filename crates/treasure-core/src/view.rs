//! The zero-copy drain's memory (issue 16): blocks of full 128-byte packets
//! that the workers write in parallel and the caller reads in place
//! (`r:poll_view`).
//!
//! # Why the blocks are never freed
//!
//! A view is a plain address handed to Lua. Lua can keep it past its
//! validity (the next poll, `release_view`, `close`, garbage collection of
//! the resolver, a swap, a forked child): no rule the binding enforces can
//! stop a script from reading through a stale pointer. So the memory behind
//! a view is never returned to the allocator: a block is allocated once,
//! leaked (`Vec::leak`, safe Rust) and recycled through a process-wide pool
//! for the life of the process. A stale read therefore always reads mapped
//! memory of the block it pointed at: bytes of some packet, possibly newer
//! ones (the block may have been handed to another chunk or resolver), never
//! memory of anything else and never unmapped memory. A block holds packet
//! bytes only (no pointer, length or allocator metadata), so even a write
//! through a cast-away `const` corrupts packets, not the process.
//!
//! # Bounded
//!
//! Workers take blocks only while the pool's total stays within
//! [`WORKER_BUDGET_BYTES`]; past it a chunk stays compact (an
//! [`Outbox`](crate::outbox::Outbox)) and the caller's thread writes it into
//! a block when it is viewed (slower, never wrong). The caller's own blocks
//! (at most what one call lends) may take the pool past the budget; they go
//! back into it, so the pool's size is the budget plus the largest set of
//! blocks lent at once, whatever the call order.
//!
//! Free blocks are reused last-freed first (a stack), so a worker usually
//! writes into a block the caller's thread has just finished reading, which
//! is still in cache; a queue would hand out the coldest block instead.
//! The stack is only ever *tried* (`try_lock`): when it is busy, or was left
//! locked in a forked child by a thread that no longer exists, a block goes
//! to or comes from a lock-free queue beside it. No path ever waits.

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Mutex;

use crossbeam::queue::SegQueue;

use crate::contract::limits::VIEW_RUN_PACKETS;
use crate::wire::SIZE;

/// Bytes of one block.
pub(crate) const BLOCK_BYTES: usize = VIEW_RUN_PACKETS * SIZE;
/// Every block starts on this boundary, so every packet of a view does too
/// (a caller may read its fields as aligned words).
pub(crate) const BLOCK_ALIGN: usize = 16;

/// The most block memory the workers may take from the pool (process-wide,
/// all resolvers); past it chunks stay compact (docs/API.md, "poll_view").
pub const WORKER_BUDGET_BYTES: usize = 32 << 20;

/// Free blocks, each a leaked `BLOCK_BYTES` slice starting on `BLOCK_ALIGN`:
/// the stack (most recently freed last), and the queue for when the stack
/// is busy.
static STACK: Mutex<Vec<&'static mut [u8]>> = Mutex::new(Vec::new());
static SPILL: SegQueue<&'static mut [u8]> = SegQueue::new();

fn pop_free() -> Option<&'static mut [u8]> {
    if let Ok(mut stack) = STACK.try_lock() {
        if let Some(b) = stack.pop() {
            return Some(b);
        }
    }
    SPILL.pop()
}

fn push_free(b: &'static mut [u8]) {
    if let Ok(mut stack) = STACK.try_lock() {
        // (reserve first, so that the push itself cannot fail)
        if stack.try_reserve(1).is_ok() {
            stack.push(b);
            return;
        }
    }
    SPILL.push(b);
}
/// Blocks allocated so far (never decreases: blocks are never freed).
static ALLOCATED: AtomicUsize = AtomicUsize::new(0);

/// Bytes of view memory allocated by this process (in the pool or in use).
pub fn pool_bytes() -> usize {
    ALLOCATED.load(Relaxed) * BLOCK_BYTES
}

/// One block of the pool, owned: back into the pool when dropped.
#[derive(Debug)]
pub(crate) struct Block {
    bytes: Option<&'static mut [u8]>,
}

impl Block {
    fn allocate() -> Block {
        // calloc'd: pages are touched only when packets are written.
        let raw: &'static mut [u8] = vec![0u8; BLOCK_BYTES + BLOCK_ALIGN].leak();
        let skip = (BLOCK_ALIGN - raw.as_ptr() as usize % BLOCK_ALIGN) % BLOCK_ALIGN;
        let (_, aligned) = raw.split_at_mut(skip);
        let (block, _) = aligned.split_at_mut(BLOCK_BYTES);
        Block { bytes: Some(block) }
    }

    /// A block for a worker: a free one, or a new one while the pool is
    /// within [`WORKER_BUDGET_BYTES`]; `None` past it.
    pub fn for_worker() -> Option<Block> {
        if let Some(b) = pop_free() {
            return Some(Block { bytes: Some(b) });
        }
        let max = WORKER_BUDGET_BYTES / BLOCK_BYTES;
        ALLOCATED
            .fetch_update(Relaxed, Relaxed, |n| (n < max).then_some(n + 1))
            .ok()
            .map(|_| Block::allocate())
    }

    /// A block for the caller's thread: a free one, or a new one.
    pub fn for_caller() -> Block {
        if let Some(b) = pop_free() {
            return Block { bytes: Some(b) };
        }
        ALLOCATED.fetch_add(1, Relaxed);
        Block::allocate()
    }

    pub fn bytes(&self) -> &[u8] {
        self.bytes.as_deref().expect("a live block has its bytes")
    }

    pub fn bytes_mut(&mut self) -> &mut [u8] {
        self.bytes
            .as_deref_mut()
            .expect("a live block has its bytes")
    }

    /// Where the block starts (what a view hands to Lua).
    pub fn addr(&self) -> usize {
        self.bytes().as_ptr() as usize
    }
}

impl Drop for Block {
    fn drop(&mut self) {
        if let Some(b) = self.bytes.take() {
            push_free(b);
        }
    }
}

/// A chunk's packets written out in full, in stream order, across blocks
/// (packet `i` is packet `i % VIEW_RUN_PACKETS` of block `i / VIEW_RUN_PACKETS`).
#[derive(Debug, Default)]
pub(crate) struct FullPackets {
    blocks: Vec<Block>,
    len: usize,
    digs: usize,
}

impl FullPackets {
    /// `len` packets of `digs` digs, written by `write(from, out)` (a whole
    /// number of packets from `from`); `None` when the workers' budget is
    /// spent (the blocks taken so far go back to the pool).
    pub fn materialize(
        len: usize,
        digs: usize,
        write: impl Fn(usize, &mut [u8]),
    ) -> Option<FullPackets> {
        let mut blocks = Vec::with_capacity(len.div_ceil(VIEW_RUN_PACKETS));
        for _ in 0..len.div_ceil(VIEW_RUN_PACKETS) {
            blocks.push(Block::for_worker()?);
        }
        for (i, b) in blocks.iter_mut().enumerate() {
            let from = i * VIEW_RUN_PACKETS;
            let k = (len - from).min(VIEW_RUN_PACKETS);
            write(from, &mut b.bytes_mut()[..k * SIZE]);
        }
        Some(FullPackets { blocks, len, digs })
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn digs(&self) -> usize {
        self.digs
    }

    /// Copies packets `from..from + out.len() / SIZE` into `out`.
    pub fn write(&self, from: usize, out: &mut [u8]) {
        let mut done = 0;
        let n = out.len() / SIZE;
        while done < n {
            let i = from + done;
            let (b, off) = (i / VIEW_RUN_PACKETS, i % VIEW_RUN_PACKETS);
            let k = (n - done).min(VIEW_RUN_PACKETS - off);
            out[done * SIZE..(done + k) * SIZE]
                .copy_from_slice(&self.blocks[b].bytes()[off * SIZE..(off + k) * SIZE]);
            done += k;
        }
    }

    /// The run of at most `max` packets from packet `from` that lies in one
    /// block: its address and length.
    pub fn run(&self, from: usize, max: usize) -> (usize, usize) {
        let (b, off) = (from / VIEW_RUN_PACKETS, from % VIEW_RUN_PACKETS);
        let k = max.min(VIEW_RUN_PACKETS - off).min(self.len - from);
        (self.blocks[b].addr() + off * SIZE, k)
    }

    /// The blocks, to be lent until the caller's view ends.
    pub fn into_blocks(self) -> Vec<Block> {
        self.blocks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_aligned_and_recycled_not_freed() {
        let a = Block::for_caller();
        assert_eq!(a.addr() % BLOCK_ALIGN, 0);
        assert_eq!(a.bytes().len(), BLOCK_BYTES);
        let before = pool_bytes();
        drop(a);
        // Another test may take it meanwhile; a fresh take never frees.
        let b = Block::for_caller();
        assert!(pool_bytes() >= before);
        drop(b);
    }

    #[test]
    fn runs_stay_inside_one_block() {
        let len = VIEW_RUN_PACKETS * 2 + 7;
        let f = FullPackets::materialize(len, 3, |from, out| {
            for (j, p) in out.chunks_exact_mut(SIZE).enumerate() {
                p.fill(((from + j) % 251) as u8);
            }
        })
        .expect("within the budget");
        assert_eq!((f.len(), f.digs()), (len, 3));
        let mut from = 0;
        let mut all = Vec::new();
        while from < len {
            let (_, k) = f.run(from, usize::MAX);
            assert!((1..=VIEW_RUN_PACKETS).contains(&k));
            assert!((from + k) % VIEW_RUN_PACKETS == 0 || from + k == len);
            from += k;
        }
        let mut out = vec![0u8; (len - 5) * SIZE];
        f.write(5, &mut out);
        for (j, p) in out.chunks_exact(SIZE).enumerate() {
            all.push(p[0]);
            assert!(p.iter().all(|&x| x == ((5 + j) % 251) as u8));
        }
        assert_eq!(all.len(), len - 5);
        assert_eq!(f.run(3, 2).1, 2);
    }
}
