//! Measures total CPU time (all threads, from /proc/self/stat) per FOUND dig
//! for 12,000-dig batches with 12,000 players (aoi 64), end to end including
//! polling. Less sensitive to a loaded machine than wall-clock benches.
//! Run: `cargo run --release -p treasure-core --example cpu_per_dig [workers] [rounds]`

use std::collections::HashSet;
use std::time::Instant;
use treasure_core::records::encode_digs;
use treasure_core::roll::splitmix64;
use treasure_core::{DigRecord, LootEntry, Options, Resolver};

fn cpu_seconds() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").expect("linux /proc");
    let after = &s[s.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    // fields 14 and 15 (utime, stime) are at index 11, 12 after the comm field
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    ticks / 100.0
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let workers: u32 = args.get(1).map_or(1, |s| s.parse().unwrap());
    let rounds: usize = args.get(2).map_or(50, |s| s.parse().unwrap());
    let mut r = Resolver::new(Options {
        seed: 7,
        aoi_radius: 64,
        reach: 8,
        workers,
        ..Options::default()
    })
    .unwrap();
    r.add_loot_table(
        1,
        &[
            LootEntry {
                item: 1,
                weight: 9,
                min: 1,
                max: 5,
                rarity: 0,
            },
            LootEntry {
                item: 2,
                weight: 1,
                min: 1,
                max: 1,
                rarity: 3,
            },
        ],
    )
    .unwrap();
    let mut seen = HashSet::new();
    let mut recs = Vec::new();
    let mut i = 0u64;
    while recs.len() < 12_000 {
        i += 1;
        let v = splitmix64(i);
        let (x, y, z) = (
            (v % 4096) as i32 - 2048,
            ((v >> 12) % 64) as i32,
            ((v >> 20) % 4096) as i32 - 2048,
        );
        if !seen.insert((x, y, z)) || !seen.insert((x + 1, y, z)) {
            continue;
        }
        let id = recs.len() as u32 + 1;
        let party = if v >> 40 & 1 == 0 {
            0
        } else {
            1 + ((v >> 41) % 3000) as u32
        };
        r.join(id, x, y, z, party).unwrap();
        r.add_site(id, x + 1, y, z, 1, u32::MAX).unwrap();
        recs.push(DigRecord::new(id, x + 1, y, z, 0));
    }
    let bytes = encode_digs(&recs);
    let mut buf = vec![0u8; 4096 * 128];
    let (c0, t0) = (cpu_seconds(), Instant::now());
    let mut packets = 0;
    for _ in 0..rounds {
        r.dig_batch(&bytes).unwrap().unwrap();
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
    }
    let (cpu, wall) = (cpu_seconds() - c0, t0.elapsed().as_secs_f64());
    let digs = (rounds * recs.len()) as f64;
    println!(
        "batch: workers={workers} digs={digs} packets/dig={:.2} cpu/dig={:.0} ns wall/dig={:.0} ns",
        packets as f64 / digs,
        cpu / digs * 1e9,
        wall / digs * 1e9
    );

    // Snapshot clone cost (what copy-on-write pays when it must clone).
    let t = Instant::now();
    let snap = r.players().unwrap().clone();
    println!(
        "clone of {} players: {:.0} us",
        snap.len(),
        t.elapsed().as_secs_f64() * 1e6
    );
    drop(snap);

    // Single digs interleaved with single moves (the per-event call pattern).
    let n = 20_000usize;
    let (c0, t0) = (cpu_seconds(), Instant::now());
    for k in 0..n {
        let rec = &recs[k % recs.len()];
        let id = rec.player.get();
        r.dig(id, rec.x.get(), rec.y.get(), rec.z.get(), 0)
            .unwrap()
            .unwrap();
        r.move_player(id, rec.x.get() - 1, rec.y.get(), rec.z.get())
            .unwrap();
        if k % 64 == 0 {
            while r.poll_into(&mut buf, 4096).unwrap() > 0 {}
        }
    }
    r.flush().unwrap();
    while r.poll_into(&mut buf, 4096).unwrap() > 0 {}
    let (cpu, wall) = (cpu_seconds() - c0, t0.elapsed().as_secs_f64());
    println!(
        "dig+move pairs: cpu/pair={:.0} ns wall/pair={:.0} ns",
        cpu / n as f64 * 1e9,
        wall / n as f64 * 1e9
    );
}
