//! The outgoing side of a cluster resolver: the deterministic cut of each
//! resolved dig call into records (docs/API.md, "Record cut"), and the
//! records cut but not yet taken.
//!
//! A call is cut once all its digs are resolved, in call order, so the
//! records and their `prev` chain depend only on the calls and the players
//! as of each dig, never on when the caller takes them or how the workers
//! ran. For each destination with a recipient among the call's digs (in
//! ascending destination), the call's entries for it go into consecutive
//! records in owner-seq order; a record is closed before an entry that
//! would take it past [`RECORD_SPLIT_BYTES`], and its `to` is then its last
//! entry's seq; the call's last record for a destination covers up to the
//! call's last seq.

use std::collections::BTreeMap;

use super::record::{RecordWriter, Slot};
use crate::contract::limits::RECORD_SPLIT_BYTES;
use crate::outbox::Outbox;
use crate::wire::{Packet, FLAG_DIGGER, FLAG_PARTY};

/// One packet of a call for a destination: which outbox, which template
/// (dig), and the recipient's slot.
#[derive(Clone, Copy, Debug)]
struct Pick {
    outbox: u32,
    template: u32,
    slot: Slot,
}

/// Records cut and not yet taken, and the chain state per destination.
#[derive(Debug, Default)]
pub(crate) struct Outgoing {
    shard: u16,
    /// `to` of the last record cut for each destination (the next one's
    /// `prev`); only destinations that got one.
    sent: BTreeMap<u16, u64>,
    /// The records cut and not yet taken, concatenated.
    bytes: Vec<u8>,
    /// How many records `bytes` holds.
    records: u64,
    /// How many recipient slots `bytes` holds: the dig packets not yet
    /// taken, which `dig`'s busy rule counts.
    packets: u64,
    /// Per destination, the call being cut (reused).
    scratch: BTreeMap<u16, Vec<Pick>>,
}

impl Outgoing {
    pub fn new(shard: u16) -> Outgoing {
        Outgoing {
            shard,
            ..Outgoing::default()
        }
    }

    /// Records cut and not yet taken.
    pub fn pending_records(&self) -> u64 {
        self.records
    }

    /// Dig packets (recipient slots) in the records not yet taken.
    pub fn pending_packets(&self) -> u64 {
        self.packets
    }

    /// `to` of the last record cut per destination, ascending.
    pub fn sent(&self) -> impl Iterator<Item = (u16, u64)> + '_ {
        self.sent.iter().map(|(&d, &s)| (d, s))
    }

    /// The records not yet taken, as `take` would return them.
    pub fn pending_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Appends every record not yet taken to `out` and forgets them;
    /// returns how many.
    pub fn take(&mut self, out: &mut Vec<u8>) -> u64 {
        out.extend_from_slice(&self.bytes);
        self.bytes.clear();
        self.packets = 0;
        std::mem::take(&mut self.records)
    }

    /// Puts back the `records` records [`take`](Outgoing::take) just gave
    /// out as `bytes` (nothing was cut since).
    pub fn untake(&mut self, mut bytes: Vec<u8>, records: u64) {
        let mut packets = 0;
        let mut rest = &bytes[..];
        let expect = super::record::Expect::From {
            shard: self.shard,
            shards: u16::MAX,
        };
        while let Ok((r, next)) = super::record::Record::new_checked(rest, expect) {
            packets += r.recipients();
            rest = next;
        }
        bytes.extend_from_slice(&self.bytes);
        self.bytes = bytes;
        self.records += records;
        self.packets += packets;
    }

    /// A restored state: the chain per destination and records not yet
    /// taken (`records` of them, `packets` recipient slots; all checked).
    pub fn restore(&mut self, sent: &[(u16, u64)], bytes: &[u8], records: u64, packets: u64) {
        self.sent = sent.iter().copied().collect();
        self.bytes = bytes.to_vec();
        self.records = records;
        self.packets = packets;
    }

    /// Cuts one resolved dig call (its chunks' outboxes in order, every
    /// packet with its recipient's host) into records.
    pub fn cut_call(&mut self, call: &[Outbox]) {
        let Some(last_seq) = call
            .iter()
            .rev()
            .find(|o| o.digs() > 0)
            .map(|o| seq_of(o.template(o.digs() as u32 - 1)))
        else {
            return;
        };
        for picks in self.scratch.values_mut() {
            picks.clear();
        }
        for (oi, o) in call.iter().enumerate() {
            for k in 0..o.len() {
                let (template, patch) = o.packet(k);
                let pick = Pick {
                    outbox: oi as u32,
                    template,
                    slot: Slot {
                        recipient: patch.recipient,
                        dist2: patch.dist2,
                        flags: patch.flags & (FLAG_DIGGER | FLAG_PARTY),
                    },
                };
                self.scratch.entry(o.host(k)).or_default().push(pick);
            }
        }
        let mut slots = Vec::new();
        for (&dest, picks) in &self.scratch {
            if picks.is_empty() {
                continue;
            }
            let prev = self.sent.get(&dest).copied().unwrap_or(0);
            let mut w = RecordWriter::begin(&mut self.bytes, self.shard, dest, prev);
            let mut last_entry_seq = prev;
            let mut i = 0;
            while i < picks.len() {
                let (outbox, template) = (picks[i].outbox, picks[i].template);
                let run = picks[i..]
                    .iter()
                    .take_while(|p| p.outbox == outbox && p.template == template)
                    .count();
                let fields = Packet::new_checked(call[outbox as usize].template(template))
                    .expect("templates are encoded packets")
                    .fields();
                let entry_len = RecordWriter::entry_len(run);
                if w.digs() > 0 && w.len(&self.bytes) + entry_len > RECORD_SPLIT_BYTES {
                    w.finish(&mut self.bytes, last_entry_seq);
                    self.records += 1;
                    w = RecordWriter::begin(&mut self.bytes, self.shard, dest, last_entry_seq);
                }
                slots.clear();
                slots.extend(picks[i..i + run].iter().map(|p| p.slot));
                w.entry(&mut self.bytes, &fields, &slots);
                self.packets += run as u64;
                last_entry_seq = fields.seq;
                i += run;
            }
            w.finish(&mut self.bytes, last_seq);
            self.records += 1;
            self.sent.insert(dest, last_seq);
        }
    }
}

fn seq_of(template: &[u8; crate::wire::SIZE]) -> u64 {
    Packet::new_checked(template)
        .expect("templates are encoded packets")
        .seq()
}

#[cfg(test)]
mod tests {
    use super::super::record::field::HEADER;
    use super::super::record::{Expect, Record};
    use super::*;
    use crate::wire::{encode_to_array, Fields, Kind, Patcher, FLAG_LAST_CHARGE};

    /// A resolved dig: owner seq and its recipients `(id, host)`.
    fn dig(out: &mut Outbox, seq: u64, recipients: &[(u32, u16)]) {
        let t = encode_to_array(&Fields {
            kind: Kind::Found as u8,
            flags: FLAG_LAST_CHARGE,
            seq,
            finder: recipients[0].0,
            recipient: recipients[0].0,
            ..Fields::default()
        });
        let ti = out.push_template(t);
        let patcher = Patcher::new(&t);
        for &(id, host) in recipients {
            out.push(ti, patcher.patch(id, FLAG_LAST_CHARGE | 1, id * 10));
            out.push_host(host);
        }
    }

    /// `(dest, prev, to, entry seqs)` of each record.
    fn heads(bytes: &[u8]) -> Vec<(u16, u64, u64, Vec<u64>)> {
        let mut rest = bytes;
        let mut v = Vec::new();
        let expect = Expect::From {
            shard: 1,
            shards: 4,
        };
        while !rest.is_empty() {
            let (r, next) = Record::new_checked(rest, expect).unwrap();
            v.push((
                r.dest(),
                r.prev(),
                r.to(),
                r.entries().map(|e| e.seq()).collect(),
            ));
            rest = next;
        }
        v
    }

    #[test]
    fn a_call_is_cut_per_destination_ascending_with_its_last_seq_as_to() {
        let mut o = Outgoing::new(1);
        // One call over two chunks: seqs 4, 5 | 6.
        let (mut a, mut b) = (Outbox::default(), Outbox::default());
        dig(&mut a, 4, &[(1, 3), (2, 0)]);
        dig(&mut a, 5, &[(2, 0)]);
        dig(&mut b, 6, &[(1, 3), (9, 3)]);
        o.cut_call(&[a, b]);
        assert_eq!(o.pending_records(), 2);
        assert_eq!(o.pending_packets(), 5);
        let mut c = Outbox::default();
        dig(&mut c, 7, &[(2, 0)]);
        o.cut_call(&[c]);
        let mut bytes = Vec::new();
        assert_eq!(o.take(&mut bytes), 3);
        assert_eq!(
            heads(&bytes),
            vec![
                (0, 0, 6, vec![4, 5]),
                (3, 0, 6, vec![4, 6]),
                (0, 6, 7, vec![7]),
            ]
        );
        assert_eq!(o.sent().collect::<Vec<_>>(), vec![(0, 7), (3, 6)]);
        assert_eq!((o.pending_records(), o.pending_packets()), (0, 0));
        // The slots keep digger and party bits only; the entry the last
        // charge bit.
        let (r, _) = Record::new_checked(
            &bytes,
            Expect::From {
                shard: 1,
                shards: 4,
            },
        )
        .unwrap();
        let e = r.entries().next().unwrap();
        assert_eq!(e.flags(), FLAG_LAST_CHARGE);
        let s: Vec<_> = e.slots().map(|s| (s.recipient, s.dist2, s.flags)).collect();
        assert_eq!(s, vec![(2, 20, 1)]);
        // Taken records can be put back whole.
        o.untake(bytes.clone(), 3);
        let mut again = Vec::new();
        assert_eq!(o.take(&mut again), 3);
        assert_eq!(again, bytes);
    }

    #[test]
    fn a_record_is_closed_before_an_entry_that_would_pass_the_split() {
        // Entries this big: two fit in one record under the split, three do
        // not (asserted below from the entry length).
        let crowd: Vec<(u32, u16)> = (1..=2700).map(|id| (id, 2)).collect();
        let entry = RecordWriter::entry_len(crowd.len());
        assert!(
            HEADER + 2 * entry <= RECORD_SPLIT_BYTES && HEADER + 3 * entry > RECORD_SPLIT_BYTES
        );
        let mut a = Outbox::default();
        for seq in 10..=14 {
            dig(&mut a, seq, &crowd);
        }
        dig(&mut a, 15, &[(5, 0)]);
        let mut o = Outgoing::new(1);
        o.cut_call(&[a]);
        let mut bytes = Vec::new();
        o.take(&mut bytes);
        assert_eq!(
            heads(&bytes),
            vec![
                (0, 0, 15, vec![15]),
                (2, 0, 11, vec![10, 11]),
                (2, 11, 13, vec![12, 13]),
                (2, 13, 15, vec![14]),
            ]
        );
    }
}
