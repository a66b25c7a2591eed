//! Issue 15 in the binding: `r:fd()`, `r:in_flight()` and the stats keys of
//! the non-blocking `stats()` (inflight_digs, the resolve latency buckets).
//! A child of resolver.rs (it uses that file's `method`, `msg`, `arg`).

use std::sync::Arc;

use mlua::{Lua, Table};
use treasure_core::{Method, Stats, RESOLVE_BUCKETS_US};

use super::{method, msg};
use crate::ffi::eventfd::EventFd;

/// Registers `fd` and `in_flight` in the methods table `m`.
pub(super) fn methods(lua: &Lua, m: &Table) -> mlua::Result<()> {
    // r:fd(): created on the first call (eventfd, see src/ffi/eventfd.rs),
    // the same number afterwards; closed by close()/GC.
    method(lua, m, "fd", |_, r, _| {
        if let Some(fd) = r.fd {
            return Ok(fd as f64);
        }
        let efd = EventFd::new().map_err(|e| format!("treasure: fd: eventfd failed: {e}"))?;
        let raw = efd.raw();
        r.core()
            .get("fd")?
            .set_ready_hook(Method::Fd, Arc::new(efd))
            .map_err(msg)?;
        r.fd = Some(raw);
        Ok(raw as f64)
    })?;

    method(lua, m, "in_flight", |_, r, _| {
        Ok(r.core().get("in_flight")?.in_flight().map_err(msg)? as f64)
    })?;
    Ok(())
}

/// The issue 15 keys of `stats()` (docs/API.md, "stats").
pub(super) fn stats_keys(t: &Table, s: &Stats) -> mlua::Result<()> {
    t.raw_set("inflight_digs", s.inflight_digs as f64)?;
    let b = &s.resolve_buckets;
    for (bound, n) in RESOLVE_BUCKETS_US.iter().zip(b.le) {
        t.raw_set(format!("resolve_bucket_le_{bound}_us"), n as f64)?;
    }
    t.raw_set("resolve_count", b.count as f64)?;
    t.raw_set("resolve_sum_us", b.sum_us)?;
    Ok(())
}
