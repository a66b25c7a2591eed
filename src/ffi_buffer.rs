//! Finding the caller's LuaJIT FFI buffer that the mlua path of
//! `poll_into` fills (the FFI fast path is handed the pointer by LuaJIT).
//!
//! Rust cannot ask LuaJIT how big a cdata is; the Lua shim (native.lua)
//! measures it with `ffi.sizeof` and passes the byte capacity in, and the
//! binding checks `max * 128 <= capacity` before it builds a slice. The
//! address comes from `lua_topointer`, whose answer for cdata differs between
//! LuaJIT builds (payload or GC header), so it is calibrated once at load
//! time against addresses the FFI reports exactly.

use mlua::Value;

/// How far the payload of a cdata lies from what `lua_topointer` reports.
#[derive(Clone, Copy, Debug)]
pub struct PointerOffset(pub isize);

/// Learns the offset from two probe arrays (a VLA and a fixed-size array)
/// whose payload addresses the FFI gave us. Both must agree.
pub fn calibrate(
    vla: &Value,
    vla_addr: f64,
    fixed: &Value,
    fixed_addr: f64,
) -> Option<PointerOffset> {
    let a = vla_addr as isize - vla.to_pointer() as isize;
    let b = fixed_addr as isize - fixed.to_pointer() as isize;
    (a == b && (0..=64).contains(&a)).then_some(PointerOffset(a))
}

/// The address of the payload of the uint8_t array cdata `buf` (what
/// `poll_into` writes to; see `fast::poll_into_raw` for the write itself).
pub fn payload(buf: &Value, offset: PointerOffset) -> *mut u8 {
    (buf.to_pointer() as *mut u8).wrapping_offset(offset.0)
}
