//! The caller's LuaJIT FFI buffer that `poll_into` fills: where it is, and
//! the one write through a raw pointer in the binding.
//!
//! Rust cannot ask LuaJIT what a cdata is or how big it is; only Lua can
//! (treasure/ffi_buffer.lua, the same file legacy uses), giving `holds`,
//! the number of whole packets the value holds, only for a uint8_t array
//! *instance*. The mlua path calls that function itself ([`measure`]), so
//! no caller's claim is trusted; the fast path's `holds` comes from the
//! shim, which is why that C function is `unsafe` (fast.rs). The mlua path
//! learns the address from
//! `lua_topointer`, which for a cdata points into the cdata object itself
//! (payload or GC header, by LuaJIT build, calibrated once at load time):
//! for a ctype object or a pointer cdata it is *not* memory of the caller's
//! buffer, which is why nothing is written without the verdict.

use mlua::{Function, Lua, Table, Value};
use treasure_core::contract::limits::MAX_SAFE;
use treasure_core::{Resolver, PACKET_SIZE};

/// How far the payload of a cdata lies from what `lua_topointer` reports.
#[derive(Clone, Copy, Debug)]
pub struct PointerOffset(isize);

/// The calibrated offset of this state, None if calibration failed.
pub fn offset(lua: &Lua) -> Option<PointerOffset> {
    lua.app_data_ref::<PointerOffset>().map(|o| *o)
}

/// Learns the offset from two probe arrays (a VLA and a fixed-size array)
/// whose payload addresses the FFI gives: both must agree. None when this
/// LuaJIT build reports something else (poll_into's mlua path then refuses
/// every buffer rather than guess).
fn calibrate(lua: &Lua) -> mlua::Result<Option<PointerOffset>> {
    let (vla, vla_addr, fixed, fixed_addr): (Value, f64, Value, f64) = lua
        .load(
            r#"local ffi = require("ffi")
            local vla, fixed = ffi.new("uint8_t[?]", 8), ffi.new("uint8_t[8]")
            return vla, tonumber(ffi.cast("uintptr_t", vla)), fixed, tonumber(ffi.cast("uintptr_t", fixed))"#,
        )
        .set_name("=treasure.native.calibrate")
        .call(())?;
    if !is_cdata(&vla) || !is_cdata(&fixed) {
        return Ok(None);
    }
    let a = vla_addr as isize - vla.to_pointer() as isize;
    let b = fixed_addr as isize - fixed.to_pointer() as isize;
    Ok((a == b && (0..=64).contains(&a)).then_some(PointerOffset(a)))
}

/// A LuaJIT cdata (mlua has no variant of its own for it: it is the only
/// value type LuaJIT adds to Lua 5.1's, so it arrives as `Other`).
pub fn is_cdata(v: &Value) -> bool {
    matches!(v, Value::Other(_))
}

/// treasure/ffi_buffer.lua's measuring function, as this library loaded it
/// (the one [`install`] compiled in); the mlua path asks it itself.
struct PacketsHeld(Function);

/// Loads treasure/ffi_buffer.lua (compiled in) into `lua`, keeps it for
/// [`measure`] and returns it for native.lua's fast path; calibrates the
/// [`PointerOffset`] (see [`offset`]). Both are this library's own doing,
/// never values a caller hands in.
pub fn install(lua: &Lua, contract: Table) -> mlua::Result<Function> {
    if let Some(off) = calibrate(lua)? {
        lua.set_app_data(off);
    }
    let packets_held: Function = lua
        .load(include_str!("../../lua/treasure/ffi_buffer.lua"))
        .set_name("=treasure.ffi_buffer")
        .call(contract)?;
    lua.set_app_data(PacketsHeld(packets_held.clone()));
    Ok(packets_held)
}

/// A uint8_t array instance and the whole packets it holds, as measured by
/// [`measure`] during the running call. Only `measure` makes one, so a
/// `Measured` is proof that `buf` may be written `holds * 128` bytes deep.
pub struct Measured<'a> {
    buf: &'a Value,
    holds: usize,
}

/// A `uint8_t *` / `void *` cdata (not NULL, not const) and the whole
/// packets of the `capacity` its caller gave (issue 15). Only [`measure`]
/// makes one, from treasure/ffi_buffer.lua's reading of the pointer value.
pub struct Pointed {
    addr: usize,
    holds: usize,
}

/// Why treasure/ffi_buffer.lua refused `poll_into`'s `buf` itself: reported
/// before `max` is checked (docs/API.md, "Check order").
pub enum BufRefusal {
    /// Not an accepted buffer; what it is, for `got <what>`.
    Type(String),
    /// A NULL `uint8_t *` / `void *`; what it is.
    Null(String),
}

/// Why it refused `capacity` for an acceptable `buf`: reported after `max`
/// is checked.
pub enum CapacityRefusal {
    /// `capacity` not an integer in [0, 2^53-1]; how it shows.
    Invalid(String),
    /// A pointer `buf` without `capacity`.
    Missing,
    /// An array `buf` with a `capacity` above its `size` bytes.
    Exceeds { size: u64 },
}

/// A buffer `poll_into` may write: the only things [`measure`] accepts.
pub enum Buffer<'a> {
    Array(Measured<'a>),
    Pointer(Pointed),
}

impl Buffer<'_> {
    /// How many whole packets it holds.
    pub fn holds(&self) -> usize {
        match self {
            Buffer::Array(b) => b.holds,
            Buffer::Pointer(p) => p.holds,
        }
    }
}

/// What [`measure`] found, one stage of the check order per refusal.
pub enum Verdict<'a> {
    Accepted(Buffer<'a>),
    BadBuf(BufRefusal),
    BadCapacity(CapacityRefusal),
}

fn as_count(v: &Value) -> Option<u64> {
    match *v {
        Value::Integer(n) if n >= 0 && n as u64 <= MAX_SAFE => Some(n as u64),
        Value::Number(n) if n >= 0.0 && n.fract() == 0.0 && n <= MAX_SAFE as f64 => Some(n as u64),
        _ => None,
    }
}

/// Asks treasure/ffi_buffer.lua (the function [`install`] loaded, never
/// one a caller passes) about `buf` and `capacity`.
pub fn measure<'a>(lua: &Lua, buf: &'a Value, capacity: &Value) -> mlua::Result<Verdict<'a>> {
    let Some(packets_held) = lua.app_data_ref::<PacketsHeld>().map(|p| p.0.clone()) else {
        return Err(mlua::Error::runtime("treasure.ffi_buffer is not loaded"));
    };
    let (holds, refused, detail, addr): (Value, Option<String>, Value, Value) =
        packets_held.call((buf.clone(), capacity.clone()))?;
    let shown = || match &detail {
        Value::String(s) => s.to_string_lossy().to_string(),
        _ => String::new(),
    };
    if let Some(code) = refused {
        return Ok(match code.as_str() {
            "null" => Verdict::BadBuf(BufRefusal::Null(shown())),
            "capacity" => Verdict::BadCapacity(CapacityRefusal::Invalid(shown())),
            "capacity_missing" => Verdict::BadCapacity(CapacityRefusal::Missing),
            "capacity_exceeds" => Verdict::BadCapacity(CapacityRefusal::Exceeds {
                size: as_count(&detail).unwrap_or(0),
            }),
            _ => Verdict::BadBuf(BufRefusal::Type(shown())),
        });
    }
    let (Some(holds), true) = (as_count(&holds), is_cdata(buf)) else {
        return Ok(Verdict::BadBuf(BufRefusal::Type(shown())));
    };
    let holds = holds as usize;
    Ok(match as_count(&addr) {
        Some(addr) if addr > 0 => Verdict::Accepted(Buffer::Pointer(Pointed {
            addr: addr as usize,
            holds,
        })),
        Some(_) => Verdict::BadBuf(BufRefusal::Type(shown())),
        None => Verdict::Accepted(Buffer::Array(Measured { buf, holds })),
    })
}

impl Pointed {
    /// Copies up to `max` packets to the pointer (panics if `max > holds`;
    /// the caller checks it first, with the contract's message).
    pub fn poll_into(&self, r: &mut Resolver, max: usize) -> Result<usize, treasure_core::Error> {
        // SAFETY: `self` was made by `measure` from ffi_buffer.lua's reading
        // of a non-NULL, non-const `uint8_t *` / `void *` cdata (`addr` is
        // its value, exact in a double: user-space addresses are below
        // 2^47); that it points at `capacity >= holds * 128` writable bytes
        // nothing else touches during the call is the caller's promise, as
        // for any C buffer argument (docs/API.md, "poll_into"). LuaJIT is
        // blocked in this call.
        unsafe { poll_into_raw(r, self.addr as *mut u8, self.holds, max) }
    }
}

impl Measured<'_> {
    /// Copies up to `max` packets into the buffer, whose payload lies
    /// `offset` from what `lua_topointer` reports (panics if `max > holds`;
    /// the caller checks it first, with the contract's message).
    pub fn poll_into(
        &self,
        r: &mut Resolver,
        max: usize,
        offset: PointerOffset,
    ) -> Result<usize, treasure_core::Error> {
        let base = (self.buf.to_pointer() as *mut u8).wrapping_offset(offset.0);
        // SAFETY: `self` was made by `measure` from ffi_buffer.lua's verdict
        // for this very `buf`: a uint8_t array instance (not a ctype object,
        // pointer or reference) of at least `holds * 128` bytes, whose
        // payload `base` is by the calibrated offset. `buf` is an argument
        // of the running call (borrowed for `'_`), so it is alive, and
        // LuaJIT is blocked in this call, so nothing else touches it.
        unsafe { poll_into_raw(r, base, self.holds, max) }
    }
}

/// Copies up to `max` packets into `holds * 128` bytes at `buf`.
/// Panics if `max > holds` (both callers check it first).
///
/// # Safety
/// `buf` points at at least `holds * 128` writable bytes that nothing else
/// reads or writes during the call (the payload of a live uint8_t array
/// cdata that treasure/ffi_buffer.lua measured, or the memory behind a
/// `uint8_t *` / `void *` its caller gave a `capacity` for; LuaJIT is
/// blocked in this call), or `max` is 0.
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
