//! The caller-side rule of a dig, decided in call order on the caller's
//! thread (so "first dig wins" and every counter is deterministic): the
//! seq, the kind (REJECTED out of reach, NOTHING without a site, EMPTY
//! without a charge, else FOUND), the charge taken, the roll and the item.
//! What remains (the AOI query, the party, the packets) is a worker's, in
//! `crate::pipeline`; the job goes to the stream's open chunk.

use crate::pipeline::DigJob;
use crate::records::DigRecord;
use crate::roll;
use crate::wire::Kind;
use crate::world::{block_key, dist2, PlayerView};

use super::OpenResolver;

/// Records of a batch whose site probes are issued together before they
/// are accepted (see [`OpenResolver::accept_batch`]).
const WARM_BLOCK: usize = 256;

impl OpenResolver {
    /// Accepts one checked, not-busy dig by `p` at the block `x, y, z`: the
    /// next seq, the kind, a charge and the roll; then hands the job to the
    /// stream's open chunk (submitted when full).
    pub(super) fn accept(&mut self, p: PlayerView, x: i32, y: i32, z: i32, t_us: u64) {
        self.counters.digs += 1;
        let seq = self.counters.digs;
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
        // The most packets this dig can produce: every player online (the
        // digger included) for FOUND, exactly 1 otherwise.
        let mut upper = 1;
        let reach = self.options.reach as u64;
        if d2 > reach * reach {
            self.counters.rejected += 1;
        } else if let Some(site) = self.sites.by_block.get_mut(&block_key(x, y, z)) {
            let site_id = site.id;
            job.site_id = site_id;
            if site.charges == 0 {
                job.kind = Kind::Empty;
                self.counters.empty += 1;
            } else {
                let before = site.charges;
                site.charges -= 1;
                let roll = roll::roll(self.options.seed, site_id, before);
                let table = &self.sites.tables[&site.loot_table];
                let (e, q) = table.resolve(roll);
                job.kind = Kind::Found;
                job.roll = roll;
                job.item = e.item;
                job.quantity = q;
                job.rarity = e.rarity;
                job.charges_left = before - 1;
                job.last_charge = before == 1;
                self.counters.found += 1;
                upper = self.players.len() as u64;
            }
        } else {
            job.kind = Kind::Nothing;
            self.counters.nothing += 1;
        }
        self.stream
            .push(job, upper, &self.players, &mut self.counters);
    }

    /// Accepts a checked, not-busy batch (`views[i]` is the digger of
    /// `records[i]`), in record order.
    ///
    /// The site map is large (32 bytes per site) and its probe is a cache
    /// miss that dominated `dig_batch` in profiles. Probing a block of
    /// records in a tight loop first, result discarded, lets the CPU overlap
    /// those misses; the accepts then hit the cache.
    pub(super) fn accept_batch(&mut self, records: &[DigRecord], views: &[PlayerView]) {
        for (recs, views) in records.chunks(WARM_BLOCK).zip(views.chunks(WARM_BLOCK)) {
            let warm = recs.iter().fold(0u32, |acc, r| {
                acc ^ self
                    .sites
                    .at(r.x.get(), r.y.get(), r.z.get())
                    .map_or(0, |s| s.charges)
            });
            std::hint::black_box(warm);
            for (r, &v) in recs.iter().zip(views) {
                self.accept(v, r.x.get(), r.y.get(), r.z.get(), r.t_us.get());
            }
        }
    }
}
