//! A chunk's resolved packets, kept compact until they are polled.
//!
//! The packets of one dig differ only in recipient, flags, dist2 and CRC, so
//! a worker encodes one *template* per dig and one [`RecipientPatch`] (16
//! bytes, CRC already computed) per recipient, instead of writing 128 bytes
//! per packet. `poll_into` expands them straight into the caller's buffer:
//! a copy of a template that is hot in cache plus four stores per packet.
//!
//! Why: a burst's packets written out in full by the workers and copied
//! again by `poll_into` go through memory twice at 128 bytes each; compact
//! they are written once at a fraction of the size, and pending packets take
//! far less memory.

use crate::view::{Block, FullPackets};
use crate::wire::{RecipientPatch, SIZE};

#[derive(Clone, Copy, Debug)]
struct Entry {
    /// Index into `templates`.
    template: u32,
    patch: RecipientPatch,
}

/// The packets of one chunk, in stream order.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    templates: Vec<[u8; SIZE]>,
    entries: Vec<Entry>,
    /// Cluster mode only (else empty): `hosts[k]` is the host shard of
    /// packet `k`'s recipient in the player snapshot the dig was resolved
    /// against, recorded by the worker that still holds that snapshot.
    hosts: Vec<u16>,
    /// Issue 16: the packets written out in full by the worker (for
    /// `poll_view`); then `templates` and `entries` are empty.
    full: Option<FullPackets>,
}

impl Outbox {
    /// Empties it, keeping the allocations (outboxes are recycled).
    pub fn clear(&mut self) {
        self.templates.clear();
        self.entries.clear();
        self.hosts.clear();
        self.full = None;
    }

    /// Number of packets.
    pub fn len(&self) -> usize {
        self.full
            .as_ref()
            .map_or(self.entries.len(), FullPackets::len)
    }

    /// Number of digs (one template each; restored packets count one each).
    pub fn digs(&self) -> usize {
        self.full
            .as_ref()
            .map_or(self.templates.len(), FullPackets::digs)
    }

    /// Issue 16: the same packets written out in full into view blocks, as
    /// an outbox of its own (this one stays as it is, to be recycled);
    /// `None` when the workers' view budget is spent.
    pub fn materialized(&self) -> Option<Outbox> {
        let full =
            FullPackets::materialize(self.len(), self.digs(), |from, out| self.write(from, out))?;
        Some(Outbox {
            full: Some(full),
            ..Outbox::default()
        })
    }

    /// The run of at most `max` packets from packet `from` that lies in one
    /// view block, when the packets are written out in full: its address
    /// and length.
    pub fn full_run(&self, from: usize, max: usize) -> Option<(usize, usize)> {
        self.full.as_ref().map(|f| f.run(from, max))
    }

    /// The view blocks (empty when compact), leaving the outbox compact
    /// and empty: a polled chunk's blocks stay lent until the view ends.
    pub fn take_blocks(&mut self) -> Vec<Block> {
        self.full
            .take()
            .map(FullPackets::into_blocks)
            .unwrap_or_default()
    }

    /// Bytes allocated (to decide whether it is worth recycling).
    pub fn capacity_bytes(&self) -> usize {
        self.templates.capacity() * SIZE
            + self.entries.capacity() * std::mem::size_of::<Entry>()
            + self.hosts.capacity() * 2
    }

    /// Packet `k`'s template index and patch.
    pub fn packet(&self, k: usize) -> (u32, RecipientPatch) {
        let e = self.entries[k];
        (e.template, e.patch)
    }

    /// Template `t` (an encoded packet).
    pub fn template(&self, t: u32) -> &[u8; SIZE] {
        &self.templates[t as usize]
    }

    /// Records the host of the next packet without one (cluster mode: the
    /// worker calls it for every packet it pushed).
    pub fn push_host(&mut self, host: u16) {
        debug_assert!(self.hosts.len() < self.entries.len());
        self.hosts.push(host);
    }

    /// Packet `k`'s recipient's host (cluster mode).
    pub fn host(&self, k: usize) -> u16 {
        self.hosts[k]
    }

    /// Adds a template (an encoded packet); returns its index for [`push`].
    ///
    /// [`push`]: Outbox::push
    pub fn push_template(&mut self, template: [u8; SIZE]) -> u32 {
        self.templates.push(template);
        u32::try_from(self.templates.len() - 1).expect("fewer than 2^32 digs per chunk")
    }

    /// Appends the packet `template` + `patch`.
    #[inline]
    pub fn push(&mut self, template: u32, patch: RecipientPatch) {
        debug_assert!((template as usize) < self.templates.len());
        self.entries.push(Entry { template, patch });
    }

    /// Appends the packets `template` + each of `patches`.
    #[inline]
    pub fn extend(&mut self, template: u32, patches: impl Iterator<Item = RecipientPatch>) {
        debug_assert!((template as usize) < self.templates.len());
        self.entries
            .extend(patches.map(|patch| Entry { template, patch }));
    }

    /// Writes packets `from..from + out.len() / SIZE` into `out` (a whole
    /// number of packets, all of them present).
    pub fn write(&self, from: usize, out: &mut [u8]) {
        debug_assert!(out.len().is_multiple_of(SIZE));
        if let Some(full) = &self.full {
            return full.write(from, out);
        }
        let entries = &self.entries[from..from + out.len() / SIZE];
        for (dst, e) in out.chunks_exact_mut(SIZE).zip(entries) {
            let dst: &mut [u8; SIZE] = dst.try_into().expect("chunks_exact gives SIZE bytes");
            e.patch.write(&self.templates[e.template as usize], dst);
        }
    }

    /// Appends packets `from..` to `out` as bytes.
    pub fn extend_vec(&self, from: usize, out: &mut Vec<u8>) {
        let start = out.len();
        out.resize(start + (self.len() - from) * SIZE, 0);
        self.write(from, &mut out[start..]);
    }

    /// An outbox holding already encoded packets (`bytes.len()` a multiple
    /// of `SIZE`), each its own template: restoring a snapshot's pending
    /// packets.
    pub fn from_packets(bytes: &[u8]) -> Outbox {
        // (compact: restored packets are delivered first, by any poll)
        let mut o = Outbox::default();
        for p in bytes.chunks_exact(SIZE) {
            let p: &[u8; SIZE] = p.try_into().expect("chunks_exact gives SIZE bytes");
            let t = o.push_template(*p);
            o.push(t, RecipientPatch::of(p));
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{encode_to_array, patch_recipient_full_crc, Fields, Kind, Packet};

    fn fields(seq: u64) -> Fields {
        Fields {
            kind: Kind::Found as u8,
            flags: 0,
            seq,
            t_us: 99,
            site_id: 3,
            finder: 7,
            recipient: 7,
            party: 2,
            x: -5,
            y: 6,
            z: 1 << 20,
            item: 11,
            quantity: 4,
            rarity: 1,
            charges_left: 9,
            roll: 0xDEAD_BEEF_0123_4567,
            dist2: 3,
        }
    }

    /// Expanding templates + patches gives exactly the packets a full
    /// encode gives, in push order, from any starting packet.
    #[test]
    fn expands_to_full_encodes() {
        let mut o = Outbox::default();
        let mut want = Vec::new();
        for seq in 1..=3u64 {
            let t = encode_to_array(&fields(seq));
            let ti = o.push_template(t);
            for (rcp, flags, d2) in [(1u32, 0u8, 10u32), (7, 1, 3), (400, 6, u32::MAX)] {
                o.push(ti, RecipientPatch::new(&t, rcp, flags, d2));
                let mut full = t;
                patch_recipient_full_crc(&mut full, rcp, flags, d2);
                want.extend_from_slice(&full);
            }
        }
        assert_eq!(o.len(), 9);
        for from in 0..9 {
            let mut got = vec![0u8; (9 - from) * SIZE];
            o.write(from, &mut got);
            assert_eq!(got, want[from * SIZE..], "from packet {from}");
        }
        for p in want.chunks_exact(SIZE) {
            assert!(Packet::new_checked(p).is_ok());
        }
        let round = Outbox::from_packets(&want);
        let mut v = Vec::new();
        round.extend_vec(0, &mut v);
        assert_eq!(v, want);
        o.clear();
        assert_eq!(o.len(), 0);
    }
}
