//! A resolver's life: `new`, `restore`, `snapshot`, `close`, and the raw
//! functions only native.lua calls (the FFI handle, the module's version,
//! test hooks).

use mlua::{Lua, LuaString, MultiValue, Table, UserData, Value};
use treasure_core::{Error, Method, Options, Resolver};

use super::{borrow_self, Borrowed, NativeResolver};
use crate::args::{self, nth};
use crate::error::{self, guarded};
use crate::ffi::handles::Ticket;
use crate::{snapshot, tables};

/// `raw.new(opts [, tuning])` -> a resolver (`tuning`: test-only queue
/// sizes, see `_new_with_tuning` in native.lua).
pub fn new(lua: &Lua, (opts, tuning): (Value, Value)) -> mlua::Result<MultiValue> {
    guarded(lua, Method::New, || {
        let mut o = tables::options(lua, &opts)?;
        tables::tuning(lua, Method::New, &tuning, &mut o)?;
        let core = Resolver::new(o)?;
        lua.create_userdata(NativeResolver::new(Method::New, core)?)
            .map_err(|e| error::lua(Method::New, e))
    })
}

/// `raw.restore(header, sites, players, hosts [, tuning])`: native.lua has
/// run lua/treasure/snapshot.lua's checks on the snapshot and passes its
/// small part plus sites, players and (cluster mode, else nil) the
/// players' hosts packed (see snapshot.rs).
pub fn restore(
    lua: &Lua,
    (header, sites, players, hosts, tuning): (
        Value,
        LuaString,
        LuaString,
        Option<LuaString>,
        Value,
    ),
) -> mlua::Result<MultiValue> {
    guarded(lua, Method::Restore, || {
        let mut base = Options::default();
        tables::tuning(lua, Method::Restore, &tuning, &mut base)?;
        let hosts = hosts.map(|h| h.as_bytes().to_vec());
        let packed = snapshot::Packed {
            sites: &sites.as_bytes(),
            players: &players.as_bytes(),
            hosts: hosts.as_deref(),
        };
        let snap = snapshot::from_lua(lua, &header, packed, base)?;
        let core = Resolver::restore(snap)?;
        lua.create_userdata(NativeResolver::new(Method::Restore, core)?)
            .map_err(|e| error::lua(Method::Restore, e))
    })
}

/// `raw.snapshot(r)` -> header, packed sites, packed players, packed
/// hosts (nil outside cluster mode): native.lua assembles the snapshot
/// table (see snapshot.rs).
pub fn snapshot(
    lua: &Lua,
    r: &mut NativeResolver,
    _: &[Value],
) -> Result<(Table, LuaString, LuaString, Option<LuaString>), Error> {
    let snap = r.core().get(Method::Snapshot)?.snapshot()?;
    snapshot::to_lua(lua, &snap).map_err(|e| error::lua(Method::Snapshot, e))
}

/// `r:close()`: closing a closed or finalized resolver does nothing; in a
/// forked child it releases the Lua side only (see NativeResolver::release).
pub fn close(lua: &Lua, s: Value) -> mlua::Result<MultiValue> {
    guarded(lua, Method::Close, || {
        if let Borrowed::Live(mut r) = borrow_self(Method::Close, &s)? {
            r.release();
        }
        Ok(())
    })
}

/// `raw.handle(r)` -> the number naming r's arena cell, which the shim
/// passes to the fast path (ffi/fast.rs).
pub fn handle(_: &Lua, r: &mut NativeResolver, _: &[Value]) -> Result<f64, Error> {
    Ok(r.ticket.as_ref().map(Ticket::handle).unwrap_or(-1.0))
}

/// `raw.identity()`: the address the shim compares with what the
/// FFI-loaded copy of the library answers.
pub fn identity(_: &Lua, (): ()) -> mlua::Result<f64> {
    Ok(crate::ffi::fast::treasure_native_identity() as usize as f64)
}

/// The userdata `finalized_sample` makes (and at once finalizes).
struct FinalizedSample;
impl UserData for FinalizedSample {}

/// `raw.finalized_sample()`: a userdata mlua has already finalized, so
/// native.lua can give the metatable mlua puts on finalized userdata (one
/// per state, used only by this module's userdata) an __index and
/// __tostring: a method called on a finalized resolver then reaches the raw
/// method, which says `resolver is closed`, instead of mlua's "userdata has
/// been destructed".
pub fn finalized_sample(lua: &Lua, (): ()) -> mlua::Result<mlua::AnyUserData> {
    let ud = lua.create_userdata(FinalizedSample)?;
    ud.destroy()?;
    Ok(ud)
}

/// `raw._inject_worker_panic(r, n)`: test-only, the next worker task
/// panics after `n` more chunks.
pub fn inject_worker_panic(lua: &Lua, r: &mut NativeResolver, a: &[Value]) -> Result<(), Error> {
    let m = Method::InjectWorkerPanic;
    let n = args::count(lua, m, "n", nth(a, 0))?;
    r.core().get(m)?.inject_worker_panic_after(n);
    Ok(())
}

/// `raw._VERSION` ("treasure 1.1.0") and `raw._VERSION_NUM`, the same as
/// one number, as packet.lua computes it: major*1e6 + minor*1e3 + patch.
pub fn set_version(raw: &Table) -> mlua::Result<()> {
    raw.set("_VERSION", concat!("treasure ", env!("CARGO_PKG_VERSION")))?;
    let part = |s: &str| {
        s.parse::<f64>()
            .map_err(|e| mlua::Error::runtime(format!("version part {s}: {e}")))
    };
    raw.set(
        "_VERSION_NUM",
        part(env!("CARGO_PKG_VERSION_MAJOR"))? * 1e6
            + part(env!("CARGO_PKG_VERSION_MINOR"))? * 1e3
            + part(env!("CARGO_PKG_VERSION_PATCH"))?,
    )
}
