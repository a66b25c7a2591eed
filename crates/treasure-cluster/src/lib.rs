//! # treasure-cluster
//!
//! The native transport of cluster mode (`docs/API.md`, "Cluster mode"):
//! a [`Link`] ships a shard's outcome records to NATS JetStream and hands
//! back, in stream order, the records other shards (and this one) addressed
//! to it. No Lua, no unsafe: the binding (`src/cluster/` of the root crate)
//! moves records between a resolver and a link.
//!
//! One JetStream stream `<stream>` holds the subjects `<stream>.to.<dest>`.
//! A record (header layout in the record format: `src` at byte 6, `dest` at
//! 8, `to` at 24) is published to `<stream>.to.<dest>` with the header
//! `Nats-Msg-Id: <src>.<dest>.<to>`, which names it uniquely: a retried
//! publish inside the stream's duplicate window is dropped by the server,
//! and one outside it is dropped by the receiving resolver's own dedupe
//! (`to <= applied[src]`).
//!
//! Threads: [`Link::connect`] starts one background thread with its own
//! single-threaded tokio runtime and an async-nats client; the caller's
//! thread only touches channels and counters, never blocks on the network
//! except in [`Link::connect`] (the first connection and the stream) and
//! [`Link::flush`].
//!
//! Publishing: records go out in queue order, several in flight at once
//! (`max_in_flight`), each retried until the server acks it, also across a
//! server restart (the client reconnects forever). After a failed ack the
//! publisher resends from the oldest unacked record on, so a record whose
//! ack was lost can land after a later one; the receiving side's gap rule
//! puts them back in order.
//!
//! Consuming: an ephemeral pull consumer (no acks, in memory) on
//! `<stream>.to.<shard>` from stream sequence `from + 1`, checked like an
//! ordered consumer (consecutive consumer sequences) with a short idle
//! heartbeat; after any error, a hole, a missed heartbeat or a
//! reconnection it is recreated from the last sequence handed over, so
//! each stream message is delivered once, in stream order, and a restarted
//! server is noticed at once.

#![forbid(unsafe_code)]
#![warn(missing_debug_implementations)]

pub mod messages;
mod worker;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use tokio::sync::mpsc::UnboundedSender;

pub use messages::{Error, ErrorKind, Function};

/// Bytes of a record header: a shorter record cannot be routed.
pub const RECORD_HEADER: usize = 40;
const SRC_AT: usize = 6;
const DEST_AT: usize = 8;
const TO_AT: usize = 24;

/// Where the stream keeps its messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Storage {
    /// On disk (survives a server restart): the default.
    #[default]
    File,
    /// In memory (lost on a server restart; faster for large records).
    Memory,
}

impl Storage {
    /// `"file"` or `"memory"`.
    pub fn parse(s: &str) -> Option<Storage> {
        match s {
            "file" => Some(Storage::File),
            "memory" => Some(Storage::Memory),
            _ => None,
        }
    }
}

/// What [`Link::connect`] needs.
#[derive(Clone, Debug)]
pub struct Config {
    /// The server, e.g. `nats://127.0.0.1:4222`.
    pub url: String,
    /// The JetStream stream's name; its subjects are `<stream>.to.*`.
    pub stream: String,
    /// This shard: it consumes `<stream>.to.<shard>` and publishes only
    /// records whose `src` is this shard.
    pub shard: u16,
    /// The shard count: a record's `dest` must be below it.
    pub shards: u16,
    /// The stream sequence already applied (a snapshot's `log_position`);
    /// consuming starts at `from + 1`.
    pub from: u64,
    /// Storage of the stream when this link creates it (an existing stream
    /// is used as it is).
    pub storage: Storage,
    /// The stream's duplicate window when this link creates it: the server
    /// drops a message whose Msg-Id it stored within this window. Retries
    /// of one publish happen well inside it; anything older is caught by
    /// the resolver's dedupe.
    pub duplicate_window: Duration,
    /// How long to wait for the first connection and the stream.
    pub connect_timeout: Duration,
    /// How long one publish waits for its ack before it is retried.
    pub ack_timeout: Duration,
    /// Publishes awaiting their ack at once.
    pub max_in_flight: usize,
    /// Records queued and not yet acknowledged past which the link has no
    /// room ([`Link::has_room`]): `pump` then leaves the resolver's records
    /// with the resolver, whose busy rule bounds them and refuses new digs,
    /// so a slow or unreachable server never grows the link's queue
    /// without bound. [`Link::send`] itself does not refuse: a caller of
    /// this crate checks `has_room`, as `pump` does.
    pub max_unacked: u64,
    /// Test hook: every k-th record is published a second time with the
    /// same Msg-Id (the server must drop it). 0: off.
    pub duplicate_every: u64,
    /// Test hook: every k-th record is published a second time under
    /// another Msg-Id (`<id>.raw`), so it lands twice in the stream and
    /// only the resolver's dedupe catches it. 0: off.
    pub duplicate_raw_every: u64,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            url: "nats://127.0.0.1:4222".to_owned(),
            stream: "TREASURE".to_owned(),
            shard: 0,
            shards: 1,
            from: 0,
            storage: Storage::File,
            duplicate_window: Duration::from_secs(120),
            connect_timeout: Duration::from_secs(5),
            ack_timeout: Duration::from_secs(2),
            max_in_flight: 256,
            max_unacked: messages::MAX_UNACKED_DEFAULT,
            duplicate_every: 0,
            duplicate_raw_every: 0,
        }
    }
}

impl Config {
    /// The connect-time rules: shard below shards, a valid stream name.
    pub fn check(&self) -> Result<(), Error> {
        let f = Function::Connect;
        if self.shards < messages::SHARDS_MIN {
            let (lo, hi) = (messages::SHARDS_MIN as u64, messages::SHARDS_MAX as u64);
            return Err(Error::out_of_range(f, "opts.shards", lo, hi, "0"));
        }
        if self.shard >= self.shards {
            let (shard, shards) = (self.shard, self.shards);
            return Err(Error::new(
                f,
                ErrorKind::ShardNotBelowShards { shard, shards },
            ));
        }
        let valid = !self.stream.is_empty()
            && self
                .stream
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid {
            return Err(Error::new(f, ErrorKind::BadStreamName(self.stream.clone())));
        }
        if self.max_unacked < 1 || self.max_unacked > messages::MAX_UNACKED_MAX {
            let got = self.max_unacked.to_string();
            let hi = messages::MAX_UNACKED_MAX;
            return Err(Error::out_of_range(f, "opts.max_unacked", 1, hi, got));
        }
        if self.from > messages::POSITION_MAX {
            let got = self.from.to_string();
            return Err(Error::out_of_range(
                f,
                "opts.from",
                0,
                messages::POSITION_MAX,
                got,
            ));
        }
        Ok(())
    }
}

/// One message of this shard's subject: its stream sequence (the
/// `log_position` to apply it with) and its bytes (one record).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    pub stream_seq: u64,
    pub bytes: Vec<u8>,
}

/// The link's counters (all since connect).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Records given to [`Link::send`].
    pub queued: u64,
    /// Publish attempts sent to the server (first tries, retries and the
    /// test hooks' second copies).
    pub published: u64,
    /// Records the server acknowledged (each counted once).
    pub acked: u64,
    /// Publishes sent again after a failed or missing ack.
    pub retries: u64,
    /// Acks that said "duplicate" (the server dropped a repeated Msg-Id).
    pub duplicates: u64,
    /// Messages received from this shard's subject.
    pub received: u64,
    /// Received messages not yet taken by [`Link::try_recv`].
    pub buffered: u64,
    /// Times the consumer was created (1 + recreations after errors).
    pub consumers: u64,
    /// Errors met by the background thread (failed acks, consumer errors).
    pub errors: u64,
    /// Connection losses seen by the client.
    pub disconnects: u64,
    /// The last stream sequence handed over (0: none yet).
    pub last_seq: u64,
}

/// Counters shared with the background thread.
#[derive(Debug, Default)]
struct Shared {
    published: AtomicU64,
    retries: AtomicU64,
    duplicates: AtomicU64,
    received: AtomicU64,
    consumers: AtomicU64,
    errors: AtomicU64,
    disconnects: AtomicU64,
    last_seq: AtomicU64,
    /// Records acked; `flush` waits on `acked_cv` for it.
    acked: Mutex<u64>,
    acked_cv: Condvar,
}

/// A record on its way to the publisher.
#[derive(Debug)]
struct Outgoing {
    subject: String,
    msg_id: String,
    bytes: bytes::Bytes,
}

/// What the caller's thread asks of the publisher.
#[derive(Debug)]
enum Command {
    Publish(Outgoing),
}

/// A shard's connection to the cluster log. Owned by one thread (the
/// caller's); dropping it closes it.
#[derive(Debug)]
pub struct Link {
    cfg: Config,
    commands: Option<UnboundedSender<Command>>,
    deliveries: Receiver<Delivery>,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    queued: u64,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

/// The routing fields of a record header: (src, dest, to).
pub fn record_route(record: &[u8]) -> Option<(u16, u16, u64)> {
    if record.len() < RECORD_HEADER {
        return None;
    }
    let u16_at = |i: usize| u16::from_le_bytes([record[i], record[i + 1]]);
    let mut to = [0u8; 8];
    to.copy_from_slice(&record[TO_AT..TO_AT + 8]);
    Some((u16_at(SRC_AT), u16_at(DEST_AT), u64::from_le_bytes(to)))
}

impl Link {
    /// Connects to `cfg.url`, creates the stream if it is missing, starts
    /// the consumer and the publisher on a background thread. Waits up to
    /// `cfg.connect_timeout` for the connection and the stream; fails with
    /// the reason otherwise (nothing is left running).
    pub fn connect(cfg: Config) -> Result<Link, Error> {
        cfg.check()?;
        let shared = Arc::new(Shared::default());
        let (cmd_tx, cmd_rx) = tokio::sync::mpsc::unbounded_channel();
        let (del_tx, del_rx) = crossbeam_channel::unbounded();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = {
            let (cfg, shared) = (cfg.clone(), shared.clone());
            std::thread::Builder::new()
                .name(format!("treasure-cluster-{}", cfg.shard))
                .spawn(move || {
                    worker::run(worker::Parts {
                        cfg,
                        shared,
                        commands: cmd_rx,
                        deliveries: del_tx,
                        stop: stop_rx,
                        ready: ready_tx,
                    })
                })
                .map_err(|e| {
                    Error::new(Function::Connect, ErrorKind::ThreadFailed(e.to_string()))
                })?
        };
        let ready = ready_rx.recv().unwrap_or_else(|_| {
            Err(Error::new(
                Function::Connect,
                ErrorKind::ThreadFailed("the transport thread ended".to_owned()),
            ))
        });
        if let Err(e) = ready {
            let _ = thread.join();
            return Err(e);
        }
        Ok(Link {
            cfg,
            commands: Some(cmd_tx),
            deliveries: del_rx,
            shared,
            thread: Some(thread),
            queued: 0,
            stop: Some(stop_tx),
        })
    }

    /// The configuration this link was connected with.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Checks a record's header against this link (src is this shard,
    /// dest below shards) without queueing it.
    pub fn check_record(&self, record: &[u8]) -> Result<(u16, u16, u64), Error> {
        let f = Function::Send;
        let (src, dest, to) =
            record_route(record).ok_or(Error::new(f, ErrorKind::ShortRecord(record.len())))?;
        if src != self.cfg.shard {
            let own = self.cfg.shard;
            return Err(Error::new(f, ErrorKind::ForeignRecord { src, own }));
        }
        if dest >= self.cfg.shards {
            let shards = self.cfg.shards;
            return Err(Error::new(f, ErrorKind::DestOutOfRange { dest, shards }));
        }
        Ok((src, dest, to))
    }

    /// Queues one record for publishing (after every record queued before
    /// it). Fails on a record that is not this shard's or a closed link.
    pub fn send(&mut self, record: Vec<u8>) -> Result<(), Error> {
        let (src, dest, to) = self.check_record(&record)?;
        let tx = self
            .commands
            .as_ref()
            .ok_or(Error::closed(Function::Send))?;
        let out = Outgoing {
            subject: format!("{}.to.{dest}", self.cfg.stream),
            msg_id: format!("{src}.{dest}.{to}"),
            bytes: bytes::Bytes::from(record),
        };
        tx.send(Command::Publish(out))
            .map_err(|_| Error::closed(Function::Send))?;
        self.queued += 1;
        Ok(())
    }

    /// Records queued and not yet acknowledged.
    pub fn unacked(&self) -> u64 {
        let acked = *self.shared.acked.lock().unwrap_or_else(|p| p.into_inner());
        self.queued.saturating_sub(acked)
    }

    /// Fewer than `max_unacked` records wait for their ack: what `pump`
    /// checks before it takes a resolver's records (see
    /// [`Config::max_unacked`]).
    pub fn has_room(&self) -> bool {
        self.unacked() < self.cfg.max_unacked
    }

    /// The next received message of this shard's subject, in stream order.
    pub fn try_recv(&self) -> Option<Delivery> {
        self.deliveries.try_recv().ok()
    }

    /// Waits until every record queued so far is acked, at most `timeout`.
    /// True when they all are.
    pub fn flush(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut acked = self.shared.acked.lock().unwrap_or_else(|p| p.into_inner());
        while *acked < self.queued {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || self.thread.is_none() {
                return false;
            }
            acked = self
                .shared
                .acked_cv
                .wait_timeout(acked, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        true
    }

    /// The counters.
    pub fn stats(&self) -> Stats {
        let s = &self.shared;
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Stats {
            queued: self.queued,
            published: l(&s.published),
            acked: *s.acked.lock().unwrap_or_else(|p| p.into_inner()),
            retries: l(&s.retries),
            duplicates: l(&s.duplicates),
            received: l(&s.received),
            buffered: self.deliveries.len() as u64,
            consumers: l(&s.consumers),
            errors: l(&s.errors),
            disconnects: l(&s.disconnects),
            last_seq: l(&s.last_seq),
        }
    }

    /// True until [`Link::close`].
    pub fn is_open(&self) -> bool {
        self.thread.is_some()
    }

    /// Stops the background thread and waits for it. Records not yet acked
    /// are dropped ([`Link::flush`] first to keep them); received messages
    /// not yet taken stay readable with [`Link::try_recv`]. Idempotent.
    pub fn close(&mut self) {
        self.commands = None;
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.close();
    }
}
