//! The zero-copy drain (issue 16): `r:poll_view([max])` and
//! `r:release_view()`. The memory rules (a process-wide pool of blocks,
//! never freed) are treasure_core's `view` module; native.lua turns the
//! address into a `const uint8_t *` cdata.

use mlua::{LightUserData, Lua, MultiValue, Value};
use treasure_core::{Error, Method};

use super::NativeResolver;
use crate::args::{self, nth};

/// `r:poll_view([max])` -> n, address of the run (a light userdata; nil
/// when n is 0). Checks: max (an integer in [0, 2^53-1], default all).
pub fn poll_view(lua: &Lua, r: &mut NativeResolver, a: &[Value]) -> Result<MultiValue, Error> {
    let m = Method::PollView;
    let max = args::opt(nth(a, 0), |v| args::count(lua, m, "max", v))?;
    let max = max.map_or(usize::MAX, |k| usize::try_from(k).unwrap_or(usize::MAX));
    Ok(match r.core().get(m)?.poll_view(max)? {
        // A plain address (no dereference here); native.lua casts it.
        Some((addr, n)) => MultiValue::from_vec(vec![
            Value::Number(n as f64),
            Value::LightUserData(LightUserData(addr as *mut std::ffi::c_void)),
        ]),
        None => MultiValue::from_vec(vec![Value::Number(0.0), Value::Nil]),
    })
}

/// `r:release_view()`: ends the current view early.
pub fn release_view(_: &Lua, r: &mut NativeResolver, _: &[Value]) -> Result<(), Error> {
    r.core().get(Method::ReleaseView)?.release_view()
}
