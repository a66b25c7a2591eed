//! Players: the part of the world workers read.
//!
//! [`Players`] is what a chunk of digs snapshots: the pipeline keeps it in an
//! `Arc` and mutates it with `Arc::make_mut`, so a mutation while chunks are
//! in flight clones it first (copy-on-write) and workers always read a frozen
//! world. A clone costs one allocation per occupied grid cell and party; it
//! only happens when a player mutation arrives while a chunk still holds the
//! previous snapshot (typically once per tick: `move_batch` after a
//! `dig_batch`), never per dig.
//!
//! Players are stored in dense *slots* (reused through a free list), so the
//! grid and the party lists index plain vectors instead of hashing ids.
//! Parties map to their members' slots so a dig finds far-away party members
//! without scanning every player.

use rustc_hash::FxHashMap;

use super::frozen::{FrozenGrid, FrozenParties};
use super::grid::Grid;
use super::space::{cell_shift_for, dist2, Hit, PlayerView};

#[derive(Clone, Copy, Debug)]
struct PlayerSlot {
    /// 0 when free (player ids are >= 1).
    id: u32,
    party: u32,
    /// Index in `parties[party]` (meaningless when `party == 0`).
    party_idx: u32,
    /// Position, duplicated from the grid so lookups by id and party scans
    /// read one dense array instead of probing the grid's cell map.
    x: i32,
    y: i32,
    z: i32,
}

impl PlayerSlot {
    fn view(&self) -> PlayerView {
        PlayerView {
            id: self.id,
            party: self.party,
            x: self.x,
            y: self.y,
            z: self.z,
        }
    }
}

/// Players, their positions (in the grid) and parties.
#[derive(Clone, Debug)]
pub struct Players {
    by_id: FxHashMap<u32, u32>,
    slots: Vec<PlayerSlot>,
    free: Vec<u32>,
    /// Non-zero party -> slots of its members.
    parties: FxHashMap<u32, Vec<u32>>,
    grid: Grid,
    aoi_radius: u32,
    /// Cluster mode: the shard a player is connected to, for the players
    /// whose host is not [`own_host`](Players::own_host) (the host every
    /// joined player starts with). Empty outside cluster mode, so it costs
    /// nothing there; a copy-on-write snapshot carries it, which is what
    /// makes a dig's hosts the hosts as of the dig.
    hosts: FxHashMap<u32, u16>,
    own_host: u16,
    /// Built on demand by the first worker that resolves a big chunk against
    /// this snapshot; reset by every mutation (see [`Players::freeze`]).
    frozen: FrozenCache,
}

/// A lazily built frozen copy of one snapshot. Cloning gives an empty
/// cache: a clone exists to be mutated (copy-on-write), which would
/// invalidate the copy anyway.
#[derive(Debug, Default)]
struct FrozenCache {
    cell: std::sync::OnceLock<Frozen>,
    /// Set by the one worker that builds; the others do not wait for it.
    claimed: std::sync::atomic::AtomicBool,
}

#[derive(Debug)]
struct Frozen {
    /// `None` when the world is too sparse for a dense grid.
    grid: Option<FrozenGrid>,
    parties: FrozenParties,
}

impl Clone for FrozenCache {
    fn clone(&self) -> Self {
        FrozenCache::default()
    }
}

impl Players {
    pub fn new(aoi_radius: u32) -> Players {
        Players {
            by_id: FxHashMap::default(),
            slots: Vec::new(),
            free: Vec::new(),
            parties: FxHashMap::default(),
            grid: Grid::new(aoi_radius),
            aoi_radius,
            hosts: FxHashMap::default(),
            own_host: 0,
            frozen: FrozenCache::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Sets the host a player has unless [`set_host`](Players::set_host)
    /// says otherwise (a cluster resolver's own shard). Only on an empty
    /// world.
    pub fn set_own_host(&mut self, host: u16) {
        debug_assert!(self.by_id.is_empty());
        self.own_host = host;
    }

    /// The shard player `id` is connected to (`None`: not joined).
    #[inline]
    pub fn host(&self, id: u32) -> Option<u16> {
        if !self.by_id.contains_key(&id) {
            return None;
        }
        Some(self.host_of_joined(id))
    }

    /// The host of a player known to have joined (a recipient of a dig
    /// resolved against this snapshot).
    #[inline]
    pub fn host_of_joined(&self, id: u32) -> u16 {
        if self.hosts.is_empty() {
            return self.own_host;
        }
        self.hosts.get(&id).copied().unwrap_or(self.own_host)
    }

    /// Sets a joined player's host; `false` if unknown.
    pub fn set_host(&mut self, id: u32, host: u16) -> bool {
        if !self.by_id.contains_key(&id) {
            return false;
        }
        if host == self.own_host {
            self.hosts.remove(&id);
        } else {
            self.hosts.insert(id, host);
        }
        true
    }

    #[cfg(any(test, feature = "test-hooks"))]
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    pub fn contains(&self, id: u32) -> bool {
        self.by_id.contains_key(&id)
    }

    pub fn get(&self, id: u32) -> Option<PlayerView> {
        let &slot = self.by_id.get(&id)?;
        Some(self.slots[slot as usize].view())
    }

    /// Adds a player; `false` (and no change) if `id` is already present.
    pub fn join(&mut self, id: u32, x: i32, y: i32, z: i32, party: u32) -> bool {
        if self.by_id.contains_key(&id) {
            return false;
        }
        self.frozen = FrozenCache::default();
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.slots.push(PlayerSlot {
                    id: 0,
                    party: 0,
                    party_idx: 0,
                    x: 0,
                    y: 0,
                    z: 0,
                });
                (self.slots.len() - 1) as u32
            }
        };
        self.slots[slot as usize] = PlayerSlot {
            id,
            party: 0,
            party_idx: 0,
            x,
            y,
            z,
        };
        self.by_id.insert(id, slot);
        self.grid.insert(slot, id, party, x, y, z);
        self.enter_party(slot, party);
        true
    }

    fn enter_party(&mut self, slot: u32, party: u32) {
        let s = &mut self.slots[slot as usize];
        s.party = party;
        if party != 0 {
            let members = self.parties.entry(party).or_default();
            s.party_idx = members.len() as u32;
            members.push(slot);
        }
    }

    fn leave_party(&mut self, slot: u32) {
        let s = self.slots[slot as usize];
        if s.party == 0 {
            return;
        }
        let members = self.parties.get_mut(&s.party).expect("party of a member");
        members.swap_remove(s.party_idx as usize);
        if let Some(&moved) = members.get(s.party_idx as usize) {
            self.slots[moved as usize].party_idx = s.party_idx;
        }
        if members.is_empty() {
            self.parties.remove(&s.party);
        }
        self.slots[slot as usize].party = 0;
    }

    /// Moves a player; `false` if unknown.
    pub fn move_to(&mut self, id: u32, x: i32, y: i32, z: i32) -> bool {
        self.frozen = FrozenCache::default();
        match self.by_id.get(&id) {
            Some(&slot) => {
                self.grid.move_to(slot, x, y, z);
                let s = &mut self.slots[slot as usize];
                (s.x, s.y, s.z) = (x, y, z);
                true
            }
            None => false,
        }
    }

    /// Changes a player's party; `false` if unknown.
    pub fn set_party(&mut self, id: u32, party: u32) -> bool {
        let Some(&slot) = self.by_id.get(&id) else {
            return false;
        };
        self.frozen = FrozenCache::default();
        if self.slots[slot as usize].party != party {
            self.leave_party(slot);
            self.enter_party(slot, party);
            self.grid.set_party(slot, party);
        }
        true
    }

    /// Removes a player; `false` if unknown.
    pub fn leave(&mut self, id: u32) -> bool {
        let Some(slot) = self.by_id.remove(&id) else {
            return false;
        };
        self.frozen = FrozenCache::default();
        self.hosts.remove(&id);
        self.leave_party(slot);
        self.grid.remove(slot);
        self.slots[slot as usize].id = 0;
        self.free.push(slot);
        true
    }

    /// Builds this snapshot's [`FrozenGrid`] (and party table) if nobody
    /// has started to, so that [`query`] uses it from then on. A worker that
    /// finds another one building goes on with the live grid instead of
    /// waiting (a blocked worker would sit out the whole build). Worth it
    /// for a burst only (see `Options::freeze_min_found`): one O(players)
    /// build against a little saved per query.
    ///
    /// [`query`]: Players::query
    pub fn freeze(&self) {
        use std::sync::atomic::Ordering::{AcqRel, Acquire};
        if self.frozen.cell.get().is_some() || self.frozen.claimed.load(Acquire) {
            return;
        }
        if self.frozen.claimed.swap(true, AcqRel) {
            return;
        }
        self.frozen.cell.get_or_init(|| {
            let players = self
                .slots
                .iter()
                .filter(|s| s.id != 0)
                .map(PlayerSlot::view);
            let grid = FrozenGrid::build(players, cell_shift_for(self.aoi_radius));
            let parties = FrozenParties::build(self.parties.iter().map(|(&party, slots)| {
                (
                    party,
                    slots.iter().map(|&slot| self.slots[slot as usize].view()),
                )
            }));
            Frozen { grid, parties }
        });
    }

    /// True when [`freeze`](Players::freeze) built a frozen grid that
    /// queries use.
    #[cfg(any(test, feature = "test-hooks"))]
    pub fn is_frozen(&self) -> bool {
        matches!(self.frozen.cell.get(), Some(Frozen { grid: Some(_), .. }))
    }

    /// Pushes every player within `r` of the block into `out` (from the
    /// frozen grid when built, else the live grid: the same hits).
    #[inline]
    pub fn query(&self, x: i32, y: i32, z: i32, r: u32, out: &mut Vec<Hit>) {
        match self.frozen.cell.get() {
            Some(Frozen { grid: Some(f), .. }) => f.query(x, y, z, r, out),
            _ => self.grid.query(x, y, z, r, out),
        }
    }

    /// Pushes every member of non-zero `party` into `out`, with its squared
    /// distance to the block; with `beyond: Some(r2)`, only those farther
    /// than `sqrt(r2)` (a caller that also queried the AOI of radius
    /// `sqrt(r2)` around the block already has the others, with the same hit).
    pub fn party_members(
        &self,
        party: u32,
        x: i32,
        y: i32,
        z: i32,
        beyond: Option<u64>,
        out: &mut Vec<Hit>,
    ) {
        if party == 0 {
            return;
        }
        if let Some(f) = self.frozen.cell.get() {
            return f.parties.members(party, x, y, z, beyond, out);
        }
        if let Some(members) = self.parties.get(&party) {
            for &slot in members {
                let s = &self.slots[slot as usize];
                let d2 = dist2(s.x, s.y, s.z, x, y, z);
                if beyond.is_none_or(|r2| d2 > r2) {
                    out.push(Hit {
                        id: s.id,
                        party,
                        dist2: d2,
                    });
                }
            }
        }
    }

    /// All players (order unspecified).
    pub fn iter(&self) -> impl Iterator<Item = PlayerView> + '_ {
        self.grid.iter().map(|e| PlayerView {
            id: e.id,
            party: e.party,
            x: e.x,
            y: e.y,
            z: e.z,
        })
    }

    /// Checks internal invariants (tests).
    #[cfg(any(test, feature = "test-hooks"))]
    pub fn check_invariants(&self) {
        self.grid.check_invariants();
        assert_eq!(self.grid.len(), self.by_id.len());
        for (&id, &slot) in &self.by_id {
            let s = self.slots[slot as usize];
            assert_eq!(s.id, id);
            assert_eq!(self.grid.get(slot).id, id);
            let e = self.grid.get(slot);
            assert_eq!((e.party, e.x, e.y, e.z), (s.party, s.x, s.y, s.z));
            if s.party != 0 {
                assert_eq!(self.parties[&s.party][s.party_idx as usize], slot);
            }
        }
        let members: usize = self.parties.values().map(Vec::len).sum();
        assert_eq!(
            members,
            self.slots
                .iter()
                .filter(|s| s.id != 0 && s.party != 0)
                .count()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_start_at_own_shard_and_leave_forgets_them() {
        let mut p = Players::new(8);
        p.set_own_host(2);
        assert!(p.join(1, 0, 0, 0, 0));
        assert!(p.join(2, 0, 0, 0, 0));
        assert_eq!(p.host(1), Some(2));
        assert_eq!(p.host(3), None);
        assert!(p.set_host(1, 0));
        assert!(!p.set_host(3, 0));
        assert_eq!((p.host(1), p.host(2)), (Some(0), Some(2)));
        // A copy taken now keeps the host it had.
        let before = p.clone();
        assert!(p.set_host(1, 1));
        assert_eq!((before.host(1), p.host(1)), (Some(0), Some(1)));
        assert!(p.leave(1));
        assert_eq!(p.host(1), None);
        assert!(p.join(1, 5, 5, 5, 0));
        assert_eq!(p.host(1), Some(2));
        assert!(p.set_host(2, 2));
        assert!(p.hosts.is_empty());
    }

    #[test]
    fn parties_follow_joins_moves_leaves() {
        let mut p = Players::new(16);
        assert!(p.join(1, 0, 0, 0, 5));
        assert!(p.join(2, 1000, 0, 0, 5));
        assert!(p.join(3, 2000, 0, 0, 0));
        assert!(!p.join(1, 9, 9, 9, 0));
        let mut out = Vec::new();
        p.party_members(5, 0, 0, 0, None, &mut out);
        out.sort_by_key(|h| h.id);
        assert_eq!(out.iter().map(|h| h.id).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(out[1].dist2, 1_000_000);
        // Only the members beyond a radius (d2 > r2): the AOI has the others.
        for (r2, ids) in [(999_999, &[2][..]), (1_000_000, &[][..])] {
            out.clear();
            p.party_members(5, 0, 0, 0, Some(r2), &mut out);
            assert_eq!(out.iter().map(|h| h.id).collect::<Vec<_>>(), ids);
        }
        assert!(p.set_party(1, 6));
        assert!(p.set_party(3, 5));
        assert!(p.leave(2));
        assert!(!p.leave(2));
        assert!(p.join(4, -5, -5, -5, 5));
        out.clear();
        p.party_members(5, 0, 0, 0, None, &mut out);
        out.sort_by_key(|h| h.id);
        assert_eq!(out.iter().map(|h| h.id).collect::<Vec<_>>(), [3, 4]);
        assert!(p.move_to(4, 7, 7, 7));
        assert_eq!(
            p.get(4),
            Some(PlayerView {
                id: 4,
                party: 5,
                x: 7,
                y: 7,
                z: 7
            })
        );
        p.check_invariants();
        assert_eq!(p.len(), 3);
    }
}
