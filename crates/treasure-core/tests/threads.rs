//! The thread count is bounded by the machine's cores, whatever the
//! resolvers ask for (issue 12 item 4): every resolver shares one
//! process-wide pool. Alone in its test binary, so no other test's threads
//! are counted.

use treasure_core::{pool_threads, LootEntry, Options, Resolver};

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .count()
}

fn resolver() -> Resolver {
    let mut r = Resolver::new(Options {
        workers: 32,
        chunk_digs: 1,
        ..Options::default()
    })
    .unwrap();
    let entry = LootEntry {
        item: 1,
        weight: 1,
        min: 1,
        max: 1,
        rarity: 0,
    };
    r.add_loot_table(1, &[entry]).unwrap();
    r.add_site(1, 0, 0, 0, 1, 1_000_000).unwrap();
    for p in 1..=20 {
        r.join(p, 0, 0, 0, 0).unwrap();
    }
    r
}

#[test]
fn four_hundred_resolvers_share_one_pool() {
    // The test harness's main and test threads, plus the pool's.
    let bound = pool_threads() + 4;
    let mut live = Vec::new();
    let mut peak = threads();
    for i in 0..400u64 {
        let mut r = resolver();
        // A FOUND dig on each, so work really reaches the pool.
        for t in 0..4 {
            assert!(r.dig(1 + (t % 20) as u32, 0, 0, 0, i).unwrap().is_some());
        }
        peak = peak.max(threads());
        // Half are kept open with work in flight, half are dropped (no close).
        if i % 2 == 0 {
            live.push(r);
        }
    }
    for r in &mut live {
        r.flush().unwrap();
        let mut out = Vec::new();
        // 4 FOUND digs, each seen by the 20 players (the digger included).
        assert_eq!(r.poll(usize::MAX, &mut out).unwrap(), 80);
        peak = peak.max(threads());
    }
    assert!(peak <= bound, "peak {peak} threads, bound {bound}");
    // The share is what `workers` asked for, not a thread count.
    assert_eq!(live[0].stats().unwrap().workers, 32);
}
