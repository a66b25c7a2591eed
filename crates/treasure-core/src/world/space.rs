//! The geometry the world is built on, once: block and cell coordinates
//! packed into a `u64` key (21 bits each), the cell size for a query
//! radius, exact squared distances and the row walk both grids share, and
//! the value types a query returns.

/// A player as seen by a query.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlayerView {
    pub id: u32,
    pub party: u32,
    pub x: i32,
    pub y: i32,
    pub z: i32,
}

/// One query result: a player within the radius.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hit {
    pub id: u32,
    pub party: u32,
    /// Exact squared distance to the query point.
    pub dist2: u64,
}

/// Bits per packed coordinate: every coordinate of the contract (and every
/// cell coordinate) plus 2^20 lies in [0, 2^21).
const COORD_BITS: u32 = 21;
const COORD_BIAS: i64 = 1 << (COORD_BITS - 1);
const COORD_MASK: u64 = (1 << COORD_BITS) - 1;

/// Packs three coordinates in [-2^20, 2^20) into one map key.
#[inline]
pub(crate) fn pack_xyz(x: i64, y: i64, z: i64) -> u64 {
    let f = |v: i64| ((v + COORD_BIAS) as u64) & COORD_MASK;
    f(x) | (f(y) << COORD_BITS) | (f(z) << (2 * COORD_BITS))
}

/// Packs a block position into a map key (the sites' index).
#[inline]
pub(crate) fn block_key(x: i32, y: i32, z: i32) -> u64 {
    pack_xyz(x as i64, y as i64, z as i64)
}

/// The largest cell edge (as a shift): one cell spans the whole
/// coordinate range of an axis.
pub(crate) const MAX_CELL_SHIFT: u32 = COORD_BITS - 1;

/// The cell edge (as a shift) for queries of radius `r`: the radius rounded
/// up to a power of two, at least 16 blocks and at most 2^20, so a query
/// touches at most three cells per axis and cells stay small enough that
/// few players outside the sphere are examined. Both grids use it.
#[inline]
pub fn cell_shift_for(r: u32) -> u32 {
    r.clamp(16, 1 << MAX_CELL_SHIFT)
        .next_power_of_two()
        .trailing_zeros()
}

/// Squared distance along one axis from coordinate `v` to the cell `c` of
/// edge `2^shift`, i.e. the blocks `[c << shift, ((c + 1) << shift) - 1]`
/// (0 inside it): the bound both grids use to skip cells out of reach.
#[inline]
pub(crate) fn axis_dist2(v: i64, c: i64, shift: u32) -> u64 {
    let a = c << shift;
    let b = a + (1i64 << shift) - 1;
    let d = if v < a {
        a - v
    } else if v > b {
        v - b
    } else {
        0
    } as u64;
    d * d
}

/// Calls `f(cz, cy, dyz)` for every (z, y) row of cells in `z0..=z1` ×
/// `y0..=y1` that a sphere of squared radius `r2` around `(y, z)` can reach,
/// with `dyz` the squared distance from the centre to that row along y and
/// z: the row walk both grids share (cells of edge `2^shift`).
#[inline]
pub(crate) fn for_each_row(
    (y, y0, y1): (i64, i64, i64),
    (z, z0, z1): (i64, i64, i64),
    shift: u32,
    r2: u64,
    mut f: impl FnMut(i64, i64, u64),
) {
    for cz in z0..=z1 {
        let dz = axis_dist2(z, cz, shift);
        if dz > r2 {
            continue;
        }
        for cy in y0..=y1 {
            let dyz = dz + axis_dist2(y, cy, shift);
            if dyz <= r2 {
                f(cz, cy, dyz);
            }
        }
    }
}

/// Exact squared distance between two block positions.
#[inline]
pub fn dist2(ax: i32, ay: i32, az: i32, bx: i32, by: i32, bz: i32) -> u64 {
    let dx = (ax as i64 - bx as i64).unsigned_abs();
    let dy = (ay as i64 - by as i64).unsigned_abs();
    let dz = (az as i64 - bz as i64).unsigned_abs();
    dx * dx + dy * dy + dz * dz
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_keys_are_distinct_at_limits() {
        use crate::contract::limits::{COORD_MAX, COORD_MIN};
        let vals = [COORD_MIN, -1, 0, 1, COORD_MAX];
        let mut keys = std::collections::HashSet::new();
        for &x in &vals {
            for &y in &vals {
                for &z in &vals {
                    assert!(keys.insert(block_key(x, y, z)));
                }
            }
        }
    }
}
