//! Every `unsafe` of the binding lives in this module (the crate root says
//! `#![deny(unsafe_code)]`; only `mod ffi` is allowed it).
//!
//! * `handles.rs` the process-wide, never-freed arena of resolver cells: the
//!   FFI fast path's handle is a slot + generation in it, never an address,
//!   so a stale handle (closed, finalized, resurrected, fetched earlier)
//!   fails a generation check instead of reading freed memory.
//! * `fork.rs`    fork detection: a process-wide epoch bumped by a
//!   `pthread_atfork` child handler, compared per call.
//! * `buffer.rs`  the caller's FFI buffer: its payload address and the one
//!   write through a raw pointer (`poll_into`).
//! * `eventfd.rs` the eventfd behind `r:fd()` (create, signal, reset).
//! * `fast.rs`    the C functions LuaJIT's FFI calls for the per-tick calls.
//! * `entry.rs`   `luaopen_treasure_native`: refuses a host that is not
//!   LuaJIT 2.1, then opens the module.
//!
//! What stays outside (safe code): argument checks, messages, the userdata.
//!
//! Rules, enforced by the lints below and by tests/binding.rs
//! (`unsafe_lives_only_in_src_ffi`): every `unsafe` block says why it is
//! sound in a `// SAFETY:` comment; every obligation a caller has is an
//! `unsafe fn` with a `# Safety` section; an `unsafe fn` body states its
//! own unsafe blocks (no implicit unsafe context).

#![deny(
    unsafe_op_in_unsafe_fn,
    clippy::undocumented_unsafe_blocks,
    clippy::missing_safety_doc
)]

pub mod buffer;
mod entry;
pub mod eventfd;
pub mod fast;
pub mod fork;
pub mod handles;
