//! The caller's LuaJIT FFI buffer that `poll_into` fills: where it is, and
//! the one write through a raw pointer in the binding.
//!
//! Rust cannot ask LuaJIT what a cdata is or how big it is. The Lua shim
//! asks (treasure/ffi_buffer.lua, the same file legacy uses) and passes its
//! verdict: `holds`, the number of whole packets the value holds, given only
//! for a uint8_t array *instance*. The mlua path learns the address from
//! `lua_topointer`, which for a cdata points into the cdata object itself
//! (payload or GC header, by LuaJIT build, calibrated once at load time):
//! for a ctype object or a pointer cdata it is *not* memory of the caller's
//! buffer, which is why nothing is written without the verdict.

use mlua::Value;
use treasure_core::{Resolver, PACKET_SIZE};

/// How far the payload of a cdata lies from what `lua_topointer` reports.
#[derive(Clone, Copy, Debug)]
pub struct PointerOffset(isize);

/// Learns the offset from two probe arrays (a VLA and a fixed-size array)
/// whose payload addresses the FFI gave us. Both must agree.
pub fn calibrate(
    vla: &Value,
    vla_addr: f64,
    fixed: &Value,
    fixed_addr: f64,
) -> Option<PointerOffset> {
    if !is_cdata(vla) || !is_cdata(fixed) {
        return None;
    }
    let a = vla_addr as isize - vla.to_pointer() as isize;
    let b = fixed_addr as isize - fixed.to_pointer() as isize;
    (a == b && (0..=64).contains(&a)).then_some(PointerOffset(a))
}

/// A LuaJIT cdata (mlua has no variant of its own for it: it is the only
/// value type LuaJIT adds to Lua 5.1's, so it arrives as `Other`).
pub fn is_cdata(v: &Value) -> bool {
    matches!(v, Value::Other(_))
}

/// A buffer the shim vouched for: a cdata value and the packets it holds.
pub struct Vouched {
    base: *mut u8,
    holds: usize,
}

impl Vouched {
    /// The payload address of `buf` by the calibrated offset, or None if
    /// `buf` is not a cdata at all.
    ///
    /// # Safety
    /// `holds` must be the verdict of treasure/ffi_buffer.lua for this very
    /// `buf`: it is a uint8_t array instance (`uint8_t[N]` / `uint8_t[?]`,
    /// not a ctype object, pointer or reference) of at least
    /// `holds * 128` bytes, and it stays alive (it is an argument of the
    /// running call) until the `Vouched` is dropped.
    pub unsafe fn new(buf: &Value, holds: usize, offset: PointerOffset) -> Option<Vouched> {
        if !is_cdata(buf) {
            return None;
        }
        let base = (buf.to_pointer() as *mut u8).wrapping_offset(offset.0);
        Some(Vouched { base, holds })
    }

    /// Copies up to `max` packets into the buffer (panics if `max > holds`;
    /// the caller checks it first, with the contract's message).
    pub fn poll_into(&self, r: &mut Resolver, max: usize) -> Result<usize, treasure_core::Error> {
        // SAFETY: `Vouched::new`'s contract: `base` is the payload of a
        // live uint8_t array of at least `holds * 128` bytes.
        unsafe { poll_into_raw(r, self.base, self.holds, max) }
    }
}

/// Copies up to `max` packets into `holds * 128` bytes at `buf`.
/// Panics if `max > holds` (both callers check it first).
///
/// # Safety
/// `buf` points at at least `holds * 128` writable bytes that nothing else
/// reads or writes during the call (the payload of a live uint8_t array
/// cdata that treasure/ffi_buffer.lua measured; LuaJIT is blocked in this
/// call), or `max` is 0.
pub unsafe fn poll_into_raw(
    r: &mut Resolver,
    buf: *mut u8,
    holds: usize,
    max: usize,
) -> Result<usize, treasure_core::Error> {
    assert!(
        max <= holds,
        "poll_into: {max} packets into a buffer of {holds}"
    );
    let len = max * PACKET_SIZE;
    if len == 0 {
        return r.poll_into(&mut [], 0);
    }
    if buf.is_null() {
        // Not reachable with the contract above; refuse rather than write.
        return r.poll_into(&mut [], 0);
    }
    // SAFETY: per this function's contract `buf` points at `holds * 128`
    // writable, unaliased bytes, and `len = max * 128 <= holds * 128`
    // (asserted above), so the slice stays inside them; u8 has no alignment
    // or validity requirements.
    let out = unsafe { std::slice::from_raw_parts_mut(buf, len) };
    r.poll_into(out, max)
}

/// The buffer argument of the raw `poll_into` (resolver.rs) with the
/// verdict the shim passed for it; None if `buf` is not a cdata.
///
/// Not an `unsafe fn` because its caller is not free to call it: it is
/// used only by the raw `poll_into`, which is registered only in the `raw`
/// table that native.lua receives as a chunk argument and never exposes
/// (users reach `poll_into` through the shim, `methods.poll_into`). The
/// shim passes `holds = packets_held(buf)` from treasure/ffi_buffer.lua for
/// this very `buf`, a non-negative integer only for a uint8_t array
/// instance (the raw function refuses any other `holds` before calling).
pub fn vouched_by_shim(buf: &Value, holds: usize, offset: PointerOffset) -> Option<Vouched> {
    // SAFETY: see above: `holds` is ffi_buffer.lua's verdict for `buf`,
    // which is an argument of the running call (alive, and LuaJIT is
    // blocked in it), so `Vouched::new`'s contract holds.
    unsafe { Vouched::new(buf, holds, offset) }
}

/// The pointer form of the raw `poll_into` (issue 15): `buf` is a
/// `uint8_t *` / `void *` cdata whose address the shim passed as `addr`,
/// with `holds = floor(capacity / 128)` from the caller's `capacity`.
///
/// Not an `unsafe fn` for the same reason as [`vouched_by_shim`]: only the
/// raw `poll_into` calls it, with `addr` and `holds` from
/// treasure/ffi_buffer.lua, which passes an address only for a non-NULL,
/// non-const `uint8_t *` / `void *` (`addr` is that pointer's value, exact
/// in a double: user-space addresses are below 2^47). That the memory is
/// `capacity` writable bytes is the caller's promise, as for any C buffer
/// argument (docs/API.md, "poll_into").
pub fn poll_into_pointer_by_shim(
    r: &mut Resolver,
    addr: f64,
    holds: usize,
    max: usize,
) -> Result<usize, treasure_core::Error> {
    let valid = addr >= 1.0 && addr.fract() == 0.0 && addr < (1u64 << 53) as f64;
    let buf = if valid {
        addr as usize as *mut u8
    } else {
        std::ptr::null_mut()
    };
    // SAFETY: see above: `buf` is the caller's pointer to `holds * 128`
    // bytes by its promise; `max <= holds` was checked by the raw function
    // and is asserted again inside; a NULL (invalid addr) writes nothing.
    unsafe { poll_into_raw(r, buf, holds, max) }
}
