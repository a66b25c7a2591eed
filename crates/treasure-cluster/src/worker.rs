//! The background thread: one single-threaded tokio runtime running the
//! publisher and the consumer side by side until the link closes.

use std::collections::VecDeque;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy};
use async_nats::jetstream::context::PublishError;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::publish::PublishAck;
use async_nats::jetstream::stream::{self, StorageType};
use async_nats::jetstream::{Context, ContextBuilder};
use crossbeam_channel::Sender;
use futures_util::StreamExt;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::sync::{oneshot, Notify};
use tokio::time::Instant;

use crate::{Command, Config, Delivery, Error, ErrorKind, Function, Outgoing, Shared, Storage};

/// The shortest and longest pause before a retry (publish or consumer).
const BACKOFF_MIN: Duration = Duration::from_millis(20);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// The consumer's idle heartbeat: a silent server is noticed after about
/// two of them (then the consumer is recreated).
const CONSUMER_HEARTBEAT: Duration = Duration::from_secs(1);
/// How long one pull request waits for messages.
const CONSUMER_EXPIRES: Duration = Duration::from_secs(5);
/// The server deletes a consumer nobody pulls from for this long (one
/// left behind by a recreation or a closed link).
const CONSUMER_INACTIVE: Duration = Duration::from_secs(30);

pub(crate) struct Parts {
    pub cfg: Config,
    pub shared: Arc<Shared>,
    pub commands: UnboundedReceiver<Command>,
    pub deliveries: Sender<Delivery>,
    pub stop: oneshot::Receiver<()>,
    pub ready: std::sync::mpsc::Sender<Result<(), Error>>,
}

/// The thread's body: builds the runtime, connects, reports readiness to
/// `Link::connect`, then runs until stopped.
pub(crate) fn run(p: Parts) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let kind = ErrorKind::ThreadFailed(e.to_string());
            let _ = p.ready.send(Err(Error::new(Function::Connect, kind)));
            return;
        }
    };
    rt.block_on(main(p));
}

async fn main(p: Parts) {
    let Parts {
        cfg,
        shared,
        commands,
        deliveries,
        mut stop,
        ready,
    } = p;
    let setup = tokio::time::timeout(cfg.connect_timeout, setup(&cfg, &shared)).await;
    let (client, js, stream, reconnected) = match setup {
        Ok(Ok(parts)) => parts,
        Ok(Err(e)) => {
            let _ = ready.send(Err(e));
            return;
        }
        Err(_) => {
            let kind = ErrorKind::ConnectFailed {
                url: cfg.url.clone(),
                reason: format!("timed out after {} ms", cfg.connect_timeout.as_millis()),
            };
            let _ = ready.send(Err(Error::new(Function::Connect, kind)));
            return;
        }
    };
    if ready.send(Ok(())).is_err() {
        return;
    }
    tokio::select! {
        _ = &mut stop => {}
        _ = publish_loop(&cfg, &shared, &js, commands) => {}
        _ = consume_loop(&cfg, &shared, &stream, &reconnected, deliveries) => {}
    }
    // Unblock a flush that waits for acks that will never come.
    shared.acked_cv.notify_all();
    drop(client);
}

/// The connection, the JetStream context, the stream, and the signal of a
/// reconnection (after a disconnect) for the consumer.
type Setup = (async_nats::Client, Context, stream::Stream, Arc<Notify>);

async fn setup(cfg: &Config, shared: &Arc<Shared>) -> Result<Setup, Error> {
    let events = shared.clone();
    let reconnected = Arc::new(Notify::new());
    let signal = reconnected.clone();
    let client = async_nats::ConnectOptions::new()
        .connection_timeout(cfg.connect_timeout)
        // Reconnect forever, quickly: a broker restart should cost little.
        .max_reconnects(None)
        .reconnect_delay_callback(|attempts| {
            (BACKOFF_MIN * attempts.min(50) as u32).min(BACKOFF_MAX)
        })
        .event_callback(move |ev| {
            let (s, signal) = (events.clone(), signal.clone());
            async move {
                match ev {
                    async_nats::Event::Disconnected => {
                        s.disconnects.fetch_add(1, Ordering::Relaxed);
                    }
                    // Back after a loss: the server may have restarted and
                    // forgotten the (ephemeral) consumer; recreate it now
                    // rather than after its missed heartbeats.
                    async_nats::Event::Connected if s.disconnects.load(Ordering::Relaxed) > 0 => {
                        signal.notify_one();
                    }
                    _ => {}
                }
            }
        })
        .connect(cfg.url.as_str())
        .await
        .map_err(|e| {
            let kind = ErrorKind::ConnectFailed {
                url: cfg.url.clone(),
                reason: e.to_string(),
            };
            Error::new(Function::Connect, kind)
        })?;
    // An ack future the publisher gives up on (a retry) keeps its permit
    // until its own ack timeout: bound that by ours, and leave room for a
    // full window of abandoned ones beside the window being resent.
    let js = ContextBuilder::new()
        .timeout(cfg.ack_timeout)
        .ack_timeout(cfg.ack_timeout)
        .max_ack_inflight(cfg.max_in_flight.max(1) * 2)
        .backpressure_on_inflight(true)
        .build(client.clone());
    let storage = match cfg.storage {
        Storage::File => StorageType::File,
        Storage::Memory => StorageType::Memory,
    };
    let stream = js
        .get_or_create_stream(stream::Config {
            name: cfg.stream.clone(),
            subjects: vec![format!("{}.to.*", cfg.stream)],
            storage,
            duplicate_window: cfg.duplicate_window,
            ..Default::default()
        })
        .await
        .map_err(|e| {
            let kind = ErrorKind::StreamFailed {
                stream: cfg.stream.clone(),
                reason: e.to_string(),
            };
            Error::new(Function::Connect, kind)
        })?;
    Ok((client, js, stream, reconnected))
}

type AckFuture = Pin<Box<dyn Future<Output = Result<PublishAck, PublishError>> + Send>>;

/// A queued record, or a test hook's second copy of one.
struct Rec {
    out: Outgoing,
    /// 1-based position in the queue (what the test hooks count).
    n: u64,
    /// A test hook's copy: its ack is not the record's.
    copy: bool,
    /// Sent at least once (a further send is a retry).
    sent: bool,
}

async fn front(q: &mut VecDeque<AckFuture>) -> Result<PublishAck, PublishError> {
    match q.front_mut() {
        Some(f) => f.await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Publishes the queue in order with up to `max_in_flight` acks awaited;
/// on a failed ack (or send) forgets every pending ack and resends from
/// the oldest unacked record after a backoff. Returns when the link's
/// sender is gone and nothing is left.
async fn publish_loop(
    cfg: &Config,
    shared: &Shared,
    js: &Context,
    mut commands: UnboundedReceiver<Command>,
) {
    // `pending[..in_flight.len()]` are the records whose acks are awaited.
    let mut pending: VecDeque<Rec> = VecDeque::new();
    let mut in_flight: VecDeque<AckFuture> = VecDeque::new();
    let mut queued: u64 = 0;
    let mut open = true;
    let mut backoff = BACKOFF_MIN;
    let mut retry_at: Option<Instant> = None;
    let window = cfg.max_in_flight.max(1);
    let push = |pending: &mut VecDeque<Rec>, queued: &mut u64, c: Command| match c {
        Command::Publish(out) => {
            *queued += 1;
            pending.push_back(Rec {
                out,
                n: *queued,
                copy: false,
                sent: false,
            });
        }
    };
    loop {
        while let Ok(c) = commands.try_recv() {
            push(&mut pending, &mut queued, c);
        }
        if retry_at.is_none() {
            while in_flight.len() < pending.len() && in_flight.len() < window {
                let rec = &mut pending[in_flight.len()];
                let msg = PublishMessage::build()
                    .payload(rec.out.bytes.clone())
                    .message_id(&rec.out.msg_id);
                match js.send_publish(rec.out.subject.clone(), msg).await {
                    Ok(ack) => {
                        shared.published.fetch_add(1, Ordering::Relaxed);
                        if rec.sent {
                            shared.retries.fetch_add(1, Ordering::Relaxed);
                        }
                        rec.sent = true;
                        in_flight.push_back(ack.into_future());
                    }
                    Err(_) => {
                        shared.errors.fetch_add(1, Ordering::Relaxed);
                        in_flight.clear();
                        retry_at = Some(Instant::now() + backoff);
                        backoff = (backoff * 2).min(BACKOFF_MAX);
                        break;
                    }
                }
            }
        }
        if !open && pending.is_empty() {
            return;
        }
        tokio::select! {
            ack = front(&mut in_flight) => {
                in_flight.pop_front();
                match ack {
                    Ok(ack) => {
                        backoff = BACKOFF_MIN;
                        if ack.duplicate {
                            shared.duplicates.fetch_add(1, Ordering::Relaxed);
                        }
                        let rec = pending.pop_front().expect("an ack belongs to a pending record");
                        if !rec.copy {
                            let mut acked = shared.acked.lock().unwrap_or_else(|p| p.into_inner());
                            *acked += 1;
                            drop(acked);
                            shared.acked_cv.notify_all();
                            if let Some(copy) = hook_copy(cfg, &rec) {
                                pending.insert(in_flight.len(), copy);
                            }
                        }
                    }
                    Err(_) => {
                        shared.errors.fetch_add(1, Ordering::Relaxed);
                        in_flight.clear();
                        retry_at = Some(Instant::now() + backoff);
                        backoff = (backoff * 2).min(BACKOFF_MAX);
                    }
                }
            }
            c = commands.recv(), if open => match c {
                Some(c) => push(&mut pending, &mut queued, c),
                None => open = false,
            },
            _ = sleep_until(retry_at) => retry_at = None,
        }
    }
}

/// The test hooks: the second copy of every k-th record.
fn hook_copy(cfg: &Config, rec: &Rec) -> Option<Rec> {
    let every = |k: u64| k > 0 && rec.n.is_multiple_of(k);
    let msg_id = if every(cfg.duplicate_every) {
        rec.out.msg_id.clone()
    } else if every(cfg.duplicate_raw_every) {
        format!("{}.raw", rec.out.msg_id)
    } else {
        return None;
    };
    Some(Rec {
        out: Outgoing {
            subject: rec.out.subject.clone(),
            msg_id,
            bytes: rec.out.bytes.clone(),
        },
        n: rec.n,
        copy: true,
        sent: false,
    })
}

/// Consumes `<stream>.to.<shard>` from `from + 1` with an ephemeral pull
/// consumer checked like an ordered one (no acks, consecutive consumer
/// sequences, a short heartbeat), recreated from the last handed-over sequence after any error
/// and after every reconnection. Returns when the link is gone (nobody
/// receives).
async fn consume_loop(
    cfg: &Config,
    shared: &Shared,
    stream: &stream::Stream,
    reconnected: &Notify,
    deliveries: Sender<Delivery>,
) {
    let subject = format!("{}.to.{}", cfg.stream, cfg.shard);
    let mut last = cfg.from;
    let mut backoff = BACKOFF_MIN;
    loop {
        let run = async {
            let consumer = stream
                .create_consumer(pull::Config {
                    filter_subject: subject.clone(),
                    deliver_policy: DeliverPolicy::ByStartSequence {
                        start_sequence: last + 1,
                    },
                    ack_policy: AckPolicy::None,
                    memory_storage: true,
                    inactive_threshold: CONSUMER_INACTIVE,
                    ..Default::default()
                })
                .await
                .map_err(|e| e.to_string())?;
            shared.consumers.fetch_add(1, Ordering::Relaxed);
            let mut messages = consumer
                .stream()
                .heartbeat(CONSUMER_HEARTBEAT)
                .expires(CONSUMER_EXPIRES)
                .messages()
                .await
                .map_err(|e| e.to_string())?;
            // What an ordered consumer checks: consumer sequences without
            // a hole; a hole (or a missed heartbeat, an error of the
            // stream) recreates the consumer from the last sequence.
            let mut consumer_seq = 0;
            while let Some(m) = messages.next().await {
                let m = m.map_err(|e| e.to_string())?;
                let info = m.info().map_err(|e| e.to_string())?;
                if info.consumer_sequence != consumer_seq + 1 {
                    return Err("consumer sequence hole".to_owned());
                }
                consumer_seq = info.consumer_sequence;
                let seq = info.stream_sequence;
                if seq <= last {
                    continue;
                }
                last = seq;
                backoff = BACKOFF_MIN;
                let d = Delivery {
                    stream_seq: seq,
                    bytes: m.payload.to_vec(),
                };
                shared.received.fetch_add(1, Ordering::Relaxed);
                shared.last_seq.store(seq, Ordering::Relaxed);
                if deliveries.send(d).is_err() {
                    return Ok(true);
                }
            }
            Ok::<bool, String>(false)
        };
        tokio::select! {
            r = run => match r {
                Ok(true) => return,
                Ok(false) | Err(_) => {
                    shared.errors.fetch_add(1, Ordering::Relaxed);
                }
            },
            _ = reconnected.notified() => {}
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}
