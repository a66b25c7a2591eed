//! The one process-wide worker pool, and each resolver's share of it.
//!
//! Why one pool: a pool per resolver kept its threads until the resolver was
//! dropped, and a resolver dropped by a script without `close()` is only
//! dropped when a GC cycle finalizes its small userdata, which may take a
//! long time (400 such resolvers with `workers = 32` held 4,065 threads).
//! With one pool sized to the machine's cores, the thread count is bounded
//! whatever the callers do.
//!
//! The pool is created lazily by the first resolver and never destroyed. It
//! remembers the process it was made in: a forked child has none of its
//! threads (fork copies only the calling thread), so the first resolver
//! created in the child makes a new pool there. The parent's pool is leaked,
//! never joined or dropped, since its threads (and any lock they held) do
//! not exist in the child.
//!
//! A resolver's `workers` option is its *share*: at most that many of its
//! chunks run at once (`Share`). Chunks beyond the share wait in the
//! resolver's own queue, and a worker that finishes one of its chunks starts
//! the next one, so a resolver never needs its caller to come back to keep
//! its work going.

use crossbeam::queue::SegQueue;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Mutex;

/// The pool of this process and the pid it was made in.
static POOL: Mutex<Option<(u32, &'static rayon::ThreadPool)>> = Mutex::new(None);

/// Number of threads the process-wide pool has (the machine's cores).
pub fn pool_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The process-wide pool, created on first use in this process (see the
/// module docs). Fails only if the threads cannot be started.
pub(crate) fn pool() -> Result<&'static rayon::ThreadPool, String> {
    let pid = std::process::id();
    // A poisoned lock only means a thread panicked while holding it; the
    // data (an Option of a leaked reference) is always consistent.
    let mut guard = POOL.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((made_in, pool)) = *guard {
        if made_in == pid {
            return Ok(pool);
        }
        // Made before a fork: its threads do not exist here. Leak it.
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(pool_threads())
        .thread_name(|i| format!("treasure-worker-{i}"))
        .build()
        .map_err(|e| format!("cannot start worker threads: {e}"))?;
    let pool: &'static rayon::ThreadPool = Box::leak(Box::new(pool));
    *guard = Some((pid, pool));
    Ok(pool)
}

/// One resolver's share of the pool: its queued jobs and how many of them
/// run now (at most `cap`).
pub(crate) struct Share<J> {
    cap: usize,
    running: AtomicUsize,
    queue: SegQueue<J>,
}

impl<J> Share<J> {
    pub fn new(cap: usize) -> Share<J> {
        Share {
            cap: cap.max(1),
            running: AtomicUsize::new(0),
            queue: SegQueue::new(),
        }
    }

    /// Queues `job`; the caller then calls [`Share::next`] to start it if
    /// the share has room.
    pub fn push(&self, job: J) {
        self.queue.push(job);
    }

    /// Takes a running slot and the oldest queued job, or `None` when the
    /// share is full or nothing is queued. Whoever gets a job must call
    /// [`Share::finished`] once it is done.
    ///
    /// No job is ever stranded: a job is pushed before its pusher calls
    /// `next`, and `finished` gives the slot back before it calls `next`, so
    /// whichever of the two comes second sees both the job and the free slot.
    pub fn next(&self) -> Option<J> {
        loop {
            let r = self.running.load(SeqCst);
            if r >= self.cap {
                return None;
            }
            if self
                .running
                .compare_exchange(r, r + 1, SeqCst, SeqCst)
                .is_err()
            {
                continue;
            }
            match self.queue.pop() {
                Some(job) => return Some(job),
                None => {
                    self.running.fetch_sub(1, SeqCst);
                    if self.queue.is_empty() {
                        return None;
                    }
                    // Pushed between our pop and our release: retry.
                }
            }
        }
    }

    /// Gives back the slot a job from [`Share::next`] held.
    pub fn finished(&self) {
        self.running.fetch_sub(1, SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;

    /// The share never runs more than `cap` jobs at once and runs them all.
    #[test]
    fn share_caps_and_drains() {
        let pool = pool().unwrap();
        for cap in [1usize, 2, 3] {
            let share = Arc::new(Share::<usize>::new(cap));
            let now = Arc::new(AtomicUsize::new(0));
            let peak = Arc::new(AtomicUsize::new(0));
            let done = Arc::new(AtomicUsize::new(0));
            fn start(
                pool: &'static rayon::ThreadPool,
                share: &Arc<Share<usize>>,
                now: &Arc<AtomicUsize>,
                peak: &Arc<AtomicUsize>,
                done: &Arc<AtomicUsize>,
            ) {
                while let Some(_job) = share.next() {
                    let (share, now, peak, done) =
                        (share.clone(), now.clone(), peak.clone(), done.clone());
                    pool.spawn(move || {
                        let n = now.fetch_add(1, SeqCst) + 1;
                        peak.fetch_max(n, SeqCst);
                        std::thread::sleep(std::time::Duration::from_micros(200));
                        now.fetch_sub(1, SeqCst);
                        done.fetch_add(1, SeqCst);
                        share.finished();
                        start(pool, &share, &now, &peak, &done);
                    });
                }
            }
            for j in 0..50 {
                share.push(j);
                start(pool, &share, &now, &peak, &done);
            }
            let t0 = std::time::Instant::now();
            while done.load(SeqCst) < 50 {
                assert!(t0.elapsed().as_secs() < 30, "jobs stranded");
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            assert!(peak.load(SeqCst) <= cap, "cap {cap}, peak {peak:?}");
        }
    }
}
