//! The packets coming back: taking them off the ordered stream, waiting
//! for them, and the counters. Further stream methods (readiness, in-flight
//! counts) belong here.

use std::time::Duration;

use mlua::{Lua, Table, Value};
use treasure_core::contract::limits::COUNTER_NAMES;
use treasure_core::contract::Expected;
use treasure_core::{Arg, Error, Method, Stats, PACKET_SIZE};

use super::NativeResolver;
use crate::args::{self, nth};
use crate::error;
use crate::ffi::buffer;

/// `r:poll([max])` -> n, the n packets as one string.
pub fn poll(
    lua: &Lua,
    r: &mut NativeResolver,
    a: &[Value],
) -> Result<(f64, mlua::LuaString), Error> {
    let m = Method::Poll;
    let max = args::opt(nth(a, 0), |v| args::count(lua, m, "max", v))?;
    let mut core = r.core();
    let c = core.get(m)?;
    let avail = c.available_packets();
    let want = max.map_or(avail, |k| (k as usize).min(avail));
    r.scratch.resize(want * PACKET_SIZE, 0);
    // Copy, allocate the Lua string, and only then take the packets off
    // the stream: an allocation error (out of memory, or a __gc
    // finalizer's error raised in the GC step it triggers) loses nothing.
    let n = c.peek_into(m, &mut r.scratch, want)?;
    // The cell stays locked across the allocation: a finalizer that
    // calls this resolver from inside it is refused (see CoreRef::get)
    // rather than polling packets this call has copied but not taken.
    let s = lua
        .create_string(&r.scratch[..n * PACKET_SIZE])
        .map_err(|e| error::lua(m, e))?;
    c.consume(n);
    if r.scratch.capacity() > (1 << 20) {
        // Do not pin a burst-sized buffer forever.
        r.scratch = Vec::new();
    }
    Ok((n as f64, s))
}

/// `r:poll_into(buf, max)` -> n, the packets copied into `buf` (a uint8_t
/// array cdata). Checks, in order: buf, max, max against what buf holds.
pub fn poll_into(lua: &Lua, r: &mut NativeResolver, a: &[Value]) -> Result<f64, Error> {
    let m = Method::PollInto;
    let buf = buffer::measure(lua, nth(a, 0))
        .map_err(|e| error::lua(m, e))?
        .map_err(|what| {
            Error::wrong_type(m, Arg::Plain("buf"), Expected::Uint8ArrayCdata, &what)
        })?;
    let max = args::count(lua, m, "max", nth(a, 1))?;
    let holds = buf.holds() as u64;
    if max > holds {
        return Err(Error::buffer_too_small(m, holds, max));
    }
    let offset = buffer::offset(lua).ok_or_else(|| Error::ffi_unsupported(m))?;
    let n = buf.poll_into(r.core().get(m)?, max as usize, offset)?;
    Ok(n as f64)
}

/// `r:flush()`: waits until every accepted dig's packets are pollable.
pub fn flush(_: &Lua, r: &mut NativeResolver, _: &[Value]) -> Result<(), Error> {
    r.core().get(Method::Flush)?.flush()
}

/// `r:wait([timeout_us])` -> the packets pollable now.
pub fn wait(lua: &Lua, r: &mut NativeResolver, a: &[Value]) -> Result<f64, Error> {
    let m = Method::Wait;
    let timeout =
        args::opt(nth(a, 0), |v| args::count(lua, m, "timeout_us", v))?.map(Duration::from_micros);
    Ok(r.core().get(m)?.wait(timeout)? as f64)
}

/// `r:stats()` -> the counters table of docs/API.md.
pub fn stats(lua: &Lua, r: &mut NativeResolver, _: &[Value]) -> Result<Table, Error> {
    let st = r.core().get(Method::Stats)?.stats()?;
    stats_table(lua, &st).map_err(|e| error::lua(Method::Stats, e))
}

fn stats_table(lua: &Lua, s: &Stats) -> mlua::Result<Table> {
    let t = lua.create_table_with_capacity(0, 24)?;
    let n = |v: u64| v as f64;
    for (name, v) in COUNTER_NAMES.into_iter().zip(s.counters.values()) {
        t.raw_set(name, n(v))?;
    }
    t.raw_set("players", n(s.players))?;
    t.raw_set("sites", n(s.sites))?;
    t.raw_set("pending_packets", n(s.pending_packets))?;
    t.raw_set("resolve_p50_us", s.resolve_p50_us)?;
    t.raw_set("resolve_p99_us", s.resolve_p99_us)?;
    t.raw_set("resolve_p999_us", s.resolve_p999_us)?;
    t.raw_set("resolve_max_us", s.resolve_max_us)?;
    t.raw_set("inflight_chunks", n(s.inflight_chunks))?;
    t.raw_set("ready_chunks", n(s.ready_chunks))?;
    t.raw_set("workers", n(s.workers))?;
    Ok(t)
}
