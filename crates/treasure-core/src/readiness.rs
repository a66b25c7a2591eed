//! Readiness for event loops (issue 15, `r:fd()`): the state the caller's
//! stream (`resolver/stream.rs`) and the workers (`pipeline.rs`) share.
//!
//! The core has no file descriptors (it is `forbid(unsafe_code)`): the
//! binding registers a [`ReadyHook`] (an eventfd in `src/ffi/eventfd.rs`) and
//! the core tells it when the stream goes from "nothing pollable" to
//! "something pollable" ([`ReadyHook::signal`]) and when a poll emptied it
//! ([`ReadyHook::reset`]). No call per packet, none per chunk unless a wakeup
//! is owed.
//!
//! # Protocol (no lost wakeup)
//!
//! Packets become pollable only when the *oldest unfinished chunk* (index
//! `contiguous` in `resolver/stream.rs`) is published: later chunks queue behind it.
//! So when the caller finds the stream empty it
//!
//! 1. resets the hook if it was signalled ([`Readiness::arm`]),
//! 2. arms `wake_at = contiguous` (SeqCst, then a SeqCst fence),
//! 3. re-checks the result channel; if packets became pollable meanwhile it
//!    disarms with a compare-exchange and signals itself
//!    ([`Readiness::disarm_and_signal`]).
//!
//! A worker, *after* sending chunk `k` on the channel, issues a SeqCst fence
//! and takes the arm with a compare-exchange `k -> NONE`; whoever wins the
//! exchange signals. The two fences order "send; load wake_at" against
//! "store wake_at; try_recv": either the caller's re-check sees the chunk or
//! the worker sees the arm, never neither (Dekker). A lost race the other way
//! gives at most a spurious wakeup (the fd readable while `poll` returns 0);
//! that poll resets it again.
//!
//! The hook sits behind a mutex that is only taken when a wakeup is owed or
//! the hook is removed: [`Readiness::uninstall`] (on close and drop, after the
//! resolver's chunks are received) takes it out under that mutex, so no
//! worker can signal a file descriptor after it was closed.

use std::sync::atomic::{fence, AtomicBool, AtomicU64, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::{Arc, Mutex};

/// What the binding registers to be told about readiness. Both methods are
/// called from any thread (workers included) and must not block.
pub trait ReadyHook: Send + Sync {
    /// Make the readiness object readable (an eventfd write).
    fn signal(&self);
    /// Make it unreadable again (an eventfd read).
    fn reset(&self);
}

const NONE: u64 = u64::MAX;

/// The readiness state shared by the caller and the workers.
pub(crate) struct Readiness {
    hook: Mutex<Option<Arc<dyn ReadyHook>>>,
    /// Lock-free "is there a hook" for the caller's fast checks.
    installed: AtomicBool,
    /// The chunk index whose publication owes a signal, or NONE.
    wake_at: AtomicU64,
    /// Signalled since the last reset (so an empty poll resets only then).
    raised: AtomicBool,
}

impl std::fmt::Debug for Readiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Readiness")
            .field("installed", &self.installed.load(Relaxed))
            .field("wake_at", &self.wake_at.load(Relaxed))
            .finish_non_exhaustive()
    }
}

impl Default for Readiness {
    fn default() -> Self {
        Readiness {
            hook: Mutex::new(None),
            installed: AtomicBool::new(false),
            wake_at: AtomicU64::new(NONE),
            raised: AtomicBool::new(false),
        }
    }
}

impl Readiness {
    fn hook(&self) -> Option<Arc<dyn ReadyHook>> {
        self.hook.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// True once a hook is registered (and until it is removed).
    #[inline]
    pub fn installed(&self) -> bool {
        self.installed.load(Relaxed)
    }

    /// Registers `hook` (replacing none; the binding installs one per
    /// resolver). The caller then settles the state (`Stream::settle_ready`).
    pub fn install(&self, hook: Arc<dyn ReadyHook>) {
        *self.hook.lock().unwrap_or_else(|e| e.into_inner()) = Some(hook);
        self.installed.store(true, SeqCst);
    }

    /// Removes the hook (dropping it: the binding's eventfd is closed here,
    /// under the mutex, so no signal can reach a closed descriptor).
    pub fn uninstall(&self) {
        self.wake_at.store(NONE, SeqCst);
        self.installed.store(false, SeqCst);
        let old = self.hook.lock().unwrap_or_else(|e| e.into_inner()).take();
        drop(old);
    }

    /// Signals (readable) and remembers it; under the mutex, so it never
    /// races `uninstall`.
    pub fn signal(&self) {
        let guard = self.hook.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(h) = guard.as_ref() {
            self.raised.store(true, SeqCst);
            h.signal();
        }
    }

    /// Chunk `index` was published (sent on the channel by a worker, or
    /// received on the caller's thread): signal if a wakeup was owed for it.
    /// Must be called *after* the chunk is visible to the caller's re-check.
    #[inline]
    pub fn published(&self, index: u64) {
        fence(SeqCst);
        if self.wake_at.load(Relaxed) == index
            && self
                .wake_at
                .compare_exchange(index, NONE, SeqCst, SeqCst)
                .is_ok()
        {
            self.signal();
        }
    }

    /// The stream is empty: reset the hook if it was signalled, then arm a
    /// wakeup for the publication of chunk `head`. The caller must re-check
    /// the channel next and call [`disarm_and_signal`] if packets arrived.
    ///
    /// [`disarm_and_signal`]: Readiness::disarm_and_signal
    pub fn arm(&self, head: u64) {
        if self.raised.swap(false, SeqCst) {
            if let Some(h) = self.hook() {
                h.reset();
            }
        }
        self.wake_at.store(head, SeqCst);
        fence(SeqCst);
    }

    /// Nothing is pollable and no worker will make anything pollable (a
    /// cluster resolver's host packets come from the caller's own
    /// `apply_records`): reset the hook if it was signalled, arm nothing.
    pub fn reset(&self) {
        self.wake_at.store(NONE, SeqCst);
        if self.raised.swap(false, SeqCst) {
            if let Some(h) = self.hook() {
                h.reset();
            }
        }
    }

    /// Packets are pollable: make sure the hook is signalled (once).
    pub fn ensure_signalled(&self) {
        self.wake_at.store(NONE, SeqCst);
        if !self.raised.load(SeqCst) {
            self.signal();
        }
    }

    /// The re-check after [`arm`] found packets: take the arm back and
    /// signal, unless a worker took it first (then it signals).
    ///
    /// [`arm`]: Readiness::arm
    pub fn disarm_and_signal(&self, head: u64) {
        if self
            .wake_at
            .compare_exchange(head, NONE, SeqCst, SeqCst)
            .is_ok()
        {
            self.signal();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[derive(Default)]
    struct Counting {
        signals: AtomicUsize,
        resets: AtomicUsize,
    }
    impl ReadyHook for Counting {
        fn signal(&self) {
            self.signals.fetch_add(1, SeqCst);
        }
        fn reset(&self) {
            self.resets.fetch_add(1, SeqCst);
        }
    }

    #[test]
    fn signals_only_for_the_armed_chunk() {
        let r = Readiness::default();
        let h = Arc::new(Counting::default());
        r.install(h.clone());
        r.arm(3);
        r.published(4);
        assert_eq!(h.signals.load(SeqCst), 0);
        r.published(3);
        assert_eq!(h.signals.load(SeqCst), 1);
        r.published(3); // disarmed: no second signal
        assert_eq!(h.signals.load(SeqCst), 1);
        r.arm(5); // reset once, since it was raised
        assert_eq!(h.resets.load(SeqCst), 1);
        r.arm(5); // not raised: no syscall
        assert_eq!(h.resets.load(SeqCst), 1);
        r.disarm_and_signal(5);
        r.published(5);
        assert_eq!(h.signals.load(SeqCst), 2);
        r.uninstall();
        r.signal();
        assert_eq!(h.signals.load(SeqCst), 2);
        assert_eq!(Arc::strong_count(&h), 1, "uninstall drops the hook");
    }
}
