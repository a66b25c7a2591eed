//! Inclusive ranges and sizes of the contract (`docs/API.md`, "Numbers").
//!
//! Every bound is written here once; the ranges below are built from them
//! and are what the checks and the binding use.

/// Smallest block coordinate (-2^20: a coordinate packs into 21 bits).
pub const COORD_MIN: i32 = -1_048_576;
/// Largest block coordinate (2^20 - 1).
pub const COORD_MAX: i32 = 1_048_575;
/// 2^53 - 1, the largest integer a Lua number holds exactly: the largest
/// `t_us`, `seed`, `max_pending_packets`, `max`, seq, and the value the
/// `packets` and `busy` counters saturate at.
pub const MAX_SAFE: u64 = 9_007_199_254_740_991;
/// 2^53: the largest `next_seq` (of a resolver whose last dig took seq
/// 2^53-1; it refuses every further dig).
pub const NEXT_SEQ_MAX: u64 = MAX_SAFE + 1;
/// Largest `aoi_radius` and `reach` (2^20).
pub const RADIUS_MAX: u32 = 1_048_576;
/// Largest `workers`.
pub const WORKERS_MAX: u32 = 256;
/// Largest sum of a loot table's weights (the roll is a `u32`).
pub const TOTAL_WEIGHT_MAX: u64 = u32::MAX as u64;
/// Largest `opts.shard` (a shard id is a `u16`; `shards` must exceed it).
pub const SHARD_MAX: u16 = u16::MAX - 1;
/// Largest `opts.shards`.
pub const SHARDS_MAX: u16 = u16::MAX;
/// A cluster record is cut before an entry that would make it longer than
/// this many bytes (a single entry may make a record longer).
pub const RECORD_SPLIT_BYTES: usize = 65_536;
/// The snapshot format version this crate writes and reads.
pub const SNAPSHOT_VERSION: u32 = 1;

/// An inclusive integer range of the contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Range {
    pub lo: i64,
    pub hi: i64,
}

impl Range {
    pub const fn new(lo: i64, hi: i64) -> Range {
        Range { lo, hi }
    }

    /// True when `v` lies in the range.
    pub fn contains(self, v: i128) -> bool {
        self.lo as i128 <= v && v <= self.hi as i128
    }

    /// True when `n` is an exact integer in the range (a Lua number: not
    /// NaN, not infinite, no fraction). The bounds are exact in a double.
    pub fn contains_f64(self, n: f64) -> bool {
        n.fract() == 0.0 && n >= self.lo as f64 && n <= self.hi as f64
    }
}

const U32_MAX: i64 = u32::MAX as i64;
const SAFE: i64 = MAX_SAFE as i64;

/// A block coordinate `x`, `y`, `z`.
pub const COORD: Range = Range::new(COORD_MIN as i64, COORD_MAX as i64);
/// A player, site, loot table or item id.
pub const ID: Range = Range::new(1, U32_MAX);
/// A party (0 = none).
pub const PARTY: Range = Range::new(0, U32_MAX);
/// A site's charges.
pub const CHARGES: Range = Range::new(0, U32_MAX);
/// A dig's `t_us`.
pub const T_US: Range = Range::new(0, SAFE);
/// A count: `max`, `timeout_us`, a counter.
pub const COUNT: Range = Range::new(0, SAFE);
/// `opts.seed`.
pub const SEED: Range = Range::new(0, SAFE);
/// `opts.aoi_radius` and `opts.reach`.
pub const RADIUS: Range = Range::new(0, RADIUS_MAX as i64);
/// `opts.workers` (0 = one per core).
pub const WORKERS: Range = Range::new(0, WORKERS_MAX as i64);
/// `opts.max_pending_packets`.
pub const MAX_PENDING: Range = Range::new(1, SAFE);
/// A loot entry's `weight`.
pub const WEIGHT: Range = Range::new(1, U32_MAX);
/// A loot entry's `min` and `max` quantity.
pub const QUANTITY: Range = Range::new(0, u16::MAX as i64);
/// A loot entry's `rarity`.
pub const RARITY: Range = Range::new(0, u8::MAX as i64);
/// A snapshot's `next_seq`.
pub const NEXT_SEQ: Range = Range::new(1, NEXT_SEQ_MAX as i64);

/// `opts.shard` (cluster mode).
pub const SHARD: Range = Range::new(0, SHARD_MAX as i64);
/// `opts.shards` (cluster mode).
pub const SHARDS: Range = Range::new(1, SHARDS_MAX as i64);
/// `apply_records`' `log_position`, and the cluster counters of a snapshot.
pub const LOG_POSITION: Range = Range::new(0, SAFE);
/// A seq in a snapshot's cluster `applied` and `sent` lists (only those
/// above 0 are listed).
pub const CLUSTER_SEQ: Range = Range::new(1, SAFE);
/// A snapshot's `cluster.next_host_seq`.
pub const NEXT_HOST_SEQ: Range = Range::new(1, NEXT_SEQ_MAX as i64);

/// The range of a host shard (or a source, destination) of a cluster of
/// `shards` shards: `[0, shards - 1]`.
pub const fn shard_of(shards: u16) -> Range {
    Range::new(0, shards as i64 - 1)
}

/// The keys of `opts` after the five above, in check order (cluster mode).
pub const CLUSTER_OPTION_FIELDS: [(&str, Range); 2] = [("shard", SHARD), ("shards", SHARDS)];

/// The cluster counters of `stats()` a snapshot carries
/// (`snapshot.cluster.counters`), in snapshot order.
pub const CLUSTER_COUNTER_NAMES: [&str; 4] = [
    "applied_digs",
    "duplicate_digs",
    "records_out",
    "records_in",
];

/// The keys of `opts` (of `new`, and of a snapshot), in check order.
pub const OPTION_FIELDS: [(&str, Range); 5] = [
    ("seed", SEED),
    ("aoi_radius", RADIUS),
    ("reach", RADIUS),
    ("workers", WORKERS),
    ("max_pending_packets", MAX_PENDING),
];

/// The fields of a loot entry, in check order.
pub const LOOT_ENTRY_FIELDS: [(&str, Range); 5] = [
    ("item", ID),
    ("weight", WEIGHT),
    ("min", QUANTITY),
    ("max", QUANTITY),
    ("rarity", RARITY),
];

/// The counters of `stats()` a snapshot carries, in snapshot order.
pub const COUNTER_NAMES: [&str; 7] = [
    "digs", "packets", "found", "empty", "nothing", "rejected", "busy",
];

/// Upper bounds (µs) of the cumulative resolve latency buckets of `stats()`;
/// fixed so histograms of many processes can be added up (docs/API.md).
pub const RESOLVE_BUCKETS_US: [u64; 12] = [
    50, 100, 250, 500, 1000, 2500, 5000, 10000, 20000, 50000, 100000, 250000,
];

/// The `stats()` key of each bucket of [`RESOLVE_BUCKETS_US`], same order
/// (`resolve_bucket_le_<bound>_us`).
pub const RESOLVE_BUCKET_KEYS: [&str; 12] = [
    "resolve_bucket_le_50_us",
    "resolve_bucket_le_100_us",
    "resolve_bucket_le_250_us",
    "resolve_bucket_le_500_us",
    "resolve_bucket_le_1000_us",
    "resolve_bucket_le_2500_us",
    "resolve_bucket_le_5000_us",
    "resolve_bucket_le_10000_us",
    "resolve_bucket_le_20000_us",
    "resolve_bucket_le_50000_us",
    "resolve_bucket_le_100000_us",
    "resolve_bucket_le_250000_us",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_keys_name_their_bounds() {
        for (key, bound) in RESOLVE_BUCKET_KEYS.iter().zip(RESOLVE_BUCKETS_US) {
            assert_eq!(*key, format!("resolve_bucket_le_{bound}_us"));
        }
        assert!(RESOLVE_BUCKETS_US.windows(2).all(|w| w[0] < w[1]));
    }
}
