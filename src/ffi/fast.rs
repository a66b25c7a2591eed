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
//! The handle is a number naming a cell of the arena (handles.rs), never an
//! address: any double is safe to pass. A stale one (closed, finalized,
//! resurrected, or a resolver created before a fork) fails, and the slow
//! path gives the message. The functions that take a pointer are
//! `unsafe extern "C"`: their `# Safety` says what native.lua passes.

use std::panic::{catch_unwind, AssertUnwindSafe};

use treasure_core::contract::limits;
use treasure_core::Resolver;

use super::{buffer, fork, handles};

/// The failure code: "repeat through the mlua path for the message".
const FAIL: f64 = -1.0;

// The contract's ranges, as the mlua path checks them (args.rs): a value
// the fast path refuses is refused there too, with the message.
#[inline]
fn coord(v: f64) -> Option<i32> {
    limits::COORD.contains_f64(v).then_some(v as i32)
}

#[inline]
fn id(v: f64) -> Option<u32> {
    limits::ID.contains_f64(v).then_some(v as u32)
}

/// An exact integer in [0, hi]: `holds` and `max` of poll_into.
#[inline]
fn count_to(v: f64, hi: f64) -> bool {
    v.fract() == 0.0 && v >= 0.0 && v <= hi
}

/// Runs `f` on the resolver in the cell `h` names, if `h` is current and
/// the resolver was created in this process; a panic becomes FAIL.
#[inline]
fn with(h: f64, f: impl FnOnce(&mut Resolver) -> Option<f64>) -> f64 {
    let Some(mut guard) = handles::lock_handle(h) else {
        return FAIL;
    };
    let Some((r, epoch)) = guard.resolver() else {
        return FAIL;
    };
    if epoch != fork::epoch() {
        return FAIL;
    }
    catch_unwind(AssertUnwindSafe(|| f(r)))
        .ok()
        .flatten()
        .unwrap_or(FAIL)
}

/// `r:move(player, x, y, z)`: 0 on success, -1 to take the slow path.
#[no_mangle]
pub extern "C" fn treasure_native_move(h: f64, player: f64, x: f64, y: f64, z: f64) -> f64 {
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
    h: f64,
    player: f64,
    x: f64,
    y: f64,
    z: f64,
    t_us: f64,
) -> f64 {
    with(h, |r| {
        if !limits::T_US.contains_f64(t_us) {
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
///
/// # Safety
/// `records` points at `len` readable bytes that stay unchanged during the
/// call, or `len` is 0. native.lua passes a Lua string and `#records`:
/// LuaJIT converts a string argument to a pointer to its (immutable) bytes,
/// and the string is an argument of the running call, so it stays alive.
#[no_mangle]
pub unsafe extern "C" fn treasure_native_dig_batch(h: f64, records: *const u8, len: usize) -> f64 {
    // SAFETY: this function's own contract, passed on.
    let Some(bytes) = (unsafe { bytes(records, len) }) else {
        return FAIL;
    };
    with(h, |r| {
        Some(
            r.dig_batch(bytes)
                .ok()?
                .map_or(0.0, |(first, _)| first as f64),
        )
    })
}

/// `r:move_batch(records)`: 0 on success, -1 to take the slow path.
///
/// # Safety
/// As for [`treasure_native_dig_batch`].
#[no_mangle]
pub unsafe extern "C" fn treasure_native_move_batch(h: f64, records: *const u8, len: usize) -> f64 {
    // SAFETY: this function's own contract, passed on.
    let Some(bytes) = (unsafe { bytes(records, len) }) else {
        return FAIL;
    };
    with(h, |r| {
        r.move_batch(bytes).ok()?;
        Some(0.0)
    })
}

/// `r:poll_into(buf, max)` once the shim has measured `buf`: `holds` is how
/// many packets it holds. Returns n, or -1 to take the slow path.
///
/// # Safety
/// `buf` points at at least `holds * 128` writable bytes no one else touches
/// during the call. native.lua calls this only with `buf` a value that
/// treasure/ffi_buffer.lua found to be a uint8_t array instance and `holds`
/// its verdict for it (LuaJIT passes an array cdata as the address of its
/// payload; the array is an argument of the running call, so it is alive).
#[no_mangle]
pub unsafe extern "C" fn treasure_native_poll_into(
    h: f64,
    buf: *mut u8,
    holds: f64,
    max: f64,
) -> f64 {
    with(h, |r| {
        if !limits::COUNT.contains_f64(holds) || !count_to(max, holds) {
            return None;
        }
        // SAFETY: this function's own contract; `max <= holds` checked above.
        let n = unsafe { buffer::poll_into_raw(r, buf, holds as usize, max as usize) };
        Some(n.ok()? as f64)
    })
}

/// `r:poll_view(max)` (issue 16): n (0 when nothing is pollable or `max`
/// is 0), with the run's address stored in `view[0]` when n > 0; -1 to
/// take the slow path (nothing taken then).
///
/// # Safety
/// `view` points at one writable `const uint8_t *`. native.lua passes its
/// own `const uint8_t *[1]` array, allocated once and never freed while
/// the module is loaded (an upvalue of the shim).
#[no_mangle]
pub unsafe extern "C" fn treasure_native_poll_view(h: f64, max: f64, view: *mut *const u8) -> f64 {
    if view.is_null() {
        return FAIL;
    }
    with(h, |r| {
        if !limits::COUNT.contains_f64(max) {
            return None;
        }
        match r.poll_view(max as usize).ok()? {
            Some((addr, n)) => {
                // SAFETY: this function's contract: `view` (checked non-NULL
                // above) points at one writable pointer slot.
                unsafe { view.write(addr as *const u8) };
                Some(n as f64)
            }
            None => Some(0.0),
        }
    })
}

/// The bytes at `p`, `len` long.
///
/// # Safety
/// `p` points at `len` readable bytes unchanged for `'a`, or `len` is 0.
unsafe fn bytes<'a>(p: *const u8, len: usize) -> Option<&'a [u8]> {
    if len == 0 {
        return Some(&[]);
    }
    if p.is_null() || len > isize::MAX as usize {
        return None;
    }
    // SAFETY: this function's contract.
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
