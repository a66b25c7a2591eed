//! # treasure-core
//!
//! The engine behind `treasure.native`: it resolves treasure digs into
//! 128-byte packets that are byte-identical to the pure-Lua reference
//! (`lua/treasure/legacy.lua`). The contract is `docs/API.md`; this crate has
//! no Lua dependency and is tested alone.
//!
//! The route of a dig (caller's thread: [`Resolver`]'s checks, the seq and
//! the reach; the ruler on the pool, one chunk at a time in order: the rest
//! of the dig rule; worker pool: the AOI query and the packets; caller's
//! thread again: the ordered stream and `poll`) and who owns which file are
//! drawn in
//! `docs/ARCHITECTURE.md`. Each module's header says why it is shaped the
//! way it is.
//!
//! The public face: [`Resolver`] with its [`Options`], [`Stats`] and
//! [`Snapshot`]; the [`contract`] (limits, message texts, shared checks,
//! the one [`Error`]); the packet layout ([`wire`]) and the batch records
//! ([`records`]); the loot roll ([`roll`]).
#![forbid(unsafe_code)]
#![warn(missing_debug_implementations)]

mod cluster;
pub mod contract;
mod histogram;
mod options;
mod outbox;
mod pipeline;
mod pool;
mod readiness;
pub mod records;
mod resolver;
pub mod roll;
mod ruler;
mod snapshot;
mod stats;
mod view;
pub mod wire;
mod world;

pub use cluster::incoming::Applied;
/// The cluster record format (issue 17): its layout, the checked reader a
/// transport uses to split `take_records` bytes by destination, the writer.
pub use cluster::record as cluster_record;
pub use contract::{Arg, EntriesAt, Error, ErrorKind, Expected, Got, Method, SnapshotPath};
pub use options::Options;
pub use pool::pool_threads;
pub use readiness::ReadyHook;
pub use records::{DigRecord, MoveRecord, DIG_RECORD_SIZE, MOVE_RECORD_SIZE};
pub use resolver::Resolver;
pub use roll::{splitmix64, LootEntry, LootTable};
pub use snapshot::{
    validate as validate_snapshot, ClusterSnapshot, LootTableSnapshot, PlayerSnapshot, ShardSeq,
    SiteSnapshot, Snapshot, SNAPSHOT_VERSION,
};
pub use stats::{BucketCounts, ClusterCounters, ClusterStats, Counters, Stats};
pub use view::{pool_bytes as view_pool_bytes, WORKER_BUDGET_BYTES as VIEW_WORKER_BUDGET_BYTES};
pub use wire::{Fields, Kind, Packet, WireError, SIZE as PACKET_SIZE};

/// The world's internals, for this crate's benches and tests only (feature
/// `test-hooks`); not a stable API.
#[cfg(feature = "test-hooks")]
#[doc(hidden)]
pub mod internals {
    pub use crate::histogram::{Histogram, Quantiles};
    pub use crate::world::frozen::{FrozenGrid, FrozenParties};
    pub use crate::world::grid::{Grid, GridPlayer};
    pub use crate::world::players::Players;
    pub use crate::world::space::{cell_shift_for, Hit, PlayerView};
}
