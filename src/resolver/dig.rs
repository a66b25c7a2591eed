//! The calls that ask for digs: they answer a seq, or `nil, "busy"` when
//! the stream is full (back-pressure, not an error).

use mlua::{Lua, MultiValue, Value};

use super::NativeResolver;
use crate::args::{self, nth};
use treasure_core::{Error, Method};

use crate::error;

/// The "busy" reason string, created *before* the core call: once the core
/// has counted a busy refusal the call must not fail, and any Lua
/// allocation can (out of memory, or a finalizer's error raised in the GC
/// step it triggers).
fn busy(lua: &Lua, m: Method) -> Result<Value, Error> {
    lua.create_string("busy")
        .map(Value::String)
        .map_err(|e| error::lua(m, e))
}

/// `r:dig(player, x, y, z, t_us)` -> seq, or nil, "busy".
pub fn dig(lua: &Lua, r: &mut NativeResolver, a: &[Value]) -> Result<MultiValue, Error> {
    let m = Method::Dig;
    let p = args::id(lua, m, "player", nth(a, 0))?;
    let (x, y, z) = args::xyz(lua, m, a, 1)?;
    let t_us = args::t_us(lua, m, nth(a, 4))?;
    let busy = busy(lua, m)?;
    Ok(match r.core().get(m)?.dig(p, x, y, z, t_us)? {
        Some(seq) => MultiValue::from_vec(vec![Value::Number(seq as f64)]),
        None => MultiValue::from_vec(vec![Value::Nil, busy]),
    })
}

/// `r:dig_batch(records)` -> first_seq, count, or nil, "busy".
pub fn dig_batch(lua: &Lua, r: &mut NativeResolver, a: &[Value]) -> Result<(Value, Value), Error> {
    let m = Method::DigBatch;
    let records = args::string(m, "records", nth(a, 0))?;
    let busy = busy(lua, m)?;
    Ok(match r.core().get(m)?.dig_batch(&records.as_bytes())? {
        Some((first, count)) => (Value::Number(first as f64), Value::Number(count as f64)),
        None => (Value::Nil, busy),
    })
}
