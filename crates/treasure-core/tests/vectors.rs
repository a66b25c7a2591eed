//! Golden vectors shared with the Lua reference (`tests/vectors/*.txt` at the
//! repository root). Fails loudly when a file is missing or has no vectors.

use std::collections::HashMap;
use treasure_core::roll::{quantity, roll, splitmix64};
use treasure_core::wire::{encode_to_array, Fields, Packet};
use treasure_core::{LootEntry, LootTable};

const PACKETS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/vectors/packets.txt"
);
const ROLLS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/vectors/rolls.txt");

/// Blocks of `key=value` lines separated by blank lines; `#` comments.
fn blocks(path: &str) -> Vec<HashMap<String, String>> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("golden vector file {path} is required: {e}"));
    let mut out = Vec::new();
    let mut cur = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        if line.is_empty() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            continue;
        }
        let (k, v) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("{path}:{}: not key=value: {line}", n + 1));
        assert!(
            cur.insert(k.trim().to_string(), v.trim().to_string())
                .is_none(),
            "{path}:{}: duplicate key {k}",
            n + 1
        );
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    assert!(!out.is_empty(), "{path} holds no vectors");
    out
}

fn get<T: std::str::FromStr>(b: &HashMap<String, String>, k: &str) -> T
where
    T::Err: std::fmt::Debug,
{
    let name = b.get("name").map_or("?", String::as_str);
    b.get(k)
        .unwrap_or_else(|| panic!("vector {name}: missing key {k}"))
        .parse()
        .unwrap_or_else(|e| panic!("vector {name}: bad {k}: {e:?}"))
}

fn unhex(s: &str) -> Vec<u8> {
    assert!(
        s.len().is_multiple_of(2)
            && s.bytes()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
    );
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn packet_vectors_decode_and_reencode() {
    let vs = blocks(PACKETS);
    for b in &vs {
        let name: String = get(b, "name");
        let hex: String = get(b, "hex");
        assert_eq!(hex.len(), 256, "{name}: hex must be 256 chars");
        let bytes = unhex(&hex);
        let p = Packet::new_checked(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(p.reserved_is_zero(), "{name}: reserved bytes");
        let want = Fields {
            kind: get(b, "kind"),
            flags: get(b, "flags"),
            seq: get(b, "seq"),
            t_us: get(b, "t_us"),
            site_id: get(b, "site_id"),
            finder: get(b, "finder"),
            recipient: get(b, "recipient"),
            party: get(b, "party"),
            x: get(b, "x"),
            y: get(b, "y"),
            z: get(b, "z"),
            item: get(b, "item"),
            quantity: get(b, "quantity"),
            rarity: get(b, "rarity"),
            charges_left: get(b, "charges_left"),
            roll: get(b, "roll"),
            dist2: get(b, "dist2"),
        };
        assert_eq!(p.fields(), want, "{name}: decoded fields");
        assert_eq!(
            &encode_to_array(&want)[..],
            &bytes[..],
            "{name}: re-encoded bytes"
        );
    }
    eprintln!("{} packet vectors ok", vs.len());
}

#[test]
fn roll_vectors() {
    let vs = blocks(ROLLS);
    for b in &vs {
        let name: String = get(b, "name");
        let seed: u64 = get(b, "seed");
        let site: u32 = get(b, "site_id");
        let before: u32 = get(b, "before");
        let r = roll(seed, site, before);
        assert_eq!(r, get::<u64>(b, "roll"), "{name}: roll");
        assert_eq!(r, splitmix64(seed ^ ((site as u64) << 32) ^ before as u64));
        let weights: String = get(b, "weights");
        let (min, max): (u16, u16) = (get(b, "min"), get(b, "max"));
        let entries: Vec<LootEntry> = weights
            .split(',')
            .enumerate()
            .map(|(i, w)| LootEntry {
                item: i as u32 + 1,
                weight: w
                    .trim()
                    .parse()
                    .unwrap_or_else(|e| panic!("{name}: weight {w}: {e}")),
                min,
                max,
                rarity: 0,
            })
            .collect();
        let t = LootTable::new(&entries);
        assert_eq!(t.pick(r) + 1, get::<usize>(b, "entry"), "{name}: entry");
        let (e, q) = t.resolve(r);
        assert_eq!(e.item as usize, t.pick(r) + 1);
        assert_eq!(q, get::<u16>(b, "quantity"), "{name}: quantity");
        assert_eq!(quantity(min, max, r), q);
    }
    eprintln!("{} roll vectors ok", vs.len());
}
