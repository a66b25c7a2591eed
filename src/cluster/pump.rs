//! `link:pump(r)`: records from the resolver to the link, and deliveries
//! from the link to the resolver in stream order. The one file that needs
//! the core's cluster mode (`Resolver::take_records`, `apply_records`):
//! it reaches them only through [`Records`], so the rest of the binding
//! does not depend on them.
//!
//! The hold rule. Deliveries are applied in stream order. A message the
//! resolver refuses with `gap` (a record of its source before it is still
//! missing: its publisher resent an earlier record after a later one, see
//! the transport's header) stays held, and the walk goes on: a later
//! message from the same source gaps too, one from another source
//! applies; after each message applied past a held one, the walk restarts
//! at the oldest held message, so a held record applies right after its
//! predecessor. `busy` holds that message and everything after it until
//! the next pump. Which message applies when depends only on the stream's
//! order, never on pump timing, so a replay gives the same packets.
//!
//! Back-pressure. A pump takes the resolver's records only while the link
//! has room (fewer than `max_unacked` records wait for their ack); else it
//! leaves them with the resolver, whose busy rule counts them and refuses
//! new digs, so a slow or unreachable server bounds the records in memory
//! instead of growing the link's queue. It still applies deliveries.
//!
//! `log_position` handed with each message is the highest stream sequence
//! `p` such that every delivered message up to `p` is applied: the message's
//! own sequence when nothing before it is held, else just below the oldest
//! held one; so restoring a snapshot and connecting `from = log_position`
//! never skips a held message (one applied past it comes again and is a
//! duplicate).

use std::collections::VecDeque;

use treasure_cluster::messages::{ErrorKind, Function};
use treasure_cluster::{record_route, Delivery, Link, RECORD_HEADER};
use treasure_core::Resolver;

use crate::error::{self, Fail};

/// What `apply_records` answered (treasure-core's `Applied`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    Digs(u64),
    Gap,
    Busy,
}

/// The two methods of a cluster-mode resolver that pump uses.
pub trait Records {
    /// Appends the records of every resolved dig call to `out`; their count.
    fn take_records(&mut self, out: &mut Vec<u8>) -> Result<usize, Fail>;
    /// Applies concatenated records (whole or nothing).
    fn apply_records(&mut self, bytes: &[u8], log_position: Option<u64>) -> Result<Applied, Fail>;
}

impl Records for Resolver {
    fn take_records(&mut self, out: &mut Vec<u8>) -> Result<usize, Fail> {
        Ok(Resolver::take_records(self, out)?)
    }

    fn apply_records(&mut self, bytes: &[u8], log_position: Option<u64>) -> Result<Applied, Fail> {
        Ok(match Resolver::apply_records(self, bytes, log_position)? {
            treasure_core::Applied::Digs(n) => Applied::Digs(n),
            treasure_core::Applied::Gap => Applied::Gap,
            treasure_core::Applied::Busy => Applied::Busy,
        })
    }
}

/// Where records go and deliveries come from (a [`Link`]; a fake in tests).
pub trait Transport {
    /// Refuses a record `send` would refuse, queueing nothing.
    fn check(&self, record: &[u8]) -> Result<(), Fail>;
    fn send(&mut self, record: Vec<u8>) -> Result<(), Fail>;
    fn try_recv(&mut self) -> Option<Delivery>;
    /// Room for more records (see the back-pressure rule above).
    fn has_room(&self) -> bool;
}

impl Transport for Link {
    fn check(&self, record: &[u8]) -> Result<(), Fail> {
        self.check_record(record).map(|_| ()).map_err(|e| {
            // Reported for pump, the function the caller called.
            Fail::Cluster(treasure_cluster::Error::new(Function::Pump, e.kind))
        })
    }

    fn send(&mut self, record: Vec<u8>) -> Result<(), Fail> {
        Link::send(self, record)
            .map_err(|e| Fail::Cluster(treasure_cluster::Error::new(Function::Pump, e.kind)))
    }

    fn try_recv(&mut self) -> Option<Delivery> {
        Link::try_recv(self)
    }

    fn has_room(&self) -> bool {
        Link::has_room(self)
    }
}

/// A link's side of pump: the held deliveries and the counters.
#[derive(Debug, Default)]
pub struct Held {
    /// Received, not yet applied, in stream order.
    queue: VecDeque<Delivery>,
    /// The highest stream sequence applied so far.
    max_applied: u64,
    scratch: Vec<u8>,
    /// Records moved from resolvers to the link.
    pub sent: u64,
    /// Digs applied through this link.
    pub applied: u64,
    /// Messages applied (duplicates included).
    pub messages: u64,
    /// `gap` answers (a held message is tried again after each message
    /// applied past it, and on every pump, so it may count several times).
    pub gaps: u64,
    /// `busy` answers.
    pub busy: u64,
    /// Pumps that left the resolver's records with it because the link had
    /// no room.
    pub deferred: u64,
}

impl Held {
    /// Messages held now.
    pub fn held(&self) -> usize {
        self.queue.len()
    }
}

/// Cuts concatenated records at their `length` fields.
fn cut(bytes: &[u8]) -> Result<Vec<&[u8]>, Fail> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let rest = &bytes[at..];
        let len = if rest.len() >= RECORD_HEADER {
            u32::from_le_bytes([rest[32], rest[33], rest[34], rest[35]]) as usize
        } else {
            0
        };
        if len < RECORD_HEADER || len > rest.len() || record_route(rest).is_none() {
            return Err(error::cluster(
                Function::Pump,
                ErrorKind::MalformedRecords { at },
            ));
        }
        out.push(&rest[..len]);
        at += len;
    }
    Ok(out)
}

/// One pump: moves r's records to `t`, then applies what `t` delivered.
/// Returns (records sent, digs applied).
pub fn pump<R: Records, T: Transport>(
    held: &mut Held,
    t: &mut T,
    r: &mut R,
) -> Result<(u64, u64), Fail> {
    let mut scratch = std::mem::take(&mut held.scratch);
    scratch.clear();
    let taken = if t.has_room() {
        r.take_records(&mut scratch)
    } else {
        held.deferred += 1;
        Ok(0)
    };
    let sent = taken.and_then(|_| {
        let records = cut(&scratch)?;
        for rec in &records {
            t.check(rec)?;
        }
        for rec in &records {
            t.send(rec.to_vec())?;
        }
        Ok(records.len() as u64)
    });
    if scratch.capacity() <= (1 << 20) {
        held.scratch = scratch;
    }
    let sent = sent?;
    held.sent += sent;
    while let Some(d) = t.try_recv() {
        held.queue.push_back(d);
    }
    let applied = apply_held(held, r)?;
    Ok((sent, applied))
}

/// The hold rule of the module header.
fn apply_held<R: Records>(held: &mut Held, r: &mut R) -> Result<u64, Fail> {
    let mut applied = 0;
    let mut i = 0;
    while i < held.queue.len() {
        let seq = held.queue[i].stream_seq;
        let position = if i == 0 {
            let hi = seq.max(held.max_applied);
            match held.queue.get(1) {
                Some(next) => hi.min(next.stream_seq - 1),
                None => hi,
            }
        } else {
            held.queue[0].stream_seq - 1
        };
        match r.apply_records(&held.queue[i].bytes, Some(position))? {
            Applied::Digs(n) => {
                applied += n;
                held.applied += n;
                held.messages += 1;
                held.max_applied = held.max_applied.max(seq);
                held.queue.remove(i);
                i = 0;
            }
            Applied::Gap => {
                held.gaps += 1;
                i += 1;
            }
            Applied::Busy => {
                held.busy += 1;
                break;
            }
        }
    }
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// The spec's dedupe and order rule on (src, prev, to) records, with a
    /// busy switch; logs what it applied and the positions it was given.
    #[derive(Default)]
    struct FakeResolver {
        applied_to: HashMap<u16, u64>,
        log: Vec<(u16, u64)>,
        positions: Vec<u64>,
        busy: bool,
        outgoing: Vec<u8>,
    }

    fn rec(src: u16, prev: u64, to: u64) -> Vec<u8> {
        let mut r = vec![0u8; RECORD_HEADER];
        r[6..8].copy_from_slice(&src.to_le_bytes());
        r[16..24].copy_from_slice(&prev.to_le_bytes());
        r[24..32].copy_from_slice(&to.to_le_bytes());
        r[32..36].copy_from_slice(&(RECORD_HEADER as u32).to_le_bytes());
        r
    }

    impl Records for FakeResolver {
        fn take_records(&mut self, out: &mut Vec<u8>) -> Result<usize, Fail> {
            out.extend_from_slice(&self.outgoing);
            let n = self.outgoing.len() / RECORD_HEADER;
            self.outgoing.clear();
            Ok(n)
        }

        fn apply_records(&mut self, b: &[u8], pos: Option<u64>) -> Result<Applied, Fail> {
            if self.busy {
                return Ok(Applied::Busy);
            }
            let src = u16::from_le_bytes([b[6], b[7]]);
            let prev = u64::from_le_bytes(b[16..24].try_into().unwrap());
            let to = u64::from_le_bytes(b[24..32].try_into().unwrap());
            let a = self.applied_to.entry(src).or_default();
            if to <= *a {
                self.positions.extend(pos);
                return Ok(Applied::Digs(0));
            }
            if prev > *a {
                return Ok(Applied::Gap);
            }
            *a = to;
            self.log.push((src, to));
            self.positions.extend(pos);
            Ok(Applied::Digs(1))
        }
    }

    #[derive(Default)]
    struct FakeLink {
        inbox: VecDeque<Delivery>,
        sent: Vec<Vec<u8>>,
        full: bool,
    }

    impl Transport for FakeLink {
        fn check(&self, record: &[u8]) -> Result<(), Fail> {
            if record[6] == 9 {
                return Err(error::cluster(Function::Pump, ErrorKind::Closed));
            }
            Ok(())
        }
        fn send(&mut self, record: Vec<u8>) -> Result<(), Fail> {
            self.sent.push(record);
            Ok(())
        }
        fn try_recv(&mut self) -> Option<Delivery> {
            self.inbox.pop_front()
        }
        fn has_room(&self) -> bool {
            !self.full
        }
    }

    /// A pump's state, a link and a resolver, all empty.
    fn parts() -> (Held, FakeLink, FakeResolver) {
        (
            Held::default(),
            FakeLink::default(),
            FakeResolver::default(),
        )
    }

    fn deliver(l: &mut FakeLink, seq: u64, bytes: Vec<u8>) {
        l.inbox.push_back(Delivery {
            stream_seq: seq,
            bytes,
        });
    }

    #[test]
    fn in_order_messages_apply_with_their_own_sequence() {
        let (mut h, mut l, mut r) = parts();
        deliver(&mut l, 3, rec(1, 0, 5));
        deliver(&mut l, 7, rec(2, 0, 2));
        deliver(&mut l, 8, rec(1, 5, 9));
        assert_eq!(pump(&mut h, &mut l, &mut r).unwrap(), (0, 3));
        assert_eq!(r.log, [(1, 5), (2, 2), (1, 9)]);
        assert_eq!(r.positions, [3, 7, 8]);
        assert_eq!(h.held(), 0);
    }

    #[test]
    fn a_gap_waits_for_its_predecessor_and_positions_never_skip_it() {
        let (mut h, mut l, mut r) = parts();
        // Source 1 resent record (0, 5] after (5, 9]: the stream has them reversed.
        deliver(&mut l, 10, rec(1, 5, 9));
        deliver(&mut l, 11, rec(2, 0, 4));
        assert_eq!(pump(&mut h, &mut l, &mut r).unwrap(), (0, 1));
        assert_eq!(r.log, [(2, 4)]);
        assert_eq!(r.positions, [9], "below the held message");
        // Tried again after the message past it applied: two gap answers.
        assert_eq!((h.held(), h.gaps), (1, 2));
        deliver(&mut l, 12, rec(2, 4, 6));
        deliver(&mut l, 13, rec(1, 0, 5));
        deliver(&mut l, 14, rec(1, 9, 12));
        assert_eq!(pump(&mut h, &mut l, &mut r).unwrap(), (0, 4));
        assert_eq!(r.log, [(2, 4), (2, 6), (1, 5), (1, 9), (1, 12)]);
        assert_eq!(r.positions, [9, 9, 9, 13, 14]);
        assert_eq!(h.held(), 0);
    }

    #[test]
    fn busy_holds_everything_until_the_next_pump() {
        let (mut h, mut l, mut r) = parts();
        deliver(&mut l, 1, rec(1, 0, 1));
        deliver(&mut l, 2, rec(1, 1, 2));
        r.busy = true;
        assert_eq!(pump(&mut h, &mut l, &mut r).unwrap(), (0, 0));
        assert_eq!((h.held(), h.busy), (2, 1));
        r.busy = false;
        assert_eq!(pump(&mut h, &mut l, &mut r).unwrap(), (0, 2));
        assert_eq!(r.log, [(1, 1), (1, 2)]);
        // A duplicate applies (0 digs) and is not held.
        deliver(&mut l, 3, rec(1, 0, 1));
        assert_eq!(pump(&mut h, &mut l, &mut r).unwrap(), (0, 0));
        assert_eq!((h.held(), h.messages), (0, 3));
    }

    #[test]
    fn records_are_cut_and_checked_before_any_is_sent() {
        let (mut h, mut l, mut r) = parts();
        r.outgoing = [rec(0, 0, 1), rec(0, 1, 2)].concat();
        assert_eq!(pump(&mut h, &mut l, &mut r).unwrap(), (2, 0));
        assert_eq!(l.sent, [rec(0, 0, 1), rec(0, 1, 2)]);
        r.outgoing = [rec(0, 2, 3), rec(9, 0, 1)].concat();
        assert!(pump(&mut h, &mut l, &mut r).is_err());
        assert_eq!(l.sent.len(), 2, "nothing of a refused batch is sent");
        let mut bad = rec(0, 0, 1);
        bad[32] = 39;
        assert!(cut(&bad).is_err());
        assert!(cut(&bad[..20]).is_err());
        assert_eq!(cut(&[]).unwrap().len(), 0);
    }

    /// A link without room: the pump takes none of the resolver's records
    /// (they stay with it, where its busy rule counts them), still applies
    /// what was delivered, and counts the deferral; with room again the
    /// next pump takes them all, in order.
    #[test]
    fn a_full_link_leaves_the_records_with_the_resolver() {
        let (mut h, mut l, mut r) = parts();
        r.outgoing = [rec(0, 0, 1), rec(0, 1, 2)].concat();
        l.full = true;
        deliver(&mut l, 1, rec(1, 0, 4));
        assert_eq!(pump(&mut h, &mut l, &mut r).unwrap(), (0, 1));
        assert!(l.sent.is_empty());
        assert_eq!(r.outgoing, [rec(0, 0, 1), rec(0, 1, 2)].concat());
        assert_eq!((h.deferred, h.sent), (1, 0));
        assert_eq!(pump(&mut h, &mut l, &mut r).unwrap(), (0, 0));
        assert_eq!(h.deferred, 2);
        l.full = false;
        assert_eq!(pump(&mut h, &mut l, &mut r).unwrap(), (2, 0));
        assert_eq!(l.sent, [rec(0, 0, 1), rec(0, 1, 2)]);
        assert!(r.outgoing.is_empty());
        assert_eq!((h.deferred, h.sent), (2, 2));
    }
}
