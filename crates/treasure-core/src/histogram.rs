//! Fixed-memory latency histogram.
//!
//! Log-linear buckets (like HdrHistogram): values below 2^SUB_BITS get one
//! bucket each; above, every power of two is split into 2^SUB_BITS equal
//! buckets, so the relative error of a reported quantile is below
//! 2^-SUB_BITS (about 3 %). Values are recorded in nanoseconds (sub-
//! microsecond latencies are common here) and reported in microseconds.
//!
//! Buckets are `AtomicU64`s updated with relaxed `fetch_add`: workers record
//! concurrently without a lock; a reader may see a snapshot that is slightly
//! behind, which is fine for statistics.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

const SUB_BITS: u32 = 5;
const SUB: u64 = 1 << SUB_BITS;
const BUCKETS: usize = ((64 - SUB_BITS + 1) as usize) * SUB as usize;

/// Quantiles of a [`Histogram`], in microseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Quantiles {
    pub count: u64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
}

/// A lock-free, fixed-size histogram of nanosecond values.
pub struct Histogram {
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
    max: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram::new()
    }
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Histogram")
            .field("quantiles", &self.quantiles())
            .finish()
    }
}

#[inline]
fn index(v: u64) -> usize {
    if v < SUB {
        v as usize
    } else {
        let e = 63 - v.leading_zeros(); // >= SUB_BITS
        let sub = (v >> (e - SUB_BITS)) - SUB; // 0..SUB
        ((e - SUB_BITS + 1) as u64 * SUB + sub) as usize
    }
}

/// Largest value that falls in bucket `i`.
fn upper(i: usize) -> u64 {
    let i = i as u64;
    if i < SUB {
        i
    } else {
        let e = (i / SUB - 1) as u32 + SUB_BITS;
        let sub = i % SUB;
        let lo = (SUB + sub) << (e - SUB_BITS);
        lo.saturating_add((1u64 << (e - SUB_BITS)) - 1)
    }
}

impl Histogram {
    pub fn new() -> Histogram {
        Histogram {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            max: AtomicU64::new(0),
        }
    }

    /// Records `n` occurrences of `ns` nanoseconds.
    #[inline]
    pub fn record_n(&self, ns: u64, n: u64) {
        if n == 0 {
            return;
        }
        self.buckets[index(ns)].fetch_add(n, Relaxed);
        self.count.fetch_add(n, Relaxed);
        self.max.fetch_max(ns, Relaxed);
    }

    /// Records one value.
    #[inline]
    #[cfg(any(test, feature = "test-hooks"))]
    pub fn record(&self, ns: u64) {
        self.record_n(ns, 1)
    }

    pub fn count(&self) -> u64 {
        self.count.load(Relaxed)
    }

    /// The value at quantile `q` (0..=1) in nanoseconds: the upper edge of
    /// the bucket holding the `ceil(q * count)`-th smallest value, capped at
    /// the exact maximum. 0 when empty.
    pub fn quantile_ns(&self, q: f64) -> u64 {
        let counts: Vec<u64> = self.buckets.iter().map(|b| b.load(Relaxed)).collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return 0;
        }
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (i, &c) in counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return upper(i).min(self.max.load(Relaxed));
            }
        }
        self.max.load(Relaxed)
    }

    /// p50, p99, p99.9 and max, in microseconds.
    pub fn quantiles(&self) -> Quantiles {
        let us = |ns: u64| ns as f64 / 1000.0;
        Quantiles {
            count: self.count(),
            p50_us: us(self.quantile_ns(0.5)),
            p99_us: us(self.quantile_ns(0.99)),
            p999_us: us(self.quantile_ns(0.999)),
            max_us: us(self.max.load(Relaxed)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_tight() {
        let mut last = 0;
        for v in (0..100_000u64).chain([u64::MAX / 3, u64::MAX - 1, u64::MAX]) {
            let i = index(v);
            assert!(i < BUCKETS);
            assert!(i >= last || v > 100_000);
            last = i;
            assert!(upper(i) >= v, "v={v}");
            assert!(upper(i) - v <= v / SUB + 1, "v={v} upper={}", upper(i));
            if i > 0 {
                assert!(upper(i - 1) < v);
            }
        }
    }

    #[test]
    fn quantiles() {
        let h = Histogram::new();
        assert_eq!(h.quantile_ns(0.5), 0);
        for v in 1..=1000u64 {
            h.record(v * 1000);
        }
        let q = h.quantiles();
        assert_eq!(q.count, 1000);
        assert!((q.p50_us - 500.0).abs() <= 500.0 / 32.0 + 1.0, "{q:?}");
        assert!((q.p99_us - 990.0).abs() <= 990.0 / 32.0 + 1.0, "{q:?}");
        assert_eq!(q.max_us, 1000.0);
        h.record_n(5, 3);
        assert_eq!(h.count(), 1003);
        assert_eq!(h.quantile_ns(0.0), 5);
    }

    #[test]
    fn concurrent_records() {
        let h = std::sync::Arc::new(Histogram::new());
        let ts: Vec<_> = (0..4)
            .map(|t| {
                let h = h.clone();
                std::thread::spawn(move || {
                    for v in 0..10_000u64 {
                        h.record(v + t);
                    }
                })
            })
            .collect();
        for t in ts {
            t.join().unwrap();
        }
        assert_eq!(h.count(), 40_000);
    }
}
