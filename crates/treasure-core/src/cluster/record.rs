//! The cluster outcome record (format v1, docs/API.md "Record format"):
//! its layout as named byte ranges, the one checked constructor
//! ([`Record::new_checked`]) after which no accessor can fail, and the
//! writer the outgoing cut uses ([`RecordWriter`]).
//!
//! Like `crate::wire` for packets, this is the only place that knows where
//! a record's fields live. A record is a header, then `digs` entries, each
//! followed by its recipient slots. All little-endian.

use crate::contract::RecordReason;
use crate::wire::{Fields, Kind, FLAG_DIGGER, FLAG_LAST_CHARGE, FLAG_PARTY};

/// The layout as byte ranges.
pub mod field {
    use core::ops::Range;

    /// A field's bytes within the header, an entry or a slot.
    pub type Field = Range<usize>;

    // Header.
    pub const MAGIC: Field = 0..4;
    pub const VERSION: Field = 4..6;
    pub const SRC: Field = 6..8;
    pub const DEST: Field = 8..10;
    /// Always 0.
    pub const HEADER_PAD: Field = 10..12;
    pub const DIGS: Field = 12..16;
    pub const PREV: Field = 16..24;
    pub const TO: Field = 24..32;
    pub const LENGTH: Field = 32..36;
    /// CRC-32C of the header before it and of everything after it.
    pub const CRC: Field = 36..40;
    /// Bytes in a header.
    pub const HEADER: usize = 40;

    // Entry, from its first byte.
    pub const SEQ: Field = 0..8;
    pub const T_US: Field = 8..16;
    pub const KIND: usize = 16;
    pub const FLAGS: usize = 17;
    pub const RARITY: usize = 18;
    /// Always 0.
    pub const PAD_A: usize = 19;
    pub const QUANTITY: Field = 20..22;
    /// Always 0.
    pub const PAD_B: Field = 22..24;
    pub const SITE_ID: Field = 24..28;
    pub const FINDER: Field = 28..32;
    pub const PARTY: Field = 32..36;
    pub const X: Field = 36..40;
    pub const Y: Field = 40..44;
    pub const Z: Field = 44..48;
    pub const ITEM: Field = 48..52;
    pub const CHARGES_LEFT: Field = 52..56;
    pub const RECIPIENTS: Field = 56..60;
    /// Always 0.
    pub const PAD_C: Field = 60..64;
    pub const ROLL: Field = 64..72;
    /// Bytes in an entry before its slots.
    pub const ENTRY: usize = 72;

    // Recipient slot, from its first byte.
    pub const RECIPIENT: Field = 0..4;
    pub const DIST2: Field = 4..8;
    pub const SLOT_FLAGS: usize = 8;
    /// Always 0.
    pub const SLOT_PAD: Field = 9..12;
    /// Bytes in a slot.
    pub const SLOT: usize = 12;
}

use field::{ENTRY, HEADER, SLOT};

/// The magic at offset 0.
pub const MAGIC: [u8; 4] = *b"TRSC";
/// The format version at offset 4.
pub const VERSION: u16 = 1;

/// The recipient flag bits a slot may carry (digger, party).
const SLOT_FLAG_BITS: u8 = FLAG_DIGGER | FLAG_PARTY;

fn u16_at(b: &[u8], f: field::Field) -> u16 {
    let mut a = [0u8; 2];
    a.copy_from_slice(&b[f]);
    u16::from_le_bytes(a)
}
fn u32_at(b: &[u8], f: field::Field) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[f]);
    u32::from_le_bytes(a)
}
fn u64_at(b: &[u8], f: field::Field) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[f]);
    u64::from_le_bytes(a)
}

/// The CRC of a record: bytes before the CRC field, then bytes after it.
fn record_crc(bytes: &[u8]) -> u32 {
    let c = crc32c::crc32c(&bytes[..field::CRC.start]);
    crc32c::crc32c_append(c, &bytes[field::CRC.end..])
}

/// What a record must be to be accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Addressed to `shard` (`apply_records`): `dest == shard`, `src <
    /// shards`.
    To { shard: u16, shards: u16 },
    /// Cut by `shard` itself (a snapshot's `outgoing`): `dest < shards`,
    /// `src == shard`.
    From { shard: u16, shards: u16 },
}

/// A valid record. Obtain it with [`Record::new_checked`]; every accessor
/// then reads bytes that were checked to be there.
#[derive(Clone, Copy, Debug)]
pub struct Record<'a> {
    bytes: &'a [u8],
}

impl<'a> Record<'a> {
    /// The one constructor: checks the record at the start of `bytes` (the
    /// rest of a string of records) rule by rule in the contract's order
    /// and returns it with the bytes after it.
    ///
    /// # Errors
    ///
    /// The first [`RecordReason`] that applies.
    pub fn new_checked(
        bytes: &'a [u8],
        expect: Expect,
    ) -> Result<(Record<'a>, &'a [u8]), RecordReason> {
        if bytes.len() < HEADER {
            return Err(RecordReason::TruncatedHeader(bytes.len()));
        }
        if bytes[field::MAGIC] != MAGIC {
            return Err(RecordReason::BadMagic);
        }
        let version = u16_at(bytes, field::VERSION);
        if version != VERSION {
            return Err(RecordReason::BadVersion(version));
        }
        let length = u32_at(bytes, field::LENGTH);
        let len = length as usize;
        if len < HEADER || len > bytes.len() {
            return Err(RecordReason::BadLength(length));
        }
        let (rec, rest) = bytes.split_at(len);
        if record_crc(rec) != u32_at(rec, field::CRC) {
            return Err(RecordReason::BadCrc);
        }
        let (src, dest) = (u16_at(rec, field::SRC), u16_at(rec, field::DEST));
        match expect {
            Expect::To { shard, shards } => {
                if dest != shard {
                    return Err(RecordReason::DestShard(dest));
                }
                if src >= shards {
                    return Err(RecordReason::SrcShard(src));
                }
            }
            Expect::From { shard, shards } => {
                if dest >= shards {
                    return Err(RecordReason::DestShard(dest));
                }
                if src != shard {
                    return Err(RecordReason::SrcNotThisShard { src, shard });
                }
            }
        }
        let (prev, to) = (u64_at(rec, field::PREV), u64_at(rec, field::TO));
        if prev >= to {
            return Err(RecordReason::PrevNotBelowTo { prev, to });
        }
        let digs = u32_at(rec, field::DIGS);
        let mut at = HEADER;
        let mut lo = prev;
        for k in 1..=digs {
            let left = len - at;
            if left < ENTRY {
                return Err(RecordReason::EntryTruncated(k));
            }
            let e = &rec[at..];
            let n = u32_at(e, field::RECIPIENTS) as usize;
            if left - ENTRY < n.saturating_mul(SLOT) {
                return Err(RecordReason::EntryTruncated(k));
            }
            let e = &e[..ENTRY + n * SLOT];
            let seq = u64_at(e, field::SEQ);
            if seq <= lo || seq > to {
                return Err(RecordReason::EntrySeq {
                    entry: k,
                    seq,
                    lo,
                    to,
                });
            }
            lo = seq;
            let kind = e[field::KIND];
            if Kind::from_u8(kind).is_none() {
                return Err(RecordReason::EntryKind { entry: k, kind });
            }
            let flags = e[field::FLAGS];
            if flags != 0 && flags != FLAG_LAST_CHARGE {
                return Err(RecordReason::EntryFlags { entry: k, flags });
            }
            if n == 0 {
                return Err(RecordReason::NoRecipients(k));
            }
            let mut prev_id = 0u32;
            for (j, s) in e[ENTRY..].chunks_exact(SLOT).enumerate() {
                let j = j as u32 + 1;
                let id = u32_at(s, field::RECIPIENT);
                if id <= prev_id {
                    let (entry, recipient, prev) = (k, j, prev_id);
                    return Err(RecordReason::RecipientId {
                        entry,
                        recipient,
                        id,
                        prev,
                    });
                }
                prev_id = id;
                let flags = s[field::SLOT_FLAGS];
                if flags & !SLOT_FLAG_BITS != 0 {
                    let (entry, recipient) = (k, j);
                    return Err(RecordReason::RecipientFlags {
                        entry,
                        recipient,
                        flags,
                    });
                }
            }
            let pad_zero = e[field::PAD_A] == 0
                && e[field::PAD_B].iter().all(|&b| b == 0)
                && e[field::PAD_C].iter().all(|&b| b == 0)
                && e[ENTRY..]
                    .chunks_exact(SLOT)
                    .all(|s| s[field::SLOT_PAD].iter().all(|&b| b == 0));
            if !pad_zero {
                return Err(RecordReason::NonzeroPadding(k));
            }
            at += e.len();
        }
        if at != len {
            return Err(RecordReason::Trailing(len - at));
        }
        Ok((Record { bytes: rec }, rest))
    }

    /// The record's bytes (its whole `length`).
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }
    pub fn src(&self) -> u16 {
        u16_at(self.bytes, field::SRC)
    }
    pub fn dest(&self) -> u16 {
        u16_at(self.bytes, field::DEST)
    }
    /// Number of entries.
    pub fn digs(&self) -> u32 {
        u32_at(self.bytes, field::DIGS)
    }
    /// `to` of the previous record from `src` to `dest` (0 for the first).
    pub fn prev(&self) -> u64 {
        u64_at(self.bytes, field::PREV)
    }
    /// The owner seq this record covers up to.
    pub fn to(&self) -> u64 {
        u64_at(self.bytes, field::TO)
    }
    /// The entries, in seq order.
    pub fn entries(&self) -> Entries<'a> {
        Entries {
            rest: &self.bytes[HEADER..],
        }
    }
    /// Recipient slots over all entries (the packets the record makes).
    pub fn recipients(&self) -> u64 {
        self.entries().map(|e| e.len() as u64).sum()
    }
}

/// The entries of a [`Record`].
#[derive(Clone, Debug)]
pub struct Entries<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Entries<'a> {
    type Item = Entry<'a>;
    fn next(&mut self) -> Option<Entry<'a>> {
        if self.rest.is_empty() {
            return None;
        }
        let n = u32_at(self.rest, field::RECIPIENTS) as usize;
        let (e, rest) = self.rest.split_at(ENTRY + n * SLOT);
        self.rest = rest;
        Some(Entry { bytes: e })
    }
}

/// One checked entry: a dig's template fields and its recipients.
#[derive(Clone, Copy, Debug)]
pub struct Entry<'a> {
    bytes: &'a [u8],
}

impl<'a> Entry<'a> {
    /// The owner seq.
    pub fn seq(&self) -> u64 {
        u64_at(self.bytes, field::SEQ)
    }
    /// The entry's flags (only [`FLAG_LAST_CHARGE`] may be set).
    pub fn flags(&self) -> u8 {
        self.bytes[field::FLAGS]
    }
    /// Number of recipients (at least 1).
    pub fn len(&self) -> usize {
        (self.bytes.len() - ENTRY) / SLOT
    }
    /// Never true for a checked entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The packet fields every recipient's packet shares, with `seq` as
    /// given (the host seq) and the first recipient's fields.
    pub fn fields(&self, seq: u64) -> Fields {
        let b = self.bytes;
        let first = self.slots().next().unwrap_or_default();
        Fields {
            kind: b[field::KIND],
            flags: b[field::FLAGS] | first.flags,
            seq,
            t_us: u64_at(b, field::T_US),
            site_id: u32_at(b, field::SITE_ID),
            finder: u32_at(b, field::FINDER),
            recipient: first.recipient,
            party: u32_at(b, field::PARTY),
            x: u32_at(b, field::X) as i32,
            y: u32_at(b, field::Y) as i32,
            z: u32_at(b, field::Z) as i32,
            item: u32_at(b, field::ITEM),
            quantity: u16_at(b, field::QUANTITY),
            rarity: b[field::RARITY],
            charges_left: u32_at(b, field::CHARGES_LEFT),
            roll: u64_at(b, field::ROLL),
            dist2: first.dist2,
        }
    }
    /// The recipients, ascending id.
    pub fn slots(&self) -> impl Iterator<Item = Slot> + 'a {
        self.bytes[ENTRY..].chunks_exact(SLOT).map(|s| Slot {
            recipient: u32_at(s, field::RECIPIENT),
            dist2: u32_at(s, field::DIST2),
            flags: s[field::SLOT_FLAGS],
        })
    }
}

/// One recipient slot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Slot {
    pub recipient: u32,
    pub dist2: u32,
    /// Digger and party bits only.
    pub flags: u8,
}

/// Writes records into a byte vector: [`begin`](RecordWriter::begin), one
/// [`entry`](RecordWriter::entry) per dig, then
/// [`finish`](RecordWriter::finish).
#[derive(Debug)]
pub struct RecordWriter {
    start: usize,
    digs: u32,
}

impl RecordWriter {
    /// Starts a record from `src` to `dest` at the end of `out`.
    pub fn begin(out: &mut Vec<u8>, src: u16, dest: u16, prev: u64) -> RecordWriter {
        let start = out.len();
        out.resize(start + HEADER, 0);
        let h = &mut out[start..];
        h[field::MAGIC].copy_from_slice(&MAGIC);
        h[field::VERSION].copy_from_slice(&VERSION.to_le_bytes());
        h[field::SRC].copy_from_slice(&src.to_le_bytes());
        h[field::DEST].copy_from_slice(&dest.to_le_bytes());
        h[field::PREV].copy_from_slice(&prev.to_le_bytes());
        RecordWriter { start, digs: 0 }
    }

    /// Bytes an entry with `recipients` slots takes.
    pub fn entry_len(recipients: usize) -> usize {
        ENTRY + recipients * SLOT
    }

    /// Bytes of the record so far.
    pub fn len(&self, out: &[u8]) -> usize {
        out.len() - self.start
    }

    /// Entries so far.
    pub fn digs(&self) -> u32 {
        self.digs
    }

    /// Appends an entry: the dig's template `f` (its `seq` is the owner
    /// seq; `flags` keeps only [`FLAG_LAST_CHARGE`]; recipient and dist2
    /// are ignored) and its recipients in ascending id (`flags` keeps the
    /// digger and party bits).
    pub fn entry(&mut self, out: &mut Vec<u8>, f: &Fields, slots: &[Slot]) {
        let at = out.len();
        out.resize(at + Self::entry_len(slots.len()), 0);
        let e = &mut out[at..];
        e[field::SEQ].copy_from_slice(&f.seq.to_le_bytes());
        e[field::T_US].copy_from_slice(&f.t_us.to_le_bytes());
        e[field::KIND] = f.kind;
        e[field::FLAGS] = f.flags & FLAG_LAST_CHARGE;
        e[field::RARITY] = f.rarity;
        e[field::QUANTITY].copy_from_slice(&f.quantity.to_le_bytes());
        e[field::SITE_ID].copy_from_slice(&f.site_id.to_le_bytes());
        e[field::FINDER].copy_from_slice(&f.finder.to_le_bytes());
        e[field::PARTY].copy_from_slice(&f.party.to_le_bytes());
        e[field::X].copy_from_slice(&f.x.to_le_bytes());
        e[field::Y].copy_from_slice(&f.y.to_le_bytes());
        e[field::Z].copy_from_slice(&f.z.to_le_bytes());
        e[field::ITEM].copy_from_slice(&f.item.to_le_bytes());
        e[field::CHARGES_LEFT].copy_from_slice(&f.charges_left.to_le_bytes());
        let n = u32::try_from(slots.len()).expect("fewer than 2^32 recipients");
        e[field::RECIPIENTS].copy_from_slice(&n.to_le_bytes());
        e[field::ROLL].copy_from_slice(&f.roll.to_le_bytes());
        for (s, slot) in e[ENTRY..].chunks_exact_mut(SLOT).zip(slots) {
            s[field::RECIPIENT].copy_from_slice(&slot.recipient.to_le_bytes());
            s[field::DIST2].copy_from_slice(&slot.dist2.to_le_bytes());
            s[field::SLOT_FLAGS] = slot.flags & SLOT_FLAG_BITS;
        }
        self.digs += 1;
    }

    /// Ends the record covering up to `to`: fills in `digs`, `to`, the
    /// length and the CRC.
    pub fn finish(self, out: &mut [u8], to: u64) {
        let rec = &mut out[self.start..];
        let len = u32::try_from(rec.len()).expect("a record fits in 2^32 bytes");
        rec[field::DIGS].copy_from_slice(&self.digs.to_le_bytes());
        rec[field::TO].copy_from_slice(&to.to_le_bytes());
        rec[field::LENGTH].copy_from_slice(&len.to_le_bytes());
        let c = record_crc(rec);
        rec[field::CRC].copy_from_slice(&c.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn fields(seq: u64) -> Fields {
        Fields {
            kind: Kind::Found as u8,
            flags: FLAG_LAST_CHARGE | FLAG_DIGGER,
            seq,
            t_us: 0x0102_0304_0506_0708,
            site_id: 10,
            finder: 7,
            recipient: 7,
            party: 5,
            x: -1,
            y: 2,
            z: -1_048_576,
            item: 100,
            quantity: 0xABCD,
            rarity: 3,
            charges_left: 0,
            roll: 0xE220_A839_7B1D_CDAF,
            dist2: 9,
        }
    }

    const SLOTS: [Slot; 2] = [
        Slot {
            recipient: 7,
            dist2: 9,
            flags: FLAG_DIGGER,
        },
        Slot {
            recipient: 0x0102_0304,
            dist2: u32::MAX,
            flags: FLAG_PARTY,
        },
    ];

    /// src 2, dest 1, prev 3, one entry (seq 4) with two recipients, to 6.
    fn sample() -> Vec<u8> {
        let mut out = Vec::new();
        let mut w = RecordWriter::begin(&mut out, 2, 1, 3);
        w.entry(&mut out, &fields(4), &SLOTS);
        w.finish(&mut out, 6);
        out
    }

    /// The bytes of `sample()` assembled by hand, CRC from the crate.
    fn sample_by_hand() -> Vec<u8> {
        let mut b = hex("
            54525343 0100 0200 0100 0000 01000000
            0300000000000000 0600000000000000
            88000000 00000000
            0400000000000000 0807060504030201
            01 04 03 00 cdab 0000
            0a000000 07000000 05000000
            ffffffff 02000000 0000f0ff
            64000000 00000000 02000000 00000000
            afcd1d7b39a820e2
            07000000 09000000 01 000000
            04030201 ffffffff 02 000000");
        let c = crc32c::crc32c_append(crc32c::crc32c(&b[..36]), &b[40..]);
        b[36..40].copy_from_slice(&c.to_le_bytes());
        b
    }

    const TO1: Expect = Expect::To {
        shard: 1,
        shards: 3,
    };

    #[test]
    fn writes_fixed_bytes() {
        assert_eq!(sample(), sample_by_hand());
        assert_eq!(sample().len(), HEADER + ENTRY + 2 * SLOT);
    }

    #[test]
    fn reads_fixed_bytes() {
        let mut b = sample_by_hand();
        b.extend_from_slice(b"rest");
        let (r, rest) = Record::new_checked(&b, TO1).unwrap();
        assert_eq!(rest, b"rest");
        assert_eq!(
            (r.src(), r.dest(), r.digs(), r.prev(), r.to()),
            (2, 1, 1, 3, 6)
        );
        assert_eq!(r.recipients(), 2);
        let e: Vec<Entry> = r.entries().collect();
        assert_eq!(e.len(), 1);
        assert_eq!(
            (e[0].seq(), e[0].flags(), e[0].len()),
            (4, FLAG_LAST_CHARGE, 2)
        );
        assert_eq!(e[0].slots().collect::<Vec<_>>(), SLOTS);
        // The template of host seq 11 is the dig's packet for its first
        // recipient, that seq.
        let mut want = fields(11);
        want.flags = FLAG_LAST_CHARGE | FLAG_DIGGER;
        assert_eq!(e[0].fields(11), want);
        let from = Expect::From {
            shard: 2,
            shards: 3,
        };
        assert!(Record::new_checked(&b, from).is_ok());
    }

    /// Rewrites a field of the sample and fixes the CRC, so the rule after
    /// the CRC is what fails.
    fn with(f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
        let mut b = sample_by_hand();
        f(&mut b);
        let c = record_crc(&b);
        b[field::CRC].copy_from_slice(&c.to_le_bytes());
        b
    }

    fn reason(b: &[u8], expect: Expect) -> String {
        Record::new_checked(b, expect).unwrap_err().to_string()
    }

    #[test]
    fn every_reason_in_order() {
        let good = sample_by_hand();
        assert_eq!(reason(&good[..39], TO1), "truncated header (39 bytes)");
        assert_eq!(reason(&[], TO1), "truncated header (0 bytes)");
        let mut b = good.clone();
        b[0] = b'X';
        assert_eq!(reason(&b, TO1), "bad magic");
        let mut b = good.clone();
        b[4] = 2;
        assert_eq!(reason(&b, TO1), "bad version 2");
        let mut b = good.clone();
        b[32] = 39;
        assert_eq!(reason(&b, TO1), "bad length 39");
        assert_eq!(reason(&good[..good.len() - 1], TO1), "bad length 136");
        let mut b = good.clone();
        b[100] ^= 1;
        assert_eq!(reason(&b, TO1), "bad CRC");
        let mut b = good.clone();
        b[37] ^= 1;
        assert_eq!(reason(&b, TO1), "bad CRC");
        let to0 = Expect::To {
            shard: 0,
            shards: 3,
        };
        assert_eq!(reason(&good, to0), "dest shard 1");
        let to1of2 = Expect::To {
            shard: 1,
            shards: 2,
        };
        assert_eq!(reason(&good, to1of2), "src shard 2");
        let from0 = Expect::From {
            shard: 0,
            shards: 3,
        };
        assert_eq!(reason(&good, from0), "src shard 2 is not this shard 0");
        let from_small = Expect::From {
            shard: 2,
            shards: 1,
        };
        assert_eq!(reason(&good, from_small), "dest shard 1");
        let b = with(|b| b[field::PREV].copy_from_slice(&6u64.to_le_bytes()));
        assert_eq!(reason(&b, TO1), "prev 6 not below to 6");
        // Two entries announced, one present.
        let b = with(|b| b[field::DIGS].copy_from_slice(&2u32.to_le_bytes()));
        assert_eq!(reason(&b, TO1), "entry 2 truncated");
        // More recipients announced than the record holds.
        let b = with(|b| b[HEADER + 56] = 3);
        assert_eq!(reason(&b, TO1), "entry 1 truncated");
        let b = with(|b| b[field::DIGS].copy_from_slice(&0u32.to_le_bytes()));
        assert_eq!(reason(&b, TO1), "trailing 96 bytes");
        let b = with(|b| b[HEADER] = 3);
        assert_eq!(reason(&b, TO1), "entry 1 seq 3 not in (3, 6]");
        let b = with(|b| b[HEADER] = 7);
        assert_eq!(reason(&b, TO1), "entry 1 seq 7 not in (3, 6]");
        let b = with(|b| b[HEADER + 16] = 5);
        assert_eq!(reason(&b, TO1), "entry 1 kind 5");
        let b = with(|b| b[HEADER + 16] = 0);
        assert_eq!(reason(&b, TO1), "entry 1 kind 0");
        let b = with(|b| b[HEADER + 17] = 1);
        assert_eq!(reason(&b, TO1), "entry 1 flags 1");
        let b = with(|b| b[HEADER + 17] = 6);
        assert_eq!(reason(&b, TO1), "entry 1 flags 6");
        let b = with(|b| b[HEADER + 56] = 0);
        // With no recipients the two slots are left over: the entry rule
        // comes first.
        assert_eq!(reason(&b, TO1), "entry 1 has no recipients");
        let b = with(|b| b[HEADER + ENTRY..HEADER + ENTRY + 4].fill(0));
        assert_eq!(reason(&b, TO1), "entry 1 recipient 1 id 0 not above 0");
        let b = with(|b| b[HEADER + ENTRY + SLOT..HEADER + ENTRY + SLOT + 4].fill(0));
        assert_eq!(reason(&b, TO1), "entry 1 recipient 2 id 0 not above 7");
        let b = with(|b| b[HEADER + ENTRY + 8] = 4);
        assert_eq!(reason(&b, TO1), "entry 1 recipient 1 flags 4");
        for pad in [19usize, 22, 23, 60, 63, ENTRY + 9, ENTRY + SLOT + 11] {
            let b = with(|b| b[HEADER + pad] = 1);
            assert_eq!(reason(&b, TO1), "entry 1 nonzero padding", "byte {pad}");
        }
        // Rules are checked in order: a bad kind and bad flags report the
        // kind.
        let b = with(|b| {
            b[HEADER + 16] = 9;
            b[HEADER + 17] = 9;
        });
        assert_eq!(reason(&b, TO1), "entry 1 kind 9");
    }

    #[test]
    fn second_entry_seq_is_above_the_first() {
        let mut out = Vec::new();
        let mut w = RecordWriter::begin(&mut out, 0, 1, 0);
        w.entry(&mut out, &fields(2), &SLOTS[..1]);
        w.entry(&mut out, &fields(2), &SLOTS[..1]);
        w.finish(&mut out, 2);
        assert_eq!(reason(&out, TO1), "entry 2 seq 2 not in (2, 2]");
    }
}
