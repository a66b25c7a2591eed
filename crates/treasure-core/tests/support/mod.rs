//! The small world several integration tests share (`mod support;`): one
//! site at the origin that never runs out, a one-entry loot table, and
//! players standing in rows around it, all within reach.

// Each test file uses its own subset.
#![allow(dead_code)]

use treasure_core::records::encode_digs;
use treasure_core::{DigRecord, LootEntry, Options, Resolver};

/// Loot table `id`: one item, quantity `min..=max`.
pub fn add_one_item_table(r: &mut Resolver, id: u32, min: u16, max: u16) {
    r.add_loot_table(
        id,
        &[LootEntry {
            item: 1,
            weight: 1,
            min,
            max,
            rarity: 0,
        }],
    )
    .unwrap();
}

/// A resolver with `options`, site 1 at the origin (table 1, quantity
/// 1..=3, `u32::MAX` charges) and players `1..=players` at
/// `x = p % row - row / 2`, `z = p / row`, in party `p % parties`.
pub fn one_site_world(options: Options, players: u32, row: u32, parties: u32) -> Resolver {
    let mut r = Resolver::new(options).unwrap();
    add_one_item_table(&mut r, 1, 1, 3);
    r.add_site(1, 0, 0, 0, 1, u32::MAX).unwrap();
    let half = (row / 2) as i32;
    for p in 1..=players {
        r.join(p, (p % row) as i32 - half, 0, (p / row) as i32, p % parties)
            .unwrap();
    }
    r
}

/// `n` digs at the origin by players `1..=players` in turn, `t_us` = index.
pub fn digs_at_origin(n: usize, players: u32) -> Vec<u8> {
    let recs: Vec<DigRecord> = (0..n)
        .map(|i| DigRecord::new(1 + (i % players as usize) as u32, 0, 0, 0, i as u64))
        .collect();
    encode_digs(&recs)
}
