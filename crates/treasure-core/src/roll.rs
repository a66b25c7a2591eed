//! The loot roll: splitmix64 and the weighted pick.
//!
//! `roll = splitmix64(seed ^ (site_id << 32) ^ before)` where `before` is the
//! site's charge count before the dig. The item is the first entry, in table
//! order, whose running weight sum exceeds `roll % total_weight`; the
//! quantity is `min + ((roll >> 40) % (max - min + 1))`. All arithmetic is
//! wrapping 64-bit, exactly what the LuaJIT reference does with `uint64_t`
//! cdata, so both sides agree bit for bit.

/// One splitmix64 step on state `x` (the state is *not* advanced for the
/// caller: this is a pure mixing function of `x`).
#[inline]
pub const fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The roll of a FOUND dig.
#[inline]
pub const fn roll(seed: u64, site_id: u32, before: u32) -> u64 {
    splitmix64(seed ^ ((site_id as u64) << 32) ^ (before as u64))
}

/// One entry of a loot table (already validated: `item >= 1`, `weight >= 1`,
/// `min <= max`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LootEntry {
    pub item: u32,
    pub weight: u32,
    pub min: u16,
    pub max: u16,
    pub rarity: u8,
}

/// A loot table with prefix sums of the weights, so a pick is a binary
/// search (O(log n)) instead of a linear scan.
#[derive(Clone, Debug)]
pub struct LootTable {
    entries: Box<[LootEntry]>,
    /// `prefix[i]` = weight of entries `0..=i`. The total is at most
    /// `u32::MAX` (validated by the resolver), so `u32` is enough.
    prefix: Box<[u32]>,
}

impl LootTable {
    /// Builds the table. The caller (the resolver) has validated the entries
    /// ([`contract::checks::check_loot_entries`](crate::contract::checks::check_loot_entries));
    /// this only asserts the invariants it relies on.
    ///
    /// # Panics
    ///
    /// If `entries` is empty, an entry has weight 0 or `min > max`, or the
    /// total weight exceeds 2^32-1.
    pub fn new(entries: &[LootEntry]) -> LootTable {
        assert!(!entries.is_empty(), "loot table must not be empty");
        let mut sum: u64 = 0;
        let prefix = entries
            .iter()
            .map(|e| {
                assert!(e.weight >= 1 && e.min <= e.max);
                sum += e.weight as u64;
                u32::try_from(sum).expect("total weight fits in u32")
            })
            .collect();
        LootTable {
            entries: entries.into(),
            prefix,
        }
    }

    pub fn entries(&self) -> &[LootEntry] {
        &self.entries
    }

    pub fn total_weight(&self) -> u64 {
        *self.prefix.last().expect("non-empty") as u64
    }

    /// 0-based index of the entry picked by `roll`.
    #[inline]
    pub fn pick(&self, roll: u64) -> usize {
        let pick = roll % self.total_weight();
        // first i with prefix[i] > pick; exists because prefix[last] = total > pick.
        self.prefix.partition_point(|&s| (s as u64) <= pick)
    }

    /// The picked entry and its quantity.
    #[inline]
    pub fn resolve(&self, roll: u64) -> (&LootEntry, u16) {
        let e = &self.entries[self.pick(roll)];
        (e, quantity(e.min, e.max, roll))
    }
}

/// `min + ((roll >> 40) % (max - min + 1))`; `min <= max` is required.
#[inline]
pub const fn quantity(min: u16, max: u16, roll: u64) -> u16 {
    let span = (max as u64) - (min as u64) + 1;
    (min as u64 + ((roll >> 40) % span)) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix64_known_values() {
        assert_eq!(splitmix64(0), 0xE220_A839_7B1D_CDAF);
        // The sequence of the reference splitmix64 generator seeded with 0
        // (state advances by the golden gamma): outputs 1 and 2.
        assert_eq!(splitmix64(0x9E37_79B9_7F4A_7C15), 0x6E78_9E6A_A1B9_65F4);
        assert_eq!(
            splitmix64(0x9E37_79B9_7F4A_7C15u64.wrapping_mul(2)),
            0x06C4_5D18_8009_454F
        );
        assert_eq!(roll(0, 0, 0), splitmix64(0));
        assert_eq!(roll(7, 10, 2), splitmix64(7 ^ (10u64 << 32) ^ 2));
    }

    fn table(weights: &[u32]) -> LootTable {
        let entries: Vec<LootEntry> = weights
            .iter()
            .enumerate()
            .map(|(i, &w)| LootEntry {
                item: i as u32 + 1,
                weight: w,
                min: 0,
                max: 0,
                rarity: 0,
            })
            .collect();
        LootTable::new(&entries)
    }

    fn linear_pick(weights: &[u32], roll: u64) -> usize {
        let total: u64 = weights.iter().map(|&w| w as u64).sum();
        let pick = roll % total;
        let mut run = 0u64;
        for (i, &w) in weights.iter().enumerate() {
            run += w as u64;
            if run > pick {
                return i;
            }
        }
        unreachable!()
    }

    #[test]
    fn pick_matches_linear_scan() {
        let t = table(&[3, 1]);
        assert_eq!(t.total_weight(), 4);
        assert_eq!(t.pick(0), 0);
        assert_eq!(t.pick(2), 0);
        assert_eq!(t.pick(3), 1);
        assert_eq!(t.pick(4), 0);
        assert_eq!(t.pick(7), 1);
        let weights = [5, 1, 1, 10, 2, 7, 1, 1, 1, 30];
        let t = table(&weights);
        for r in 0..10_000u64 {
            let roll = splitmix64(r);
            assert_eq!(t.pick(roll), linear_pick(&weights, roll));
        }
        let big = table(&[u32::MAX - 1, 1]);
        assert_eq!(big.pick(u32::MAX as u64 - 2), 0);
        assert_eq!(big.pick(u32::MAX as u64 - 1), 1);
    }

    #[test]
    fn quantity_formula() {
        assert_eq!(quantity(1, 1, u64::MAX), 1);
        assert_eq!(
            quantity(0, 65535, u64::MAX),
            ((u64::MAX >> 40) % 65536) as u16
        );
        assert_eq!(quantity(1, 5, 7u64 << 40), 1 + (7 % 5));
        assert_eq!(quantity(10, 20, 0), 10);
        assert_eq!(quantity(0, 65535, 0xFFFF_u64 << 40), 65535);
        let r = splitmix64(123);
        assert_eq!(quantity(3, 9, r) as u64, 3 + ((r >> 40) % 7));
    }
}
