//! What `r:stats()` reports: the history counters (the part a snapshot
//! carries, defined once as [`Counters`]) plus state gauges and pipeline
//! metrics.

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
    /// The history counters; `packets` is exact (counts in-flight digs too).
    pub counters: Counters,
    pub players: u64,
    pub sites: u64,
    /// Packets of accepted digs not yet polled (exact).
    pub pending_packets: u64,
    /// Latency from acceptance to a worker publishing the dig's chunk.
    pub resolve_p50_us: f64,
    pub resolve_p99_us: f64,
    pub resolve_p999_us: f64,
    pub resolve_max_us: f64,
    /// Chunks submitted and not yet finished by a worker (0 after `stats`
    /// had to wait, see `pending_packets`).
    pub inflight_chunks: u64,
    /// Chunks finished and not yet fully polled.
    pub ready_chunks: u64,
    /// The resolver's share of the pool: at most this many of its chunks
    /// run at once (`workers`, or the pool's thread count for 0).
    pub workers: u64,
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
