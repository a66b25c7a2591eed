//! The resolver, read in the order a dig travels:
//!
//! * [`api`](self): the public methods, each checking in the contract's
//!   order (closed, arguments left to right, ids against the state, busy);
//!   a failing call changes nothing.
//! * `dig.rs`: the caller-side part of an accepted dig (seq, reach),
//!   decided in call order.
//! * `crate::ruler`: the rest of the rule (kind, charge, roll), in chunk
//!   order off the caller's thread, so "first dig wins" and every counter
//!   stays deterministic; the sites live there.
//! * `crate::pipeline`: what a worker does with a ruled chunk of digs.
//! * `stream.rs`: where chunks come back: the ordered ring, the busy rule,
//!   delivery to `poll`; `stream/readiness.rs`: its `r:fd()` and
//!   `in_flight` side (with `crate::readiness`, what the workers share).
//! * `state.rs`: `snapshot` and `restore`.
//! * `cluster.rs`: cluster mode's methods (`set_host`, `take_records`,
//!   `apply_records`) and where resolved dig calls become records
//!   (`crate::cluster`).
//!
//! Every method runs on the caller's thread and takes `&mut self`; the
//! methods that touch the sites or the kind counters settle the ruler
//! first ([`OpenResolver::settled`]).

mod api;
mod cluster;
mod dig;
mod state;
mod stream;
mod view;

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use crossbeam::channel::unbounded;
use crossbeam::queue::ArrayQueue;

use crate::cluster::incoming::Incoming;
use crate::cluster::outgoing::Outgoing;
use crate::contract::checks::{check_cluster_options, check_options};
use crate::contract::{Arg, Error, ErrorKind, Method};
use crate::histogram::Histogram;
use crate::options::Options;
use crate::pipeline::Shared;
use crate::pool::{self, Share};
use crate::ruler::Ruler;
use crate::stats::Counters;
use crate::world::{PlayerView, Players};
use stream::{Stream, StreamConfig};

/// The treasure resolver. See `docs/ARCHITECTURE.md` for the route of a dig.
pub struct Resolver {
    /// `None` once closed.
    open: Option<Box<OpenResolver>>,
}

/// The state of an open resolver, all owned by the caller's thread.
struct OpenResolver {
    /// As given (normalized), for snapshots and the dig rule.
    options: Options,
    /// The process this resolver was made in (see `Drop`).
    pid: u32,
    /// The snapshot workers read (copy-on-write, see [`Stream::unshare`]).
    players: Arc<Players>,
    /// The one tally of history (`stats()`, snapshots).
    counters: Counters,
    /// Player views checked by `dig_batch` validation, reused when accepting.
    scratch_views: Vec<PlayerView>,
    stream: Stream,
    /// Cluster mode only.
    cluster: Option<Box<Cluster>>,
}

/// A cluster resolver's own state (see `crate::cluster`).
struct Cluster {
    shard: u16,
    shards: u16,
    outgoing: Outgoing,
    incoming: Incoming,
    /// The outboxes of the dig call being cut (reused).
    call: Vec<crate::outbox::Outbox>,
}

impl Resolver {
    /// `treasure.new(opts)`: validates the options (in contract order) and
    /// joins the process-wide worker pool.
    ///
    /// # Errors
    ///
    /// An option out of range (`opts.<field> must be an integer in ...`), or
    /// [`ErrorKind::Internal`] when the worker threads cannot be started.
    pub fn new(opts: Options) -> Result<Resolver, Error> {
        let m = Method::New;
        check_options(m, Arg::Opt, opts.contract_values())?;
        let cluster = check_cluster_options(
            m,
            crate::contract::OptionsAt::New,
            opts.shard.map(i128::from),
            opts.shards.map(i128::from),
        )?;
        let options = opts.normalized();
        let pool = pool::pool().map_err(|e| Error::new(m, ErrorKind::Internal(e)))?;
        let workers = match options.workers {
            0 => pool.current_num_threads(),
            n => n as usize,
        };
        let (tx, rx) = unbounded();
        let shared = Arc::new(Shared {
            aoi_radius: options.aoi_radius,
            cluster: cluster.is_some(),
            free_bufs: ArrayQueue::new(options.max_inflight_chunks.min(4096) + workers),
            histogram: Histogram::new(),
            panic_countdown: AtomicU64::new(0),
            tx,
            pool,
            share: Share::new(workers),
            ready: Default::default(),
            buckets: Default::default(),
            ruler: Ruler::new(options.seed),
        });
        let config = StreamConfig {
            chunk_digs: options.chunk_digs,
            max_inflight: options.max_inflight_chunks,
            inline_max: options.inline_max_digs,
            freeze_min_found: options.freeze_min_found,
            wait_spin: Duration::from_micros(options.wait_spin_us),
            workers,
        };
        let mut players = Players::new(options.aoi_radius);
        if let Some((shard, _)) = cluster {
            players.set_own_host(shard);
        }
        Ok(Resolver {
            open: Some(Box::new(OpenResolver {
                players: Arc::new(players),
                options,
                pid: std::process::id(),
                counters: Counters::default(),
                scratch_views: Vec::new(),
                stream: Stream::new(config, shared, rx),
                cluster: cluster.map(|(shard, shards)| {
                    Box::new(Cluster {
                        shard,
                        shards,
                        outgoing: Outgoing::new(shard),
                        incoming: Incoming::new(shard, shards),
                        call: Vec::new(),
                    })
                }),
            })),
        })
    }

    /// The open resolver with every published result received, or
    /// `resolver is closed`; then a pending worker panic, if any, as
    /// `worker panicked`.
    fn open(&mut self, method: Method) -> Result<&mut OpenResolver, Error> {
        let open = self.open.as_deref_mut().ok_or(Error::closed(method))?;
        open.stream.drain(&mut open.counters);
        open.stream.check_failed(method)?;
        open.cut_resolved_calls();
        Ok(open)
    }

    /// True once `close` was called.
    pub fn is_closed(&self) -> bool {
        self.open.is_none()
    }

    /// `r:close()`: waits for in-flight work, stops the workers and frees
    /// everything. Idempotent; every other method then fails with
    /// `resolver is closed`.
    pub fn close(&mut self) {
        // OpenResolver's Drop waits for in-flight chunks.
        self.open = None;
    }

    /// Test hook: the worker resolving the `(n+1)`-th dig from now panics.
    #[cfg(any(test, feature = "test-hooks"))]
    #[doc(hidden)]
    pub fn inject_worker_panic_after(&mut self, n: u64) {
        if let Some(open) = self.open.as_deref_mut() {
            let countdown = &open.stream.shared.panic_countdown;
            countdown.store(n + 1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Test hook: read access to the player snapshot.
    #[cfg(any(test, feature = "test-hooks"))]
    #[doc(hidden)]
    pub fn players(&self) -> Option<&Players> {
        self.open.as_deref().map(|o| &*o.players)
    }
}

impl OpenResolver {
    /// The sites, every accepted dig ruled and its counts in `counters`
    /// (see [`Ruler::settle`]).
    fn settled(&mut self) -> std::sync::MutexGuard<'_, crate::ruler::RulerState> {
        Ruler::settle(&self.stream.shared, &mut self.counters)
    }

    /// The player snapshot for writing (copy-on-write, see
    /// [`Stream::unshare`]).
    fn players_mut(&mut self) -> &mut Players {
        self.stream.unshare(&mut self.players, &mut self.counters)
    }

    /// Cluster mode: cuts every wholly resolved dig call, oldest first,
    /// into records (no-op otherwise).
    fn cut_resolved_calls(&mut self) {
        let Some(c) = self.cluster.as_deref_mut() else {
            return;
        };
        while self.stream.pop_call(&mut c.call) {
            c.outgoing.cut_call(&c.call);
            for o in c.call.drain(..) {
                self.stream.recycle(o);
            }
        }
    }

    /// Packets of accepted digs not yet taken off the resolver beyond what
    /// the stream holds: in cluster mode, those in records cut and not
    /// yet taken (the busy rule counts them).
    fn taken_later(&self) -> u64 {
        self.cluster
            .as_deref()
            .map_or(0, |c| c.outgoing.pending_packets())
    }

    /// One more refused call; a statistic, so it saturates at 2^53-1.
    fn count_busy(&mut self) {
        let busy = &mut self.counters.busy;
        *busy = (*busy + 1).min(crate::contract::limits::MAX_SAFE);
    }
}

impl Drop for OpenResolver {
    /// Waits for this resolver's in-flight chunks (not the whole pool) so
    /// no worker outlives the resolver's state (workers hold `Arc`s, so this
    /// is about promptness and freeing memory deterministically, not about
    /// safety). In a forked child the chunks in flight at the fork will
    /// never finish (the pool's threads stayed in the parent), so it does
    /// not wait there: what they hold is leaked.
    fn drop(&mut self) {
        if std::process::id() == self.pid {
            self.stream.wait_all(&mut self.counters);
        }
        // Closes the binding's eventfd; no worker signals after this.
        self.stream.shared.ready.uninstall();
    }
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.open.as_deref() {
            None => f.write_str("Resolver { closed }"),
            Some(o) => f
                .debug_struct("Resolver")
                .field("next_seq", &(o.counters.digs + 1))
                .field("players", &o.players.len())
                .field("sites", &o.stream.shared.ruler.sites_len())
                .field("inflight", &o.stream.inflight_chunks())
                .field("available", &o.stream.available())
                .finish_non_exhaustive(),
        }
    }
}

impl Drop for Resolver {
    fn drop(&mut self) {
        self.close();
    }
}
