//! The resolver userdata and its raw methods.
//!
//! Each raw function validates its Lua arguments in the contract's order
//! (self, closed, arguments left to right), converts them to the core's
//! types, calls `treasure_core::Resolver`, and converts the result back. On
//! failure it returns `(ERR, message)`; the shim in native.lua raises the
//! message as a plain string. No resolver logic lives here.

use std::panic::{catch_unwind, AssertUnwindSafe};

use mlua::{
    IntoLuaMulti, Lua, MultiValue, Table, UserData, UserDataFields, UserDataMethods,
    UserDataRefMut, Value,
};
use treasure_core::{Resolver, PACKET_SIZE as SIZE};

use crate::args::{self, Fail, CHARGES, COUNT, ID, PARTY, T_US};
use crate::ffi_buffer::{self, PointerOffset};
use crate::tables;

/// Registry key of the methods table the shim builds (the userdata's `__index`).
pub const METHODS_KEY: &str = "treasure.native.methods";

/// The sentinel the raw functions return first when a call failed.
pub struct ErrSentinel(pub Table);

/// A resolver as Lua sees it. `None` once closed: close drops the core
/// resolver, which waits for its in-flight work and frees all its memory.
pub struct NativeResolver {
    /// Boxed so its address, the FFI fast path's handle, never moves.
    core: Option<Box<Resolver>>,
    /// Reused by `poll` to gather packets before the one `create_string`.
    scratch: Vec<u8>,
}

impl UserData for NativeResolver {
    fn add_fields<F: UserDataFields<Self>>(fields: &mut F) {
        fields.add_meta_field_with("__index", |lua| {
            lua.named_registry_value::<Table>(METHODS_KEY)
        });
    }

    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_meta_method("__tostring", |_, this, ()| {
            Ok(if this.core.is_some() {
                "treasure.native resolver".to_owned()
            } else {
                "treasure.native resolver (closed)".to_owned()
            })
        });
    }
}

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

/// `self` as an open resolver, or the contract's error.
fn this<'a>(func: &str, v: &'a Value) -> Result<UserDataRefMut<NativeResolver>, Fail> {
    let ud = match v {
        Value::UserData(ud) => ud,
        other => {
            return Err(format!(
                "treasure: {func}: self must be a resolver, got {}",
                args::type_name(other)
            ))
        }
    };
    let r = ud
        .borrow_mut::<NativeResolver>()
        .map_err(|_| format!("treasure: {func}: self must be a resolver, got userdata"))?;
    if r.core.is_none() {
        return Err(format!("treasure: {func}: resolver is closed"));
    }
    Ok(r)
}

fn core<'a>(r: &'a mut UserDataRefMut<NativeResolver>) -> &'a mut Resolver {
    r.core.as_mut().expect("checked open by this()")
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
    let t = lua.create_table_with_capacity(0, 24)?;
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
                let core = Resolver::new(o).map_err(|e| e.to_string())?;
                lua.create_userdata(NativeResolver {
                    core: Some(Box::new(core)),
                    scratch: Vec::new(),
                })
                .map_err(|e| format!("treasure: new: {e}"))
            })
        })?,
    )?;

    m.set(
        "add_loot_table",
        lua.create_function(|lua, (s, id, entries): (Value, Value, Value)| {
            guarded(lua, "add_loot_table", || {
                let f = "add_loot_table";
                let mut r = this(f, &s)?;
                let id = args::u32_in(lua, f, "id", &id, ID)?;
                let entries = tables::loot_entries(lua, &entries)?;
                core(&mut r)
                    .add_loot_table(id, &entries)
                    .map_err(|e| e.to_string())
            })
        })?,
    )?;

    m.set(
        "add_site",
        lua.create_function(
            |lua,
             (s, id, x, y, z, table, charges): (
                Value,
                Value,
                Value,
                Value,
                Value,
                Value,
                Value,
            )| {
                guarded(lua, "add_site", || {
                    let f = "add_site";
                    let mut r = this(f, &s)?;
                    let id = args::u32_in(lua, f, "id", &id, ID)?;
                    let (x, y, z) = (
                        args::coord(lua, f, "x", &x)?,
                        args::coord(lua, f, "y", &y)?,
                        args::coord(lua, f, "z", &z)?,
                    );
                    let table = args::u32_in(lua, f, "loot_table_id", &table, ID)?;
                    let charges = args::u32_in(lua, f, "charges", &charges, CHARGES)?;
                    core(&mut r)
                        .add_site(id, x, y, z, table, charges)
                        .map_err(|e| e.to_string())
                })
            },
        )?,
    )?;

    m.set(
        "remove_site",
        lua.create_function(|lua, (s, id): (Value, Value)| {
            guarded(lua, "remove_site", || {
                let f = "remove_site";
                let mut r = this(f, &s)?;
                let id = args::u32_in(lua, f, "id", &id, ID)?;
                core(&mut r).remove_site(id).map_err(|e| e.to_string())
            })
        })?,
    )?;

    m.set(
        "join",
        lua.create_function(
            |lua, (s, p, x, y, z, party): (Value, Value, Value, Value, Value, Value)| {
                guarded(lua, "join", || {
                    let f = "join";
                    let mut r = this(f, &s)?;
                    let p = args::u32_in(lua, f, "player", &p, ID)?;
                    let (x, y, z) = (
                        args::coord(lua, f, "x", &x)?,
                        args::coord(lua, f, "y", &y)?,
                        args::coord(lua, f, "z", &z)?,
                    );
                    let party = args::opt_int(lua, f, "party", &party, PARTY)?.unwrap_or(0) as u32;
                    core(&mut r)
                        .join(p, x, y, z, party)
                        .map_err(|e| e.to_string())
                })
            },
        )?,
    )?;

    m.set(
        "move",
        lua.create_function(
            |lua, (s, p, x, y, z): (Value, Value, Value, Value, Value)| {
                guarded(lua, "move", || {
                    let f = "move";
                    let mut r = this(f, &s)?;
                    let p = args::u32_in(lua, f, "player", &p, ID)?;
                    let (x, y, z) = (
                        args::coord(lua, f, "x", &x)?,
                        args::coord(lua, f, "y", &y)?,
                        args::coord(lua, f, "z", &z)?,
                    );
                    core(&mut r)
                        .move_player(p, x, y, z)
                        .map_err(|e| e.to_string())
                })
            },
        )?,
    )?;

    m.set(
        "set_party",
        lua.create_function(|lua, (s, p, party): (Value, Value, Value)| {
            guarded(lua, "set_party", || {
                let f = "set_party";
                let mut r = this(f, &s)?;
                let p = args::u32_in(lua, f, "player", &p, ID)?;
                let party = args::u32_in(lua, f, "party", &party, PARTY)?;
                core(&mut r).set_party(p, party).map_err(|e| e.to_string())
            })
        })?,
    )?;

    m.set(
        "leave",
        lua.create_function(|lua, (s, p): (Value, Value)| {
            guarded(lua, "leave", || {
                let f = "leave";
                let mut r = this(f, &s)?;
                let p = args::u32_in(lua, f, "player", &p, ID)?;
                core(&mut r).leave(p).map_err(|e| e.to_string())
            })
        })?,
    )?;

    m.set(
        "dig",
        lua.create_function(
            |lua, (s, p, x, y, z, t): (Value, Value, Value, Value, Value, Value)| {
                guarded(lua, "dig", || {
                    let f = "dig";
                    let mut r = this(f, &s)?;
                    let p = args::u32_in(lua, f, "player", &p, ID)?;
                    let (x, y, z) = (
                        args::coord(lua, f, "x", &x)?,
                        args::coord(lua, f, "y", &y)?,
                        args::coord(lua, f, "z", &z)?,
                    );
                    let t = args::int(lua, f, "t_us", &t, T_US)? as u64;
                    let busy = || {
                        lua.create_string("busy")
                            .map(Value::String)
                            .map_err(|e| format!("treasure: dig: {e}"))
                    };
                    Ok(
                        match core(&mut r).dig(p, x, y, z, t).map_err(|e| e.to_string())? {
                            Some(seq) => MultiValue::from_vec(vec![Value::Number(seq as f64)]),
                            None => MultiValue::from_vec(vec![Value::Nil, busy()?]),
                        },
                    )
                })
            },
        )?,
    )?;

    m.set(
        "dig_batch",
        lua.create_function(|lua, (s, records): (Value, Value)| {
            guarded(lua, "dig_batch", || {
                let f = "dig_batch";
                let mut r = this(f, &s)?;
                let records = bytes_arg(f, &records)?;
                Ok(
                    match core(&mut r)
                        .dig_batch(&records.as_bytes())
                        .map_err(|e| e.to_string())?
                    {
                        Some((first, count)) => {
                            (Value::Number(first as f64), Value::Number(count as f64))
                        }
                        None => (
                            Value::Nil,
                            Value::String(lua.create_string("busy").map_err(|e| e.to_string())?),
                        ),
                    },
                )
            })
        })?,
    )?;

    m.set(
        "move_batch",
        lua.create_function(|lua, (s, records): (Value, Value)| {
            guarded(lua, "move_batch", || {
                let f = "move_batch";
                let mut r = this(f, &s)?;
                let records = bytes_arg(f, &records)?;
                core(&mut r)
                    .move_batch(&records.as_bytes())
                    .map_err(|e| e.to_string())
            })
        })?,
    )?;

    m.set(
        "poll",
        lua.create_function(|lua, (s, max): (Value, Value)| {
            guarded(lua, "poll", || {
                let f = "poll";
                let mut r = this(f, &s)?;
                let max = args::opt_int(lua, f, "max", &max, COUNT)?;
                let r = &mut *r;
                let c = r.core.as_mut().expect("open");
                let avail = c.available_packets();
                let want = max.map_or(avail, |m| (m as usize).min(avail));
                r.scratch.resize(want * SIZE, 0);
                let n = c
                    .poll_into(&mut r.scratch, want)
                    .map_err(|e| e.to_string())?;
                let s = lua
                    .create_string(&r.scratch[..n * SIZE])
                    .map_err(|e| format!("treasure: poll: {e}"))?;
                if r.scratch.capacity() > (1 << 20) {
                    // Do not pin a burst-sized buffer forever.
                    r.scratch = Vec::new();
                }
                Ok((n as f64, s))
            })
        })?,
    )?;

    m.set(
        "flush",
        lua.create_function(|lua, s: Value| {
            guarded(lua, "flush", || {
                let mut r = this("flush", &s)?;
                core(&mut r).flush().map_err(|e| e.to_string())
            })
        })?,
    )?;

    m.set(
        "stats",
        lua.create_function(|lua, s: Value| {
            guarded(lua, "stats", || {
                let mut r = this("stats", &s)?;
                let st = core(&mut r).stats().map_err(|e| e.to_string())?;
                stats_table(lua, &st).map_err(|e| format!("treasure: stats: {e}"))
            })
        })?,
    )?;

    m.set(
        "close",
        lua.create_function(|lua, s: Value| {
            guarded(lua, "close", || {
                let ud = match &s {
                    Value::UserData(ud) => ud,
                    other => {
                        return Err(format!(
                            "treasure: close: self must be a resolver, got {}",
                            args::type_name(other)
                        ))
                    }
                };
                let mut r = ud.borrow_mut::<NativeResolver>().map_err(|_| {
                    "treasure: close: self must be a resolver, got userdata".to_owned()
                })?;
                // Dropping the core waits for in-flight work, then frees it all.
                r.core = None;
                r.scratch = Vec::new();
                Ok(())
            })
        })?,
    )?;

    raw.set(
        "poll_into",
        lua.create_function(|lua, (s, buf, max, holds, buf_type): (Value, Value, Value, i64, String)| {
            guarded(lua, "poll_into", || {
                let f = "poll_into";
                let mut r = this(f, &s)?;
                // `holds` is what treasure/ffi_buffer.lua measured: -1 when
                // buf is not a uint8_t array, else floor(ffi.sizeof(buf) / 128).
                if holds < 0 {
                    return Err(format!("treasure: {f}: buf must be a uint8_t array cdata, got {buf_type}"));
                }
                let max = args::int(lua, f, "max", &max, COUNT)? as u64;
                let holds = holds as u64;
                if max > holds {
                    return Err(format!("treasure: {f}: max must be at most {holds} (the packets buf holds), got {max}"));
                }
                let offset = *lua
                    .app_data_ref::<PointerOffset>()
                    .ok_or_else(|| format!("treasure: {f}: FFI buffers are unsupported by this LuaJIT build"))?;
                let out = ffi_buffer::as_mut_slice(&buf, offset, max as usize * SIZE, holds as usize * SIZE);
                let n = core(&mut r).poll_into(out, max as usize).map_err(|e| e.to_string())?;
                Ok(n as f64)
            })
        })?,
    )?;

    // (header, packed sites, packed players): native.lua assembles the
    // snapshot table (see snapshot.rs).
    raw.set(
        "snapshot",
        lua.create_function(|lua, s: Value| {
            guarded(lua, "snapshot", || {
                let mut r = this("snapshot", &s)?;
                let snap = core(&mut r).snapshot().map_err(|e| e.to_string())?;
                crate::snapshot::to_lua(lua, &snap).map_err(|e| format!("treasure: snapshot: {e}"))
            })
        })?,
    )?;

    // native.lua has run lua/treasure/snapshot.lua's checks on the snapshot
    // and passes its small part plus sites and players packed.
    raw.set(
        "restore",
        lua.create_function(
            |lua, (header, sites, players, tuning): (Value, mlua::String, mlua::String, Value)| {
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
                    let core = Resolver::restore(snap).map_err(|e| e.to_string())?;
                    lua.create_userdata(NativeResolver {
                        core: Some(Box::new(core)),
                        scratch: Vec::new(),
                    })
                    .map_err(|e| format!("treasure: restore: {e}"))
                })
            },
        )?,
    )?;

    raw.set(
        "handle",
        lua.create_function(|lua, s: Value| {
            guarded(lua, "handle", || {
                let mut r = this("handle", &s)?;
                Ok(crate::fast::handle_of(core(&mut r)))
            })
        })?,
    )?;

    raw.set(
        "identity",
        lua.create_function(|_, ()| Ok(crate::fast::treasure_native_identity() as usize as f64))?,
    )?;

    raw.set(
        "calibrate",
        lua.create_function(
            |lua, (vla, vla_addr, fixed, fixed_addr): (Value, f64, Value, f64)| {
                if let Some(off) = ffi_buffer::calibrate(&vla, vla_addr, &fixed, fixed_addr) {
                    lua.set_app_data(off);
                }
                Ok(())
            },
        )?,
    )?;

    raw.set(
        "inject_worker_panic",
        lua.create_function(|lua, (s, n): (Value, Value)| {
            guarded(lua, "_inject_worker_panic", || {
                let mut r = this("_inject_worker_panic", &s)?;
                let n = args::int(lua, "_inject_worker_panic", "n", &n, COUNT)? as u64;
                core(&mut r).inject_worker_panic_after(n);
                Ok(())
            })
        })?,
    )?;

    raw.set("methods", m)?;
    raw.set("_VERSION", concat!("treasure ", env!("CARGO_PKG_VERSION")))?;
    Ok(raw)
}
