//! The 128-byte packet: layout, checked decoding, encoding.
//!
//! Like smoltcp's `wire` module, this file is the only place that knows the
//! byte layout. Everything is little-endian, fixed offsets, no padding:
//!
//! | off | type | field |
//! |----:|------|-------|
//! | 0 | `[u8; 4]` | magic `"TRSR"` |
//! | 4 | u16 | version = 1 |
//! | 6 | u8 | kind (1 FOUND, 2 EMPTY, 3 NOTHING, 4 REJECTED) |
//! | 7 | u8 | flags ([`FLAG_DIGGER`], [`FLAG_PARTY`], [`FLAG_LAST_CHARGE`]) |
//! | 8 | u64 | seq |
//! | 16 | u64 | t_us |
//! | 24 | u32 | site_id |
//! | 28 | u32 | finder |
//! | 32 | u32 | recipient |
//! | 36 | u32 | finder's party |
//! | 40 | i32 ×3 | x, y, z of the dug block |
//! | 52 | u32 | item |
//! | 56 | u16 | quantity |
//! | 58 | u8 | rarity |
//! | 59 | u8 | 0 |
//! | 60 | u32 | charges_left (after the dig) |
//! | 64 | u64 | roll |
//! | 72 | u32 | dist2(recipient, block), saturating at `u32::MAX` |
//! | 76 | 48 bytes | 0 |
//! | 124 | u32 | CRC-32C (Castagnoli) of bytes 0..124 |
//!
//! [`Packet::new_checked`] validates length, magic, version and CRC once; the
//! accessors of the returned `&Packet` then cannot fail or panic (the struct
//! is `Unaligned`, every bit pattern of every field is valid).
//!
//! [`encode`] fills a `[u8; 128]`; the pipeline encodes a per-dig template
//! once and only patches recipient, flags, dist2 and the CRC per recipient
//! ([`patch_recipient`]).

use zerocopy::byteorder::little_endian::{I32, U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// Bytes in one packet.
pub const SIZE: usize = 128;
/// The magic at offset 0.
pub const MAGIC: [u8; 4] = *b"TRSR";
/// The layout version at offset 4.
pub const VERSION: u16 = 1;

/// Flag bit 0: the recipient is the digger.
pub const FLAG_DIGGER: u8 = 1;
/// Flag bit 1: the recipient is in the digger's non-zero party and is not the digger.
pub const FLAG_PARTY: u8 = 2;
/// Flag bit 2: this dig took the site's last charge (set on every packet of that dig).
pub const FLAG_LAST_CHARGE: u8 = 4;

/// Field offsets (bytes from the start of the packet).
pub mod offset {
    pub const MAGIC: usize = 0;
    pub const VERSION: usize = 4;
    pub const KIND: usize = 6;
    pub const FLAGS: usize = 7;
    pub const SEQ: usize = 8;
    pub const T_US: usize = 16;
    pub const SITE_ID: usize = 24;
    pub const FINDER: usize = 28;
    pub const RECIPIENT: usize = 32;
    pub const PARTY: usize = 36;
    pub const X: usize = 40;
    pub const Y: usize = 44;
    pub const Z: usize = 48;
    pub const ITEM: usize = 52;
    pub const QUANTITY: usize = 56;
    pub const RARITY: usize = 58;
    pub const PAD: usize = 59;
    pub const CHARGES_LEFT: usize = 60;
    pub const ROLL: usize = 64;
    pub const DIST2: usize = 72;
    pub const RESERVED: usize = 76;
    pub const CRC: usize = 124;
}

/// Outcome of a dig.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Kind {
    Found = 1,
    Empty = 2,
    Nothing = 3,
    Rejected = 4,
}

impl Kind {
    pub fn from_u8(v: u8) -> Option<Kind> {
        match v {
            1 => Some(Kind::Found),
            2 => Some(Kind::Empty),
            3 => Some(Kind::Nothing),
            4 => Some(Kind::Rejected),
            _ => None,
        }
    }
}

/// Why bytes are not a valid packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WireError {
    /// The slice is not exactly [`SIZE`] bytes.
    Length(usize),
    /// Bytes 0..4 are not `"TRSR"`.
    Magic([u8; 4]),
    /// Unknown layout version.
    Version(u16),
    /// Stored CRC vs computed CRC.
    Crc { stored: u32, computed: u32 },
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WireError::Length(n) => write!(f, "packet length must be 128, got {n}"),
            WireError::Magic(m) => write!(f, "bad packet magic {m:?}"),
            WireError::Version(v) => write!(f, "unknown packet version {v}"),
            WireError::Crc { stored, computed } => {
                write!(
                    f,
                    "bad packet crc: stored {stored:#010x}, computed {computed:#010x}"
                )
            }
        }
    }
}

impl std::error::Error for WireError {}

/// A zero-copy view of one packet. Obtain it with [`Packet::new_checked`].
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Debug)]
#[repr(C)]
pub struct Packet {
    magic: [u8; 4],
    version: U16,
    kind: u8,
    flags: u8,
    seq: U64,
    t_us: U64,
    site_id: U32,
    finder: U32,
    recipient: U32,
    party: U32,
    x: I32,
    y: I32,
    z: I32,
    item: U32,
    quantity: U16,
    rarity: u8,
    pad: u8,
    charges_left: U32,
    roll: U64,
    dist2: U32,
    reserved: [u8; 48],
    crc: U32,
}

const _: () = assert!(core::mem::size_of::<Packet>() == SIZE);
const _: () = assert!(core::mem::align_of::<Packet>() == 1);
const _: () = assert!(core::mem::offset_of!(Packet, seq) == offset::SEQ);
const _: () = assert!(core::mem::offset_of!(Packet, recipient) == offset::RECIPIENT);
const _: () = assert!(core::mem::offset_of!(Packet, item) == offset::ITEM);
const _: () = assert!(core::mem::offset_of!(Packet, charges_left) == offset::CHARGES_LEFT);
const _: () = assert!(core::mem::offset_of!(Packet, dist2) == offset::DIST2);
const _: () = assert!(core::mem::offset_of!(Packet, reserved) == offset::RESERVED);
const _: () = assert!(core::mem::offset_of!(Packet, crc) == offset::CRC);

/// CRC-32C (Castagnoli) of bytes 0..124 (hardware instruction where available).
#[inline]
pub fn crc(bytes: &[u8; SIZE]) -> u32 {
    crc32c::crc32c(&bytes[..offset::CRC])
}

impl Packet {
    /// Validates length, magic, version and CRC. Reserved bytes are not
    /// checked (they are covered by the CRC anyway).
    pub fn new_checked(bytes: &[u8]) -> Result<&Packet, WireError> {
        let arr: &[u8; SIZE] = bytes
            .try_into()
            .map_err(|_| WireError::Length(bytes.len()))?;
        let p = Packet::ref_from_bytes(&arr[..]).map_err(|_| WireError::Length(bytes.len()))?;
        if p.magic != MAGIC {
            return Err(WireError::Magic(p.magic));
        }
        if p.version.get() != VERSION {
            return Err(WireError::Version(p.version.get()));
        }
        let computed = crc(arr);
        if p.crc.get() != computed {
            return Err(WireError::Crc {
                stored: p.crc.get(),
                computed,
            });
        }
        Ok(p)
    }

    /// The raw kind byte (1..=4 for packets we encode; unknown values are
    /// passed through, see [`Packet::kind`]).
    pub fn kind_byte(&self) -> u8 {
        self.kind
    }
    pub fn kind(&self) -> Option<Kind> {
        Kind::from_u8(self.kind)
    }
    pub fn flags(&self) -> u8 {
        self.flags
    }
    pub fn seq(&self) -> u64 {
        self.seq.get()
    }
    pub fn t_us(&self) -> u64 {
        self.t_us.get()
    }
    pub fn site_id(&self) -> u32 {
        self.site_id.get()
    }
    pub fn finder(&self) -> u32 {
        self.finder.get()
    }
    pub fn recipient(&self) -> u32 {
        self.recipient.get()
    }
    pub fn party(&self) -> u32 {
        self.party.get()
    }
    pub fn x(&self) -> i32 {
        self.x.get()
    }
    pub fn y(&self) -> i32 {
        self.y.get()
    }
    pub fn z(&self) -> i32 {
        self.z.get()
    }
    pub fn item(&self) -> u32 {
        self.item.get()
    }
    pub fn quantity(&self) -> u16 {
        self.quantity.get()
    }
    pub fn rarity(&self) -> u8 {
        self.rarity
    }
    pub fn charges_left(&self) -> u32 {
        self.charges_left.get()
    }
    pub fn roll(&self) -> u64 {
        self.roll.get()
    }
    pub fn dist2(&self) -> u32 {
        self.dist2.get()
    }
    pub fn crc(&self) -> u32 {
        self.crc.get()
    }
    /// True when the pad byte and the 48 reserved bytes are all zero.
    pub fn reserved_is_zero(&self) -> bool {
        self.pad == 0 && self.reserved.iter().all(|&b| b == 0)
    }

    /// All fields as plain values.
    pub fn fields(&self) -> Fields {
        Fields {
            kind: self.kind,
            flags: self.flags,
            seq: self.seq(),
            t_us: self.t_us(),
            site_id: self.site_id(),
            finder: self.finder(),
            recipient: self.recipient(),
            party: self.party(),
            x: self.x(),
            y: self.y(),
            z: self.z(),
            item: self.item(),
            quantity: self.quantity(),
            rarity: self.rarity,
            charges_left: self.charges_left(),
            roll: self.roll(),
            dist2: self.dist2(),
        }
    }
}

/// The fields of a packet as plain values (what [`encode`] writes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Fields {
    /// Raw kind byte; use `Kind::X as u8`.
    pub kind: u8,
    pub flags: u8,
    pub seq: u64,
    pub t_us: u64,
    pub site_id: u32,
    pub finder: u32,
    pub recipient: u32,
    pub party: u32,
    pub x: i32,
    pub y: i32,
    pub z: i32,
    pub item: u32,
    pub quantity: u16,
    pub rarity: u8,
    pub charges_left: u32,
    pub roll: u64,
    pub dist2: u32,
}

/// Encodes `f` into `out`, including magic, version, zero padding and CRC.
#[inline]
pub fn encode(f: &Fields, out: &mut [u8; SIZE]) {
    let p = Packet {
        magic: MAGIC,
        version: U16::new(VERSION),
        kind: f.kind,
        flags: f.flags,
        seq: U64::new(f.seq),
        t_us: U64::new(f.t_us),
        site_id: U32::new(f.site_id),
        finder: U32::new(f.finder),
        recipient: U32::new(f.recipient),
        party: U32::new(f.party),
        x: I32::new(f.x),
        y: I32::new(f.y),
        z: I32::new(f.z),
        item: U32::new(f.item),
        quantity: U16::new(f.quantity),
        rarity: f.rarity,
        pad: 0,
        charges_left: U32::new(f.charges_left),
        roll: U64::new(f.roll),
        dist2: U32::new(f.dist2),
        reserved: [0; 48],
        crc: U32::new(0),
    };
    out.copy_from_slice(p.as_bytes());
    let c = crc(out);
    out[offset::CRC..].copy_from_slice(&c.to_le_bytes());
}

/// Encodes `f` and returns the bytes.
pub fn encode_to_array(f: &Fields) -> [u8; SIZE] {
    let mut out = [0u8; SIZE];
    encode(f, &mut out);
    out
}

/// Byte positions rewritten by [`patch_recipient`]: flags, recipient, dist2.
const PATCHED: [usize; 9] = [
    offset::FLAGS,
    offset::RECIPIENT,
    offset::RECIPIENT + 1,
    offset::RECIPIENT + 2,
    offset::RECIPIENT + 3,
    offset::DIST2,
    offset::DIST2 + 1,
    offset::DIST2 + 2,
    offset::DIST2 + 3,
];

/// `DELTA[k][d]`: how the CRC of a 124-byte message changes when the byte
/// at `PATCHED[k]` is XORed with `d`.
///
/// For messages of a fixed length a CRC is affine over GF(2):
/// `crc(m ^ d) = crc(m) ^ crc(d) ^ crc(0)`, so the change only depends on
/// the XOR difference, and is the XOR of per-byte contributions. With this
/// 9 KiB table a per-recipient patch costs 9 lookups instead of a CRC pass
/// over 124 bytes (the hot loop of the pipeline). Built once, lazily.
fn delta_table() -> &'static [[u32; 256]; 9] {
    static TABLE: std::sync::OnceLock<Box<[[u32; 256]; 9]>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        let zero = [0u8; offset::CRC];
        let c0 = crc32c::crc32c(&zero);
        let mut t = Box::new([[0u32; 256]; 9]);
        for (k, &pos) in PATCHED.iter().enumerate() {
            let mut m = zero;
            for d in 0..256usize {
                m[pos] = d as u8;
                t[k][d] = crc32c::crc32c(&m) ^ c0;
            }
        }
        t
    })
}

/// The fields in which the packets of one dig differ: recipient, flags,
/// dist2 and, as a consequence, the CRC. A dig's packets are one *template*
/// (any of them) plus one `RecipientPatch` per recipient, which is how the
/// pipeline keeps resolved packets until they are polled (16 bytes per
/// packet instead of 128; see `outbox.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecipientPatch {
    pub recipient: u32,
    pub dist2: u32,
    /// The CRC-32C of the patched packet.
    pub crc: u32,
    pub flags: u8,
}

impl RecipientPatch {
    /// The patch that reproduces `pkt` from any template (reads the four
    /// fields of `pkt` as they are).
    pub fn of(pkt: &[u8; SIZE]) -> RecipientPatch {
        let u32_at = |o: usize| u32::from_le_bytes(pkt[o..o + 4].try_into().expect("4 bytes"));
        RecipientPatch {
            recipient: u32_at(offset::RECIPIENT),
            dist2: u32_at(offset::DIST2),
            crc: u32_at(offset::CRC),
            flags: pkt[offset::FLAGS],
        }
    }

    /// The patch turning `template` (a correctly encoded packet) into the
    /// packet for `recipient` with `flags` and `dist2`, its CRC updated
    /// incrementally (9 table lookups, see `delta_table`) instead of a CRC
    /// pass over 124 bytes: the per-recipient step of the pipeline.
    #[inline]
    pub fn new(template: &[u8; SIZE], recipient: u32, flags: u8, dist2: u32) -> RecipientPatch {
        Patcher::new(template).patch(recipient, flags, dist2)
    }

    /// Writes the patched packet: `template` with this patch's fields.
    #[inline]
    pub fn write(&self, template: &[u8; SIZE], out: &mut [u8; SIZE]) {
        *out = *template;
        self.apply(out);
    }

    /// Overwrites the four patched fields of `pkt` in place.
    #[inline]
    pub fn apply(&self, pkt: &mut [u8; SIZE]) {
        pkt[offset::FLAGS] = self.flags;
        pkt[offset::RECIPIENT..offset::RECIPIENT + 4]
            .copy_from_slice(&self.recipient.to_le_bytes());
        pkt[offset::DIST2..offset::DIST2 + 4].copy_from_slice(&self.dist2.to_le_bytes());
        pkt[offset::CRC..].copy_from_slice(&self.crc.to_le_bytes());
    }
}

/// Computes [`RecipientPatch`]es for many recipients of one template.
///
/// The CRC is affine in the patched bytes, so the template's contribution
/// is folded once into `base` (the CRC the packet would have with those 9
/// bytes zeroed); each recipient then costs 9 table lookups on its own
/// bytes and nothing else.
#[derive(Clone, Copy, Debug)]
pub struct Patcher {
    base: u32,
}

impl Patcher {
    /// `template` must be a correctly encoded packet (valid CRC).
    #[inline]
    pub fn new(template: &[u8; SIZE]) -> Patcher {
        let t = delta_table();
        let mut c = u32::from_le_bytes(template[offset::CRC..].try_into().expect("4 bytes"));
        for (k, &pos) in PATCHED.iter().enumerate() {
            c ^= t[k][template[pos] as usize];
        }
        Patcher { base: c }
    }

    /// The patch for `recipient` with `flags` and `dist2`.
    #[inline]
    pub fn patch(&self, recipient: u32, flags: u8, dist2: u32) -> RecipientPatch {
        let t = delta_table();
        let r = recipient.to_le_bytes();
        let d = dist2.to_le_bytes();
        let c = self.base
            ^ t[0][flags as usize]
            ^ t[1][r[0] as usize]
            ^ t[2][r[1] as usize]
            ^ t[3][r[2] as usize]
            ^ t[4][r[3] as usize]
            ^ t[5][d[0] as usize]
            ^ t[6][d[1] as usize]
            ^ t[7][d[2] as usize]
            ^ t[8][d[3] as usize];
        RecipientPatch {
            recipient,
            dist2,
            crc: c,
            flags,
        }
    }
}

/// Rewrites recipient, flags and dist2 of an already encoded packet (whose
/// CRC is valid) and updates its CRC incrementally (see [`RecipientPatch`]).
/// The result equals a full [`encode`] of the new fields.
#[inline]
pub fn patch_recipient(pkt: &mut [u8; SIZE], recipient: u32, flags: u8, dist2: u32) {
    RecipientPatch::new(pkt, recipient, flags, dist2).apply(pkt);
}

/// Reference version of [`patch_recipient`] that recomputes the CRC over
/// the whole packet (tests, benches).
pub fn patch_recipient_full_crc(pkt: &mut [u8; SIZE], recipient: u32, flags: u8, dist2: u32) {
    pkt[offset::FLAGS] = flags;
    pkt[offset::RECIPIENT..offset::RECIPIENT + 4].copy_from_slice(&recipient.to_le_bytes());
    pkt[offset::DIST2..offset::DIST2 + 4].copy_from_slice(&dist2.to_le_bytes());
    let c = crc(pkt);
    pkt[offset::CRC..].copy_from_slice(&c.to_le_bytes());
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

    fn sample() -> Fields {
        Fields {
            kind: Kind::Found as u8,
            flags: FLAG_DIGGER | FLAG_LAST_CHARGE,
            seq: 0x0102030405060708,
            t_us: 123456,
            site_id: 10,
            finder: 1,
            recipient: 1,
            party: 5,
            x: -1,
            y: 2,
            z: -1048576,
            item: 100,
            quantity: 0xABCD,
            rarity: 3,
            charges_left: 1,
            roll: 0xE220A8397B1DCDAF,
            dist2: u32::MAX,
        }
    }

    /// Hand-assembled bytes of `sample()`; the CRC is filled in by the test
    /// from the independent check-value-tested function.
    fn sample_bytes_without_crc() -> Vec<u8> {
        hex("
            54525352 0100 01 05
            0807060504030201
            40e2010000000000
            0a000000 01000000 01000000 05000000
            ffffffff 02000000 0000f0ff
            64000000 cdab 03 00 01000000
            afcd1d7b39a820e2
            ffffffff
            000000000000000000000000000000000000000000000000
            000000000000000000000000000000000000000000000000
            00000000")
    }

    #[test]
    fn crc32c_check_value() {
        assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
    }

    #[test]
    fn encodes_fixed_bytes() {
        let mut expect = sample_bytes_without_crc();
        assert_eq!(expect.len(), SIZE);
        let c = crc32c::crc32c(&expect[..124]);
        expect[124..].copy_from_slice(&c.to_le_bytes());
        let got = encode_to_array(&sample());
        assert_eq!(&got[..], &expect[..]);
    }

    #[test]
    fn decodes_fixed_bytes() {
        let mut b = sample_bytes_without_crc();
        let c = crc32c::crc32c(&b[..124]);
        b[124..].copy_from_slice(&c.to_le_bytes());
        let p = Packet::new_checked(&b).unwrap();
        assert_eq!(p.fields(), sample());
        assert_eq!(p.kind(), Some(Kind::Found));
        assert!(p.reserved_is_zero());
        assert_eq!(p.crc(), c);
    }

    #[test]
    fn all_zero_fields_packet() {
        // magic, version, then zeros, then the CRC of exactly that.
        let f = Fields {
            kind: Kind::Nothing as u8,
            ..Fields::default()
        };
        let b = encode_to_array(&f);
        assert_eq!(&b[0..8], &[0x54, 0x52, 0x53, 0x52, 1, 0, 3, 0]);
        assert!(b[8..124].iter().all(|&x| x == 0));
        assert_eq!(
            u32::from_le_bytes(b[124..].try_into().unwrap()),
            crc32c::crc32c(&b[..124])
        );
    }

    #[test]
    fn rejects_bad_packets() {
        let good = encode_to_array(&sample());
        assert!(Packet::new_checked(&good).is_ok());
        assert_eq!(
            Packet::new_checked(&good[..127]).unwrap_err(),
            WireError::Length(127)
        );
        let mut long = good.to_vec();
        long.push(0);
        assert_eq!(
            Packet::new_checked(&long).unwrap_err(),
            WireError::Length(129)
        );
        assert_eq!(Packet::new_checked(&[]).unwrap_err(), WireError::Length(0));

        let mut b = good;
        b[0] = b'X';
        assert!(matches!(Packet::new_checked(&b), Err(WireError::Magic(_))));
        let mut b = good;
        b[4] = 2;
        assert_eq!(Packet::new_checked(&b).unwrap_err(), WireError::Version(2));
        for i in [6usize, 8, 32, 75, 100, 123, 124, 127] {
            let mut b = good;
            b[i] ^= 0x10;
            assert!(
                matches!(Packet::new_checked(&b), Err(WireError::Crc { .. })),
                "byte {i}"
            );
        }
    }

    #[test]
    fn patch_equals_full_encode() {
        let mut f = sample();
        let mut b = encode_to_array(&f);
        patch_recipient(&mut b, 77, FLAG_PARTY, 12345);
        f.recipient = 77;
        f.flags = FLAG_PARTY;
        f.dist2 = 12345;
        assert_eq!(b, encode_to_array(&f));
        // Many random successive patches, against a full encode each time.
        let mut full = b;
        let mut x = 1u64;
        for _ in 0..5000 {
            x = crate::roll::splitmix64(x);
            let (r, fl, d) = (
                x as u32,
                (x >> 32) as u8,
                (x >> 40) as u32 ^ (x << 7) as u32,
            );
            patch_recipient(&mut b, r, fl, d);
            patch_recipient_full_crc(&mut full, r, fl, d);
            assert_eq!(b, full);
            f.recipient = r;
            f.flags = fl;
            f.dist2 = d;
            assert_eq!(b, encode_to_array(&f));
            assert!(Packet::new_checked(&b).is_ok());
        }
    }
}
