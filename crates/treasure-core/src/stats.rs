//! What `r:stats()` reports: the history counters (the part a snapshot
//! carries, defined once as [`Counters`]) plus state gauges and pipeline
//! metrics, with the fixed resolve latency buckets ([`ResolveBuckets`]).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed, Ordering::SeqCst};

pub use crate::cluster::incoming::ClusterCounters;
use crate::contract::limits::RESOLVE_BUCKETS_US;

/// The counters of `stats()` that are history, not state: a resolver keeps
/// exactly one, a snapshot carries it, `stats()` reports it, and restoring
/// it makes `stats()` continue seamlessly. (`players`, `sites` and
/// `pending_packets` follow from the state; latency quantiles restart.)
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Accepted digs (= found + empty + nothing + rejected); the next dig
    /// takes seq `digs + 1`.
    pub digs: u64,
    /// Packets produced (saturates at 2^53-1).
    pub packets: u64,
    pub found: u64,
    pub empty: u64,
    pub nothing: u64,
    pub rejected: u64,
    /// `dig`/`dig_batch` calls refused as busy (saturates at 2^53-1).
    pub busy: u64,
}

impl Counters {
    /// The values in
    /// [`contract::limits::COUNTER_NAMES`](crate::contract::limits::COUNTER_NAMES)
    /// order.
    pub fn values(&self) -> [u64; 7] {
        [
            self.digs,
            self.packets,
            self.found,
            self.empty,
            self.nothing,
            self.rejected,
            self.busy,
        ]
    }
}

/// Counters and gauges (`r:stats()` plus pipeline metrics).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stats {
    /// The history counters; `packets` counts resolved packets (exact for
    /// every accepted dig after `flush`).
    pub counters: Counters,
    pub players: u64,
    pub sites: u64,
    /// Packets resolved and not yet polled: what `poll` could take now plus
    /// what is resolved behind an unfinished chunk (never waits; equal to
    /// the packets of every accepted dig not yet polled once `flush`ed).
    pub pending_packets: u64,
    /// Accepted digs whose packets are not yet all pollable (`in_flight`).
    pub inflight_digs: u64,
    /// Resolve latency in fixed cumulative buckets
    /// ([`RESOLVE_BUCKETS_US`]).
    pub resolve_buckets: BucketCounts,
    /// Latency from acceptance to a worker publishing the dig's chunk.
    pub resolve_p50_us: f64,
    pub resolve_p99_us: f64,
    pub resolve_p999_us: f64,
    pub resolve_max_us: f64,
    /// Chunks submitted and not yet received from a worker.
    pub inflight_chunks: u64,
    /// Chunks finished and not yet fully polled.
    pub ready_chunks: u64,
    /// The resolver's share of the pool: at most this many of its chunks
    /// run at once (`workers`, or the pool's thread count for 0).
    pub workers: u64,
    /// Cluster mode only. There `counters.packets` and `pending_packets`
    /// count host packets (made by `apply_records`), and the other counters
    /// the digs this shard owns.
    pub cluster: Option<ClusterStats>,
}

/// What `stats()` adds in cluster mode (docs/API.md, cluster mode).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClusterStats {
    pub shard: u16,
    pub shards: u16,
    /// The host seq the next applied entry gets.
    pub next_host_seq: u64,
    /// `applied_digs`, `duplicate_digs`, `records_out`, `records_in`.
    pub counters: ClusterCounters,
    /// Records of resolved dig calls not yet taken (all of them after
    /// `flush`).
    pub pending_records: u64,
    /// The largest `log_position` given to `apply_records` (0 until one
    /// is).
    pub log_position: u64,
}

impl Stats {
    /// The contract's counters (`digs`, `packets`, `found`, `empty`,
    /// `nothing`, `rejected`, `busy`, `players`, `sites`, `pending_packets`),
    /// in that order: what must be identical on every backend, unlike the
    /// latency and queue gauges. Tests and fuzz targets compare these.
    pub fn contract_values(&self) -> [u64; 10] {
        let [digs, packets, found, empty, nothing, rejected, busy] = self.counters.values();
        [
            digs,
            packets,
            found,
            empty,
            nothing,
            rejected,
            busy,
            self.players,
            self.sites,
            self.pending_packets,
        ]
    }
}

/// Cumulative resolve latency counts at [`RESOLVE_BUCKETS_US`], plus count
/// and sum: lock-free, recorded by the worker that resolved the digs.
#[derive(Debug, Default)]
pub(crate) struct ResolveBuckets {
    /// `le[i]`: digs with latency <= RESOLVE_BUCKETS_US[i] (not cumulative
    /// here: one bucket per dig; `snapshot` sums them up).
    le: [AtomicU64; 12],
    count: AtomicU64,
    sum_ns: AtomicU64,
}

/// What [`ResolveBuckets::snapshot`] reads.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct BucketCounts {
    /// Cumulative: `le[i]` digs took at most `RESOLVE_BUCKETS_US[i]` µs.
    pub le: [u64; 12],
    pub count: u64,
    pub sum_us: f64,
}

impl ResolveBuckets {
    /// `digs` digs, each `ns` nanoseconds from acceptance to publication.
    pub fn record_n(&self, ns: u64, digs: u64) {
        if digs == 0 {
            return;
        }
        if let Some(i) = RESOLVE_BUCKETS_US
            .iter()
            .position(|&b| ns <= b.saturating_mul(1000))
        {
            self.le[i].fetch_add(digs, Relaxed);
        }
        self.sum_ns.fetch_add(ns.saturating_mul(digs), Relaxed);
        self.count.fetch_add(digs, Relaxed);
    }

    /// The cumulative counts. Read count first: a concurrent record may make
    /// a bucket run ahead of `count` by a few digs, so each bucket is capped
    /// at count, keeping the histogram monotonic with +Inf == count.
    pub fn snapshot(&self) -> BucketCounts {
        let count = self.count.load(SeqCst);
        let sum_ns = self.sum_ns.load(SeqCst);
        let mut le = [0u64; 12];
        let mut acc = 0u64;
        for (i, b) in self.le.iter().enumerate() {
            acc = acc.saturating_add(b.load(Relaxed));
            le[i] = acc.min(count);
        }
        BucketCounts {
            le,
            count,
            sum_us: sum_ns as f64 / 1000.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_end_at_count() {
        let b = ResolveBuckets::default();
        b.record_n(10_000, 2); // 10 µs
        b.record_n(300_000, 1); // 300 µs
        b.record_n(1_000_000_000, 1); // 1 s: only +Inf
        let s = b.snapshot();
        assert_eq!(s.count, 4);
        assert_eq!(s.le[0], 2);
        assert_eq!(s.le[2], 2);
        assert_eq!(s.le[3], 3);
        assert_eq!(s.le[11], 3);
        assert!(s.le.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(s.sum_us, (20_000.0 + 300_000.0 + 1_000_000_000.0) / 1000.0);
    }
}
