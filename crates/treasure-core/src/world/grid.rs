//! Uniform 3-D grid for area-of-interest (AOI) queries.
//!
//! Space is cut into cubic cells of `2^shift` blocks (a power of two so the
//! cell of a coordinate is an arithmetic shift, i.e. floor division, also for
//! negative coordinates). The cell size is the AOI radius rounded up to a
//! power of two, at least 16 and at most 2^20: a query then touches at most
//! 3 cells per axis, and cells are small enough that few players outside the
//! sphere are examined.
//!
//! Occupied cells live in an `FxHashMap` keyed by the packed cell coordinates
//! (coordinates are in [-2^20, 2^20), so a cell coordinate plus 2^20 fits in
//! 21 bits, three of them in a `u64`). Each cell is a `Vec` of entries that
//! carry everything a query needs (id, party, position) so a query reads
//! contiguous memory and never chases a pointer per player. Players are
//! addressed by a *slot* (a small dense index chosen by the owner, see
//! `players.rs`); `loc[slot]` is the back-index (cell key, index in the cell),
//! which makes insert, remove and move O(1) (`swap_remove` + fixing the
//! back-index of the entry that moved). Empty cells are removed so memory
//! follows the population and "iterate occupied cells" stays accurate.
//!
//! A query visits the cells overlapping the bounding box of the AOI sphere,
//! skipping cells whose nearest point is already out of range, or, when the
//! box spans more cells than are occupied (huge radius), iterates the occupied
//! cells instead. Distances are exact (`i64` differences, `u64` squares).
//! Results are pushed into a caller-provided `Vec`: no allocation per query
//! once the vector has grown.

use rustc_hash::FxHashMap;

use super::space::{
    axis_dist2, cell_shift_for, dist2, for_each_row, pack_xyz, Hit, MAX_CELL_SHIFT,
};
use crate::contract::limits::{COORD_MAX, COORD_MIN};

const NO_CELL: u64 = u64::MAX;

/// One player as stored in a grid cell: everything a query reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GridPlayer {
    pub id: u32,
    pub party: u32,
    pub x: i32,
    pub y: i32,
    pub z: i32,
    slot: u32,
}

#[derive(Clone, Copy, Debug)]
struct Loc {
    key: u64,
    idx: u32,
}

/// The AOI grid. Cheap to clone relative to rebuilding (one allocation per
/// occupied cell); the pipeline clones it only on copy-on-write.
#[derive(Clone, Debug)]
pub struct Grid {
    shift: u32,
    cells: FxHashMap<u64, Vec<GridPlayer>>,
    loc: Vec<Loc>,
    len: usize,
    /// Grow-only bounding box of every cell ever occupied (min, max cell
    /// coordinate per axis). Queries clamp their cell box to it, so e.g. a
    /// world whose players all live in one layer of cells in y visits one
    /// layer, not three. Never shrinks (a superset is still correct).
    bounds: [(i64, i64); 3],
}

impl Grid {
    /// A grid tuned for queries of `aoi_radius`.
    pub fn new(aoi_radius: u32) -> Grid {
        Grid::with_shift(cell_shift_for(aoi_radius))
    }

    /// A grid with cells of `2^shift` blocks (`shift` is clamped to 0..=20);
    /// mainly for tests of cell borders.
    pub fn with_shift(shift: u32) -> Grid {
        Grid {
            shift: shift.min(MAX_CELL_SHIFT),
            cells: FxHashMap::default(),
            loc: Vec::new(),
            len: 0,
            bounds: [(i64::MAX, i64::MIN); 3],
        }
    }

    /// Cell edge length in blocks.
    #[cfg(any(test, feature = "test-hooks"))]
    pub fn cell_size(&self) -> u32 {
        1 << self.shift
    }

    /// Players in the grid.
    #[cfg(any(test, feature = "test-hooks"))]
    pub fn len(&self) -> usize {
        self.len
    }

    #[cfg(any(test, feature = "test-hooks"))]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Occupied cells.
    #[cfg(any(test, feature = "test-hooks"))]
    pub fn occupied_cells(&self) -> usize {
        self.cells.len()
    }

    #[inline]
    fn cell_of(&self, v: i32) -> i64 {
        (v >> self.shift) as i64
    }

    #[inline]
    fn key_of(&self, x: i32, y: i32, z: i32) -> u64 {
        pack_xyz(self.cell_of(x), self.cell_of(y), self.cell_of(z))
    }

    /// True when `slot` holds a player.
    #[cfg(any(test, feature = "test-hooks"))]
    pub fn contains(&self, slot: u32) -> bool {
        self.loc
            .get(slot as usize)
            .is_some_and(|l| l.key != NO_CELL)
    }

    /// The entry of `slot`. Panics if the slot is empty (an owner bug).
    #[cfg(any(test, feature = "test-hooks"))]
    pub fn get(&self, slot: u32) -> &GridPlayer {
        let l = self.loc[slot as usize];
        &self.cells[&l.key][l.idx as usize]
    }

    /// Adds a player in a free `slot`. Coordinates must be in range.
    pub fn insert(&mut self, slot: u32, id: u32, party: u32, x: i32, y: i32, z: i32) {
        debug_assert!([x, y, z]
            .iter()
            .all(|v| (COORD_MIN..=COORD_MAX).contains(v)));
        if self.loc.len() <= slot as usize {
            self.loc.resize(
                slot as usize + 1,
                Loc {
                    key: NO_CELL,
                    idx: 0,
                },
            );
        }
        assert!(self.loc[slot as usize].key == NO_CELL, "slot in use");
        let key = self.key_of(x, y, z);
        self.push(
            key,
            GridPlayer {
                id,
                party,
                x,
                y,
                z,
                slot,
            },
        );
        self.len += 1;
    }

    fn grow_bounds(&mut self, x: i32, y: i32, z: i32) {
        for (b, v) in self.bounds.iter_mut().zip([x, y, z]) {
            let c = (v >> self.shift) as i64;
            b.0 = b.0.min(c);
            b.1 = b.1.max(c);
        }
    }

    fn push(&mut self, key: u64, e: GridPlayer) {
        self.grow_bounds(e.x, e.y, e.z);
        let cell = self.cells.entry(key).or_default();
        self.loc[e.slot as usize] = Loc {
            key,
            idx: cell.len() as u32,
        };
        cell.push(e);
    }

    fn take(&mut self, slot: u32) -> GridPlayer {
        let l = self.loc[slot as usize];
        assert!(l.key != NO_CELL, "slot not in use");
        let cell = self.cells.get_mut(&l.key).expect("cell of a live slot");
        let e = cell.swap_remove(l.idx as usize);
        if let Some(moved) = cell.get(l.idx as usize) {
            self.loc[moved.slot as usize].idx = l.idx;
        }
        if cell.is_empty() {
            self.cells.remove(&l.key);
        }
        self.loc[slot as usize].key = NO_CELL;
        e
    }

    /// Removes the player in `slot`; returns its entry.
    pub fn remove(&mut self, slot: u32) -> GridPlayer {
        let e = self.take(slot);
        self.len -= 1;
        e
    }

    /// Moves the player in `slot`. O(1); only touches the cell vectors when
    /// the cell changes.
    pub fn move_to(&mut self, slot: u32, x: i32, y: i32, z: i32) {
        let l = self.loc[slot as usize];
        let key = self.key_of(x, y, z);
        if key == l.key {
            let e = &mut self.cells.get_mut(&key).expect("cell of a live slot")[l.idx as usize];
            e.x = x;
            e.y = y;
            e.z = z;
        } else {
            let mut e = self.take(slot);
            e.x = x;
            e.y = y;
            e.z = z;
            self.push(key, e);
        }
    }

    /// Changes the party stored with the player in `slot`.
    pub fn set_party(&mut self, slot: u32, party: u32) {
        let l = self.loc[slot as usize];
        self.cells.get_mut(&l.key).expect("cell of a live slot")[l.idx as usize].party = party;
    }

    /// Pushes every player with `dist2(player, (x, y, z)) <= r^2` into `out`
    /// (which is not cleared), in no particular order.
    pub fn query(&self, x: i32, y: i32, z: i32, r: u32, out: &mut Vec<Hit>) {
        if self.len == 0 {
            return;
        }
        let r2 = (r as u64) * (r as u64);
        let (x64, y64, z64) = (x as i64, y as i64, z as i64);
        let r64 = r as i64;
        let b = &self.bounds;
        let lo = |v: i64, a: usize| ((v - r64).max(COORD_MIN as i64) >> self.shift).max(b[a].0);
        let hi = |v: i64, a: usize| ((v + r64).min(COORD_MAX as i64) >> self.shift).min(b[a].1);
        let (x0, x1) = (lo(x64, 0), hi(x64, 0));
        let (y0, y1) = (lo(y64, 1), hi(y64, 1));
        let (z0, z1) = (lo(z64, 2), hi(z64, 2));
        if x0 > x1 || y0 > y1 || z0 > z1 {
            return;
        }
        let boxed = ((x1 - x0 + 1) as u64) * ((y1 - y0 + 1) as u64) * ((z1 - z0 + 1) as u64);
        let scan = |cell: &Vec<GridPlayer>, out: &mut Vec<Hit>| {
            for e in cell {
                let d2 = dist2(e.x, e.y, e.z, x, y, z);
                if d2 <= r2 {
                    out.push(Hit {
                        id: e.id,
                        party: e.party,
                        dist2: d2,
                    });
                }
            }
        };
        if boxed > self.cells.len() as u64 {
            for cell in self.cells.values() {
                scan(cell, out);
            }
            return;
        }
        let shift = self.shift;
        for_each_row((y64, y0, y1), (z64, z0, z1), shift, r2, |cz, cy, dyz| {
            for cx in x0..=x1 {
                if dyz + axis_dist2(x64, cx, shift) > r2 {
                    continue;
                }
                if let Some(cell) = self.cells.get(&pack_xyz(cx, cy, cz)) {
                    scan(cell, out);
                }
            }
        });
    }

    /// Iterates every entry (test and debugging aid).
    pub fn iter(&self) -> impl Iterator<Item = &GridPlayer> {
        self.cells.values().flatten()
    }

    /// Checks the internal invariants (tests).
    #[cfg(any(test, feature = "test-hooks"))]
    pub fn check_invariants(&self) {
        let mut n = 0;
        for (&key, cell) in &self.cells {
            assert!(!cell.is_empty());
            for (i, e) in cell.iter().enumerate() {
                assert_eq!(self.key_of(e.x, e.y, e.z), key);
                let l = self.loc[e.slot as usize];
                assert_eq!((l.key, l.idx as usize), (key, i));
                n += 1;
            }
        }
        assert_eq!(n, self.len);
        assert_eq!(
            self.loc.iter().filter(|l| l.key != NO_CELL).count(),
            self.len
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::roll::splitmix64;

    /// (id, party, x, y, z)
    type P = (u32, u32, i32, i32, i32);

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(1);
            splitmix64(self.0)
        }
        fn range(&mut self, lo: i64, hi: i64) -> i64 {
            lo + (self.next() % ((hi - lo + 1) as u64)) as i64
        }
    }

    fn brute(players: &[Option<P>], x: i32, y: i32, z: i32, r: u32) -> Vec<Hit> {
        let r2 = r as u64 * r as u64;
        let mut v: Vec<Hit> = players
            .iter()
            .flatten()
            .filter_map(|&(id, party, px, py, pz)| {
                let d = dist2(px, py, pz, x, y, z);
                (d <= r2).then_some(Hit {
                    id,
                    party,
                    dist2: d,
                })
            })
            .collect();
        v.sort_by_key(|h| h.id);
        v
    }

    fn check(
        grid: &Grid,
        players: &[Option<P>],
        x: i32,
        y: i32,
        z: i32,
        r: u32,
        out: &mut Vec<Hit>,
    ) {
        out.clear();
        grid.query(x, y, z, r, out);
        out.sort_by_key(|h| h.id);
        assert_eq!(
            *out,
            brute(players, x, y, z, r),
            "query ({x},{y},{z}) r={r}"
        );
    }

    fn coord(rng: &mut Rng, span: i64) -> i32 {
        match rng.next() % 8 {
            0 => COORD_MIN + rng.range(0, 3) as i32,
            1 => COORD_MAX - rng.range(0, 3) as i32,
            2 => (rng.range(-4, 4) * 16 + rng.range(-1, 1)) as i32,
            _ => rng.range(-span, span) as i32,
        }
    }

    fn random_world(seed: u64, shift: u32, span: i64, n: usize) {
        let mut rng = Rng(seed);
        let mut grid = Grid::with_shift(shift);
        let mut players: Vec<Option<P>> = vec![None; n];
        let mut out = Vec::new();
        for step in 0..n * 20 {
            let slot = (rng.next() % n as u64) as usize;
            let (x, y, z) = (
                coord(&mut rng, span),
                coord(&mut rng, span),
                coord(&mut rng, span),
            );
            match players[slot] {
                None => {
                    let party = (rng.next() % 3) as u32;
                    grid.insert(slot as u32, slot as u32 + 1, party, x, y, z);
                    players[slot] = Some((slot as u32 + 1, party, x, y, z));
                }
                Some(ref mut p) => match rng.next() % 5 {
                    0 => {
                        grid.remove(slot as u32);
                        players[slot] = None;
                    }
                    1 => {
                        p.1 = (rng.next() % 3) as u32;
                        grid.set_party(slot as u32, p.1);
                    }
                    _ => {
                        grid.move_to(slot as u32, x, y, z);
                        (p.2, p.3, p.4) = (x, y, z);
                    }
                },
            }
            if step % 7 == 0 {
                let r = match rng.next() % 6 {
                    0 => 0,
                    1 => 1 << 20,
                    2 => rng.range(0, 3 * span) as u32,
                    _ => rng.range(0, 40) as u32,
                };
                let (x, y, z) = (
                    coord(&mut rng, span),
                    coord(&mut rng, span),
                    coord(&mut rng, span),
                );
                check(&grid, &players, x, y, z, r, &mut out);
                if let Some((_, _, px, py, pz)) = players.iter().flatten().next().copied() {
                    check(&grid, &players, px, py, pz, 0, &mut out);
                    check(
                        &grid,
                        &players,
                        px,
                        py,
                        pz,
                        rng.range(1, 20) as u32,
                        &mut out,
                    );
                }
            }
        }
        grid.check_invariants();
        assert_eq!(grid.len(), players.iter().flatten().count());
    }

    #[test]
    fn matches_brute_force_small_cells() {
        for seed in 0..4 {
            random_world(seed, 4, 64, 200);
        }
    }

    #[test]
    fn matches_brute_force_various_shifts() {
        for (seed, shift) in [(10, 0), (11, 1), (12, 6), (13, 20), (14, 3)] {
            random_world(seed, shift, 100, 150);
        }
    }

    #[test]
    fn crowded_cell_and_borders() {
        let mut grid = Grid::with_shift(4);
        let mut players = Vec::new();
        // 500 players in one cell
        for i in 0..500u32 {
            let p = (i + 1, 0, (i % 16) as i32, ((i / 16) % 16) as i32, 0);
            grid.insert(i, p.0, 0, p.2, p.3, p.4);
            players.push(Some(p));
        }
        // players straddling borders at -1/0 and 15/16
        for (k, &(x, y, z)) in [
            (-1, -1, -1),
            (0, 0, 0),
            (15, 15, 15),
            (16, 16, 16),
            (-16, 0, 0),
            (-17, 0, 0),
        ]
        .iter()
        .enumerate()
        {
            let slot = 500 + k as u32;
            grid.insert(slot, slot + 1, 0, x, y, z);
            players.push(Some((slot + 1, 0, x, y, z)));
        }
        let mut out = Vec::new();
        for &(x, y, z) in &[
            (0, 0, 0),
            (-1, -1, -1),
            (15, 15, 15),
            (16, 0, 0),
            (-16, 0, 0),
            (8, 8, 8),
        ] {
            for r in [0, 1, 2, 15, 16, 17, 31, 100] {
                check(&grid, &players, x, y, z, r, &mut out);
            }
        }
        grid.check_invariants();
        // crowd+(0,0,0)+(15,15,15) share cell 0; the others are 4 more cells.
        assert_eq!(grid.occupied_cells(), 5);
    }

    #[test]
    fn coordinate_limits() {
        let mut grid = Grid::new(1 << 20);
        assert_eq!(grid.cell_size(), 1 << 20);
        let corners = [
            (COORD_MIN, COORD_MIN, COORD_MIN),
            (COORD_MAX, COORD_MAX, COORD_MAX),
            (COORD_MIN, COORD_MAX, COORD_MIN),
            (COORD_MAX, COORD_MIN, 0),
        ];
        let mut players = Vec::new();
        for (i, &(x, y, z)) in corners.iter().enumerate() {
            grid.insert(i as u32, i as u32 + 1, 7, x, y, z);
            players.push(Some((i as u32 + 1, 7, x, y, z)));
        }
        let mut out = Vec::new();
        for &(x, y, z) in &corners {
            for r in [0, 1, 1 << 19, 1 << 20] {
                check(&grid, &players, x, y, z, r, &mut out);
            }
        }
        // The largest possible distance must not overflow.
        assert_eq!(
            dist2(COORD_MIN, COORD_MIN, COORD_MIN, COORD_MAX, COORD_MAX, COORD_MAX),
            3 * 2_097_151u64 * 2_097_151
        );
        let mut small = Grid::new(0);
        assert_eq!(small.cell_size(), 16);
        for (i, &(x, y, z)) in corners.iter().enumerate() {
            small.insert(i as u32, i as u32 + 1, 7, x, y, z);
        }
        for &(x, y, z) in &corners {
            for r in [0, 5, 1 << 20] {
                check(&small, &players, x, y, z, r, &mut out);
            }
        }
    }
}
