//! `treasure.native`: the mlua binding of treasure-core for LuaJIT.
//!
//! This crate only validates Lua arguments, converts types and maps errors;
//! everything the resolver *does* lives in `crates/treasure-core`, which has
//! no Lua dependency. Built with `--features luajit,module` it is the cdylib
//! LuaJIT loads with `require("treasure.native")` (entry point
//! `luaopen_treasure_native`); built with the default `vendored` feature it
//! links its own LuaJIT so `cargo test` runs on a machine without Lua.
//!
//! Layout:
//! * `error.rs`     the one place failures become Lua errors: core errors,
//!   mlua errors, panics, and the binding's own argument rules
//! * `args.rs`      numbers and strings, with the core's limits
//! * `tables.rs`    `opts` and loot `entries`
//! * `resolver/`    the userdata and one named function per raw method
//! * `snapshot.rs`  `r:snapshot()` / `restore(snapshot)` as plain Lua data
//! * `ffi/`         all of the binding's unsafe: the handle arena, fork
//!   detection, the caller's FFI buffer, the C functions of the fast path
//! * `native.lua`   the Lua half: raises errors as strings, the fast path
//! * `cluster/`     `require("treasure.cluster")`, the JetStream transport
//!   (crates/treasure-cluster), as the module's `_cluster` field

#![deny(unsafe_code)]

mod args;
mod cluster;
mod error;
#[allow(unsafe_code)]
mod ffi;
mod resolver;
mod snapshot;
mod tables;

use mlua::{Function, Lua, Table};

const MODULE_KEY: &str = "treasure.native.module";

/// Builds the module table: what `require("treasure.native")` returns.
pub fn open(lua: &Lua) -> mlua::Result<Table> {
    // Loading twice into one state (e.g. after package.loaded is cleared)
    // returns the first module: the resolver metatable, the error sentinel
    // and the calibration belong to the state, not to one require.
    if let Ok(module) = lua.named_registry_value::<Table>(MODULE_KEY) {
        return Ok(module);
    }
    ffi::fork::init();
    let tostring: Function = lua.globals().get("tostring")?;
    lua.set_app_data(error::LuaHelpers { tostring });
    let err = lua.create_table()?;
    lua.set_app_data(error::ErrSentinel(err.clone()));
    let raise: Table = lua
        .load(include_str!("raise.lua"))
        .set_name("=treasure.native.raise")
        .call(err)?;
    let cluster = cluster::open(lua, raise.clone())?;
    let raw = resolver::raw_functions(lua)?;
    // The Lua files shared with treasure.legacy (one definition each), all
    // compiled in so native.so does not depend on package.path: the
    // contract's limits and texts first, handed to the files that use them.
    let contract: Table = lua
        .load(include_str!("../lua/treasure/contract.lua"))
        .set_name("=treasure.contract")
        .call(())?;
    let packets_held = ffi::buffer::install(lua, contract.clone())?;
    let packet: Table = lua
        .load(include_str!("../lua/treasure/packet.lua"))
        .set_name("=treasure.packet")
        .call(contract.clone())?;
    let record: Table = lua
        .load(include_str!("../lua/treasure/record.lua"))
        .set_name("=treasure.record")
        .call((packet.clone(), contract.clone()))?;
    let snapshot_rules: Table = lua
        .load(include_str!("../lua/treasure/snapshot.lua"))
        .set_name("=treasure.snapshot")
        .call((packet, contract, record))?;
    let (module, methods): (Table, Table) = lua
        .load(include_str!("native.lua"))
        .set_name("=treasure.native")
        .call((raw, raise, packets_held, snapshot_rules))?;
    module.raw_set("_cluster", cluster)?;
    lua.set_named_registry_value(resolver::METHODS_KEY, methods)?;
    lua.set_named_registry_value(MODULE_KEY, &module)?;
    Ok(module)
}
