//! After fork() the child has none of the worker pool's threads. A resolver
//! created in the child must work (the pool is re-created there), and
//! dropping a resolver inherited from the parent with work in flight must
//! not hang (it would wait forever for chunks no thread will run).
//! Alone in its test binary: fork copies only the calling thread.

use std::time::{Duration, Instant};
use treasure_core::records::encode_digs;
use treasure_core::{DigRecord, LootEntry, Options, Resolver};

fn world() -> Resolver {
    let mut r = Resolver::new(Options {
        workers: 2,
        chunk_digs: 4,
        ..Options::default()
    })
    .unwrap();
    let e = LootEntry {
        item: 1,
        weight: 1,
        min: 1,
        max: 1,
        rarity: 0,
    };
    r.add_loot_table(1, &[e]).unwrap();
    r.add_site(1, 0, 0, 0, 1, u32::MAX).unwrap();
    for p in 1..=300 {
        r.join(p, (p % 20) as i32, 0, (p / 20) as i32, 0).unwrap();
    }
    r
}

fn burst(n: usize) -> Vec<u8> {
    let recs: Vec<DigRecord> = (0..n)
        .map(|i| DigRecord::new(1 + (i % 300) as u32, 0, 0, 0, i as u64))
        .collect();
    encode_digs(&recs)
}

/// The child's checks; its exit status is the result.
fn child(inherited: Resolver) -> i32 {
    // Work in flight at the fork never finishes here: drop must not wait.
    drop(inherited);
    let mut r = world();
    if r.dig_batch(&burst(40)).ok().flatten() != Some((1, 40)) {
        return 2;
    }
    if r.flush().is_err() {
        return 3;
    }
    let Ok(stats) = r.stats() else { return 4 };
    let mut out = Vec::new();
    // Every packet of the 40 digs (some FOUND, seen by all 300 players).
    match r.poll(usize::MAX, &mut out) {
        Ok(n) if n as u64 == stats.counters.packets && stats.counters.found > 0 && n > 300 => 0,
        _ => 6,
    }
}

#[test]
fn a_forked_child_gets_its_own_pool_and_drop_does_not_hang() {
    let mut parent = world();
    parent.flush().unwrap();
    let mut inherited = world();
    // Thousands of digs in flight when the process forks.
    inherited.dig_batch(&burst(20_000)).unwrap().unwrap();
    // SAFETY: the child only runs Rust code that allocates (glibc's malloc
    // is fork-safe) and then leaves with _exit, never returning into the
    // test harness.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| child(inherited)))
            .unwrap_or(5);
        // SAFETY: ends the child at once, without running the parent's
        // atexit handlers or destructors.
        unsafe { libc::_exit(code) };
    }
    // The parent's pool is untouched by the fork.
    inherited.flush().unwrap();
    parent.dig(1, 0, 0, 0, 1).unwrap().unwrap();
    parent.flush().unwrap();
    let t0 = Instant::now();
    let mut status = 0;
    loop {
        // SAFETY: waits for our own child; `status` is a valid out pointer.
        let done = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if done == pid {
            break;
        }
        if t0.elapsed() > Duration::from_secs(60) {
            // SAFETY: kills our own child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("the child hung (no pool after fork, or drop waited)");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(libc::WIFEXITED(status), "child status {status}");
    assert_eq!(libc::WEXITSTATUS(status), 0, "child check failed");
}
