//! The parallel half of the resolver: what a worker does with a chunk.
//!
//! The caller's thread (`resolver/dig.rs`) gives each dig its seq and
//! reach, and the ruler (`crate::ruler`) the rest of what must be sequential
//! (kind, charges, roll, item); then workers get a ruled [`Chunk`]: up to
//! `chunk_digs` consecutive [`DigJob`]s plus an `Arc` of the player
//! snapshot as of those digs. A worker, per FOUND dig, runs the AOI query,
//! adds the digger and the digger's party where the query did not reach
//! them, sorts and dedups the recipients by id, encodes a per-dig template
//! packet once and computes the recipient, flags, dist2 and CRC of each
//! recipient's packet (an [`Outbox`] keeps them compact until `poll_into`
//! expands them). Non-FOUND digs produce their
//! single packet in the same pass, so a chunk's outbox is in stream order.
//!
//! The worker then drops its snapshot reference *before* publishing the
//! result, so once the caller has received every in-flight chunk the snapshot
//! is unshared again and the next mutation does not need to clone it.
//!
//! Outboxes are recycled through a bounded lock-free [`ArrayQueue`] (the
//! caller returns one once it has been polled; a worker pops one), and
//! per-worker scratch vectors live in a `thread_local`, so in steady state a
//! chunk allocates nothing but rayon's job box.
//!
//! A panic inside a chunk is caught (`catch_unwind`) and published as
//! `Err(message)`; the caller turns it into `worker panicked: <msg>`.

use crate::histogram::Histogram;
use crate::outbox::Outbox;
use crate::pool::Share;
use crate::readiness::Readiness;
use crate::ruler::Ruler;
use crate::stats::ResolveBuckets;
use crate::wire::{self, Fields, Kind, Patcher, FLAG_DIGGER, FLAG_LAST_CHARGE, FLAG_PARTY, SIZE};
use crate::world::Hit;
use crate::world::Players;
use crossbeam::channel::Sender;
use crossbeam::queue::ArrayQueue;
use std::cell::RefCell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;

/// Everything about one accepted dig that the caller's thread and the
/// ruler decided.
#[derive(Clone, Copy, Debug)]
pub(crate) struct DigJob {
    pub seq: u64,
    pub t_us: u64,
    pub roll: u64,
    pub finder: u32,
    /// The finder's party at the time of the dig.
    pub party: u32,
    pub x: i32,
    pub y: i32,
    pub z: i32,
    pub site_id: u32,
    pub item: u32,
    pub charges_left: u32,
    /// dist2(finder, block), saturated to u32.
    pub dist2: u32,
    pub quantity: u16,
    pub rarity: u8,
    /// REJECTED until the ruler decides a dig in reach.
    pub kind: Kind,
    pub last_charge: bool,
    /// Within the resolver's reach (set by the caller): the ruler decides
    /// its kind, site, charge, roll and item; if not, it stays REJECTED.
    pub in_reach: bool,
}

/// A unit of work for one worker.
pub(crate) struct Chunk {
    pub index: u64,
    pub world: Arc<Players>,
    pub jobs: Vec<DigJob>,
    pub accepted: Instant,
    /// Build the snapshot's frozen index first (see `Options::freeze_min_found`).
    pub freeze: bool,
    /// Issue 16: write the packets out in full into view blocks (the caller
    /// drains with `poll_view`), budget permitting.
    pub full: bool,
}

/// What a worker publishes for a chunk.
pub(crate) struct ChunkDone {
    pub index: u64,
    /// Emptied, returned for reuse by the caller.
    pub jobs: Vec<DigJob>,
    /// The packets in stream order, or the panic message.
    pub result: Result<Outbox, String>,
}

/// State shared by the caller and all workers.
pub(crate) struct Shared {
    pub aoi_radius: u32,
    /// Cluster mode: record each packet's recipient's host in the outbox.
    pub cluster: bool,
    pub free_bufs: ArrayQueue<Outbox>,
    pub histogram: Histogram,
    /// 0: off. Otherwise the worker that decrements it from 1 to 0 panics
    /// (test hook, see `Resolver::inject_worker_panic_after`).
    pub panic_countdown: AtomicU64,
    pub tx: Sender<ChunkDone>,
    /// The process-wide pool (see `pool.rs`).
    pub pool: &'static rayon::ThreadPool,
    /// This resolver's share of it: its chunks waiting for a slot.
    pub share: Share<Chunk>,
    /// `r:fd()`: the binding's hook, told when packets become pollable.
    pub ready: Readiness,
    /// Resolve latency in the fixed buckets of `stats()`.
    pub buckets: ResolveBuckets,
    /// The sites and the ordered stage that rules chunks before they come
    /// here (see `ruler.rs`).
    pub ruler: Ruler,
}

thread_local! {
    /// Issue 16: the compact outbox a worker resolves a viewed chunk into
    /// before writing it out in full: kept by the worker, so viewed chunks
    /// do not grow a new outbox each (the ring holds their blocks instead).
    static VIEW_SCRATCH: RefCell<Outbox> = RefCell::new(Outbox::default());
    /// Per-worker recipient scratch: grows to the largest recipient set seen,
    /// then is reused for every dig this thread resolves.
    static SCRATCH: RefCell<Scratch> = const {
        RefCell::new(Scratch {
            hits: Vec::new(),
            aoi_order: Vec::new(),
            order: Vec::new(),
            aoi_at: None,
        })
    };
}

/// A worker's reusable vectors for [`resolve_dig`].
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    /// Recipients found (AOI, party, digger), unordered, with duplicates.
    hits: Vec<Hit>,
    /// The AOI hits at the front of `hits` as sort keys, `id << 32 | index
    /// into hits`, sorted: sorted once per query, so consecutive FOUND digs
    /// at one block (a site's charges dug in one burst) share the sort.
    /// Sorting these 8-byte keys is faster than sorting the 16-byte hits
    /// themselves (the sort is a visible share of worker time).
    aoi_order: Vec<u64>,
    /// This dig's recipients as keys, sorted: `aoi_order` with the few
    /// recipients beyond the radius (party, digger) inserted.
    order: Vec<u64>,
    /// The block and the number of AOI hits at the front of `hits` (the
    /// previous FOUND dig's, on this chunk's snapshot).
    aoi_at: Option<([i32; 3], usize)>,
}

/// Recipients beyond the radius inserted one by one into a dig's sorted
/// AOI keys; more are sorted in with them (see `resolve_dig`).
const MAX_INSERTED: usize = 8;

/// A recipient's sort key: its id, then its index into `Scratch::hits`.
#[inline]
fn key(id: u32, index: usize) -> u64 {
    (id as u64) << 32 | index as u64
}

#[inline]
fn saturate(d2: u64) -> u32 {
    u32::try_from(d2).unwrap_or(u32::MAX)
}

fn template(job: &DigJob) -> [u8; SIZE] {
    wire::encode_to_array(&Fields {
        kind: job.kind as u8,
        flags: if job.last_charge { FLAG_LAST_CHARGE } else { 0 },
        seq: job.seq,
        t_us: job.t_us,
        site_id: job.site_id,
        finder: job.finder,
        recipient: job.finder,
        party: job.party,
        x: job.x,
        y: job.y,
        z: job.z,
        item: job.item,
        quantity: job.quantity,
        rarity: job.rarity,
        charges_left: job.charges_left,
        roll: job.roll,
        dist2: job.dist2,
    })
}

/// Appends the packets of one dig to `out`, in recipient order.
pub(crate) fn resolve_dig(
    job: &DigJob,
    world: &Players,
    aoi_radius: u32,
    scratch: &mut Scratch,
    out: &mut Outbox,
) {
    let pkt = template(job);
    let t = out.push_template(pkt);
    let last = if job.last_charge { FLAG_LAST_CHARGE } else { 0 };
    if job.kind != Kind::Found {
        out.push(
            t,
            Patcher::new(&pkt).patch(job.finder, FLAG_DIGGER | last, job.dist2),
        );
        return;
    }
    let patcher = Patcher::new(&pkt);
    let Scratch {
        hits,
        aoi_order,
        order,
        aoi_at,
    } = scratch;
    let point = [job.x, job.y, job.z];
    let aoi = match *aoi_at {
        // The previous FOUND dig of this chunk was at the same block: same
        // snapshot, same AOI; its hits are still at the front of `hits`,
        // their keys sorted in `aoi_order`.
        Some((at, n)) if at == point => {
            hits.truncate(n);
            n
        }
        _ => {
            hits.clear();
            world.query(job.x, job.y, job.z, aoi_radius, hits);
            aoi_order.clear();
            aoi_order.extend(hits.iter().enumerate().map(|(i, h)| key(h.id, i)));
            aoi_order.sort_unstable();
            *aoi_at = Some((point, hits.len()));
            hits.len()
        }
    };
    // The query found every player within the radius, party members and
    // the digger among them: only those beyond it are added (fewer keys to
    // sort and duplicates to skip).
    let r2 = aoi_radius as u64 * aoi_radius as u64;
    world.party_members(job.party, job.x, job.y, job.z, Some(r2), hits);
    // `job.dist2` is saturated: a saturated one may be beyond the radius.
    if job.dist2 == u32::MAX || job.dist2 as u64 > r2 {
        hits.push(Hit {
            id: job.finder,
            party: job.party,
            dist2: job.dist2 as u64,
        });
    }
    // `order`: the sorted keys of all of `hits`. The recipients beyond the
    // radius (a party's members, the digger) are usually few: each is
    // inserted at its place in the sorted AOI keys. Many (a large party
    // spread out) are appended and sorted with the rest instead, so that a
    // dig never costs more than one sort.
    order.clear();
    order.extend_from_slice(aoi_order);
    if hits.len() - aoi <= MAX_INSERTED {
        for (i, h) in hits.iter().enumerate().skip(aoi) {
            let k = key(h.id, i);
            order.insert(order.partition_point(|&o| o < k), k);
        }
    } else {
        order.extend(hits.iter().enumerate().skip(aoi).map(|(i, h)| key(h.id, i)));
        order.sort_unstable();
    }
    // A player can still be found twice (a digger beyond the radius is
    // also a member of its party, and a digger whose dist2 is saturated may
    // be in the AOI): both hits give the same packet (same snapshot, same
    // position; a saturated dist2 is patched as u32::MAX either way), so the
    // first of each id is kept.
    order.dedup_by_key(|k| *k >> 32);
    // One extend over an exact-size iterator: no capacity check per packet.
    out.extend(
        t,
        order.iter().map(|&k| {
            let h = &hits[k as u32 as usize];
            let flags = if h.id == job.finder {
                FLAG_DIGGER
            } else if job.party != 0 && h.party == job.party {
                FLAG_PARTY
            } else {
                0
            } | last;
            // The digger's own dist2 was computed (exactly) by the caller;
            // the query and party lists computed the same value for it.
            patcher.patch(h.id, flags, saturate(h.dist2))
        }),
    );
}

pub(crate) fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic payload".to_string()
    }
}

/// Resolves every dig of the chunk (on a worker, or inline on the caller's
/// thread for tiny chunks); never panics out: a panic becomes `Err`.
pub(crate) fn run_chunk(chunk: Chunk, shared: &Shared) -> ChunkDone {
    let Chunk {
        index,
        world,
        mut jobs,
        accepted,
        freeze,
        full,
    } = chunk;
    let result = catch_unwind(AssertUnwindSafe(|| {
        let mut buf = if full {
            VIEW_SCRATCH.with(|v| std::mem::take(&mut *v.borrow_mut()))
        } else {
            shared.free_bufs.pop().unwrap_or_default()
        };
        buf.clear();
        if freeze {
            world.freeze();
        }
        SCRATCH.with(|s| {
            let mut scratch = s.borrow_mut();
            scratch.aoi_at = None;
            for job in &jobs {
                if shared.panic_countdown.load(Relaxed) != 0
                    && shared
                        .panic_countdown
                        .fetch_update(Relaxed, Relaxed, |c| c.checked_sub(1))
                        == Ok(1)
                {
                    panic!("injected worker panic at seq {}", job.seq);
                }
                let from = buf.len();
                resolve_dig(job, &world, shared.aoi_radius, &mut scratch, &mut buf);
                if shared.cluster {
                    for k in from..buf.len() {
                        let recipient = buf.packet(k).1.recipient;
                        buf.push_host(world.host_of_joined(recipient));
                    }
                }
            }
        });
        if full {
            if let Some(written) = buf.materialized() {
                // The compact form was this worker's scratch: keep it.
                let scratch = std::mem::replace(&mut buf, written);
                VIEW_SCRATCH.with(|v| *v.borrow_mut() = scratch);
            }
            // (else the view budget is spent: the chunk stays compact)
        }
        buf
    }))
    .map_err(|p| panic_message(&*p));
    drop(world);
    let digs = jobs.len() as u64;
    jobs.clear();
    let ns = u64::try_from(accepted.elapsed().as_nanos()).unwrap_or(u64::MAX);
    shared.histogram.record_n(ns, digs);
    shared.buckets.record_n(ns, digs);
    ChunkDone {
        index,
        jobs,
        result,
    }
}

/// Starts as many of the resolver's queued chunks as its share allows, each
/// as one pool job; a job that finishes starts the next queued one, so the
/// queue drains without the caller (see `pool.rs`).
pub(crate) fn start_queued(shared: &Arc<Shared>) {
    while let Some(chunk) = shared.share.next() {
        let s = Arc::clone(shared);
        shared.pool.spawn(move || {
            run_and_publish(chunk, &s);
            s.share.finished();
            start_queued(&s);
        });
    }
}

/// Worker entry point: resolve, publish, then yield the CPU.
///
/// The yield is for the game loop's thread: the publish may have just woken
/// it, and on a machine with no spare core it would otherwise wait in the
/// run queue, behind this worker's slice, while its packets are ready (it
/// drains the burst's last chunks after the workers are done, so every such
/// wait lengthens the burst). With nothing else runnable the yield returns
/// at once. docs/BENCHMARKS.md ("3 December") has the A/B.
fn run_and_publish(chunk: Chunk, shared: &Shared) {
    publish(run_chunk(chunk, shared), shared);
    std::thread::yield_now();
}

/// Hands a chunk's result to the caller (a worker's, or the ruler's for a
/// chunk whose rule panicked).
pub(crate) fn publish(done: ChunkDone, shared: &Shared) {
    let index = done.index;
    // The receiver lives as long as the resolver, and the resolver waits for
    // every in-flight chunk before dropping it, so this cannot fail; if it
    // somehow did, there is nobody left to tell.
    let _ = shared.tx.send(done);
    // After the send, so the caller's re-check can see it (readiness.rs).
    shared.ready.published(index);
}
