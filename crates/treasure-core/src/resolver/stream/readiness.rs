//! The stream's side of `r:fd()` and `r:in_flight()` (issue 15): what the
//! caller's thread does after a poll so the readiness hook is readable
//! exactly when packets are pollable. The lock-free state it shares with the
//! workers, and the no-lost-wakeup protocol, are `crate::readiness`.

use super::{ChunkState, Stream};
use crate::stats::Counters;

impl Stream {
    /// Accepted digs whose packets are not yet all pollable: the digs of
    /// every chunk from the first one that is not ready on (ready chunks
    /// behind it included; a failed chunk counts none, its error is
    /// reported at once), plus the chunk being filled (empty between calls).
    /// Never blocks.
    pub(in crate::resolver) fn in_flight(&self) -> u64 {
        let from = (self.contiguous - self.head) as usize;
        let queued: u64 = self
            .ring
            .iter()
            .skip(from)
            .map(|chunk| match chunk {
                ChunkState::InFlight { digs, .. } => *digs,
                ChunkState::Ready { out, .. } => out.digs() as u64,
                ChunkState::Failed => 0,
            })
            .sum();
        queued + self.open.len() as u64
    }

    /// After a poll (and when a hook is installed): signal when packets are
    /// pollable (or a failure waits to be reported); else reset, arm a
    /// wakeup for the oldest unfinished chunk, then re-check the channel
    /// and signal if packets arrived meanwhile (no lost wakeup).
    pub(in crate::resolver) fn settle_ready(&mut self, counters: &mut Counters) {
        if !self.shared.ready.installed() {
            return;
        }
        if self.available > 0 || self.failed.is_some() {
            self.shared.ready.ensure_signalled();
            return;
        }
        let head = self.contiguous;
        self.shared.ready.arm(head);
        self.drain(counters);
        if self.available > 0 || self.failed.is_some() {
            self.shared.ready.disarm_and_signal(head);
        }
    }
}
