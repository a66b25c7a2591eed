//! Turning Lua values into the core's typed arguments, in the contract's
//! order. The ranges are the core's (`treasure_core::contract::limits`)
//! and so are the messages (`treasure_core::Error`'s constructors).

use mlua::{Lua, Value};
use treasure_core::contract::limits::{self, Range};
use treasure_core::contract::Expected;
use treasure_core::{Arg, Error, Method};

use crate::error;

/// `v` as an exact integer within `range`, or `<arg> must be an integer in
/// [lo, hi], got <v>`. Strings are never coerced.
pub fn int(lua: &Lua, m: Method, arg: Arg, v: &Value, range: Range) -> Result<i64, Error> {
    let n = match *v {
        Value::Integer(i) => Some(i as f64),
        Value::Number(n) => Some(n),
        _ => None,
    };
    match n {
        // In range, so exact in an i64.
        Some(n) if range.contains_f64(n) => Ok(n as i64),
        _ => Err(Error::out_of_range(m, arg, range, error::describe(lua, v))),
    }
}

/// An id (`player`, `id`, `loot_table_id`).
pub fn id(lua: &Lua, m: Method, name: &'static str, v: &Value) -> Result<u32, Error> {
    int(lua, m, Arg::Plain(name), v, limits::ID).map(|n| n as u32)
}

/// A `party` (0: none).
pub fn party(lua: &Lua, m: Method, v: &Value) -> Result<u32, Error> {
    int(lua, m, Arg::Plain("party"), v, limits::PARTY).map(|n| n as u32)
}

/// A site's `charges`.
pub fn charges(lua: &Lua, m: Method, v: &Value) -> Result<u32, Error> {
    int(lua, m, Arg::Plain("charges"), v, limits::CHARGES).map(|n| n as u32)
}

/// A dig's `t_us`.
pub fn t_us(lua: &Lua, m: Method, v: &Value) -> Result<u64, Error> {
    int(lua, m, Arg::Plain("t_us"), v, limits::T_US).map(|n| n as u64)
}

/// A count (`max`, `timeout_us`, `n`).
pub fn count(lua: &Lua, m: Method, name: &'static str, v: &Value) -> Result<u64, Error> {
    int(lua, m, Arg::Plain(name), v, limits::COUNT).map(|n| n as u64)
}

/// An optional argument: `nil` gives `None`, anything else is checked.
pub fn opt<T>(
    v: &Value,
    check: impl FnOnce(&Value) -> Result<T, Error>,
) -> Result<Option<T>, Error> {
    match v {
        Value::Nil => Ok(None),
        v => check(v).map(Some),
    }
}

/// Arguments `i`, `i+1`, `i+2` as block coordinates `x`, `y`, `z`.
pub fn xyz(lua: &Lua, m: Method, a: &[Value], i: usize) -> Result<(i32, i32, i32), Error> {
    let coord = |name, v| int(lua, m, Arg::Plain(name), v, limits::COORD).map(|n| n as i32);
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
pub fn string(m: Method, name: &'static str, v: &Value) -> Result<mlua::LuaString, Error> {
    match v {
        Value::String(s) => Ok(s.clone()),
        other => Err(Error::wrong_type(
            m,
            Arg::Plain(name),
            Expected::String,
            error::type_name(other),
        )),
    }
}
