//! Fork detection (issue 12 item 5, docs/API.md "fork").
//!
//! A resolver's worker threads do not exist in a child made by `fork()`, so
//! every method of a resolver created before the fork must raise at once in
//! the child. Asking the kernel for the pid on every call is a real syscall
//! on glibc, too slow for the fast path; instead a process-wide epoch is
//! bumped by a `pthread_atfork` child handler (registered once per process)
//! and each resolver remembers the epoch it was created in: one relaxed load
//! and a compare per call. The pid (for the message) is read only on the
//! error path.
//!
//! A child made without the atfork handlers (a raw `clone` syscall) is not
//! detected; `fork()`, `posix_spawn` and everything in libc run them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Once;

static EPOCH: AtomicU64 = AtomicU64::new(0);
static REGISTER: Once = Once::new();

/// How many forks lie between process start and this process (0 in the
/// first process).
#[inline]
pub fn epoch() -> u64 {
    EPOCH.load(Ordering::Relaxed)
}

extern "C" fn prepare() {
    super::handles::before_fork();
}

extern "C" fn parent() {
    super::handles::after_fork();
}

extern "C" fn child() {
    EPOCH.fetch_add(1, Ordering::Relaxed);
    super::handles::after_fork();
}

/// Registers the atfork handlers once per process (idempotent, cheap after
/// the first call). Called before the first resolver is created.
pub fn init() {
    REGISTER.call_once(|| {
        // SAFETY: the three handlers are plain functions of this library,
        // which is never unmapped (linked -z nodelete, see build.rs), so they
        // stay valid for the process's life; they only touch atomics and the
        // arena's spin lock, which is what a handler run around fork() may do.
        let rc = unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) };
        // Without the handlers fork would go undetected; failing is ENOMEM only.
        assert_eq!(rc, 0, "pthread_atfork failed: {rc}");
    });
}

/// Where a resolver was created: compared on every call.
#[derive(Clone, Copy, Debug)]
pub struct Origin {
    epoch: u64,
    pid: u32,
}

impl Origin {
    /// This process, now.
    pub fn here() -> Origin {
        init();
        Origin {
            epoch: epoch(),
            pid: std::process::id(),
        }
    }

    /// The epoch the resolver was created in (the arena cell keeps a copy
    /// for the fast path).
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// `Some((created_in, used_in))` when this process is not the one that
    /// created the resolver.
    #[inline]
    pub fn foreign(&self) -> Option<(u32, u32)> {
        (self.epoch != epoch()).then(|| (self.pid, std::process::id()))
    }
}
