//! Packet decoding: `Packet::new_checked` on arbitrary bytes never panics and
//! accepts exactly the 128-byte slices with the right magic, version and
//! CRC-32C; an accepted packet re-encodes to the same bytes (when its pad and
//! reserved bytes are zero, which `encode` writes), and `patch_recipient`
//! (the incremental CRC update of the pipeline) equals a full re-encode.
//!
//! Input: byte 0 picks the mode.
//! * even: the rest is decoded as is (mostly rejected: length, magic,
//!   version or CRC), and the verdict is compared with an independent check
//!   written here (bitwise CRC-32C, not the crc32c crate).
//! * odd: the rest is padded/cut to 128 bytes, given the magic, version and
//!   a correct CRC (so the accepting path and every field value are
//!   exercised), decoded, and the last 9 input bytes drive a recipient patch.
#![no_main]

use libfuzzer_sys::fuzz_target;
use treasure_core::wire::{self, encode_to_array, patch_recipient, Packet, WireError};

/// Bitwise CRC-32C (Castagnoli, reflected, poly 0x82F63B78): independent of
/// the table/hardware implementation the core uses.
fn crc32c_bitwise(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in data {
        c ^= b as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0x82F6_3B78
            } else {
                c >> 1
            };
        }
    }
    !c
}

fn expected_verdict(b: &[u8]) -> Result<(), WireError> {
    if b.len() != 128 {
        return Err(WireError::Length(b.len()));
    }
    let magic: [u8; 4] = b[0..4].try_into().unwrap();
    if magic != *b"TRSR" {
        return Err(WireError::Magic(magic));
    }
    let version = u16::from_le_bytes([b[4], b[5]]);
    if version != 1 {
        return Err(WireError::Version(version));
    }
    let stored = u32::from_le_bytes(b[124..128].try_into().unwrap());
    let computed = crc32c_bitwise(&b[..124]);
    if stored != computed {
        return Err(WireError::Crc { stored, computed });
    }
    Ok(())
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}
fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

/// Every accessor against the raw little-endian bytes at the PACKET.md offsets.
fn check_fields(b: &[u8], p: &Packet) {
    let f = p.fields();
    assert_eq!(f.kind, b[6]);
    assert_eq!(f.flags, b[7]);
    assert_eq!(f.seq, le64(b, 8));
    assert_eq!(f.t_us, le64(b, 16));
    assert_eq!(f.site_id, le32(b, 24));
    assert_eq!(f.finder, le32(b, 28));
    assert_eq!(f.recipient, le32(b, 32));
    assert_eq!(f.party, le32(b, 36));
    assert_eq!(f.x, le32(b, 40) as i32);
    assert_eq!(f.y, le32(b, 44) as i32);
    assert_eq!(f.z, le32(b, 48) as i32);
    assert_eq!(f.item, le32(b, 52));
    assert_eq!(f.quantity, u16::from_le_bytes([b[56], b[57]]));
    assert_eq!(f.rarity, b[58]);
    assert_eq!(f.charges_left, le32(b, 60));
    assert_eq!(f.roll, le64(b, 64));
    assert_eq!(f.dist2, le32(b, 72));
    assert_eq!(p.crc(), le32(b, 124));
    assert_eq!(
        p.kind().map(|k| k as u8),
        (1..=4).contains(&b[6]).then_some(b[6])
    );
    let zero = b[59] == 0 && b[76..124].iter().all(|&x| x == 0);
    assert_eq!(p.reserved_is_zero(), zero);
    // encode writes zero pad/reserved bytes: the round trip is exact then.
    let re = encode_to_array(&f);
    if zero {
        assert_eq!(&re[..], b, "encode(decode(b)) != b");
    } else {
        assert_eq!(&re[..59], &b[..59]);
        assert_eq!(&re[60..76], &b[60..76]);
    }
    assert!(Packet::new_checked(&re).is_ok());
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        assert_eq!(Packet::new_checked(data).unwrap_err(), WireError::Length(0));
        return;
    };
    if mode & 1 == 0 {
        let got = Packet::new_checked(rest).map(|_| ());
        assert_eq!(got, expected_verdict(rest));
        if let Ok(p) = Packet::new_checked(rest) {
            check_fields(rest, p);
        }
        return;
    }
    // Make a valid packet out of the input.
    let mut b = [0u8; 128];
    let n = rest.len().min(128);
    b[..n].copy_from_slice(&rest[..n]);
    b[0..4].copy_from_slice(&wire::MAGIC);
    b[4..6].copy_from_slice(&wire::VERSION.to_le_bytes());
    if mode & 2 != 0 {
        // mostly-zero reserved area, so the exact round trip is common
        b[59] = 0;
        b[76..124].fill(0);
    }
    let c = crc32c_bitwise(&b[..124]);
    b[124..].copy_from_slice(&c.to_le_bytes());
    let p = Packet::new_checked(&b).expect("a packet with magic, version and CRC set must decode");
    check_fields(&b, p);
    // Any single flipped bit in 0..128 must be caught (CRC-32C detects all
    // 1-bit errors; a flip in magic/version is caught before the CRC).
    let bit = if rest.len() > 128 {
        rest[128] as usize
    } else {
        mode as usize >> 1
    };
    let mut flipped = b;
    flipped[bit % 128] ^= 1 << (bit % 8);
    assert!(
        Packet::new_checked(&flipped).is_err(),
        "1-bit flip at byte {} accepted",
        bit % 128
    );
    // Incremental CRC patch == full encode with the new recipient fields.
    if rest.len() >= 9 {
        let t = &rest[rest.len() - 9..];
        let recipient = u32::from_le_bytes(t[0..4].try_into().unwrap());
        let flags = t[4];
        let dist2 = u32::from_le_bytes(t[5..9].try_into().unwrap());
        let mut patched = b;
        patch_recipient(&mut patched, recipient, flags, dist2);
        let mut full = b;
        full[7] = flags;
        full[32..36].copy_from_slice(&recipient.to_le_bytes());
        full[72..76].copy_from_slice(&dist2.to_le_bytes());
        let c = crc32c_bitwise(&full[..124]);
        full[124..].copy_from_slice(&c.to_le_bytes());
        assert_eq!(
            patched, full,
            "patch_recipient differs from a full re-encode"
        );
        assert!(Packet::new_checked(&patched).is_ok());
    }
});
