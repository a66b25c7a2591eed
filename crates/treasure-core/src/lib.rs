//! # treasure-core
//!
//! The engine behind `treasure.native`: it resolves treasure digs into
//! 128-byte packets that are byte-identical to the pure-Lua reference
//! (`lua/treasure/legacy.lua`). The contract is `docs/API.md`; this crate has
//! no Lua dependency and is tested alone.
//!
//! ## Architecture
//!
//! * [`wire`] owns the packet layout (zerocopy struct, offsets, checked
//!   decoding, encoding with CRC-32C). [`records`] gives zero-copy views of
//!   batch inputs. [`roll`] is splitmix64 and the weighted loot pick.
//! * [`world`] holds players (in the AOI [`grid`], with party lists) and
//!   sites/loot tables. [`error`] renders the contract's exact messages.
//! * [`Resolver`] is the state machine. A dig is split in two. On the
//!   caller's thread, cheaply and in call order: validate, busy check, assign
//!   the seq, find the site, decide the kind, take a charge, roll the item.
//!   This keeps "first dig wins" and every counter deterministic. On the
//!   process-wide rayon pool ([`pool`]: one thread per core, shared by every
//!   resolver, at most `workers` chunks of one resolver at a time, re-created
//!   in a forked child): for FOUND digs the AOI query, the party
//!   members, sorting the recipients, encoding one template packet and
//!   computing each recipient's fields and CRC. A chunk's packets stay in
//!   that compact form (`outbox.rs`, 20 bytes per packet) until `poll_into`
//!   expands them straight into the caller's buffer.
//! * Consecutive digs are grouped into chunks (`chunk_digs`); each chunk
//!   carries an `Arc` of the player snapshot as of its digs. A player
//!   mutation while a snapshot is shared with in-flight chunks clones it
//!   first (`Arc::make_mut`, copy-on-write), so workers read a frozen world
//!   and a dig sees every call before it and none after. Once a burst's worth
//!   of FOUND digs has been accepted against one snapshot, a worker builds
//!   its [`frozen_grid`], a contiguous copy of the positions that answers the
//!   same queries with far fewer cache misses; every later chunk on that
//!   snapshot uses it.
//! * Workers publish `(chunk index, packets)` on a crossbeam channel; the
//!   caller reorders them in a ring by chunk index, and `poll` copies from
//!   the oldest chunk on, stopping at the first unfinished one: the stream is
//!   ordered by (seq, recipient) whatever the worker count. Buffers and job
//!   vectors are recycled, so steady state allocates nothing per dig.
//! * Optionally (`inline_max_digs`, off by default) small chunks are
//!   resolved inline on the caller's thread: handing one dig to a worker
//!   costs more than resolving it, and it leaves no snapshot shared. When a
//!   mutation finds the snapshot shared with only a little work in flight,
//!   it waits for that work instead of cloning the world.
//! * The busy rule is the reference's exactly, without waiting in normal
//!   operation: the caller keeps exact counts for finished chunks and
//!   lower/upper bounds for in-flight ones, and waits only when the bounds
//!   straddle `max_pending_packets` (see [`resolver`]).
//! * No lock anywhere: the caller's thread owns all mutable state, workers
//!   read `Arc` snapshots and hand results back through the channel and the
//!   buffer queue, so no `Mutex` (parking_lot or std) is needed.
//! * A worker panic is caught and reported as an error by the next call
//!   (`treasure: <method>: worker panicked: <msg>`); it never aborts.
//!   [`histogram`] records per-dig resolve latency lock-free.
//! * [`snapshot`] exports the whole state as plain data and restores a
//!   resolver from it (validated first), for live backend swaps.
#![forbid(unsafe_code)]
#![warn(missing_debug_implementations)]

pub mod error;
pub mod frozen_grid;
pub mod grid;
pub mod histogram;
mod outbox;
mod pipeline;
pub mod pool;
pub mod readiness;
pub mod records;
pub mod resolver;
pub mod roll;
pub mod snapshot;
pub mod wire;
pub mod world;

pub use error::{Arg, Error, ErrorKind, Method};
pub use readiness::{ReadyHook, RESOLVE_BUCKETS_US};
pub use records::{DigRecord, MoveRecord, DIG_RECORD_SIZE, MOVE_RECORD_SIZE};
pub use resolver::{Options, Resolver, Stats};
pub use roll::{splitmix64, LootEntry, LootTable};
pub use snapshot::{
    Counters, LootTableSnapshot, PlayerSnapshot, SiteSnapshot, Snapshot, SnapshotError,
    SNAPSHOT_VERSION,
};
pub use wire::{Fields, Kind, Packet, WireError, SIZE as PACKET_SIZE};
