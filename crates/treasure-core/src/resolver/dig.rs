//! The caller-side part of an accepted dig, in call order on the caller's
//! thread: the seq, and REJECTED for a block out of reach (decided from the
//! digger's view alone). The rest of the rule (NOTHING, EMPTY or FOUND, the
//! charge, the roll, the item) is the ruler's, off this thread
//! (`crate::ruler`), and the packets are a worker's (`crate::pipeline`);
//! the job goes to the stream's open chunk.

use crate::pipeline::DigJob;
use crate::records::DigRecord;
use crate::wire::Kind;
use crate::world::{dist2, PlayerView};

use super::OpenResolver;

impl OpenResolver {
    /// dist2(digger, block) and whether the block is within the reach: the
    /// one place the reach rule is applied.
    #[inline]
    fn in_reach(&self, p: PlayerView, x: i32, y: i32, z: i32) -> (u64, bool) {
        let d2 = dist2(p.x, p.y, p.z, x, y, z);
        let reach = self.options.reach as u64;
        (d2, d2 <= reach * reach)
    }

    /// Accepts one checked, not-busy dig by `p` at the block `x, y, z`: the
    /// next seq and the reach; then hands the job to the stream's open
    /// chunk (submitted when full).
    pub(super) fn accept(&mut self, p: PlayerView, x: i32, y: i32, z: i32, t_us: u64) {
        self.counters.digs += 1;
        let seq = self.counters.digs;
        let (d2, in_reach) = self.in_reach(p, x, y, z);
        let job = DigJob {
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
            // A dig in reach is NOTHING, EMPTY or FOUND: the ruler decides.
            kind: Kind::Rejected,
            last_charge: false,
            in_reach,
        };
        // The most packets this dig can produce: every player online (the
        // digger included) if it may be FOUND, exactly 1 if REJECTED.
        let upper = if in_reach {
            self.players.len() as u64
        } else {
            self.counters.rejected += 1;
            1
        };
        self.stream
            .push(job, upper, &self.players, &mut self.counters);
    }

    /// Accepts a checked, not-busy batch (`views[i]` is the digger of
    /// `records[i]`), in record order.
    pub(super) fn accept_batch(&mut self, records: &[DigRecord], views: &[PlayerView]) {
        let in_reach = records
            .iter()
            .zip(views)
            .filter(|&(r, v)| self.in_reach(*v, r.x.get(), r.y.get(), r.z.get()).1)
            .count();
        self.stream.expect_in_reach(in_reach);
        for (r, &v) in records.iter().zip(views) {
            self.accept(v, r.x.get(), r.y.get(), r.z.get(), r.t_us.get());
        }
    }
}
