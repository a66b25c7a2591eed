//! The resolver userdata and its raw methods, one named function each.
//!
//! Each raw method validates its Lua arguments in the contract's order
//! (self, forked, closed, then arguments left to right), converts them to
//! the core's types, calls `treasure_core::Resolver`, and converts the
//! result back; no resolver logic lives here. The methods are grouped by
//! what they touch, in the order of a dig's route:
//! * `world.rs`     loot tables, sites, players (and `move_batch`);
//! * `dig.rs`       `dig` and `dig_batch`, which may answer "busy";
//! * `stream.rs`    the packets coming back: `poll`, `poll_into`, `flush`,
//!   `wait`, `stats`, `in_flight`, `fd` (the home of any further stream
//!   method);
//! * `cluster.rs`   cluster mode's `set_host`, `take_records`,
//!   `apply_records` (issue 17);
//! * `lifecycle.rs` `new`, `restore`, `snapshot`, `close` and the raw
//!   functions only native.lua calls.
//!
//! [`raw_functions`] registers them all; failures become Lua values in
//! crate::error.

mod cluster;
mod dig;
mod lifecycle;
mod stream;
mod world;

use mlua::{
    IntoLuaMulti, Lua, MultiValue, Table, UserData, UserDataFields, UserDataMethods,
    UserDataRefMut, Value,
};
use treasure_core::contract::Expected;
use treasure_core::{Arg, Error, Method as M, Resolver};

use crate::error::{self, guarded};
use crate::ffi::fork::Origin;
use crate::ffi::handles::{self, Guard, Ticket};

/// Registry key of the methods table the shim builds (the userdata's `__index`).
pub const METHODS_KEY: &str = "treasure.native.methods";

/// A raw method: the locked-in resolver (`self`, checked) and the other
/// arguments.
type RawMethod<R> = fn(&Lua, &mut NativeResolver, &[Value]) -> Result<R, Error>;

/// Builds the table of raw functions the shim (native.lua) wraps.
pub fn raw_functions(lua: &Lua) -> mlua::Result<Table> {
    let raw = lua.create_table()?;
    let m = lua.create_table()?;
    // The methods of a resolver (`raw.methods`; the shim raises failures).
    method(lua, &m, M::AddLootTable, world::add_loot_table)?;
    method(lua, &m, M::AddSite, world::add_site)?;
    method(lua, &m, M::RemoveSite, world::remove_site)?;
    method(lua, &m, M::Join, world::join)?;
    method(lua, &m, M::Move, world::move_player)?;
    method(lua, &m, M::SetParty, world::set_party)?;
    method(lua, &m, M::Leave, world::leave)?;
    method(lua, &m, M::MoveBatch, world::move_batch)?;
    method(lua, &m, M::Dig, dig::dig)?;
    method(lua, &m, M::DigBatch, dig::dig_batch)?;
    method(lua, &m, M::Poll, stream::poll)?;
    method(lua, &m, M::PollInto, stream::poll_into)?;
    method(lua, &m, M::Flush, stream::flush)?;
    method(lua, &m, M::Wait, stream::wait)?;
    method(lua, &m, M::Stats, stream::stats)?;
    method(lua, &m, M::InFlight, stream::in_flight)?;
    method(lua, &m, M::Fd, stream::fd)?;
    method(lua, &m, M::SetHost, cluster::set_host)?;
    method(lua, &m, M::TakeRecords, cluster::take_records)?;
    method(lua, &m, M::ApplyRecords, cluster::apply_records)?;
    m.set(M::Close.name(), lua.create_function(lifecycle::close)?)?;
    raw.set("methods", m)?;
    // What native.lua builds the rest of the module from.
    raw.set(M::New.name(), lua.create_function(lifecycle::new)?)?;
    raw.set(M::Restore.name(), lua.create_function(lifecycle::restore)?)?;
    method(lua, &raw, M::Snapshot, lifecycle::snapshot)?;
    method(lua, &raw, M::Handle, lifecycle::handle)?;
    method(
        lua,
        &raw,
        M::InjectWorkerPanic,
        lifecycle::inject_worker_panic,
    )?;
    raw.set("identity", lua.create_function(lifecycle::identity)?)?;
    raw.set(
        "finalized_sample",
        lua.create_function(lifecycle::finalized_sample)?,
    )?;
    lifecycle::set_version(&raw)?;
    Ok(raw)
}

/// Registers the raw method of `name` in `t` (under its Lua name): it checks `self` (a resolver of
/// this backend and process, open) and runs `body` with it and the other
/// arguments, inside [`guarded`].
fn method<R: IntoLuaMulti + 'static>(
    lua: &Lua,
    t: &Table,
    name: M,
    body: RawMethod<R>,
) -> mlua::Result<()> {
    let f = lua.create_function(move |lua, (s, rest): (Value, MultiValue)| {
        guarded(lua, name, || {
            let mut r = this(name, &s)?;
            let rest: Vec<Value> = rest.into_iter().collect();
            body(lua, &mut r, &rest)
        })
    })?;
    t.set(name.name(), f)
}

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

impl NativeResolver {
    /// Moves `core` into a cell of the arena (`lua_fn` names the Lua
    /// function, for the message when every cell is taken).
    fn new(m: M, core: Resolver) -> Result<NativeResolver, Error> {
        let origin = Origin::here();
        let ticket = Ticket::issue(core, origin.epoch())
            .map_err(|_| Error::too_many_open(m, handles::MAX_OPEN))?;
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
/// another OS thread holds the cell through a copied handle, or a `__gc`
/// finalizer run inside a call of this resolver calls it again; the methods
/// then answer with an error instead of waiting.
struct CoreRef(Option<Guard>);

impl CoreRef {
    fn get(&mut self, m: M) -> Result<&mut Resolver, Error> {
        self.0
            .as_mut()
            .and_then(|g| g.resolver())
            .map(|(r, _)| r)
            .ok_or_else(|| Error::already_in_call(m))
    }
}

/// What borrowing `self` gave: the resolver, or a userdata mlua already
/// finalized, which is a closed resolver.
enum Borrowed {
    Live(UserDataRefMut<NativeResolver>),
    Finalized,
}

/// `self` as a resolver of this backend (step 1 of the check order).
fn borrow_self(m: M, v: &Value) -> Result<Borrowed, Error> {
    let not_a_resolver = |got| Error::wrong_type(m, Arg::Plain("self"), Expected::Resolver, got);
    let ud = match v {
        Value::UserData(ud) => ud,
        other => return Err(not_a_resolver(error::type_name(other))),
    };
    match ud.borrow_mut::<NativeResolver>() {
        Ok(r) => Ok(Borrowed::Live(r)),
        Err(e) if error::is_finalized(&e) => Ok(Borrowed::Finalized),
        Err(_) => Err(not_a_resolver("userdata")),
    }
}

/// Runs `f` with the core resolver behind the Lua value `v`, after the
/// checks every method of `m` makes (self, forked, closed, not already in
/// a call). For binding code outside the method table that is handed a
/// resolver: the cluster transport's `link:pump(r)` takes and applies
/// records on the Rust side with it (issue 17), without a Lua string.
#[allow(dead_code)] // the transport glue (another module of issue 17) calls it
pub fn with_core<R>(
    m: M,
    v: &Value,
    f: impl FnOnce(&mut Resolver) -> Result<R, Error>,
) -> Result<R, Error> {
    let r = this(m, v)?;
    let mut core = r.core();
    f(core.get(m)?)
}

/// `self` as an open resolver of this process, or the contract's error
/// (check order: self, forked, closed).
fn this(m: M, v: &Value) -> Result<UserDataRefMut<NativeResolver>, Error> {
    let r = match borrow_self(m, v)? {
        Borrowed::Live(r) => r,
        Borrowed::Finalized => return Err(Error::closed(m)),
    };
    if let Some((created, used)) = r.origin.foreign() {
        return Err(Error::foreign_process(m, created, used));
    }
    if r.ticket.is_none() {
        return Err(Error::closed(m));
    }
    Ok(r)
}

/// Why a resolver could not be lent to another native object.
#[derive(Debug)]
pub enum LendRefused {
    /// Not a resolver of this backend: the Lua type name.
    NotAResolver(&'static str),
    /// Closed or finalized.
    Closed,
    /// Created in another process (before a fork).
    Foreign { created: u32, used: u32 },
    /// Locked by a call in progress (another thread, a finalizer).
    InCall,
}

/// Runs `f` with the open core resolver behind the Lua value `v`, for
/// another native object that works on a resolver (the cluster link's
/// `pump`), with the same checks as a method's `self` (type, fork, closed)
/// and the same exclusive lock of its cell for the duration of `f`.
pub fn lend<T>(v: &Value, f: impl FnOnce(&mut Resolver) -> T) -> Result<T, LendRefused> {
    let ud = match v {
        Value::UserData(ud) => ud,
        other => return Err(LendRefused::NotAResolver(error::type_name(other))),
    };
    let r = match ud.borrow_mut::<NativeResolver>() {
        Ok(r) => r,
        Err(e) if error::is_finalized(&e) => return Err(LendRefused::Closed),
        Err(_) => return Err(LendRefused::NotAResolver("userdata")),
    };
    if let Some((created, used)) = r.origin.foreign() {
        return Err(LendRefused::Foreign { created, used });
    }
    if r.ticket.is_none() {
        return Err(LendRefused::Closed);
    }
    let mut core = r.core();
    let c = core
        .0
        .as_mut()
        .and_then(|g| g.resolver())
        .map(|(r, _)| r)
        .ok_or(LendRefused::InCall)?;
    Ok(f(c))
}
