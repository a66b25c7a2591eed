//! `r:snapshot()` and `treasure.restore(snapshot)`: the whole state out as
//! plain data, and a resolver back from it (docs/API.md, "Snapshot, restore
//! and swap"). The data and its validation are `crate::snapshot`.

use crate::contract::limits::SNAPSHOT_VERSION;
use crate::contract::{Error, Method};
use crate::roll::LootTable;
use crate::snapshot::{self, LootTableSnapshot, PlayerSnapshot, SiteSnapshot, Snapshot};
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
        let sites = &open.sites;
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
                })
                .collect(),
            next_seq: open.counters.digs + 1,
            counters: open.counters,
            pending: open.stream.pending_bytes(),
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
        for t in &s.loot_tables {
            open.sites.insert_table(t.id, LootTable::new(&t.entries));
        }
        for site in &s.sites {
            open.sites.insert(Site {
                id: site.id,
                x: site.x,
                y: site.y,
                z: site.z,
                loot_table: site.loot_table_id,
                charges: site.charges,
            });
        }
        let players = open.players_mut();
        for p in &s.players {
            players.join(p.id, p.x, p.y, p.z, p.party);
        }
        // validate() checked next_seq == counters.digs + 1.
        open.counters = s.counters;
        open.stream.restore_pending(&s.pending);
        Ok(r)
    }
}
