//! Turning Lua values into the core's typed arguments, in the contract's
//! order and with its exact messages (docs/API.md, "Errors").
//!
//! The ranges are the core's limits (`treasure_core::error::limits`) and
//! the widths of the core's types; none is restated here.

use mlua::{Lua, Value};
use treasure_core::error::limits;

use crate::error::{self, Failure};

/// An inclusive integer range of the contract, e.g. coordinates.
#[derive(Clone, Copy, Debug)]
pub struct Range {
    pub lo: i64,
    pub hi: i64,
}

impl Range {
    const fn up_to(lo: i64, hi: u64) -> Range {
        Range { lo, hi: hi as i64 }
    }
}

/// Block coordinates `x`, `y`, `z`.
pub const COORD: Range = Range {
    lo: limits::COORD_MIN as i64,
    hi: limits::COORD_MAX as i64,
};
/// Player, site and loot table ids, and a loot entry's `item` and `weight`.
pub const ID: Range = Range::up_to(1, u32::MAX as u64);
/// A party (0: none) and a site's `charges`.
pub const U32: Range = Range::up_to(0, u32::MAX as u64);
/// A time, a count or a seed: any integer a Lua number holds exactly.
pub const SAFE: Range = Range::up_to(0, limits::MAX_SAFE);

/// The number a Lua value holds, if it is one (strings are never coerced).
fn as_number(v: &Value) -> Option<f64> {
    match *v {
        Value::Integer(i) => Some(i as f64),
        Value::Number(n) => Some(n),
        _ => None,
    }
}

/// `v` as an exact integer within `range`, or `<func>: <arg> must be an
/// integer in [lo, hi], got <v>`.
pub fn int(lua: &Lua, func: &str, arg: &str, v: &Value, range: Range) -> Result<i64, Failure> {
    if let Some(n) = as_number(v) {
        // Finite, integral, in range: the bounds are exact in a double.
        if n.fract() == 0.0 && n >= range.lo as f64 && n <= range.hi as f64 {
            return Ok(n as i64);
        }
    }
    Err(error::not_an_integer_in(
        func,
        arg,
        range.lo,
        range.hi,
        &error::describe(lua, v),
    ))
}

/// An id (`player`, `id`, `loot_table_id`).
pub fn id(lua: &Lua, func: &str, arg: &str, v: &Value) -> Result<u32, Failure> {
    int(lua, func, arg, v, ID).map(|n| n as u32)
}

/// A 32-bit value that may be 0 (`party`, `charges`).
pub fn u32_arg(lua: &Lua, func: &str, arg: &str, v: &Value) -> Result<u32, Failure> {
    int(lua, func, arg, v, U32).map(|n| n as u32)
}

/// A time, count or seed in [0, 2^53-1].
pub fn safe(lua: &Lua, func: &str, arg: &str, v: &Value) -> Result<u64, Failure> {
    int(lua, func, arg, v, SAFE).map(|n| n as u64)
}

/// An optional argument: `nil` gives `None`, anything else is checked.
pub fn opt<T>(
    v: &Value,
    check: impl FnOnce(&Value) -> Result<T, Failure>,
) -> Result<Option<T>, Failure> {
    match v {
        Value::Nil => Ok(None),
        v => check(v).map(Some),
    }
}

/// Arguments `i`, `i+1`, `i+2` as block coordinates `x`, `y`, `z`.
pub fn xyz(lua: &Lua, func: &str, a: &[Value], i: usize) -> Result<(i32, i32, i32), Failure> {
    let coord = |name, v| int(lua, func, name, v, COORD).map(|n| n as i32);
    Ok((
        coord("x", nth(a, i))?,
        coord("y", nth(a, i + 1))?,
        coord("z", nth(a, i + 2))?,
    ))
}

/// Argument `i` (0-based, after `self`), `nil` when absent.
pub fn nth(a: &[Value], i: usize) -> &Value {
    a.get(i).unwrap_or(&Value::Nil)
}

/// A Lua string argument (`records`), never coerced from a number.
pub fn string(func: &str, arg: &str, v: &Value) -> Result<mlua::LuaString, Failure> {
    match v {
        Value::String(s) => Ok(s.clone()),
        other => Err(error::must_be(
            func,
            arg,
            "a string",
            error::type_name(other),
        )),
    }
}
