//! The checks the live API and `restore` share. Each returns the contract's
//! error for the first rule broken, in the contract's check order.

use super::error::{Error, ErrorKind};
use super::limits::{self, Range, MAX_SAFE, OPTION_FIELDS, TOTAL_WEIGHT_MAX};
use super::names::{Arg, EntriesAt, Method, OptionsAt};
use crate::roll::LootEntry;

/// `<arg> must be an integer in [lo, hi]`.
///
/// # Errors
///
/// [`ErrorKind::OutOfRange`] when `v` is outside `range`.
#[inline]
pub fn check_range(
    method: Method,
    arg: Arg,
    range: Range,
    v: impl Into<i128>,
) -> Result<(), Error> {
    let v = v.into();
    if range.contains(v) {
        Ok(())
    } else {
        Err(Error::out_of_range(method, arg, range, v))
    }
}

/// An id (player, site, loot table, item): `[1, 2^32-1]`.
///
/// # Errors
///
/// [`ErrorKind::OutOfRange`] for id 0.
#[inline]
pub fn check_id(method: Method, arg: Arg, v: u32) -> Result<(), Error> {
    check_range(method, arg, limits::ID, v)
}

/// Block coordinates, `x` then `y` then `z`, each in [`limits::COORD`].
///
/// # Errors
///
/// [`ErrorKind::OutOfRange`] for the first coordinate out of range.
#[inline]
pub fn check_coords(method: Method, args: [Arg; 3], xyz: [i32; 3]) -> Result<(), Error> {
    for (arg, v) in args.into_iter().zip(xyz) {
        check_range(method, arg, limits::COORD, v)?;
    }
    Ok(())
}

/// The plain arguments `x`, `y`, `z`.
pub const XYZ: [Arg; 3] = [Arg::Plain("x"), Arg::Plain("y"), Arg::Plain("z")];

/// The `x`, `y`, `z` fields of batch record `n` (1-based).
pub const fn record_xyz(n: usize) -> [Arg; 3] {
    [
        Arg::Record(n, "x"),
        Arg::Record(n, "y"),
        Arg::Record(n, "z"),
    ]
}

/// The option values `[seed, aoi_radius, reach, workers,
/// max_pending_packets]` against [`limits::OPTION_FIELDS`], in that order;
/// `arg` names a field (`opts.seed`, `snapshot.options.seed`).
///
/// # Errors
///
/// [`ErrorKind::OutOfRange`] for the first value out of range.
pub fn check_options(
    method: Method,
    arg: impl Fn(&'static str) -> Arg,
    values: [u64; 5],
) -> Result<(), Error> {
    for ((name, range), v) in OPTION_FIELDS.into_iter().zip(values) {
        check_range(method, arg(name), range, v)?;
    }
    Ok(())
}

/// One loot entry `n` (1-based) of `at`: its `item` and `weight` ranges
/// (`min`, `max` and `rarity` are bounded by their types), then `min <=
/// max`. Returns its weight, for [`check_total_weight`].
///
/// # Errors
///
/// [`ErrorKind::OutOfRange`] or [`ErrorKind::MinGreaterThanMax`].
pub fn check_loot_entry(
    method: Method,
    at: EntriesAt,
    n: usize,
    e: &LootEntry,
) -> Result<u64, Error> {
    check_range(method, Arg::Entry(at, n, "item"), limits::ID, e.item)?;
    check_range(
        method,
        Arg::Entry(at, n, "weight"),
        limits::WEIGHT,
        e.weight,
    )?;
    if e.min > e.max {
        let (min, max, entry) = (e.min, e.max, n);
        return Err(Error::new(
            method,
            ErrorKind::MinGreaterThanMax {
                at,
                entry,
                min,
                max,
            },
        ));
    }
    Ok(e.weight as u64)
}

/// The sum of a loot table's weights must fit the roll (`u32`).
///
/// # Errors
///
/// [`ErrorKind::TotalWeight`] when `total` exceeds 2^32-1.
pub fn check_total_weight(method: Method, at: EntriesAt, total: u64) -> Result<(), Error> {
    if total > TOTAL_WEIGHT_MAX {
        return Err(Error::new(method, ErrorKind::TotalWeight { at, total }));
    }
    Ok(())
}

/// A whole loot table's entries: non-empty, each entry valid
/// ([`check_loot_entry`]), the total weight in range. The one definition
/// of loot-entry validity for `add_loot_table` and `restore`.
///
/// # Errors
///
/// [`ErrorKind::EmptyEntries`], or the first error of the checks above.
pub fn check_loot_entries(
    method: Method,
    at: EntriesAt,
    entries: &[LootEntry],
) -> Result<(), Error> {
    if entries.is_empty() {
        return Err(Error::new(method, ErrorKind::EmptyEntries { at }));
    }
    let mut total = 0u64;
    for (i, e) in entries.iter().enumerate() {
        total += check_loot_entry(method, at, i + 1, e)?;
    }
    check_total_weight(method, at, total)
}

/// Refuses `digs` more digs (0 for an empty batch) if the last one would
/// need a seq past 2^53-1 (docs/API.md, "Seq past 2^53").
///
/// # Errors
///
/// [`ErrorKind::SeqExhausted`] with the seq the last dig would need.
pub fn check_seq(method: Method, next_seq: u64, digs: u64) -> Result<(), Error> {
    if digs == 0 {
        return Ok(());
    }
    let last = next_seq.saturating_add(digs - 1);
    if last > MAX_SAFE {
        return Err(Error::new(method, ErrorKind::SeqExhausted { got: last }));
    }
    Ok(())
}

/// The buffer rule of `poll_into`: `max` packets of `packet_size` bytes
/// must fit in `len` bytes, checked before anything is copied.
///
/// # Errors
///
/// [`ErrorKind::BufferTooSmall`] with the packets the buffer holds.
pub fn check_capacity(
    method: Method,
    len: usize,
    packet_size: usize,
    max: usize,
) -> Result<(), Error> {
    let capacity = len / packet_size;
    if max > capacity {
        return Err(Error::buffer_too_small(method, capacity as u64, max as u64));
    }
    Ok(())
}

/// A batch's byte length must be a whole number of records.
///
/// # Errors
///
/// [`ErrorKind::LengthNotMultiple`] for `records`.
pub fn check_records_length(method: Method, len: usize, unit: usize) -> Result<(), Error> {
    if !len.is_multiple_of(unit) {
        return Err(Error::length_not_multiple(
            method,
            Arg::Plain("records"),
            unit,
            len,
        ));
    }
    Ok(())
}

/// The cluster options after the five above (`docs/API.md`, cluster mode):
/// `shard` then `shards`, each in range when given; then both or neither;
/// then `shard < shards`. `at` says whose options (`opts.shard`,
/// `snapshot.options.shard`). Returns `Some((shard, shards))` in cluster
/// mode.
///
/// # Errors
///
/// [`ErrorKind::OutOfRange`], [`ErrorKind::GivenWithout`] or
/// [`ErrorKind::ShardNotBelowShards`] for the first rule broken.
pub fn check_cluster_options(
    method: Method,
    at: OptionsAt,
    shard: Option<i128>,
    shards: Option<i128>,
) -> Result<Option<(u16, u16)>, Error> {
    let [(shard_name, shard_range), (shards_name, shards_range)] = limits::CLUSTER_OPTION_FIELDS;
    if let Some(v) = shard {
        check_range(method, at.arg(shard_name), shard_range, v)?;
    }
    if let Some(v) = shards {
        check_range(method, at.arg(shards_name), shards_range, v)?;
    }
    let (shard, shards) = match (shard, shards) {
        (None, None) => return Ok(None),
        (Some(_), None) => {
            let kind = ErrorKind::GivenWithout {
                at,
                field: shards_name,
                with: shard_name,
            };
            return Err(Error::new(method, kind));
        }
        (None, Some(_)) => {
            let kind = ErrorKind::GivenWithout {
                at,
                field: shard_name,
                with: shards_name,
            };
            return Err(Error::new(method, kind));
        }
        // In range, so they fit.
        (Some(a), Some(b)) => (a as u16, b as u16),
    };
    if shard >= shards {
        let kind = ErrorKind::ShardNotBelowShards { at, shards, shard };
        return Err(Error::new(method, kind));
    }
    Ok(Some((shard, shards)))
}
