//! Cluster mode's methods (issue 17): `set_host`, `take_records`,
//! `apply_records`. Each checks, after self and closed, that the resolver
//! is in cluster mode, then its arguments in order; the rules and messages
//! are the core's.

use mlua::{Lua, MultiValue, Value};

use super::NativeResolver;
use crate::args::{self, nth};
use crate::error;
use treasure_core::contract::limits;
use treasure_core::{Applied, Arg, Error, Method};

/// `r:set_host(player, host)`.
pub fn set_host(lua: &Lua, r: &mut NativeResolver, a: &[Value]) -> Result<(), Error> {
    let m = Method::SetHost;
    let mut core = r.core();
    let core = core.get(m)?;
    let (_, shards) = core.shard().ok_or(Error::not_cluster(m))?;
    let p = args::id(lua, m, "player", nth(a, 0))?;
    if !core.has_joined(p) {
        return Err(Error::not_joined(m, Arg::Plain("player"), p));
    }
    let host = args::int(
        lua,
        m,
        Arg::Plain("host"),
        nth(a, 1),
        limits::shard_of(shards),
    )?;
    core.set_host(p, host as u16)
}

/// `r:take_records()` -> n, bytes (`0, ""` when none).
pub fn take_records(lua: &Lua, r: &mut NativeResolver, _: &[Value]) -> Result<(f64, Value), Error> {
    let m = Method::TakeRecords;
    let mut core = r.core();
    let core = core.get(m)?;
    if core.shard().is_none() {
        return Err(Error::not_cluster(m));
    }
    // All or nothing: the records are taken only once the string exists.
    let mut bytes = Vec::new();
    let n = core.take_records(&mut bytes)?;
    match lua.create_string(&bytes) {
        Ok(s) => Ok((n as f64, Value::String(s))),
        Err(e) => {
            core.untake_records(bytes, n);
            Err(error::lua(m, e))
        }
    }
}

/// `r:apply_records(bytes [, log_position])` -> digs, or nil, "gap" /
/// nil, "busy".
pub fn apply_records(lua: &Lua, r: &mut NativeResolver, a: &[Value]) -> Result<MultiValue, Error> {
    let m = Method::ApplyRecords;
    if r.core().get(m)?.shard().is_none() {
        return Err(Error::not_cluster(m));
    }
    let records = args::string(m, "records", nth(a, 0))?;
    let pos = args::opt(nth(a, 1), |v| {
        args::int(lua, m, Arg::Plain("log_position"), v, limits::LOG_POSITION)
    })?;
    // Created before the core call: a refusal must not fail afterwards.
    let reason = |s: &str| {
        lua.create_string(s)
            .map(Value::String)
            .map_err(|e| error::lua(m, e))
    };
    let (gap, busy) = (reason("gap")?, reason("busy")?);
    let mut core = r.core();
    Ok(
        match core
            .get(m)?
            .apply_records(&records.as_bytes(), pos.map(|p| p as u64))?
        {
            Applied::Digs(n) => MultiValue::from_vec(vec![Value::Number(n as f64)]),
            Applied::Gap => MultiValue::from_vec(vec![Value::Nil, gap]),
            Applied::Busy => MultiValue::from_vec(vec![Value::Nil, busy]),
        },
    )
}
