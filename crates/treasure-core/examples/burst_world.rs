//! A 12,000-dig burst on a world shaped like `examples/harness.lua`'s
//! (12,000 players in parties of four standing next to dig sites, half the
//! sites in 256 treasure fields of radius 160, a 4096² world, heights 28..34,
//! aoi 64), for profiling the workers without LuaJIT:
//!   cargo run --release -p treasure-core --example burst_world [workers] [bursts] [fresh]
//!   perf record -g target/release/examples/burst_world 1 200
//! `fresh`: one player moves (in place) before each burst, so that every
//! burst runs on a new snapshot, as in a game loop that moves players every
//! tick (the frozen index is built anew each burst); without it every burst
//! after the first reuses the first one's index.
//! Prints wall time per burst and the CPU of the caller and of the workers
//! (from /proc/self/task/*/schedstat).

use std::time::Instant;
use treasure_core::records::encode_digs;
use treasure_core::roll::splitmix64;
use treasure_core::{DigRecord, LootEntry, Options, Resolver};

/// CPU nanoseconds of this process's threads from /proc/self/task/*/schedstat
/// (exact, unlike clock ticks): (caller thread, worker threads).
fn thread_cpu_ns() -> (u64, u64) {
    let (mut main, mut workers) = (0, 0);
    for t in std::fs::read_dir("/proc/self/task")
        .expect("linux /proc")
        .flatten()
    {
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        let ns: u64 = std::fs::read_to_string(t.path().join("schedstat"))
            .unwrap_or_default()
            .split_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        if comm.starts_with("treasure-work") {
            workers += ns;
        } else {
            main += ns;
        }
    }
    (main, workers)
}

struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 += 1;
        splitmix64(self.0) % n
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let workers: u32 = args.get(1).map_or(1, |s| s.parse().unwrap());
    let bursts: usize = args.get(2).map_or(50, |s| s.parse().unwrap());
    let fresh = args.get(3).is_some_and(|s| s == "fresh");
    let (w, players, sites) = (4096i64, 12_000u32, 100_000usize);
    let mut rng = Rng(1);
    let mut r = Resolver::new(Options {
        seed: 1,
        aoi_radius: 64,
        reach: 8,
        workers,
        ..Options::default()
    })
    .unwrap();
    r.add_loot_table(
        1,
        &[LootEntry {
            item: 1,
            weight: 1,
            min: 1,
            max: 3,
            rarity: 0,
        }],
    )
    .unwrap();
    let hot: Vec<(i64, i64)> = (0..256)
        .map(|_| (rng.below(4096) as i64, rng.below(4096) as i64))
        .collect();
    let mut site_xz = Vec::with_capacity(sites);
    let mut taken = std::collections::HashSet::new();
    while site_xz.len() < sites {
        let (x, z) = if rng.below(2) == 0 {
            let (hx, hz) = hot[rng.below(256) as usize];
            let (ox, oz) = loop {
                let (a, b) = (rng.below(321) as i64 - 160, rng.below(321) as i64 - 160);
                if a * a + b * b <= 160 * 160 {
                    break (a, b);
                }
            };
            (hx + ox, hz + oz)
        } else {
            (rng.below(4096) as i64, rng.below(4096) as i64)
        };
        if x >= 1 && x < w - 1 && z >= 1 && z < w - 1 && taken.insert((x, z)) {
            site_xz.push((x, z));
        }
    }
    let height =
        |x: i64, z: i64| 30 + (splitmix64((x >> 5) as u64 * 1000 + (z >> 5) as u64) % 5) as i32;
    for (k, &(x, z)) in site_xz.iter().enumerate() {
        r.add_site(
            k as u32 + 1,
            x as i32,
            height(x, z) - 1,
            z as i32,
            1,
            u32::MAX,
        )
        .unwrap();
    }
    let mut digs = Vec::new();
    let mut leader_site = 0usize;
    for i in 0..players {
        let k = if i % 4 == 0 {
            leader_site = rng.below(sites as u64) as usize;
            leader_site
        } else {
            // a site near the leader's: nearest of a few random tries within 64 blocks
            let (lx, lz) = site_xz[leader_site];
            (0..200)
                .map(|_| rng.below(sites as u64) as usize)
                .find(|&k| (site_xz[k].0 - lx).abs() < 64 && (site_xz[k].1 - lz).abs() < 64)
                .unwrap_or(leader_site)
        };
        let (sx, sz) = site_xz[k];
        let (x, z) = (sx + 1, sz);
        let y = height(x, z);
        r.join(i + 1, x as i32, y, z as i32, i / 4 + 1).unwrap();
        digs.push(DigRecord::new(
            i + 1,
            sx as i32,
            height(sx, sz) - 1,
            sz as i32,
            0,
        ));
    }
    // What a burst's first worker spends building the frozen index.
    let mut build_us = Vec::new();
    for _ in 0..20 {
        let copy = r.players().unwrap().clone();
        let t = Instant::now();
        copy.freeze();
        build_us.push(t.elapsed().as_secs_f64() * 1e6);
        assert!(copy.is_frozen());
    }
    build_us.sort_by(f64::total_cmp);
    println!(
        "frozen index of {} players: {:.0} us (median of 20 builds)",
        r.players().unwrap().len(),
        build_us[10]
    );
    let bytes = encode_digs(&digs);
    let mut buf = vec![0u8; 4096 * 128];
    let (t0, (m0, w0)) = (Instant::now(), thread_cpu_ns());
    let mut packets = 0usize;
    let mut walls = Vec::with_capacity(bursts);
    let mut calls = Vec::with_capacity(bursts);
    let first = digs[0];
    for _ in 0..bursts {
        if fresh {
            let p = r.players().unwrap().get(first.player.get()).unwrap();
            r.move_player(p.id, p.x, p.y, p.z).unwrap();
        }
        let tb = Instant::now();
        r.dig_batch(&bytes).unwrap().unwrap();
        calls.push(tb.elapsed().as_secs_f64());
        loop {
            let n = r.poll_into(&mut buf, 4096).unwrap();
            packets += n;
            if n == 0 {
                // (not stats(): it would rule what the ruler has not
                // reached yet on this thread, see ruler.rs)
                if r.in_flight().unwrap() == 0 {
                    break;
                }
                r.flush().unwrap();
            }
        }
        walls.push(tb.elapsed().as_secs_f64());
    }
    walls.sort_by(f64::total_cmp);
    calls.sort_by(f64::total_cmp);
    let wall = t0.elapsed().as_secs_f64();
    let (m1, w1) = thread_cpu_ns();
    println!(
        "burst_world: workers={workers} {} digs/burst, {:.2} packets/dig; per burst: wall {:.2} ms, median wall {:.2} ms (of which the dig_batch call {:.2} ms, min {:.2} ms); thread CPU per burst: caller {:.2} ms, workers {:.2} ms",
        digs.len(),
        packets as f64 / (bursts * digs.len()) as f64,
        wall / bursts as f64 * 1e3,
        walls[bursts / 2] * 1e3,
        calls[bursts / 2] * 1e3,
        calls[0] * 1e3,
        (m1 - m0) as f64 / bursts as f64 / 1e6,
        (w1 - w0) as f64 / bursts as f64 / 1e6
    );
}
