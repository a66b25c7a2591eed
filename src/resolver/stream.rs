//! The packets coming back: taking them off the ordered stream, waiting
//! for them, readiness (`fd`, `in_flight`, issue 15), and the counters.

use std::sync::Arc;
use std::time::Duration;

use mlua::{Lua, Table, Value};
use treasure_core::contract::limits::{
    CLUSTER_COUNTER_NAMES, COUNT, COUNTER_NAMES, RESOLVE_BUCKET_KEYS,
};
use treasure_core::contract::Expected;
use treasure_core::{Arg, Error, Method, Stats, PACKET_SIZE};

use super::NativeResolver;
use crate::args::{self, nth};
use crate::error;
use crate::ffi::buffer::{self, BufRefusal, Buffer, CapacityRefusal, Verdict};
use crate::ffi::eventfd::EventFd;

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

/// `r:poll_into(buf, max [, capacity])` -> n, the packets copied into
/// `buf`: a uint8_t array cdata, or a `uint8_t *` / `void *` cdata with
/// `capacity` bytes (issue 15). Checks, in order: buf, max, capacity, max
/// against what buf holds; all before anything leaves the queue.
pub fn poll_into(lua: &Lua, r: &mut NativeResolver, a: &[Value]) -> Result<f64, Error> {
    let m = Method::PollInto;
    let buf_arg = Arg::Plain("buf");
    let verdict = buffer::measure(lua, nth(a, 0), nth(a, 2)).map_err(|e| error::lua(m, e))?;
    // Check order: buf's own refusals, then max, then capacity's.
    let staged = match verdict {
        Verdict::BadBuf(BufRefusal::Type(what)) => {
            return Err(Error::wrong_type(m, buf_arg, Expected::PacketBuffer, &what))
        }
        Verdict::BadBuf(BufRefusal::Null(what)) => {
            return Err(Error::null_pointer(m, buf_arg, what))
        }
        Verdict::BadCapacity(why) => Err(why),
        Verdict::Accepted(buf) => Ok(buf),
    };
    let max = args::count(lua, m, "max", nth(a, 1))?;
    let buf = match staged {
        Ok(buf) => buf,
        Err(CapacityRefusal::Invalid(shown)) => {
            return Err(Error::out_of_range(m, Arg::Plain("capacity"), COUNT, shown))
        }
        Err(CapacityRefusal::Exceeds { size }) => {
            let capacity = args::count(lua, m, "capacity", nth(a, 2))?;
            return Err(Error::capacity_exceeds_buffer(m, size, capacity));
        }
        Err(CapacityRefusal::Missing) => return Err(Error::capacity_required(m)),
    };
    let holds = buf.holds() as u64;
    if max > holds {
        return Err(Error::buffer_too_small(m, holds, max));
    }
    let n = match buf {
        Buffer::Pointer(ptr) => ptr.poll_into(r.core().get(m)?, max as usize)?,
        Buffer::Array(arr) => {
            let offset = buffer::offset(lua).ok_or_else(|| Error::ffi_unsupported(m))?;
            arr.poll_into(r.core().get(m)?, max as usize, offset)?
        }
    };
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

/// `r:in_flight()` -> accepted digs whose packets are not yet all pollable
/// (never blocks; 0: `flush` would return at once).
pub fn in_flight(_: &Lua, r: &mut NativeResolver, _: &[Value]) -> Result<f64, Error> {
    Ok(r.core().get(Method::InFlight)?.in_flight()? as f64)
}

/// `r:fd()` -> a file descriptor readable whenever `poll` would return a
/// packet: an eventfd (src/ffi/eventfd.rs) created on the first call and
/// handed to the core as its readiness hook; the same number afterwards.
/// The core owns it from then on and closes it on close()/GC.
pub fn fd(_: &Lua, r: &mut NativeResolver, _: &[Value]) -> Result<f64, Error> {
    let m = Method::Fd;
    if let Some(fd) = r.fd {
        return Ok(fd as f64);
    }
    let efd =
        EventFd::new().map_err(|e| Error::eventfd_failed(m, e.raw_os_error().unwrap_or(0)))?;
    let raw = efd.raw();
    r.core().get(m)?.set_ready_hook(m, Arc::new(efd))?;
    r.fd = Some(raw);
    Ok(raw as f64)
}

/// `r:stats()` -> the counters table of docs/API.md.
pub fn stats(lua: &Lua, r: &mut NativeResolver, _: &[Value]) -> Result<Table, Error> {
    let st = r.core().get(Method::Stats)?.stats()?;
    stats_table(lua, &st).map_err(|e| error::lua(Method::Stats, e))
}

fn stats_table(lua: &Lua, s: &Stats) -> mlua::Result<Table> {
    let t = lua.create_table_with_capacity(0, 40)?;
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
    // Issue 15: in-flight digs and the cumulative resolve latency buckets.
    t.raw_set("inflight_digs", n(s.inflight_digs))?;
    let b = &s.resolve_buckets;
    for (key, v) in RESOLVE_BUCKET_KEYS.into_iter().zip(b.le) {
        t.raw_set(key, n(v))?;
    }
    t.raw_set("resolve_count", n(b.count))?;
    t.raw_set("resolve_sum_us", b.sum_us)?;
    // Issue 17: cluster mode only.
    if let Some(c) = &s.cluster {
        t.raw_set("shard", n(c.shard.into()))?;
        t.raw_set("shards", n(c.shards.into()))?;
        t.raw_set("next_host_seq", n(c.next_host_seq))?;
        for (name, v) in CLUSTER_COUNTER_NAMES.into_iter().zip(c.counters.values()) {
            t.raw_set(name, n(v))?;
        }
        t.raw_set("pending_records", n(c.pending_records))?;
        t.raw_set("log_position", n(c.log_position))?;
    }
    Ok(t)
}
