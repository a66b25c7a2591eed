//! A read-only, contiguous copy of the players' positions for bursts of AOI
//! queries against one snapshot.
//!
//! The live [`Grid`](super::grid::Grid) is built for cheap updates: a hash
//! map of cells, each cell its own `Vec`. A query then probes ~9 hash
//! buckets and touches ~9 separate allocations; in a 12,000-dig burst over a
//! 4096² world nearly every one of those is a cache miss, and the query
//! spends most of its time waiting on them.
//!
//! A `FrozenGrid` is built once per snapshot (O(players), a counting sort by
//! cell; `examples/burst_world.rs` prints what it costs) once a burst's
//! worth of digs in reach (`Options::freeze_min_found`) has been accepted
//! against the snapshot, or by the first chunk of a `dig_batch` that will
//! take it there. Its cells have the live grid's size
//! ([`cell_shift_for`](super::space::cell_shift_for)). It stores every cell of the occupied bounding box densely
//! (`starts`, like a CSR matrix), with cells numbered x-fastest, so the cells
//! of one (y, z) row are one contiguous run of entries. A query visits the
//! rows that intersect the AOI sphere and, in each, only the x-range of
//! cells that the sphere's slice can reach, then checks exact distances over
//! contiguous memory.
//!
//! It is only built when the bounding box has few enough cells for the
//! player count ([`FrozenGrid::build`] returns `None` otherwise, e.g. a few
//! players spread over the whole ±2^20 range); queries then use the live
//! grid. Both give exactly the same set of hits (tests below and the model
//! tests compare them with brute force).

use super::space::{axis_dist2, dist2, for_each_row, Hit, PlayerView, MAX_CELL_SHIFT};

/// One player as stored in the frozen grid.
#[derive(Clone, Copy, Debug)]
struct FrozenPlayer {
    x: i32,
    y: i32,
    z: i32,
    id: u32,
    party: u32,
}

/// See the module docs.
#[derive(Debug)]
pub struct FrozenGrid {
    shift: u32,
    /// Smallest occupied cell coordinate per axis.
    origin: [i64; 3],
    /// Cells per axis of the occupied bounding box.
    dims: [i64; 3],
    /// `starts[i]..starts[i + 1]` are the entries of cell `i`, where
    /// `i = ((cz - oz) * ny + (cy - oy)) * nx + (cx - ox)`; `len = cells + 1`.
    starts: Vec<u32>,
    entries: Vec<FrozenPlayer>,
}

impl FrozenGrid {
    /// Builds the frozen copy of `players` (an iterator that can be walked
    /// several times) with cells of `2^shift` blocks, or `None` when the
    /// occupied bounding box would need more than `max(65_536, 8 × players)`
    /// cells (a sparse world: the live grid serves it better).
    pub fn build<I>(players: I, shift: u32) -> Option<FrozenGrid>
    where
        I: Iterator<Item = PlayerView> + Clone,
    {
        let shift = shift.min(MAX_CELL_SHIFT);
        let cell = |v: i32| (v >> shift) as i64;
        let mut lo = [i64::MAX; 3];
        let mut hi = [i64::MIN; 3];
        let mut n = 0usize;
        for p in players.clone() {
            for (a, v) in [p.x, p.y, p.z].into_iter().enumerate() {
                lo[a] = lo[a].min(cell(v));
                hi[a] = hi[a].max(cell(v));
            }
            n += 1;
        }
        if n == 0 {
            return Some(FrozenGrid {
                shift,
                origin: [0; 3],
                dims: [0; 3],
                starts: vec![0],
                entries: Vec::new(),
            });
        }
        let dims = [hi[0] - lo[0] + 1, hi[1] - lo[1] + 1, hi[2] - lo[2] + 1];
        let cells = dims
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64))?;
        if cells > (8 * n as u64).max(65_536) || n >= u32::MAX as usize {
            return None;
        }
        let index = |p: &PlayerView| -> usize {
            let (cx, cy, cz) = (cell(p.x) - lo[0], cell(p.y) - lo[1], cell(p.z) - lo[2]);
            ((cz * dims[1] + cy) * dims[0] + cx) as usize
        };
        // Counting sort by cell: counts, prefix sums, then place.
        let mut starts = vec![0u32; cells as usize + 1];
        for p in players.clone() {
            starts[index(&p) + 1] += 1;
        }
        for i in 1..starts.len() {
            starts[i] += starts[i - 1];
        }
        let mut next = starts.clone();
        let mut entries = vec![
            FrozenPlayer {
                x: 0,
                y: 0,
                z: 0,
                id: 0,
                party: 0,
            };
            n
        ];
        for p in players {
            let slot = &mut next[index(&p)];
            entries[*slot as usize] = FrozenPlayer {
                x: p.x,
                y: p.y,
                z: p.z,
                id: p.id,
                party: p.party,
            };
            *slot += 1;
        }
        Some(FrozenGrid {
            shift,
            origin: lo,
            dims,
            starts,
            entries,
        })
    }

    /// Players in the grid.
    #[cfg(any(test, feature = "test-hooks"))]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    #[cfg(any(test, feature = "test-hooks"))]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Pushes every player with `dist2(player, (x, y, z)) <= r^2` into `out`
    /// (which is not cleared), in no particular order. Same contract as
    /// [`Grid::query`](super::grid::Grid::query).
    pub fn query(&self, x: i32, y: i32, z: i32, r: u32, out: &mut Vec<Hit>) {
        if self.entries.is_empty() {
            return;
        }
        let s = self.shift;
        let r2 = (r as u64) * (r as u64);
        let (x64, y64, z64, r64) = (x as i64, y as i64, z as i64, r as i64);
        let [ox, oy, oz] = self.origin;
        let [nx, ny, nz] = self.dims;
        let range =
            |v: i64, o: i64, n: i64, d: i64| (((v - d) >> s).max(o), ((v + d) >> s).min(o + n - 1));
        let (z0, z1) = range(z64, oz, nz, r64);
        let (y0, y1) = range(y64, oy, ny, r64);
        let (x0, x1) = range(x64, ox, nx, r64);
        if x0 > x1 {
            return;
        }
        let axis = |v: i64, c: i64| axis_dist2(v, c, s);
        for_each_row((y64, y0, y1), (z64, z0, z1), s, r2, |cz, cy, dyz| {
            // Trim the row's cells at both ends to those the sphere's slice
            // reaches (the reachable cells are contiguous).
            let (mut x0, mut x1) = (x0, x1);
            while x0 <= x1 && dyz + axis(x64, x0) > r2 {
                x0 += 1;
            }
            while x1 > x0 && dyz + axis(x64, x1) > r2 {
                x1 -= 1;
            }
            if x0 > x1 {
                return;
            }
            let row = ((cz - oz) * ny + (cy - oy)) * nx - ox;
            let a = self.starts[(row + x0) as usize] as usize;
            let b = self.starts[(row + x1 + 1) as usize] as usize;
            for e in &self.entries[a..b] {
                let d2 = dist2(e.x, e.y, e.z, x, y, z);
                if d2 <= r2 {
                    out.push(Hit {
                        id: e.id,
                        party: e.party,
                        dist2: d2,
                    });
                }
            }
        });
    }
}

/// One party member as stored in [`FrozenParties`].
#[derive(Clone, Copy, Debug)]
struct Member {
    id: u32,
    x: i32,
    y: i32,
    z: i32,
}

/// The party lists of the same snapshot, frozen alongside the grid: every
/// party's members with their positions in one contiguous run, so a dig's
/// party lookup is one probe of a small map and one read of ~64 bytes
/// instead of a probe, a pointer chase and a random read per member.
#[derive(Debug, Default)]
pub struct FrozenParties {
    /// party -> (start, len) in `members`.
    runs: rustc_hash::FxHashMap<u32, (u32, u32)>,
    members: Vec<Member>,
}

impl FrozenParties {
    /// Builds the table from `(party, members)` pairs (non-zero parties).
    pub fn build<M>(parties: impl ExactSizeIterator<Item = (u32, M)>) -> FrozenParties
    where
        M: IntoIterator<Item = PlayerView>,
    {
        let mut f = FrozenParties::default();
        f.runs.reserve(parties.len());
        for (party, members) in parties {
            let start = f.members.len();
            f.members.extend(members.into_iter().map(|p| Member {
                id: p.id,
                x: p.x,
                y: p.y,
                z: p.z,
            }));
            let len = f.members.len() - start;
            f.runs.insert(party, (start as u32, len as u32));
        }
        f
    }

    /// Pushes every member of non-zero `party` into `out` with its squared
    /// distance to the block. Same contract as `Players::party_members`.
    pub fn members(
        &self,
        party: u32,
        x: i32,
        y: i32,
        z: i32,
        beyond: Option<u64>,
        out: &mut Vec<Hit>,
    ) {
        if let Some(&(start, len)) = self.runs.get(&party) {
            for m in &self.members[start as usize..(start + len) as usize] {
                let d2 = dist2(m.x, m.y, m.z, x, y, z);
                if beyond.is_none_or(|r2| d2 > r2) {
                    out.push(Hit {
                        id: m.id,
                        party,
                        dist2: d2,
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::limits::{COORD_MAX, COORD_MIN};
    use crate::roll::splitmix64;
    use crate::world::space::cell_shift_for;

    fn brute(players: &[PlayerView], x: i32, y: i32, z: i32, r: u32) -> Vec<Hit> {
        let r2 = r as u64 * r as u64;
        let mut v: Vec<Hit> = players
            .iter()
            .filter_map(|p| {
                let d = dist2(p.x, p.y, p.z, x, y, z);
                (d <= r2).then_some(Hit {
                    id: p.id,
                    party: p.party,
                    dist2: d,
                })
            })
            .collect();
        v.sort_by_key(|h| h.id);
        v
    }

    fn check(g: &FrozenGrid, players: &[PlayerView], x: i32, y: i32, z: i32, r: u32) {
        let mut out = Vec::new();
        g.query(x, y, z, r, &mut out);
        out.sort_by_key(|h| h.id);
        assert_eq!(out, brute(players, x, y, z, r), "query ({x},{y},{z}) r={r}");
    }

    fn world(seed: u64, n: usize, span: i64, flat: bool) -> Vec<PlayerView> {
        (0..n)
            .map(|i| {
                let v = splitmix64(seed * 1_000_003 + i as u64);
                let c = |k: u32| ((v >> k) % (2 * span as u64 + 1)) as i64 - span;
                PlayerView {
                    id: i as u32 + 1,
                    party: (v >> 60) as u32,
                    x: c(0) as i32,
                    y: if flat {
                        (c(20) % 64).abs() as i32
                    } else {
                        c(20) as i32
                    },
                    z: c(40) as i32,
                }
            })
            .collect()
    }

    #[test]
    fn matches_brute_force() {
        for (seed, n, span, flat) in [
            (1, 500, 300, true),
            (2, 500, 100, false),
            (3, 50, 40, false),
            (4, 2000, 2048, true),
        ] {
            let players = world(seed, n, span, flat);
            for shift in [0, 3, 4, 5, 6, 9] {
                let Some(g) = FrozenGrid::build(players.iter().copied(), shift) else {
                    continue;
                };
                assert_eq!(g.len(), players.len());
                for k in 0..200u64 {
                    let v = splitmix64(k ^ (seed << 32));
                    let p = players[(v % n as u64) as usize];
                    let r = [0u32, 1, 7, 8, 16, 31, 64, 65, 200, 1 << 20][(v >> 32) as usize % 10];
                    let (dx, dz) = ((v >> 8) as i32 % 50, (v >> 16) as i32 % 50);
                    check(&g, &players, p.x + dx, p.y, p.z - dz, r);
                    check(&g, &players, p.x, p.y, p.z, r);
                }
            }
        }
    }

    #[test]
    fn borders_negative_cells_and_limits() {
        let mut players = Vec::new();
        for (i, &(x, y, z)) in [
            (-1, -1, -1),
            (0, 0, 0),
            (7, 7, 7),
            (8, 8, 8),
            (-8, 0, 0),
            (-9, 0, 0),
            (15, -16, 3),
        ]
        .iter()
        .enumerate()
        {
            players.push(PlayerView {
                id: i as u32 + 1,
                party: 1,
                x,
                y,
                z,
            });
        }
        let g = FrozenGrid::build(players.iter().copied(), 3).expect("small box");
        for &(x, y, z) in &[(0, 0, 0), (-1, -1, -1), (8, 0, 0), (-8, 0, 0), (100, 0, 0)] {
            for r in [0, 1, 2, 7, 8, 9, 15, 16, 17, 100, 1 << 20] {
                check(&g, &players, x, y, z, r);
            }
        }
        // Far-apart corners: too many cells for 2 players at any small shift.
        let corners = [
            PlayerView {
                id: 1,
                party: 0,
                x: COORD_MIN,
                y: COORD_MIN,
                z: COORD_MIN,
            },
            PlayerView {
                id: 2,
                party: 0,
                x: COORD_MAX,
                y: COORD_MAX,
                z: COORD_MAX,
            },
        ];
        assert!(FrozenGrid::build(corners.iter().copied(), 4).is_none());
        let g = FrozenGrid::build(corners.iter().copied(), 20).expect("2^3 cells");
        for c in &corners {
            for r in [0, 1 << 19, 1 << 20] {
                check(&g, &corners, c.x, c.y, c.z, r);
                check(&g, &corners, -c.x, c.y, c.z, r);
            }
        }
        let empty = FrozenGrid::build(std::iter::empty(), 4).expect("empty");
        assert!(empty.is_empty());
        check(&empty, &[], 0, 0, 0, 1 << 20);
    }

    #[test]
    fn frozen_parties_list_members_with_distances() {
        let v = |id, x| PlayerView {
            id,
            party: 0,
            x,
            y: 0,
            z: 0,
        };
        let a = [v(1, 0), v(2, 10)];
        let b = [v(3, -5)];
        let f =
            FrozenParties::build([(7u32, a.iter().copied()), (9, b.iter().copied())].into_iter());
        let mut out = Vec::new();
        f.members(7, 1, 0, 0, None, &mut out);
        f.members(9, 1, 0, 0, None, &mut out);
        f.members(8, 1, 0, 0, None, &mut out);
        let got: Vec<(u32, u32, u64)> = out.iter().map(|h| (h.id, h.party, h.dist2)).collect();
        assert_eq!(got, [(1, 7, 1), (2, 7, 81), (3, 9, 36)]);
        // Only those farther than the radius (d2 > 36).
        out.clear();
        f.members(7, 1, 0, 0, Some(36), &mut out);
        f.members(9, 1, 0, 0, Some(36), &mut out);
        let got: Vec<(u32, u32, u64)> = out.iter().map(|h| (h.id, h.party, h.dist2)).collect();
        assert_eq!(got, [(2, 7, 81)]);
    }

    #[test]
    fn shift_follows_radius() {
        assert_eq!(cell_shift_for(0), 4);
        assert_eq!(cell_shift_for(16), 4);
        assert_eq!(cell_shift_for(64), 6);
        assert_eq!(cell_shift_for(65), 7);
        assert_eq!(cell_shift_for(1 << 20), 20);
    }
}
