//! Turning Lua values into the core's typed arguments, with the contract's
//! exact error messages (docs/API.md, "Errors").
//!
//! A failed check yields a [`Fail`], the finished message text; the raw
//! functions hand it to the Lua shim, which raises it as a plain string.

use mlua::{Function, Lua, Value};

/// The message of a failed call, exactly as the contract words it.
pub type Fail = String;

/// The Lua functions the binding borrows for messages, fetched once.
pub struct LuaHelpers {
    /// Lua's `tostring`, so `got <number>` is formatted by LuaJIT itself
    /// (`%.14g`, `nan`, `inf`) and matches treasure.legacy to the byte.
    pub tostring: Function,
}

/// `got <value>`: `tostring(v)` for numbers, the type name otherwise.
pub fn describe(lua: &Lua, v: &Value) -> String {
    match v {
        Value::Integer(_) | Value::Number(_) => lua
            .app_data_ref::<LuaHelpers>()
            .and_then(|h| h.tostring.call::<String>(v.clone()).ok())
            .unwrap_or_else(|| "number".to_owned()),
        other => type_name(other).to_owned(),
    }
}

/// Lua's `type()` of a value, as the contract prints it.
pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Nil => "nil",
        Value::Boolean(_) => "boolean",
        Value::LightUserData(_) | Value::UserData(_) | Value::Error(_) => "userdata",
        Value::Integer(_) | Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Table(_) => "table",
        Value::Function(_) => "function",
        Value::Thread(_) => "thread",
        // In LuaJIT the only value mlua does not model is cdata.
        _ => "cdata",
    }
}

/// An inclusive integer range of the contract, e.g. coordinates.
#[derive(Clone, Copy, Debug)]
pub struct Range {
    pub lo: i64,
    pub hi: i64,
}

pub const COORD: Range = Range {
    lo: -1_048_576,
    hi: 1_048_575,
};
pub const ID: Range = Range {
    lo: 1,
    hi: 4_294_967_295,
};
pub const PARTY: Range = Range {
    lo: 0,
    hi: 4_294_967_295,
};
pub const CHARGES: Range = Range {
    lo: 0,
    hi: 4_294_967_295,
};
pub const T_US: Range = Range {
    lo: 0,
    hi: 9_007_199_254_740_991,
};
pub const COUNT: Range = Range {
    lo: 0,
    hi: 9_007_199_254_740_991,
};

/// The number a Lua value holds, if it is one (strings are never coerced).
fn as_number(v: &Value) -> Option<f64> {
    match *v {
        Value::Integer(i) => Some(i as f64),
        Value::Number(n) => Some(n),
        _ => None,
    }
}

/// `<func>: <arg> must be an integer in [lo, hi], got <v>` unless `v` is an
/// exact integer within `range`.
pub fn int(lua: &Lua, func: &str, arg: &str, v: &Value, range: Range) -> Result<i64, Fail> {
    if let Some(n) = as_number(v) {
        // Finite, integral, in range: the bounds are exact in a double.
        if n.fract() == 0.0 && n >= range.lo as f64 && n <= range.hi as f64 {
            return Ok(n as i64);
        }
    }
    Err(format!(
        "treasure: {func}: {arg} must be an integer in [{}, {}], got {}",
        range.lo,
        range.hi,
        describe(lua, v)
    ))
}

pub fn u32_in(lua: &Lua, func: &str, arg: &str, v: &Value, range: Range) -> Result<u32, Fail> {
    int(lua, func, arg, v, range).map(|n| n as u32)
}

pub fn coord(lua: &Lua, func: &str, arg: &str, v: &Value) -> Result<i32, Fail> {
    int(lua, func, arg, v, COORD).map(|n| n as i32)
}

/// An optional integer argument: `nil` gives `None`.
pub fn opt_int(
    lua: &Lua,
    func: &str,
    arg: &str,
    v: &Value,
    range: Range,
) -> Result<Option<i64>, Fail> {
    match v {
        Value::Nil => Ok(None),
        v => int(lua, func, arg, v, range).map(Some),
    }
}
