//! The stream's side of the zero-copy drain (issue 16, `r:poll_view`).
//!
//! The first `poll_view` marks the stream as viewed: every chunk submitted
//! from then on is written out in full by its worker, in parallel, into
//! blocks of the process-wide view pool (`crate::view`). A view is then an
//! address and a count inside one block of the oldest ready chunk: no byte
//! is copied on the caller's thread. A chunk that is still compact (in
//! flight before the first view, restored packets, or past the workers'
//! view budget) is written into a block here instead, one run at a time.
//!
//! Every block a view (or a poll) has passed stays lent, unchanged, until
//! the next poll of any kind, `release_view` or close; the blocks are never
//! freed, so a view read after that reads mapped memory that may hold newer
//! packets (the rule docs/API.md states).

use super::{ChunkState, Stream};
use crate::contract::limits::VIEW_RUN_PACKETS;
use crate::view::Block;
use crate::wire::SIZE;

impl Stream {
    /// Gives the blocks of the previous view (and of chunks polled since)
    /// back to the pool.
    pub(in crate::resolver) fn release_lent(&mut self) {
        self.lent.clear();
    }

    /// Keeps `block` lent (unchanged) until [`release_lent`]: a view the
    /// resolver wrote outside the stream (cluster mode's host packets).
    ///
    /// [`release_lent`]: Stream::release_lent
    pub(in crate::resolver) fn lend(&mut self, block: Block) {
        self.lent.push(block);
    }

    /// Takes the next run of at most `max` pollable packets (at most
    /// [`VIEW_RUN_PACKETS`], inside one block) off the stream and returns
    /// its address and length, or `None` when nothing is pollable or `max`
    /// is 0. The run's block stays lent until [`release_lent`].
    ///
    /// [`release_lent`]: Stream::release_lent
    pub(in crate::resolver) fn view(&mut self, max: usize) -> Option<(usize, usize)> {
        self.views = true;
        if max == 0 || self.available == 0 {
            return None;
        }
        let Some(ChunkState::Ready { out, pos }) = self.ring.front() else {
            unreachable!("available packets are in ready chunks")
        };
        let (addr, n) = match out.full_run(*pos, max) {
            Some(run) => run,
            None => {
                // Compact: written here, into a block of its own.
                let n = max.min(VIEW_RUN_PACKETS).min(out.len() - pos);
                let mut block = Block::for_caller();
                out.write(*pos, &mut block.bytes_mut()[..n * SIZE]);
                let addr = block.addr();
                self.lent.push(block);
                (addr, n)
            }
        };
        self.advance(n);
        Some((addr, n))
    }
}
