//! The fast path: plain C functions that LuaJIT's FFI calls directly
//! (`ffi.load` of this very library), for the calls a game loop makes every
//! tick: `move`, `dig`, `move_batch`, `dig_batch`, `poll_into`.
//!
//! Why: a call through the classic Lua C API (every mlua function) costs
//! hundreds of nanoseconds and is never compiled into a JIT trace; an FFI
//! call from a compiled trace costs a few. The fast path handles only
//! *success*: each function returns a failure code without changing
//! anything when an argument is bad, the resolver is busy-checked as usual,
//! or anything goes wrong, and the Lua shim (native.lua) then repeats the
//! call through the mlua path, which validates again and raises the exact
//! error message. So both paths share one core call and one set of rules.
//!
//! A handle is the address of the `Resolver` owned (boxed) by a
//! `NativeResolver` userdata. The shim keeps handles in a weak-keyed table
//! indexed by the userdata and drops the entry *before* closing, so a handle
//! is only ever used while its resolver is alive and open.

use std::panic::{catch_unwind, AssertUnwindSafe};

use treasure_core::{Resolver, PACKET_SIZE};

/// The failure code: "repeat through the mlua path for the message".
const FAIL: f64 = -1.0;

const COORD_MIN: f64 = -1_048_576.0;
const COORD_MAX: f64 = 1_048_575.0;
const U32_MAX: f64 = 4_294_967_295.0;
const SAFE_MAX: f64 = 9_007_199_254_740_991.0;

#[inline]
fn int_in(v: f64, lo: f64, hi: f64) -> bool {
    v.fract() == 0.0 && v >= lo && v <= hi
}

#[inline]
fn coord(v: f64) -> Option<i32> {
    int_in(v, COORD_MIN, COORD_MAX).then_some(v as i32)
}

#[inline]
fn id(v: f64) -> Option<u32> {
    int_in(v, 1.0, U32_MAX).then_some(v as u32)
}

/// Runs `f` on the resolver behind `h`, mapping a panic to FAIL.
#[inline]
fn with(h: *mut Resolver, f: impl FnOnce(&mut Resolver) -> Option<f64>) -> f64 {
    debug_assert!(!h.is_null(), "fast path called with a null handle");
    if h.is_null() {
        return FAIL;
    }
    // SAFETY: `h` comes from `handle_of` for a resolver that is alive and
    // open: the shim removes a handle from its table before `close` and the
    // table is weak-keyed, so no handle outlives its userdata. Lua runs on
    // one thread and the mlua path holds no borrow while an FFI call runs,
    // so this is the only reference to the Resolver for the call's duration.
    let r = unsafe { &mut *h };
    catch_unwind(AssertUnwindSafe(|| f(r)))
        .ok()
        .flatten()
        .unwrap_or(FAIL)
}

/// The address the shim stores as this resolver's handle.
pub fn handle_of(r: &mut Resolver) -> f64 {
    r as *mut Resolver as usize as f64
}

/// `r:move(player, x, y, z)`: 0 on success, -1 to take the slow path.
#[no_mangle]
pub extern "C" fn treasure_native_move(
    h: *mut Resolver,
    player: f64,
    x: f64,
    y: f64,
    z: f64,
) -> f64 {
    with(h, |r| {
        r.move_player(id(player)?, coord(x)?, coord(y)?, coord(z)?)
            .ok()?;
        Some(0.0)
    })
}

/// `r:dig(player, x, y, z, t_us)`: the seq (>= 1), 0 when busy, -1 to take
/// the slow path.
#[no_mangle]
pub extern "C" fn treasure_native_dig(
    h: *mut Resolver,
    player: f64,
    x: f64,
    y: f64,
    z: f64,
    t_us: f64,
) -> f64 {
    with(h, |r| {
        if !int_in(t_us, 0.0, SAFE_MAX) {
            return None;
        }
        let seq = r
            .dig(id(player)?, coord(x)?, coord(y)?, coord(z)?, t_us as u64)
            .ok()?;
        Some(seq.map_or(0.0, |s| s as f64))
    })
}

/// `r:dig_batch(records)`: first_seq (>= 1), 0 when busy, -1 to take the
/// slow path. The count is `len / 24`, which the shim knows.
#[no_mangle]
pub extern "C" fn treasure_native_dig_batch(
    h: *mut Resolver,
    records: *const u8,
    len: usize,
) -> f64 {
    with(h, |r| {
        let bytes = bytes(records, len)?;
        Some(
            r.dig_batch(bytes)
                .ok()?
                .map_or(0.0, |(first, _)| first as f64),
        )
    })
}

/// `r:move_batch(records)`: 0 on success, -1 to take the slow path.
#[no_mangle]
pub extern "C" fn treasure_native_move_batch(
    h: *mut Resolver,
    records: *const u8,
    len: usize,
) -> f64 {
    with(h, |r| {
        r.move_batch(bytes(records, len)?).ok()?;
        Some(0.0)
    })
}

/// `r:poll_into(buf, max)` once the shim has measured `buf`: `holds` is how
/// many packets it holds. Returns n, or -1 to take the slow path.
#[no_mangle]
pub extern "C" fn treasure_native_poll_into(
    h: *mut Resolver,
    buf: *mut u8,
    holds: f64,
    max: f64,
) -> f64 {
    with(h, |r| {
        if !int_in(holds, 0.0, SAFE_MAX) || !int_in(max, 0.0, holds) {
            return None;
        }
        Some(poll_into_raw(r, buf, holds as usize, max as usize).ok()? as f64)
    })
}

/// Copies up to `max` packets into the caller's FFI buffer: the one place
/// the binding writes through a raw pointer, used by both the fast path and
/// the mlua path of `poll_into`.
///
/// Precondition (checked by both callers before they get here): `buf` is the
/// payload of a live uint8_t array cdata that treasure/ffi_buffer.lua
/// measured to hold `holds` whole packets, and `max <= holds`.
pub(crate) fn poll_into_raw(
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
    debug_assert!(!buf.is_null(), "poll_into: null buffer");
    // SAFETY: per the precondition, `buf` points at `holds * 128` writable
    // bytes of a cdata the caller keeps alive for the duration of the call,
    // and `len = max * 128 <= holds * 128` (asserted above), so the slice
    // stays inside it. Nothing else references that memory during the call
    // (Lua is single-threaded and blocked in this call); u8 has no alignment
    // or validity requirements.
    let out = unsafe { std::slice::from_raw_parts_mut(buf, len) };
    r.poll_into(out, max)
}

/// The bytes of a Lua string passed as `const char *` plus its length.
fn bytes<'a>(p: *const u8, len: usize) -> Option<&'a [u8]> {
    if len == 0 {
        return Some(&[]);
    }
    if p.is_null() {
        return None;
    }
    // SAFETY: LuaJIT passes a Lua string argument as a pointer to its
    // bytes, and the shim passes `#records` as `len`; the string is an
    // argument of the running call, so it stays alive and unchanged.
    Some(unsafe { std::slice::from_raw_parts(p, len) })
}

/// The address of a static of this library: the shim compares what the
/// FFI-loaded copy answers with what the mlua-loaded copy answers, and uses
/// the fast path only when they are the same mapped library.
#[no_mangle]
pub extern "C" fn treasure_native_identity() -> *const u8 {
    static IDENTITY: u8 = 0;
    &IDENTITY
}
