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
//! * `args.rs`      numbers, ranges and the `got <value>` of error messages
//! * `tables.rs`    `opts` and loot `entries` (checked, then via serde)
//! * `resolver.rs`  the userdata and its raw methods
//! * `fast.rs`     C functions LuaJIT's FFI calls for the hot calls (success only)
//! * `ffi_buffer.rs` the caller's FFI buffer for the mlua `poll_into`
//! * `snapshot.rs`  `r:snapshot()` / `restore(snapshot)` as plain Lua data
//! * `native.lua`   the Lua half: raises errors as strings, measures buffers

mod args;
mod fast;
mod ffi_buffer;
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
    let tostring: Function = lua.globals().get("tostring")?;
    lua.set_app_data(args::LuaHelpers { tostring });
    let err = lua.create_table()?;
    lua.set_app_data(resolver::ErrSentinel(err.clone()));
    let raw = resolver::raw_functions(lua)?;
    let packets_held: Function = lua
        .load(include_str!("../lua/treasure/ffi_buffer.lua"))
        .set_name("=treasure.ffi_buffer")
        .call(())?;
    // The snapshot rules, shared with treasure.legacy (one definition), with
    // the packet module they need, both compiled in so native.so does not
    // depend on package.path.
    let packet: Table = lua
        .load(include_str!("../lua/treasure/packet.lua"))
        .set_name("=treasure.packet")
        .call(())?;
    let snapshot_rules: Table = lua
        .load(include_str!("../lua/treasure/snapshot.lua"))
        .set_name("=treasure.snapshot")
        .call(packet)?;
    let (module, methods): (Table, Table) = lua
        .load(include_str!("native.lua"))
        .set_name("=treasure.native")
        .call((raw, err, packets_held, snapshot_rules))?;
    lua.set_named_registry_value(resolver::METHODS_KEY, methods)?;
    lua.set_named_registry_value(MODULE_KEY, &module)?;
    Ok(module)
}

/// mlua's entry point; `luaopen_treasure_native` below calls it once the
/// host is known to be LuaJIT 2.1.
#[cfg(feature = "module")]
#[mlua::lua_module(name = "treasure_native_mlua")]
fn treasure_native(lua: &Lua) -> mlua::Result<Table> {
    open(lua)
}

/// The C entry point `require("treasure.native")` looks for.
///
/// native.so is linked against LuaJIT's C API, which PUC Lua 5.1 exports too,
/// so the dynamic loader lets it into a PUC Lua 5.1 state (Lua 5.2+ lack the
/// 5.1 symbols and the loader refuses it first). Everything past this point
/// needs LuaJIT 2.1, its FFI above all, so refuse any other host here with a
/// plain one-line string error (an error returned through mlua would reach
/// PUC Lua as a userdata, which its `lua` prints as "error object is not a
/// string").
#[cfg(feature = "module")]
#[unsafe(no_mangle)]
unsafe extern "C-unwind" fn luaopen_treasure_native(
    state: *mut mlua::lua_State,
) -> std::os::raw::c_int {
    use mlua::ffi;
    // SAFETY: `state` is the live state that require() passes to a C loader.
    // Every call below keeps within the LUA_MINSTACK (20) free slots a C
    // function is given, and lua_error, which does not return, leaves no
    // Rust value with a destructor behind in this frame.
    unsafe {
        let top = ffi::lua_gettop(state);
        let mut luajit21 = false;
        if ffi::lua_getglobal(state, c"jit".as_ptr()) == ffi::LUA_TTABLE {
            ffi::lua_getfield(state, -1, c"version_num".as_ptr());
            luajit21 = ffi::lua_tonumber(state, -1) >= 20100.0;
            ffi::lua_pop(state, 1);
            ffi::lua_getfield(state, -1, c"version".as_ptr()); // "LuaJIT 2.0.5"
        } else {
            ffi::lua_getglobal(state, c"_VERSION".as_ptr()); // "Lua 5.1"
        }
        if !luajit21 {
            if ffi::lua_type(state, -1) != ffi::LUA_TSTRING {
                ffi::lua_pushstring(state, c"an unknown Lua".as_ptr());
            }
            ffi::lua_pushstring(
                state,
                c"treasure.native: needs LuaJIT 2.1 (FFI); this is ".as_ptr(),
            );
            ffi::lua_insert(state, -2);
            ffi::lua_concat(state, 2);
            ffi::lua_error(state);
        }
        ffi::lua_settop(state, top);
        luaopen_treasure_native_mlua(state)
    }
}
