//! What the packet's bytes may hold: its size, magic, version, flag bits
//! and kinds.

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
