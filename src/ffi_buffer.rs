//! The one place the binding touches raw memory: the caller's LuaJIT FFI
//! buffer that `poll_into` fills.
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

/// The caller's buffer as a byte slice of exactly `len` bytes.
///
/// `capacity` is `ffi.sizeof(buf)` as measured by the shim, and `buf` must be
/// the uint8_t array cdata it measured.
pub fn as_mut_slice<'a>(
    buf: &'a Value,
    offset: PointerOffset,
    len: usize,
    capacity: usize,
) -> &'a mut [u8] {
    assert!(
        len <= capacity,
        "poll_into: slice of {len} bytes over a {capacity}-byte buffer"
    );
    if len == 0 {
        return &mut [];
    }
    let base = (buf.to_pointer() as *mut u8).wrapping_offset(offset.0);
    debug_assert!(!base.is_null());
    // SAFETY: `buf` is a LuaJIT uint8_t array cdata (checked by the shim with
    // ffi.istype / ffi.typeof) whose payload starts at `base` (calibrated at
    // load time) and is `capacity` bytes long (ffi.sizeof). `len <= capacity`
    // is asserted above, so the slice stays inside the array. The cdata is
    // kept alive by `buf`, which the caller holds for the duration of the
    // call, and no other Rust reference to that memory exists; bytes have no
    // alignment or validity requirements.
    unsafe { std::slice::from_raw_parts_mut(base, len) }
}
