//! `r:fd()`: the eventfd an event loop watches (issue 15, docs/API.md "fd").
//!
//! The core decides *when* (crates/treasure-core/src/readiness.rs, no unsafe
//! there); this file owns the three syscalls: `eventfd(2)` with
//! `EFD_NONBLOCK | EFD_CLOEXEC`, an 8-byte `write` to make it readable and an
//! 8-byte `read` to make it unreadable again. The descriptor is an
//! [`OwnedFd`]: it is closed exactly once, when the core drops the hook
//! (close, GC, after its chunks are received, under the hook's mutex).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use treasure_core::ReadyHook;

/// A non-blocking, close-on-exec eventfd used as a readiness flag.
#[derive(Debug)]
pub struct EventFd(OwnedFd);

impl EventFd {
    /// A new eventfd with counter 0 (not readable).
    pub fn new() -> io::Result<EventFd> {
        // SAFETY: eventfd takes two integers and returns a new descriptor or
        // -1; no memory is passed.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by eventfd, is open, and nothing
        // else owns it.
        Ok(EventFd(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// The descriptor number (valid while the resolver is open).
    pub fn raw(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

impl ReadyHook for EventFd {
    fn signal(&self) {
        let one: u64 = 1;
        // SAFETY: writes the 8 bytes of a live local to a descriptor this
        // value owns (open until it is dropped). Non-blocking: EAGAIN only
        // when the counter is at its maximum, which is still readable.
        let _ = unsafe {
            libc::write(
                self.0.as_raw_fd(),
                (&one as *const u64).cast::<libc::c_void>(),
                8,
            )
        };
    }

    fn reset(&self) {
        let mut sink: u64 = 0;
        // SAFETY: reads at most 8 bytes into a live local u64 from a
        // descriptor this value owns. Non-blocking: EAGAIN when already 0.
        let _ = unsafe {
            libc::read(
                self.0.as_raw_fd(),
                (&mut sink as *mut u64).cast::<libc::c_void>(),
                8,
            )
        };
    }
}
