//! The library's entry points: `luaopen_treasure_native`, which refuses any
//! host but LuaJIT 2.1 with a one-line string error, then mlua's generated
//! entry (`luaopen_treasure_native_mlua`), which builds the module.

/// mlua's entry point; `luaopen_treasure_native` below calls it once the
/// host is known to be LuaJIT 2.1.
#[cfg(feature = "module")]
#[mlua::lua_module(name = "treasure_native_mlua")]
fn treasure_native(lua: &mlua::Lua) -> mlua::Result<mlua::Table> {
    crate::open(lua)
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
///
/// # Safety
/// `state` is a live Lua state with a C function's free stack slots, as the
/// `require` of a Lua 5.1 API host passes to a C loader; nothing else may
/// call this.
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
