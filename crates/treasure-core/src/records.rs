//! Zero-copy views over batch input bytes.
//!
//! `dig_batch` and `move_batch` take a Lua string of packed little-endian
//! records. These types are `Unaligned` views over those bytes: parsing is a
//! length check, no copy, no allocation; fields are read with `.get()`.
//! Values are *not* range-checked here (the resolver does, with the exact
//! error messages and check order of the contract).

use crate::contract::{Arg, Error, Method};
use zerocopy::byteorder::little_endian::{I32, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// `{u32 player, i32 x, i32 y, i32 z, u64 t_us}`, 24 bytes.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug)]
#[repr(C)]
pub struct DigRecord {
    pub player: U32,
    pub x: I32,
    pub y: I32,
    pub z: I32,
    pub t_us: U64,
}

/// `{u32 player, i32 x, i32 y, i32 z}`, 16 bytes.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug)]
#[repr(C)]
pub struct MoveRecord {
    pub player: U32,
    pub x: I32,
    pub y: I32,
    pub z: I32,
}

/// Size of a [`DigRecord`].
pub const DIG_RECORD_SIZE: usize = 24;
/// Size of a [`MoveRecord`].
pub const MOVE_RECORD_SIZE: usize = 16;
const _: () = assert!(core::mem::size_of::<DigRecord>() == DIG_RECORD_SIZE);
const _: () = assert!(core::mem::size_of::<MoveRecord>() == MOVE_RECORD_SIZE);

impl DigRecord {
    pub fn new(player: u32, x: i32, y: i32, z: i32, t_us: u64) -> DigRecord {
        DigRecord {
            player: U32::new(player),
            x: I32::new(x),
            y: I32::new(y),
            z: I32::new(z),
            t_us: U64::new(t_us),
        }
    }
}

impl MoveRecord {
    pub fn new(player: u32, x: i32, y: i32, z: i32) -> MoveRecord {
        MoveRecord {
            player: U32::new(player),
            x: I32::new(x),
            y: I32::new(y),
            z: I32::new(z),
        }
    }
}

/// Views `bytes` as dig records (zero-copy).
///
/// # Errors
///
/// `records length must be a multiple of 24` for `dig_batch`.
pub fn dig_records(bytes: &[u8]) -> Result<&[DigRecord], Error> {
    <[DigRecord]>::ref_from_bytes(bytes).map_err(|_| {
        Error::length_not_multiple(
            Method::DigBatch,
            Arg::Plain("records"),
            DIG_RECORD_SIZE,
            bytes.len(),
        )
    })
}

/// Views `bytes` as move records (zero-copy).
///
/// # Errors
///
/// `records length must be a multiple of 16` for `move_batch`.
pub fn move_records(bytes: &[u8]) -> Result<&[MoveRecord], Error> {
    <[MoveRecord]>::ref_from_bytes(bytes).map_err(|_| {
        Error::length_not_multiple(
            Method::MoveBatch,
            Arg::Plain("records"),
            MOVE_RECORD_SIZE,
            bytes.len(),
        )
    })
}

/// Serializes dig records (tests, benches, tools).
pub fn encode_digs(records: &[DigRecord]) -> Vec<u8> {
    records.as_bytes().to_vec()
}

/// Serializes move records (tests, benches, tools).
pub fn encode_moves(records: &[MoveRecord]) -> Vec<u8> {
    records.as_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_dig_records() {
        let mut b = Vec::new();
        b.extend_from_slice(&7u32.to_le_bytes());
        b.extend_from_slice(&(-1i32).to_le_bytes());
        b.extend_from_slice(&2i32.to_le_bytes());
        b.extend_from_slice(&(-1048576i32).to_le_bytes());
        b.extend_from_slice(&(u64::MAX).to_le_bytes());
        b.extend_from_slice(&encode_digs(&[DigRecord::new(8, 1, 2, 3, 4)]));
        let r = dig_records(&b).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(
            (
                r[0].player.get(),
                r[0].x.get(),
                r[0].y.get(),
                r[0].z.get(),
                r[0].t_us.get()
            ),
            (7, -1, 2, -1048576, u64::MAX)
        );
        assert_eq!(r[1].t_us.get(), 4);
        assert!(dig_records(&[]).unwrap().is_empty());
        // Unaligned input works (a Lua string has no alignment guarantee we rely on).
        let mut shifted = vec![0u8];
        shifted.extend_from_slice(&b);
        assert_eq!(dig_records(&shifted[1..]).unwrap()[1].player.get(), 8);
    }

    #[test]
    fn parses_move_records() {
        let b = encode_moves(&[MoveRecord::new(1, 2, 3, 4), MoveRecord::new(5, -6, 7, -8)]);
        assert_eq!(b.len(), 32);
        let r = move_records(&b).unwrap();
        assert_eq!((r[1].player.get(), r[1].x.get(), r[1].z.get()), (5, -6, -8));
    }

    #[test]
    fn bad_lengths() {
        assert_eq!(
            dig_records(&[0; 25]).unwrap_err().to_string(),
            "treasure: dig_batch: records length must be a multiple of 24, got 25"
        );
        assert_eq!(
            dig_records(&[0; 16]).unwrap_err().to_string(),
            "treasure: dig_batch: records length must be a multiple of 24, got 16"
        );
        assert_eq!(
            move_records(&[0; 17]).unwrap_err().to_string(),
            "treasure: move_batch: records length must be a multiple of 16, got 17"
        );
        assert!(move_records(&[0; 48]).is_ok());
    }
}
