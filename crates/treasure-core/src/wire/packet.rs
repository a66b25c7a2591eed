//! The zero-copy packet view ([`Packet`], obtained only through the checked
//! constructor [`Packet::new_checked`]) and encoding ([`encode`]).

use zerocopy::byteorder::little_endian::{I32, U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use super::field;
use super::values::{Kind, MAGIC, SIZE, VERSION};

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
// The struct is the layout of `field`: every field starts where `field`
// says (they are consecutive, alignment 1, so that fixes every range).
const _: () = assert!(core::mem::size_of::<Packet>() == field::CRC.end);
const _: () = assert!(core::mem::offset_of!(Packet, magic) == field::MAGIC.start);
const _: () = assert!(core::mem::offset_of!(Packet, version) == field::VERSION.start);
const _: () = assert!(core::mem::offset_of!(Packet, kind) == field::KIND);
const _: () = assert!(core::mem::offset_of!(Packet, flags) == field::FLAGS);
const _: () = assert!(core::mem::offset_of!(Packet, seq) == field::SEQ.start);
const _: () = assert!(core::mem::offset_of!(Packet, t_us) == field::T_US.start);
const _: () = assert!(core::mem::offset_of!(Packet, site_id) == field::SITE_ID.start);
const _: () = assert!(core::mem::offset_of!(Packet, finder) == field::FINDER.start);
const _: () = assert!(core::mem::offset_of!(Packet, recipient) == field::RECIPIENT.start);
const _: () = assert!(core::mem::offset_of!(Packet, party) == field::PARTY.start);
const _: () = assert!(core::mem::offset_of!(Packet, x) == field::X.start);
const _: () = assert!(core::mem::offset_of!(Packet, y) == field::Y.start);
const _: () = assert!(core::mem::offset_of!(Packet, z) == field::Z.start);
const _: () = assert!(core::mem::offset_of!(Packet, item) == field::ITEM.start);
const _: () = assert!(core::mem::offset_of!(Packet, quantity) == field::QUANTITY.start);
const _: () = assert!(core::mem::offset_of!(Packet, rarity) == field::RARITY);
const _: () = assert!(core::mem::offset_of!(Packet, pad) == field::PAD);
const _: () = assert!(core::mem::offset_of!(Packet, charges_left) == field::CHARGES_LEFT.start);
const _: () = assert!(core::mem::offset_of!(Packet, roll) == field::ROLL.start);
const _: () = assert!(core::mem::offset_of!(Packet, dist2) == field::DIST2.start);
const _: () = assert!(core::mem::offset_of!(Packet, reserved) == field::RESERVED.start);
const _: () = assert!(core::mem::offset_of!(Packet, crc) == field::CRC.start);

/// CRC-32C (Castagnoli) of bytes 0..124 ([`field::CHECKED`]) (hardware instruction where available).
#[inline]
pub fn crc(bytes: &[u8; SIZE]) -> u32 {
    crc32c::crc32c(&bytes[field::CHECKED])
}

impl Packet {
    /// The one constructor: validates length, magic, version and CRC, so
    /// every accessor of the returned view is infallible. Reserved bytes are
    /// not checked (they are covered by the CRC anyway).
    ///
    /// # Errors
    ///
    /// The first of [`WireError::Length`], [`WireError::Magic`],
    /// [`WireError::Version`], [`WireError::Crc`] that applies.
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
    out[field::CRC].copy_from_slice(&c.to_le_bytes());
}

/// Encodes `f` and returns the bytes.
pub fn encode_to_array(f: &Fields) -> [u8; SIZE] {
    let mut out = [0u8; SIZE];
    encode(f, &mut out);
    out
}
