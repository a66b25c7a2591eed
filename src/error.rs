//! The one place where a failed call becomes what Lua sees.
//!
//! Every raw function's body returns `Result<_, treasure_core::Error>`, the
//! core's one error type, whose `Display` is the contract's exact text for
//! the core's rules *and* the binding's (a Lua type, a non-integer, an
//! unknown key, `self`, ...): the binding builds its failures with the
//! constructors of `treasure_core::contract::Error` and formats no message
//! itself. [`guarded`] runs the body (a Rust panic becomes
//! `internal error: <what>`, nothing unwinds into LuaJIT) and [`finish`]
//! turns a failure into the pair `(ERR, message)`; the shim in native.lua
//! raises the message as a plain string at level 0, exactly as
//! treasure.legacy does (an error raised through mlua would be a userdata).
//!
//! mlua's own errors, met while converting or allocating, map through
//! [`lua`]: "userdata has been destructed" is a finalized resolver, so it
//! reads `resolver is closed`; any other reads `<method>: <mlua message>`.

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};

use mlua::{Function, IntoLuaMulti, Lua, MultiValue, Table, Value};
use treasure_cluster::messages::{self as cluster, ErrorKind as ClusterKind};
use treasure_core::{Arg, Error, Method};

/// The sentinel a raw function returns first when its call failed (the
/// shim compares against it; a unique table no user value can equal).
pub struct ErrSentinel(pub Table);

/// The Lua functions messages borrow, fetched once per state.
pub struct LuaHelpers {
    /// Lua's `tostring`, so `got <number>` is formatted by LuaJIT itself
    /// (`%.14g`, `nan`, `inf`) and matches treasure.legacy to the byte.
    pub tostring: Function,
}

/// Turns a call's outcome into what the shim expects: the results, or
/// `(ERR, message)`.
pub fn finish<R: IntoLuaMulti, E: fmt::Display>(
    lua: &Lua,
    r: Result<R, E>,
) -> mlua::Result<MultiValue> {
    match r {
        Ok(v) => v.into_lua_multi(lua),
        Err(e) => {
            let err = lua.app_data_ref::<ErrSentinel>().map(|e| e.0.clone());
            (err, e.to_string()).into_lua_multi(lua)
        }
    }
}

/// A caught panic's message (`panic!` with a literal or a formatted one).
fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned())
}

/// Runs the body of the raw function for `method`, turning a Rust panic
/// into an ordinary failure so that nothing unwinds into LuaJIT, then
/// [`finish`]es.
pub fn guarded<R: IntoLuaMulti>(
    lua: &Lua,
    method: Method,
    body: impl FnOnce() -> Result<R, Error>,
) -> mlua::Result<MultiValue> {
    let r = catch_unwind(AssertUnwindSafe(body))
        .unwrap_or_else(|p| Err(Error::call_panicked(method, panic_text(&*p))));
    finish(lua, r)
}

/// A failure of a `treasure.cluster` call (src/cluster/): the transport's
/// own rule, whose text is `treasure_cluster::messages`' (the transport is
/// its own crate; the core's contract does not know it), or the
/// resolver's, passed through as the core reports it (`take_records`,
/// `apply_records`).
#[derive(Debug)]
pub enum Fail {
    Cluster(cluster::Error),
    Core(Error),
}

impl From<cluster::Error> for Fail {
    fn from(e: cluster::Error) -> Fail {
        Fail::Cluster(e)
    }
}

impl From<Error> for Fail {
    fn from(e: Error) -> Fail {
        Fail::Core(e)
    }
}

impl fmt::Display for Fail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fail::Cluster(e) => e.fmt(f),
            Fail::Core(e) => e.fmt(f),
        }
    }
}

/// A transport failure of `function`.
pub fn cluster(function: cluster::Function, kind: ClusterKind) -> Fail {
    Fail::Cluster(cluster::Error::new(function, kind))
}

/// An mlua error met by a `treasure.cluster` function (an option table
/// that does not deserialize: `opts: <mlua message>`; anything else as is).
pub fn cluster_lua(function: cluster::Function, opts: bool, e: mlua::Error) -> Fail {
    let message = match e {
        mlua::Error::DeserializeError(m) => m,
        other => other.to_string(),
    };
    let kind = if opts {
        ClusterKind::Options(message)
    } else {
        ClusterKind::Lua(message)
    };
    cluster(function, kind)
}

/// [`guarded`] for the `treasure.cluster` functions: a panic becomes
/// `treasure: <function>: internal error: <what>`.
pub fn guarded_cluster<R: IntoLuaMulti>(
    lua: &Lua,
    function: cluster::Function,
    body: impl FnOnce() -> Result<R, Fail>,
) -> mlua::Result<MultiValue> {
    let r = catch_unwind(AssertUnwindSafe(body))
        .unwrap_or_else(|p| Err(cluster(function, ClusterKind::Panicked(panic_text(&*p)))));
    finish(lua, r)
}

/// Whether an mlua error says the userdata was already finalized (its
/// `__gc` ran: lua_close, another finalizer of the same cycle, a
/// resurrected userdata). For a resolver that means closed.
pub fn is_finalized(e: &mlua::Error) -> bool {
    matches!(e, mlua::Error::UserDataDestructed)
}

/// An mlua error met by `method` (an allocation that ran out of memory or
/// whose GC step raised a finalizer's error, a conversion).
pub fn lua(method: Method, e: mlua::Error) -> Error {
    if is_finalized(&e) {
        return Error::closed(method);
    }
    Error::lua(method, None, e)
}

/// As [`lua`], for an mlua error about one argument or part of one
/// (`opts`, `entries[2]`, `tuning`, `snapshot`): `<arg>: <mlua message>`.
pub fn lua_in(method: Method, arg: Arg, e: mlua::Error) -> Error {
    if is_finalized(&e) {
        return Error::closed(method);
    }
    Error::lua(method, Some(arg), e)
}

/// What `got <v>` shows for a Lua value: `tostring(v)` for numbers, the
/// type name otherwise.
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
