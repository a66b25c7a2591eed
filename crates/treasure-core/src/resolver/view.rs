//! `r:poll_view` and `r:release_view` (issue 16): the zero-copy drain. The
//! memory rules are in `crate::view`, the stream's side in `stream/view.rs`.

use super::Resolver;
use crate::contract::{Error, Method};

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
