//! Construction options: the contract's five (`docs/API.md`, `treasure.new`)
//! and the pipeline's tuning knobs (not part of the Lua contract; the
//! measurements behind their defaults are in `docs/BENCHMARKS.md`).

/// Construction options. `Default` gives the contract's defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// Loot roll seed, [0, 2^53-1]. Default 0.
    pub seed: u64,
    /// AOI radius in blocks, [0, 1048576]. Default 64.
    pub aoi_radius: u32,
    /// Max digger-to-block distance, [0, 1048576]. Default 8.
    pub reach: u32,
    /// This resolver's share of the process-wide worker pool (one thread
    /// per core): at most this many of its chunks run at once, [0, 256];
    /// 0 = all pool threads. Default 0. (The ruler, which decides the digs'
    /// kinds in order, runs beside them as one more pool task while chunks
    /// wait for it: see `ruler.rs`.)
    pub workers: u32,
    /// Busy threshold, [1, 2^53-1]. Default 1048576.
    pub max_pending_packets: u64,
    /// Cluster mode (issue 17): this resolver's shard, [0, 65534], given
    /// together with [`shards`](Options::shards) and below it. Both `None`
    /// (the default): not cluster mode, everything as without them.
    pub shard: Option<u16>,
    /// Cluster mode: the number of shards, [1, 65535].
    pub shards: Option<u16>,
    /// Digs per worker task: big enough to amortize a hand-off, small
    /// enough to spread a batch over the workers. Values below 1 are
    /// treated as 1. Default 128.
    pub chunk_digs: usize,
    /// Back-pressure: chunks submitted and not yet finished before the
    /// caller waits, so a flood of digs cannot queue without bound. Values
    /// below 1 are treated as 1. Default 1024.
    pub max_inflight_chunks: usize,
    /// Chunks of at most this many digs are resolved inline on the caller's
    /// thread, because handing one dig to a worker costs more than resolving
    /// it and an inline dig leaves no snapshot shared. 0 = always use the
    /// workers; the default, because the product promises that fan-out work
    /// stays off the game loop's thread. Default 0.
    pub inline_max_digs: usize,
    /// Once this many digs in reach (the digs that may be FOUND: whether
    /// one is, the ruler decides later, off the caller's thread) have been
    /// accepted against one player snapshot, its worker builds the snapshot's frozen index
    /// (`world/frozen.rs`) and later chunks on it use it: the build pays
    /// back only over a burst. A `dig_batch` that will reach the count
    /// (its own digs in reach included) builds it from its first chunk.
    /// Queries give the same hits either way. 0 = never build. Default 1024.
    pub freeze_min_found: usize,
    /// How long [`Resolver::wait`](crate::Resolver::wait) keeps its thread
    /// on the CPU (yielding to runnable threads) before parking, in
    /// microseconds (at most 1 s): chunks of a burst arrive faster than a
    /// park and wake-up with cold caches. 0 = park at once. Default 50.
    pub wait_spin_us: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            seed: 0,
            aoi_radius: 64,
            reach: 8,
            workers: 0,
            max_pending_packets: 1_048_576,
            shard: None,
            shards: None,
            chunk_digs: 128,
            max_inflight_chunks: 1024,
            inline_max_digs: 0,
            freeze_min_found: 1024,
            wait_spin_us: 50,
        }
    }
}

impl Options {
    /// The tuning fields brought into their working ranges (`chunk_digs`
    /// and `max_inflight_chunks` at least 1, `wait_spin_us` at most 1 s):
    /// what a resolver runs with and what its snapshot reports.
    pub(crate) fn normalized(mut self) -> Options {
        self.chunk_digs = self.chunk_digs.max(1);
        self.max_inflight_chunks = self.max_inflight_chunks.max(1);
        self.wait_spin_us = self.wait_spin_us.min(1_000_000);
        self
    }

    /// The five contract values in check order (see
    /// [`contract::limits::OPTION_FIELDS`](crate::contract::limits::OPTION_FIELDS)).
    pub(crate) fn contract_values(&self) -> [u64; 5] {
        [
            self.seed,
            self.aoi_radius as u64,
            self.reach as u64,
            self.workers as u64,
            self.max_pending_packets,
        ]
    }
}
