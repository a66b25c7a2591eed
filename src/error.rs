//! The one place where a failed call becomes what Lua sees.
//!
//! Every raw function returns `Result<_, Failure>`. [`guarded`] runs its
//! body (a Rust panic becomes a failure, nothing unwinds into LuaJIT) and
//! hands the outcome to [`finish`], which turns a failure into the pair
//! `(ERR, message)`; the shim in native.lua raises the message as a plain
//! string at level 0, exactly as treasure.legacy does (mlua would raise a
//! userdata).
//!
//! Where a failure comes from, and how it is worded:
//! * a core error (`treasure_core::Error`, via `?`): its `Display` is the
//!   contract's text;
//! * a Lua argument the binding refuses before the core sees it (a type,
//!   a non-integer, an unknown key, `self`): the builders below;
//! * an mlua error while converting or allocating ([`lua`]): mlua's
//!   "userdata has been destructed" is a finalized resolver, so it reads
//!   `resolver is closed`; any other reads `treasure: <fn>: <mlua message>`;
//! * a Rust panic: `treasure: <fn>: internal error: <panic message>`.

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};

use mlua::{Function, IntoLuaMulti, Lua, MultiValue, Table, Value};

/// A failed call: the finished message, exactly as the contract words it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure(String);

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A core error, raised with the contract text its `Display` gives.
impl From<treasure_core::Error> for Failure {
    fn from(e: treasure_core::Error) -> Failure {
        Failure(e.to_string())
    }
}

/// A snapshot error (until the core folds it into `Error`), with the text
/// its `Display` gives.
impl From<treasure_core::SnapshotError> for Failure {
    fn from(e: treasure_core::SnapshotError) -> Failure {
        Failure(e.to_string())
    }
}

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
pub fn finish<R: IntoLuaMulti>(lua: &Lua, r: Result<R, Failure>) -> mlua::Result<MultiValue> {
    match r {
        Ok(v) => v.into_lua_multi(lua),
        Err(Failure(msg)) => {
            let err = lua.app_data_ref::<ErrSentinel>().map(|e| e.0.clone());
            (err, msg).into_lua_multi(lua)
        }
    }
}

/// Runs the body of the raw function `func`, turning a Rust panic into an
/// ordinary failure so that nothing unwinds into LuaJIT, then [`finish`]es.
pub fn guarded<R: IntoLuaMulti>(
    lua: &Lua,
    func: &'static str,
    body: impl FnOnce() -> Result<R, Failure>,
) -> mlua::Result<MultiValue> {
    let r = catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|p| {
        let what = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_owned());
        Err(Failure(format!("treasure: {func}: internal error: {what}")))
    });
    finish(lua, r)
}

/// Whether an mlua error says the userdata was already finalized (its
/// `__gc` ran: lua_close, another finalizer of the same cycle, a
/// resurrected userdata). For a resolver that means closed.
pub fn is_finalized(e: &mlua::Error) -> bool {
    matches!(e, mlua::Error::UserDataDestructed)
}

/// An mlua error met by `func` (a conversion, an allocation that ran out of
/// memory or whose GC step raised a finalizer's error).
pub fn lua(func: &str, e: mlua::Error) -> Failure {
    if is_finalized(&e) {
        return closed(func);
    }
    Failure(format!("treasure: {func}: {e}"))
}

/// As [`lua`], for an mlua error about one part of the arguments (`opts`,
/// `entries`, `snapshot`, ...): `treasure: <fn>: <what>: <mlua message>`.
pub fn lua_in(func: &str, what: &str, e: mlua::Error) -> Failure {
    if is_finalized(&e) {
        return closed(func);
    }
    Failure(format!("treasure: {func}: {what}: {e}"))
}

// ---------------------------------------------------------------------
// The offending value, as `got <v>` prints it.

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

// ---------------------------------------------------------------------
// The rules the binding checks on Lua values before the core sees them.

/// `<arg> must be an integer in [lo, hi], got <v>`.
pub fn not_an_integer_in(func: &str, arg: &str, lo: i64, hi: i64, got: &str) -> Failure {
    Failure(format!(
        "treasure: {func}: {arg} must be an integer in [{lo}, {hi}], got {got}"
    ))
}

/// `<arg> must be <kind>, got <type>` (`records must be a string`, `opts
/// must be a table`, `entries must be a non-empty array of tables`, ...).
pub fn must_be(func: &str, arg: &str, kind: &str, got: &str) -> Failure {
    Failure(format!("treasure: {func}: {arg} must be {kind}, got {got}"))
}

/// `<path> has unknown key '<name>'`.
pub fn unknown_key(func: &str, path: &str, name: &str) -> Failure {
    Failure(format!("treasure: {func}: {path} has unknown key '{name}'"))
}

/// `resolver is closed`.
pub fn closed(func: &str) -> Failure {
    Failure(format!("treasure: {func}: resolver is closed"))
}

/// `resolver was created in process <a> and used in process <b>; ...`.
pub fn forked(func: &str, created: u32, used: u32) -> Failure {
    Failure(format!(
        "treasure: {func}: resolver was created in process {created} and used in process {used}; \
         create it after the fork (OpenResty: init_worker_by_lua)"
    ))
}

/// The cell of the resolver is held by another call (see resolver::CoreRef).
pub fn in_another_call(func: &str) -> Failure {
    Failure(format!(
        "treasure: {func}: resolver is already in a call (from another thread, or a __gc finalizer run inside that call)"
    ))
}

/// Every cell of the handle arena is occupied.
pub fn too_many_open(func: &str, max: usize) -> Failure {
    Failure(format!(
        "treasure: {func}: too many open resolvers (at most {max} at once)"
    ))
}

/// `max must be at most <holds> (the packets buf holds), got <max>`.
pub fn buffer_too_small(func: &str, holds: u64, max: u64) -> Failure {
    Failure(format!(
        "treasure: {func}: max must be at most {holds} (the packets buf holds), got {max}"
    ))
}

/// The LuaJIT build reports cdata addresses in a way calibration did not
/// recognise, so no FFI buffer can be written safely.
pub fn ffi_buffers_unsupported(func: &str) -> Failure {
    Failure(format!(
        "treasure: {func}: FFI buffers are unsupported by this LuaJIT build"
    ))
}

/// `packed <what> length must be a multiple of <size>, got <len>` (the
/// packed snapshot records native.lua hands restore).
pub fn packed_length(func: &str, what: &str, size: usize, len: usize) -> Failure {
    Failure(format!(
        "treasure: {func}: packed {what} length must be a multiple of {size}, got {len}"
    ))
}

/// A rule stated as a whole (`snapshot.pending must be a string`).
pub fn rule(func: &str, text: &str) -> Failure {
    Failure(format!("treasure: {func}: {text}"))
}
