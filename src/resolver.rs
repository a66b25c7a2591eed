//! The resolver userdata and its raw methods.
//!
//! Each raw function validates its Lua arguments in the contract's order
//! (self, closed, arguments left to right), converts them to the core's
//! types, calls `treasure_core::Resolver`, and converts the result back. On
//! failure it returns `(ERR, message)`; the shim in native.lua raises the
//! message as a plain string. No resolver logic lives here.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use mlua::{
    IntoLuaMulti, Lua, MultiValue, Table, UserData, UserDataFields, UserDataMethods,
    UserDataRefMut, Value,
};
use treasure_core::{Method, Resolver, PACKET_SIZE as SIZE};

use crate::args::{self, Fail, CHARGES, COUNT, ID, PARTY, T_US};
use crate::ffi::buffer::{self, PointerOffset};
use crate::ffi::fork::Origin;
use crate::ffi::handles::{self, Guard, Ticket};
use crate::tables;

// Issue 15's methods (fd, in_flight) and stats keys: a child module so it
// reaches this file's helpers; kept apart so this file changes little.
#[path = "readiness.rs"]
mod readiness;

/// Registry key of the methods table the shim builds (the userdata's `__index`).
pub const METHODS_KEY: &str = "treasure.native.methods";

/// The sentinel the raw functions return first when a call failed.
pub struct ErrSentinel(pub Table);

/// A resolver as Lua sees it. The core resolver lives in a cell of the
/// handle arena (ffi/handles.rs), which both call paths lock for each call;
/// the userdata owns the cell's ticket. `None` once closed or finalized:
/// releasing makes every handle of the cell stale, then drops the core
/// resolver (which waits for its in-flight work and frees its memory) —
/// except in a forked child, where it is leaked (its threads are the
/// parent's; waiting on them would hang).
pub struct NativeResolver {
    ticket: Option<Ticket>,
    origin: Origin,
    /// Reused by `poll` to gather packets before the one `create_string`.
    scratch: Vec<u8>,
    /// `r:fd()`'s descriptor once created (the core owns the eventfd and
    /// closes it when the resolver is released).
    fd: Option<i32>,
}

impl Drop for NativeResolver {
    /// The userdata was finalized (GC, lua_close): release like `close()`.
    fn drop(&mut self) {
        self.release();
    }
}

impl UserData for NativeResolver {
    fn add_fields<F: UserDataFields<Self>>(fields: &mut F) {
        fields.add_meta_field_with("__index", |lua| {
            lua.named_registry_value::<Table>(METHODS_KEY)
        });
    }

    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_meta_method("__tostring", |_, this, ()| {
            Ok(if this.ticket.is_some() {
                "treasure.native resolver".to_owned()
            } else {
                "treasure.native resolver (closed)".to_owned()
            })
        });
    }
}

/// The userdata `finalized_sample` makes (and at once finalizes).
struct FinalizedSample;
impl UserData for FinalizedSample {}

/// Turns a call's outcome into what the shim expects.
fn finish<R: IntoLuaMulti>(lua: &Lua, r: Result<R, Fail>) -> mlua::Result<MultiValue> {
    match r {
        Ok(v) => v.into_lua_multi(lua),
        Err(msg) => {
            let err = lua.app_data_ref::<ErrSentinel>().map(|e| e.0.clone());
            (err, msg).into_lua_multi(lua)
        }
    }
}

/// Runs a raw method body, turning a Rust panic into an ordinary failure so
/// that nothing unwinds into LuaJIT.
fn guarded<R: IntoLuaMulti>(
    lua: &Lua,
    func: &'static str,
    body: impl FnOnce() -> Result<R, Fail>,
) -> mlua::Result<MultiValue> {
    let r = catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|p| {
        let what = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_owned());
        Err(format!("treasure: {func}: internal error: {what}"))
    });
    finish(lua, r)
}

fn closed(func: &str) -> Fail {
    format!("treasure: {func}: resolver is closed")
}

/// What borrowing `self` gave: the resolver, or a userdata mlua already
/// finalized (its `__gc` ran: lua_close, another finalizer of the same
/// cycle, a resurrected userdata), which is a closed resolver.
enum Borrowed {
    Live(UserDataRefMut<NativeResolver>),
    Finalized,
}

/// `self` as a resolver of this backend (step 1 of the check order).
fn borrow_self(func: &str, v: &Value) -> Result<Borrowed, Fail> {
    let ud = match v {
        Value::UserData(ud) => ud,
        other => {
            return Err(format!(
                "treasure: {func}: self must be a resolver, got {}",
                args::type_name(other)
            ))
        }
    };
    match ud.borrow_mut::<NativeResolver>() {
        Ok(r) => Ok(Borrowed::Live(r)),
        Err(mlua::Error::UserDataDestructed) => Ok(Borrowed::Finalized),
        Err(_) => Err(format!(
            "treasure: {func}: self must be a resolver, got userdata"
        )),
    }
}

/// `self` as an open resolver of this process, or the contract's error
/// (check order: self, forked, closed).
fn this(func: &str, v: &Value) -> Result<UserDataRefMut<NativeResolver>, Fail> {
    let r = match borrow_self(func, v)? {
        Borrowed::Live(r) => r,
        Borrowed::Finalized => return Err(closed(func)),
    };
    if let Some((created, used)) = r.origin.foreign() {
        return Err(format!(
            "treasure: {func}: resolver was created in process {created} and used in process {used}; \
             create it after the fork (OpenResty: init_worker_by_lua)"
        ));
    }
    if r.ticket.is_none() {
        return Err(closed(func));
    }
    Ok(r)
}

impl NativeResolver {
    fn new(lua_fn: &str, core: Resolver) -> Result<NativeResolver, Fail> {
        let origin = Origin::here();
        let ticket = Ticket::issue(core, origin.epoch()).map_err(|_| {
            format!(
                "treasure: {lua_fn}: too many open resolvers (at most {} at once)",
                handles::MAX_OPEN
            )
        })?;
        Ok(NativeResolver {
            ticket: Some(ticket),
            origin,
            scratch: Vec::new(),
            fd: None,
        })
    }

    /// The open core resolver, locked for one call (`this()` has checked
    /// it is open and of this process).
    fn core(&self) -> CoreRef {
        CoreRef(self.ticket.as_ref().and_then(Ticket::lock))
    }

    /// close() and Drop: make every handle stale, then free the core
    /// resolver, or leak it when it belongs to the parent of a fork.
    fn release(&mut self) {
        self.scratch = Vec::new();
        self.fd = None;
        if let Some(t) = self.ticket.take() {
            if self.origin.foreign().is_some() {
                t.abandon();
            } else {
                drop(t.retire());
            }
        }
    }
}

/// The locked cell of an open resolver, for one call. Locking fails only if
/// another OS thread holds the cell through a copied handle; the methods
/// then answer with an error instead of waiting.
struct CoreRef(Option<Guard>);

impl CoreRef {
    fn get(&mut self, func: &str) -> Result<&mut Resolver, Fail> {
        self.0
            .as_mut()
            .and_then(|g| g.resolver())
            .map(|(r, _)| r)
            .ok_or_else(|| {
                format!("treasure: {func}: resolver is already in a call (from another thread, or a __gc finalizer run inside that call)")
            })
    }
}

/// A core error as the message the shim raises (its Display is the
/// contract's exact text).
fn msg(e: impl std::fmt::Display) -> Fail {
    e.to_string()
}

/// Argument `i` (0-based, after `self`), `nil` when absent.
fn arg(a: &[Value], i: usize) -> &Value {
    a.get(i).unwrap_or(&Value::Nil)
}

/// Arguments `i`, `i+1`, `i+2` as block coordinates `x`, `y`, `z`.
fn xyz(lua: &Lua, f: &str, a: &[Value], i: usize) -> Result<(i32, i32, i32), Fail> {
    Ok((
        args::coord(lua, f, "x", arg(a, i))?,
        args::coord(lua, f, "y", arg(a, i + 1))?,
        args::coord(lua, f, "z", arg(a, i + 2))?,
    ))
}

/// The "busy" reason string. `dig`/`dig_batch` create it *before* the core
/// call: once the core has counted a busy refusal the call must not fail, and
/// any Lua allocation can (out of memory, or a finalizer's error raised in
/// the GC step it triggers).
fn busy(lua: &Lua, f: &str) -> Result<Value, Fail> {
    lua.create_string("busy")
        .map(Value::String)
        .map_err(|e| format!("treasure: {f}: {e}"))
}

/// Registers the raw method `name` in `m`: it checks `self` (a resolver of
/// this backend, open) and runs `body` with it and the other arguments, all
/// inside [`guarded`].
fn method<R, F>(lua: &Lua, m: &Table, name: &'static str, body: F) -> mlua::Result<()>
where
    R: IntoLuaMulti,
    F: Fn(&Lua, &mut NativeResolver, &[Value]) -> Result<R, Fail> + 'static,
{
    let f = lua.create_function(move |lua, (s, rest): (Value, MultiValue)| {
        guarded(lua, name, || {
            let mut r = this(name, &s)?;
            let rest: Vec<Value> = rest.into_iter().collect();
            body(lua, &mut r, &rest)
        })
    })?;
    m.set(name, f)
}

fn bytes_arg(func: &str, v: &Value) -> Result<mlua::LuaString, Fail> {
    match v {
        Value::String(s) => Ok(s.clone()),
        other => Err(format!(
            "treasure: {func}: records must be a string, got {}",
            args::type_name(other)
        )),
    }
}

fn stats_table(lua: &Lua, s: &treasure_core::Stats) -> mlua::Result<Table> {
    let t = lua.create_table_with_capacity(0, 40)?;
    let n = |v: u64| v as f64;
    t.raw_set("digs", n(s.digs))?;
    t.raw_set("packets", n(s.packets))?;
    t.raw_set("found", n(s.found))?;
    t.raw_set("empty", n(s.empty))?;
    t.raw_set("nothing", n(s.nothing))?;
    t.raw_set("rejected", n(s.rejected))?;
    t.raw_set("busy", n(s.busy))?;
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
    readiness::stats_keys(&t, s)?;
    Ok(t)
}

/// Builds the table of raw functions the shim wraps.
pub fn raw_functions(lua: &Lua) -> mlua::Result<Table> {
    let raw = lua.create_table()?;
    let m = lua.create_table()?;

    raw.set(
        "new",
        lua.create_function(|lua, (opts, tuning): (Value, Value)| {
            guarded(lua, "new", || {
                let mut o = tables::options(lua, &opts)?;
                tables::tuning(lua, &tuning, &mut o)?;
                let core = Resolver::new(o).map_err(msg)?;
                lua.create_userdata(NativeResolver::new("new", core)?)
                    .map_err(|e| format!("treasure: new: {e}"))
            })
        })?,
    )?;

    method(lua, &m, "add_loot_table", |lua, r, a| {
        let f = "add_loot_table";
        let id = args::u32_in(lua, f, "id", arg(a, 0), ID)?;
        let entries = tables::loot_entries(lua, arg(a, 1))?;
        r.core().get(f)?.add_loot_table(id, &entries).map_err(msg)
    })?;

    method(lua, &m, "add_site", |lua, r, a| {
        let f = "add_site";
        let id = args::u32_in(lua, f, "id", arg(a, 0), ID)?;
        let (x, y, z) = xyz(lua, f, a, 1)?;
        let table = args::u32_in(lua, f, "loot_table_id", arg(a, 4), ID)?;
        let charges = args::u32_in(lua, f, "charges", arg(a, 5), CHARGES)?;
        r.core()
            .get(f)?
            .add_site(id, x, y, z, table, charges)
            .map_err(msg)
    })?;

    method(lua, &m, "remove_site", |lua, r, a| {
        let f = "remove_site";
        let id = args::u32_in(lua, f, "id", arg(a, 0), ID)?;
        r.core().get(f)?.remove_site(id).map_err(msg)
    })?;

    method(lua, &m, "join", |lua, r, a| {
        let f = "join";
        let p = args::u32_in(lua, f, "player", arg(a, 0), ID)?;
        let (x, y, z) = xyz(lua, f, a, 1)?;
        let party = args::opt_int(lua, f, "party", arg(a, 4), PARTY)?.unwrap_or(0) as u32;
        r.core().get(f)?.join(p, x, y, z, party).map_err(msg)
    })?;

    method(lua, &m, "move", |lua, r, a| {
        let f = "move";
        let p = args::u32_in(lua, f, "player", arg(a, 0), ID)?;
        let (x, y, z) = xyz(lua, f, a, 1)?;
        r.core().get(f)?.move_player(p, x, y, z).map_err(msg)
    })?;

    method(lua, &m, "set_party", |lua, r, a| {
        let f = "set_party";
        let p = args::u32_in(lua, f, "player", arg(a, 0), ID)?;
        let party = args::u32_in(lua, f, "party", arg(a, 1), PARTY)?;
        r.core().get(f)?.set_party(p, party).map_err(msg)
    })?;

    method(lua, &m, "leave", |lua, r, a| {
        let f = "leave";
        let p = args::u32_in(lua, f, "player", arg(a, 0), ID)?;
        r.core().get(f)?.leave(p).map_err(msg)
    })?;

    method(lua, &m, "dig", |lua, r, a| {
        let f = "dig";
        let p = args::u32_in(lua, f, "player", arg(a, 0), ID)?;
        let (x, y, z) = xyz(lua, f, a, 1)?;
        let t = args::int(lua, f, "t_us", arg(a, 4), T_US)? as u64;
        // Allocated before the core counts a busy refusal (see `busy`).
        let busy = busy(lua, f)?;
        let seq = r.core().get(f)?.dig(p, x, y, z, t).map_err(msg)?;
        Ok(match seq {
            Some(seq) => MultiValue::from_vec(vec![Value::Number(seq as f64)]),
            None => MultiValue::from_vec(vec![Value::Nil, busy]),
        })
    })?;

    method(lua, &m, "dig_batch", |lua, r, a| {
        let f = "dig_batch";
        let records = bytes_arg(f, arg(a, 0))?;
        // Allocated before the core counts a busy refusal (see `busy`).
        let busy = busy(lua, f)?;
        let batch = r
            .core()
            .get(f)?
            .dig_batch(&records.as_bytes())
            .map_err(msg)?;
        Ok(match batch {
            Some((first, count)) => (Value::Number(first as f64), Value::Number(count as f64)),
            None => (Value::Nil, busy),
        })
    })?;

    method(lua, &m, "move_batch", |_, r, a| {
        let f = "move_batch";
        let records = bytes_arg(f, arg(a, 0))?;
        r.core()
            .get(f)?
            .move_batch(&records.as_bytes())
            .map_err(msg)
    })?;

    method(lua, &m, "poll", |lua, r, a| {
        let f = "poll";
        let max = args::opt_int(lua, f, "max", arg(a, 0), COUNT)?;
        let mut core = r.core();
        let c = core.get(f)?;
        let avail = c.available_packets();
        let want = max.map_or(avail, |m| (m as usize).min(avail));
        r.scratch.resize(want * SIZE, 0);
        // Copy, allocate the Lua string, and only then take the packets off
        // the stream: an allocation error (out of memory, or a __gc
        // finalizer's error raised in the GC step it triggers) loses nothing.
        let n = c
            .peek_into(Method::Poll, &mut r.scratch, want)
            .map_err(msg)?;
        // The cell stays locked across the allocation: a finalizer that
        // calls this resolver from inside it is refused (see CoreRef::get)
        // rather than polling packets this call has copied but not taken.
        let s = lua
            .create_string(&r.scratch[..n * SIZE])
            .map_err(|e| format!("treasure: {f}: {e}"))?;
        c.consume(n);
        if r.scratch.capacity() > (1 << 20) {
            // Do not pin a burst-sized buffer forever.
            r.scratch = Vec::new();
        }
        Ok((n as f64, s))
    })?;

    method(lua, &m, "flush", |_, r, _| {
        r.core().get("flush")?.flush().map_err(msg)
    })?;

    method(lua, &m, "wait", |lua, r, a| {
        let f = "wait";
        let timeout = args::opt_int(lua, f, "timeout_us", arg(a, 0), COUNT)?
            .map(|us| Duration::from_micros(us as u64));
        Ok(r.core().get(f)?.wait(timeout).map_err(msg)? as f64)
    })?;

    readiness::methods(lua, &m)?;

    method(lua, &m, "stats", |lua, r, _| {
        let st = r.core().get("stats")?.stats().map_err(msg)?;
        stats_table(lua, &st).map_err(|e| format!("treasure: stats: {e}"))
    })?;

    m.set(
        "close",
        lua.create_function(|lua, s: Value| {
            guarded(lua, "close", || {
                // Closing a closed or finalized resolver does nothing; in a
                // forked child it releases the Lua side only (see release).
                if let Borrowed::Live(mut r) = borrow_self("close", &s)? {
                    r.release();
                }
                Ok(())
            })
        })?,
    )?;

    // poll_into(self, buf, max, holds, buf_err, cap_err, addr): `holds` is
    // the verdict of treasure/ffi_buffer.lua for buf (the packets it holds;
    // -1 when refused), `buf_err`/`cap_err` its refusal messages, `addr` a
    // pointer buf's address (nil for an array). Only native.lua's shim can
    // call it (ffi/buffer.rs).
    method(lua, &raw, "poll_into", |lua, r, a| {
        let f = "poll_into";
        let text = |v: &Value| v.as_string().map(|s| s.to_string_lossy().to_string());
        if let Some(e) = text(arg(a, 3)) {
            return Err(format!("treasure: {f}: {e}"));
        }
        let holds = match arg(a, 2) {
            Value::Integer(n) if *n >= 0 => *n as f64,
            Value::Number(n) if *n >= 0.0 && n.fract() == 0.0 && *n < 9007199254740992.0 => *n,
            _ => -1.0,
        };
        if holds < 0.0 && arg(a, 4).is_nil() || !buffer::is_cdata(arg(a, 0)) {
            return Err(format!(
                "treasure: {f}: buf must be a uint8_t array, uint8_t * or void * cdata"
            ));
        }
        let max = args::int(lua, f, "max", arg(a, 1), COUNT)? as u64;
        if let Some(e) = text(arg(a, 4)) {
            return Err(format!("treasure: {f}: {e}"));
        }
        let holds = holds as u64;
        if max > holds {
            return Err(format!(
                "treasure: {f}: max must be at most {holds} (the packets buf holds), got {max}"
            ));
        }
        let addr = match arg(a, 5) {
            Value::Nil => None,
            Value::Integer(n) => Some(*n as f64),
            Value::Number(n) => Some(*n),
            // Never from the shim; refuse rather than treat it as an array.
            _ => return Err(format!("treasure: {f}: buf must be a uint8_t array cdata")),
        };
        if let Some(addr) = addr {
            let n = buffer::poll_into_pointer_by_shim(
                r.core().get(f)?,
                addr,
                holds as usize,
                max as usize,
            )
            .map_err(msg)?;
            return Ok(n as f64);
        }
        let offset = *lua.app_data_ref::<PointerOffset>().ok_or_else(|| {
            format!("treasure: {f}: FFI buffers are unsupported by this LuaJIT build")
        })?;
        let buf = buffer::vouched_by_shim(arg(a, 0), holds as usize, offset)
            .ok_or_else(|| format!("treasure: {f}: buf must be a uint8_t array cdata"))?;
        let n = buf.poll_into(r.core().get(f)?, max as usize).map_err(msg)?;
        Ok(n as f64)
    })?;

    // (header, packed sites, packed players): native.lua assembles the
    // snapshot table (see snapshot.rs).
    method(lua, &raw, "snapshot", |lua, r, _| {
        let snap = r.core().get("snapshot")?.snapshot().map_err(msg)?;
        crate::snapshot::to_lua(lua, &snap).map_err(|e| format!("treasure: snapshot: {e}"))
    })?;

    // native.lua has run lua/treasure/snapshot.lua's checks on the snapshot
    // and passes its small part plus sites and players packed.
    raw.set(
        "restore",
        lua.create_function(
            |lua, (header, sites, players, tuning): (Value, mlua::LuaString, mlua::LuaString, Value)| {
                guarded(lua, "restore", || {
                    let mut base = treasure_core::Options::default();
                    tables::tuning(lua, &tuning, &mut base)?;
                    let snap = crate::snapshot::from_lua(
                        lua,
                        &header,
                        &sites.as_bytes(),
                        &players.as_bytes(),
                        base,
                    )?;
                    let core = Resolver::restore(snap).map_err(msg)?;
                    lua.create_userdata(NativeResolver::new("restore", core)?)
                        .map_err(|e| format!("treasure: restore: {e}"))
                })
            },
        )?,
    )?;

    method(lua, &raw, "handle", |_, r, _| {
        Ok(r.ticket.as_ref().map(Ticket::handle).unwrap_or(-1.0))
    })?;

    raw.set(
        "identity",
        lua.create_function(|_, ()| {
            Ok(crate::ffi::fast::treasure_native_identity() as usize as f64)
        })?,
    )?;

    // A userdata mlua has already finalized, so native.lua can give the
    // metatable mlua puts on finalized userdata (one per state, used only by
    // this module's userdata) an __index and __tostring: a method called on
    // a finalized resolver then reaches the raw function, which says
    // `resolver is closed`, instead of mlua's "userdata has been destructed".
    raw.set(
        "finalized_sample",
        lua.create_function(|lua, ()| {
            let ud = lua.create_userdata(FinalizedSample)?;
            ud.destroy()?;
            Ok(ud)
        })?,
    )?;

    raw.set(
        "calibrate",
        lua.create_function(
            |lua, (vla, vla_addr, fixed, fixed_addr): (Value, f64, Value, f64)| {
                if let Some(off) = buffer::calibrate(&vla, vla_addr, &fixed, fixed_addr) {
                    lua.set_app_data(off);
                }
                Ok(())
            },
        )?,
    )?;

    method(lua, &raw, "_inject_worker_panic", |lua, r, a| {
        let n = args::int(lua, "_inject_worker_panic", "n", arg(a, 0), COUNT)? as u64;
        r.core()
            .get("_inject_worker_panic")?
            .inject_worker_panic_after(n);
        Ok(())
    })?;

    raw.set("methods", m)?;
    raw.set("_VERSION", concat!("treasure ", env!("CARGO_PKG_VERSION")))?;
    // The same as one number, as packet.lua computes it: major*1e6 + minor*1e3 + patch.
    let part = |s: &str| {
        s.parse::<f64>()
            .map_err(|e| mlua::Error::runtime(format!("version part {s}: {e}")))
    };
    raw.set(
        "_VERSION_NUM",
        part(env!("CARGO_PKG_VERSION_MAJOR"))? * 1e6
            + part(env!("CARGO_PKG_VERSION_MINOR"))? * 1e3
            + part(env!("CARGO_PKG_VERSION_PATCH"))?,
    )?;
    Ok(raw)
}
