//! `r:poll_view` and `r:release_view` (issue 16): the zero-copy drain. The
//! memory rules are in `crate::view`, the stream's side in `stream/view.rs`.

use super::{OpenResolver, Resolver};
use crate::contract::limits::VIEW_RUN_PACKETS;
use crate::contract::{Error, Method};
use crate::view::Block;
use crate::wire::SIZE;

impl Resolver {
    /// `r:poll_view(max)`: takes the next run of at most `max` pollable
    /// packets off the stream, in stream order, without copying them on
    /// this thread, and returns `(address, count)` of `count * 128` bytes
    /// of packets (`None` when nothing is pollable or `max` is 0). The run
    /// lies in one block of at most `VIEW_RUN_PACKETS` packets, so a caller
    /// loops until `None`. The bytes stay unchanged until this resolver's
    /// next `poll`, `poll_into`, `poll_view`, `release_view` or close; the
    /// memory stays mapped for the life of the process (`crate::view`).
    /// Never blocks.
    ///
    /// # Errors
    ///
    /// Closed, or a worker panic.
    pub fn poll_view(&mut self, max: usize) -> Result<Option<(usize, usize)>, Error> {
        let open = self.open(Method::PollView)?;
        open.stream.release_lent();
        if open.cluster.is_some() {
            return Ok(open.view_host_packets(max));
        }
        let v = open.stream.view(max);
        open.stream.settle_ready(&mut open.counters);
        Ok(v)
    }

    /// `r:release_view()`: ends the current view early, giving its memory
    /// back to the pool (the next poll does the same).
    ///
    /// # Errors
    ///
    /// Closed.
    pub fn release_view(&mut self) -> Result<(), Error> {
        let open = self
            .open
            .as_deref_mut()
            .ok_or(Error::closed(Method::ReleaseView))?;
        open.stream.release_lent();
        Ok(())
    }
}

impl OpenResolver {
    /// Cluster mode's view: the host packets (made by `apply_records` on
    /// this thread, kept compact in the host queue) are copied into a block
    /// of the view pool, as legacy copies, so the view obeys the same memory
    /// rule; the owner stream is never marked viewed (its chunks become
    /// records, which need the compact form).
    fn view_host_packets(&mut self, max: usize) -> Option<(usize, usize)> {
        let n = (max as u64)
            .min(self.available())
            .min(VIEW_RUN_PACKETS as u64) as usize;
        if n == 0 {
            return None;
        }
        let mut block = Block::for_caller();
        self.copy_out(n, &mut block.bytes_mut()[..n * SIZE]);
        let addr = block.addr();
        self.stream.lend(block);
        self.advance(n);
        Some((addr, n))
    }
}
