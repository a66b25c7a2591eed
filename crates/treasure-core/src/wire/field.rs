//! The packet layout as named byte ranges (smoltcp's `field` style): the
//! one place that says where each field lives. [`Packet`](super::Packet)'s
//! zerocopy struct is checked against these at compile time.

use core::ops::Range;

/// A field's bytes within the packet.
pub type Field = Range<usize>;

pub const MAGIC: Field = 0..4;
pub const VERSION: Field = 4..6;
pub const KIND: usize = 6;
pub const FLAGS: usize = 7;
pub const SEQ: Field = 8..16;
pub const T_US: Field = 16..24;
pub const SITE_ID: Field = 24..28;
pub const FINDER: Field = 28..32;
pub const RECIPIENT: Field = 32..36;
pub const PARTY: Field = 36..40;
pub const X: Field = 40..44;
pub const Y: Field = 44..48;
pub const Z: Field = 48..52;
pub const ITEM: Field = 52..56;
pub const QUANTITY: Field = 56..58;
pub const RARITY: usize = 58;
/// Always 0.
pub const PAD: usize = 59;
pub const CHARGES_LEFT: Field = 60..64;
pub const ROLL: Field = 64..72;
pub const DIST2: Field = 72..76;
/// Always 0.
pub const RESERVED: Field = 76..124;
/// CRC-32C of the bytes before it.
pub const CRC: Field = 124..128;
/// The bytes the CRC covers.
pub const CHECKED: Field = 0..CRC.start;
