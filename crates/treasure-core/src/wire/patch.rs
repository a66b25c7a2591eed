//! CRC patching: the packets of one dig differ only in recipient, flags and
//! dist2, so the pipeline encodes one template per dig and derives each
//! recipient's packet, CRC included, by table lookups ([`Patcher`]).

use super::field;
use super::packet::crc;
use super::values::SIZE;

/// Byte positions rewritten by [`patch_recipient`]: flags, recipient, dist2.
const PATCHED: [usize; 9] = [
    field::FLAGS,
    field::RECIPIENT.start,
    field::RECIPIENT.start + 1,
    field::RECIPIENT.start + 2,
    field::RECIPIENT.start + 3,
    field::DIST2.start,
    field::DIST2.start + 1,
    field::DIST2.start + 2,
    field::DIST2.start + 3,
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
        let zero = [0u8; field::CHECKED.end];
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
        let u32_at = |f: field::Field| u32::from_le_bytes(pkt[f].try_into().expect("4 bytes"));
        RecipientPatch {
            recipient: u32_at(field::RECIPIENT),
            dist2: u32_at(field::DIST2),
            crc: u32_at(field::CRC),
            flags: pkt[field::FLAGS],
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
        pkt[field::FLAGS] = self.flags;
        pkt[field::RECIPIENT].copy_from_slice(&self.recipient.to_le_bytes());
        pkt[field::DIST2].copy_from_slice(&self.dist2.to_le_bytes());
        pkt[field::CRC].copy_from_slice(&self.crc.to_le_bytes());
    }
}

/// Computes [`RecipientPatch`]es for many recipients of one template.
///
/// The CRC is affine in the patched bytes, so the template's contribution
/// is folded once into `base` (the CRC the packet would have with those 9
/// bytes zeroed); each recipient then costs 9 table lookups on its own
/// bytes and nothing else.
#[derive(Clone, Copy)]
pub struct Patcher {
    base: u32,
    /// Held so that a recipient's patch skips the table's `OnceLock` check.
    table: &'static [[u32; 256]; 9],
}

impl std::fmt::Debug for Patcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Patcher").field("base", &self.base).finish()
    }
}

impl Patcher {
    /// `template` must be a correctly encoded packet (valid CRC).
    #[inline]
    pub fn new(template: &[u8; SIZE]) -> Patcher {
        let t = delta_table();
        let mut c = u32::from_le_bytes(template[field::CRC].try_into().expect("4 bytes"));
        for (k, &pos) in PATCHED.iter().enumerate() {
            c ^= t[k][template[pos] as usize];
        }
        Patcher { base: c, table: t }
    }

    /// The patch for `recipient` with `flags` and `dist2`.
    #[inline]
    pub fn patch(&self, recipient: u32, flags: u8, dist2: u32) -> RecipientPatch {
        let t = self.table;
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
/// The result equals a full [`encode`](super::encode) of the new fields.
#[inline]
pub fn patch_recipient(pkt: &mut [u8; SIZE], recipient: u32, flags: u8, dist2: u32) {
    RecipientPatch::new(pkt, recipient, flags, dist2).apply(pkt);
}

/// Reference version of [`patch_recipient`] that recomputes the CRC over
/// the whole packet (tests, benches).
pub fn patch_recipient_full_crc(pkt: &mut [u8; SIZE], recipient: u32, flags: u8, dist2: u32) {
    pkt[field::FLAGS] = flags;
    pkt[field::RECIPIENT].copy_from_slice(&recipient.to_le_bytes());
    pkt[field::DIST2].copy_from_slice(&dist2.to_le_bytes());
    let c = crc(pkt);
    pkt[field::CRC].copy_from_slice(&c.to_le_bytes());
}
