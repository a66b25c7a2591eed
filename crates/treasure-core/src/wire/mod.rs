//! The 128-byte packet: layout, checked decoding, encoding, CRC patching.
//!
//! Like smoltcp's `wire` module, this module is the only place that knows
//! the byte layout ([`field`] holds it as named byte ranges). Everything is little-endian, fixed offsets, no padding:
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

pub mod field;
mod packet;
mod patch;
mod values;

pub use packet::{crc, encode, encode_to_array, Fields, Packet, WireError};
pub use patch::{patch_recipient, patch_recipient_full_crc, Patcher, RecipientPatch};
pub use values::{Kind, FLAG_DIGGER, FLAG_LAST_CHARGE, FLAG_PARTY, MAGIC, SIZE, VERSION};

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
