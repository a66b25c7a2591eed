//! The incoming side of a cluster resolver: `apply_records` (docs/API.md)
//! and the host packet stream it feeds.
//!
//! A call is whole or nothing: every record is checked first
//! ([`Record::new_checked`]), then the dedupe and gap rule is evaluated
//! left to right on a copy of the per-source state, then the host seq
//! bound, then busy; only then is anything changed. Per source shard,
//! `applied[src]` is the highest owner seq covered so far: a record with
//! `to <= applied[src]` is a duplicate, one with `prev > applied[src]`
//! means one before it is missing (a gap), otherwise its entries above
//! `applied[src]` are applied (those at or below it are duplicates, the
//! record overlapping one seen before).
//!
//! Applying an entry takes the next host seq and encodes one packet per
//! recipient with the packet encoder (`crate::wire`): one template per
//! entry plus a patch per recipient, kept in an [`Outbox`] until polled.

use std::collections::{BTreeMap, VecDeque};

use super::record::{Expect, Record};
use crate::contract::checks::{check_range, check_seq};
use crate::contract::limits::{self, MAX_SAFE};
use crate::contract::{Arg, Error, ErrorKind, Method};
use crate::outbox::Outbox;
use crate::stats::Counters;
use crate::wire::{encode_to_array, Patcher, SIZE};

/// What `apply_records` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    /// Applied; the number of entries applied (duplicates not counted).
    Digs(u64),
    /// Refused: a record before one of these is missing. Nothing changed.
    Gap,
    /// Refused: the host packets not yet polled reached
    /// `max_pending_packets`. Nothing changed but the `busy` counter.
    Busy,
}

/// The cluster counters a snapshot carries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClusterCounters {
    /// Entries applied.
    pub applied_digs: u64,
    /// Entries skipped as duplicates.
    pub duplicate_digs: u64,
    /// Records taken by `take_records`.
    pub records_out: u64,
    /// Records applied, duplicates included, refused calls not.
    pub records_in: u64,
}

impl ClusterCounters {
    /// The values in
    /// [`CLUSTER_COUNTER_NAMES`](crate::contract::limits::CLUSTER_COUNTER_NAMES)
    /// order.
    pub fn values(&self) -> [u64; 4] {
        [
            self.applied_digs,
            self.duplicate_digs,
            self.records_out,
            self.records_in,
        ]
    }
}

/// The host packets not yet polled, in host seq order.
#[derive(Debug, Default)]
pub(crate) struct HostQueue {
    /// Each with how many of its packets are polled already.
    boxes: VecDeque<(Outbox, usize)>,
    pending: u64,
}

impl HostQueue {
    /// Packets not yet polled.
    pub fn pending(&self) -> u64 {
        self.pending
    }

    /// Writes the next `n <= pending` packets into `dst` (`n * SIZE`
    /// bytes), leaving them queued.
    pub fn copy_out(&self, n: usize, dst: &mut [u8]) {
        debug_assert!(n as u64 <= self.pending && dst.len() == n * SIZE);
        let mut done = 0;
        for (o, pos) in &self.boxes {
            if done == n {
                break;
            }
            let k = (n - done).min(o.len() - pos);
            o.write(*pos, &mut dst[done * SIZE..(done + k) * SIZE]);
            done += k;
        }
    }

    /// Takes the next `n <= pending` packets off the queue.
    pub fn advance(&mut self, n: usize) {
        debug_assert!(n as u64 <= self.pending);
        let mut done = 0;
        while done < n {
            let Some((o, pos)) = self.boxes.front_mut() else {
                unreachable!("pending packets are queued")
            };
            let k = (n - done).min(o.len() - *pos);
            *pos += k;
            done += k;
            if *pos == o.len() {
                self.boxes.pop_front();
            }
        }
        self.pending -= n as u64;
    }

    /// Every packet not yet polled.
    pub fn pending_bytes(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.pending as usize * SIZE);
        for (o, pos) in &self.boxes {
            o.extend_vec(*pos, &mut v);
        }
        v
    }

    fn push(&mut self, o: Outbox) {
        if o.len() > 0 {
            self.pending += o.len() as u64;
            self.boxes.push_back((o, 0));
        }
    }
}

/// The applied state of a cluster resolver.
#[derive(Debug)]
pub(crate) struct Incoming {
    shard: u16,
    shards: u16,
    /// Per source shard, the highest owner seq covered (absent: 0).
    applied: BTreeMap<u16, u64>,
    next_host_seq: u64,
    log_position: u64,
    pub counters: ClusterCounters,
    pub queue: HostQueue,
}

/// What the dry run of a call found.
struct Plan {
    entries: u64,
}

impl Incoming {
    pub fn new(shard: u16, shards: u16) -> Incoming {
        Incoming {
            shard,
            shards,
            applied: BTreeMap::new(),
            next_host_seq: 1,
            log_position: 0,
            counters: ClusterCounters::default(),
            queue: HostQueue::default(),
        }
    }

    pub fn next_host_seq(&self) -> u64 {
        self.next_host_seq
    }

    pub fn log_position(&self) -> u64 {
        self.log_position
    }

    /// `applied[src]` for each source above 0, ascending.
    pub fn applied(&self) -> impl Iterator<Item = (u16, u64)> + '_ {
        self.applied.iter().map(|(&s, &q)| (s, q))
    }

    /// A restored state (checked by the snapshot validation).
    pub fn restore(
        &mut self,
        next_host_seq: u64,
        log_position: u64,
        applied: &[(u16, u64)],
        counters: ClusterCounters,
        pending: &[u8],
    ) {
        self.next_host_seq = next_host_seq;
        self.log_position = log_position;
        self.applied = applied.iter().copied().collect();
        self.counters = counters;
        self.queue.push(Outbox::from_packets(pending));
    }

    /// `apply_records(bytes, log_position)` with the resolver's
    /// `max_pending_packets`; `counters` gets the host packets (and the
    /// busy answer).
    ///
    /// # Errors
    ///
    /// `log_position` out of range, the first invalid record
    /// (`records[i] must be a valid record for shard S, got <reason>`), or
    /// the host seq past 2^53-1. Nothing changes.
    pub fn apply(
        &mut self,
        bytes: &[u8],
        log_position: Option<u64>,
        max_pending: u64,
        counters: &mut Counters,
    ) -> Result<Applied, Error> {
        let m = Method::ApplyRecords;
        if let Some(p) = log_position {
            check_range(m, Arg::Plain("log_position"), limits::LOG_POSITION, p)?;
        }
        let records = self.check_all(bytes)?;
        let Some(plan) = self.plan(&records) else {
            return Ok(Applied::Gap);
        };
        check_seq(m, self.next_host_seq, plan.entries)?;
        if self.queue.pending() >= max_pending {
            counters.busy = (counters.busy + 1).min(MAX_SAFE);
            return Ok(Applied::Busy);
        }
        let mut out = Outbox::default();
        for r in &records {
            let seen = self.applied.get(&r.src()).copied().unwrap_or(0);
            self.counters.records_in += 1;
            for e in r.entries() {
                if e.seq() <= seen {
                    self.counters.duplicate_digs += 1;
                    continue;
                }
                let template = encode_to_array(&e.fields(self.next_host_seq));
                self.next_host_seq += 1;
                let patcher = Patcher::new(&template);
                let t = out.push_template(template);
                for s in e.slots() {
                    let flags = e.flags() | s.flags;
                    out.push(t, patcher.patch(s.recipient, flags, s.dist2));
                }
                self.counters.applied_digs += 1;
            }
            if r.to() > seen {
                self.applied.insert(r.src(), r.to());
            }
        }
        counters.packets = (counters.packets + out.len() as u64).min(MAX_SAFE);
        self.queue.push(out);
        if let Some(p) = log_position {
            self.log_position = self.log_position.max(p);
        }
        Ok(Applied::Digs(plan.entries))
    }

    /// Every record of `bytes`, checked, in order.
    fn check_all<'a>(&self, mut bytes: &'a [u8]) -> Result<Vec<Record<'a>>, Error> {
        let expect = Expect::To {
            shard: self.shard,
            shards: self.shards,
        };
        let mut records = Vec::new();
        while !bytes.is_empty() {
            let (r, rest) = Record::new_checked(bytes, expect).map_err(|reason| {
                let kind = ErrorKind::InvalidRecord {
                    arg: Arg::RecordAt(records.len() + 1),
                    shard: self.shard,
                    reason: Box::new(reason),
                };
                Error::new(Method::ApplyRecords, kind)
            })?;
            records.push(r);
            bytes = rest;
        }
        Ok(records)
    }

    /// The dedupe and gap rule, left to right, without changing anything:
    /// `None` on a gap.
    fn plan(&self, records: &[Record<'_>]) -> Option<Plan> {
        let mut seen: BTreeMap<u16, u64> = BTreeMap::new();
        let mut entries = 0u64;
        for r in records {
            let a = *seen
                .entry(r.src())
                .or_insert_with(|| self.applied.get(&r.src()).copied().unwrap_or(0));
            if r.to() <= a {
                continue;
            }
            if r.prev() > a {
                return None;
            }
            entries += r.entries().filter(|e| e.seq() > a).count() as u64;
            seen.insert(r.src(), r.to());
        }
        Some(Plan { entries })
    }
}

#[cfg(test)]
mod tests {
    use super::super::record::{RecordWriter, Slot};
    use super::*;
    use crate::wire::{Fields, Kind, Packet};

    fn record(src: u16, prev: u64, to: u64, seqs: &[u64], recipients: &[u32]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut w = RecordWriter::begin(&mut out, src, 0, prev);
        let slots: Vec<Slot> = recipients
            .iter()
            .map(|&recipient| Slot {
                recipient,
                dist2: 1,
                flags: 0,
            })
            .collect();
        for &seq in seqs {
            let f = Fields {
                kind: Kind::Empty as u8,
                seq,
                ..Fields::default()
            };
            w.entry(&mut out, &f, &slots);
        }
        w.finish(&mut out, to);
        out
    }

    #[test]
    fn host_seq_numbers_entries_and_the_queue_polls_across_calls() {
        let mut inc = Incoming::new(0, 2);
        let mut c = Counters::default();
        let a = record(1, 0, 2, &[1, 2], &[3, 4]);
        assert_eq!(inc.apply(&a, Some(4), 100, &mut c), Ok(Applied::Digs(2)));
        let b = record(1, 2, 5, &[5], &[4]);
        assert_eq!(inc.apply(&b, Some(2), 100, &mut c), Ok(Applied::Digs(1)));
        assert_eq!(
            (inc.next_host_seq(), inc.log_position(), c.packets),
            (4, 4, 5)
        );
        assert_eq!(inc.queue.pending(), 5);
        let mut three = vec![0u8; 3 * SIZE];
        inc.queue.copy_out(3, &mut three);
        inc.queue.advance(3);
        let rest = inc.queue.pending_bytes();
        let all: Vec<(u64, u32)> = three
            .chunks_exact(SIZE)
            .chain(rest.chunks_exact(SIZE))
            .map(|p| {
                let p = Packet::new_checked(p).unwrap();
                (p.seq(), p.recipient())
            })
            .collect();
        assert_eq!(all, vec![(1, 3), (1, 4), (2, 3), (2, 4), (3, 4)]);
        assert_eq!(inc.applied().collect::<Vec<_>>(), vec![(1, 5)]);
    }

    #[test]
    fn a_gap_after_valid_records_changes_nothing() {
        let mut inc = Incoming::new(0, 2);
        let mut c = Counters::default();
        let s = [record(1, 0, 2, &[1], &[3]), record(1, 3, 4, &[4], &[3])].concat();
        assert_eq!(inc.apply(&s, Some(1), 100, &mut c), Ok(Applied::Gap));
        assert_eq!(inc.counters, ClusterCounters::default());
        assert_eq!(
            (inc.next_host_seq(), inc.log_position(), c.packets),
            (1, 0, 0)
        );
        assert_eq!(inc.queue.pending(), 0);
        assert!(inc.applied().next().is_none());
    }
}
