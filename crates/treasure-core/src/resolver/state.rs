//! `r:snapshot()` and `treasure.restore(snapshot)`: the whole state out as
//! plain data, and a resolver back from it (docs/API.md, "Snapshot, restore
//! and swap"). The data and its validation are `crate::snapshot`.

use crate::cluster::record::{Expect, Record};
use crate::contract::limits::SNAPSHOT_VERSION;
use crate::contract::{Error, Method};
use crate::roll::LootTable;
use crate::snapshot::{
    self, ClusterSnapshot, LootTableSnapshot, PlayerSnapshot, ShardSeq, SiteSnapshot, Snapshot,
};
use crate::world::Site;

use super::Resolver;

impl Resolver {
    /// `r:snapshot()`: waits for every accepted dig (like `flush`), then
    /// returns the whole state, lists sorted by id. Changes nothing: the
    /// pending packets are copied, not taken.
    ///
    /// # Errors
    ///
    /// Closed, or a worker panic (reported for `snapshot`).
    pub fn snapshot(&mut self) -> Result<Snapshot, Error> {
        let m = Method::Snapshot;
        let open = self.open(m)?;
        open.stream.wait_all(&mut open.counters);
        open.stream.check_failed(m)?;
        open.cut_resolved_calls();
        let settled = super::Ruler::settle(&open.stream.shared, &mut open.counters);
        let cluster = open.cluster.as_deref();
        let sites = &settled.sites;
        let mut s = Snapshot {
            version: SNAPSHOT_VERSION,
            options: open.options.clone(),
            loot_tables: sites
                .tables
                .iter()
                .map(|(&id, t)| LootTableSnapshot {
                    id,
                    entries: t.entries().to_vec(),
                })
                .collect(),
            sites: sites
                .by_block
                .values()
                .map(|s| SiteSnapshot {
                    id: s.id,
                    x: s.x,
                    y: s.y,
                    z: s.z,
                    loot_table_id: s.loot_table,
                    charges: s.charges,
                })
                .collect(),
            players: open
                .players
                .iter()
                .map(|p| PlayerSnapshot {
                    id: p.id,
                    x: p.x,
                    y: p.y,
                    z: p.z,
                    party: p.party,
                    host: cluster.map(|_| open.players.host_of_joined(p.id)),
                })
                .collect(),
            next_seq: open.counters.digs + 1,
            counters: open.counters,
            pending: match cluster {
                Some(c) => c.incoming.queue.pending_bytes(),
                None => open.stream.pending_bytes(),
            },
            cluster: cluster.map(|c| ClusterSnapshot {
                next_host_seq: c.incoming.next_host_seq(),
                log_position: c.incoming.log_position(),
                applied: c
                    .incoming
                    .applied()
                    .map(|(shard, seq)| ShardSeq { shard, seq })
                    .collect(),
                sent: c
                    .outgoing
                    .sent()
                    .map(|(shard, seq)| ShardSeq { shard, seq })
                    .collect(),
                outgoing: c.outgoing.pending_bytes().to_vec(),
                counters: c.incoming.counters,
            }),
        };
        snapshot::sort(&mut s);
        Ok(s)
    }

    /// `treasure.restore(snapshot)`: a new open resolver in exactly the
    /// state the snapshot describes. Everything is validated first
    /// ([`snapshot::validate`]); on an error nothing is built (no worker
    /// thread is started). Restored pending packets are delivered first, in
    /// order; new digs continue at `next_seq` and `stats()` continues from
    /// the counters.
    ///
    /// # Errors
    ///
    /// The first rule the snapshot breaks, or [`ErrorKind::Internal`] when
    /// the worker threads cannot be started (both reported for `restore`).
    ///
    /// [`ErrorKind::Internal`]: crate::ErrorKind::Internal
    pub fn restore(s: Snapshot) -> Result<Resolver, Error> {
        snapshot::validate(&s)?;
        // The options were validated, so only the environment can fail here.
        let mut r = Resolver::new(s.options).map_err(|e| e.for_method(Method::Restore))?;
        let open = r.open.as_deref_mut().expect("a new resolver is open");
        let mut settled = open.settled();
        for t in &s.loot_tables {
            settled.sites.insert_table(t.id, LootTable::new(&t.entries));
        }
        for site in &s.sites {
            settled.sites.insert(Site {
                id: site.id,
                x: site.x,
                y: site.y,
                z: site.z,
                loot_table: site.loot_table_id,
                charges: site.charges,
            });
        }
        drop(settled);
        let players = open.players_mut();
        for p in &s.players {
            players.join(p.id, p.x, p.y, p.z, p.party);
            if let Some(h) = p.host {
                players.set_host(p.id, h);
            }
        }
        // validate() checked next_seq == counters.digs + 1.
        open.counters = s.counters;
        match (open.cluster.as_deref_mut(), &s.cluster) {
            (Some(c), Some(cs)) => {
                let pairs = |v: &[ShardSeq]| v.iter().map(|e| (e.shard, e.seq)).collect::<Vec<_>>();
                let (mut records, mut packets) = (0u64, 0u64);
                let mut rest = &cs.outgoing[..];
                let expect = Expect::From {
                    shard: c.shard,
                    shards: c.shards,
                };
                while let Ok((rec, next)) = Record::new_checked(rest, expect) {
                    records += 1;
                    packets += rec.recipients();
                    rest = next;
                }
                c.outgoing
                    .restore(&pairs(&cs.sent), &cs.outgoing, records, packets);
                c.incoming.restore(
                    cs.next_host_seq,
                    cs.log_position,
                    &pairs(&cs.applied),
                    cs.counters,
                    &s.pending,
                );
            }
            _ => open.stream.restore_pending(&s.pending),
        }
        Ok(r)
    }
}
