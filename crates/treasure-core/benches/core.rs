//! Criterion benches. Kept short (2 shared cores): small sample sizes and
//! measurement times. Run: `cargo bench -p treasure-core --bench core`.

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use std::collections::HashSet;
use std::time::Duration;
use treasure_core::internals::{cell_shift_for, FrozenGrid, Grid, Hit, PlayerView};
use treasure_core::records::encode_digs;
use treasure_core::roll::splitmix64;
use treasure_core::wire::{encode, patch_recipient, Fields, Kind};
use treasure_core::{DigRecord, LootEntry, Options, Resolver};

const PLAYERS: u32 = 12_000;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 += 1;
        splitmix64(self.0)
    }
    fn below(&mut self, n: u64) -> i32 {
        (self.next() % n) as i32
    }
}

/// 12,000 players on a 4096 x 4096 map, y in [0, 64), parties of ~4.
fn positions() -> Vec<(i32, i32, i32, u32)> {
    let mut rng = Rng(42);
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    while out.len() < PLAYERS as usize {
        let p = (
            rng.below(4096) - 2048,
            rng.below(64),
            rng.below(4096) - 2048,
        );
        if seen.insert(p) && seen.insert((p.0 + 1, p.1, p.2)) {
            let party = if rng.below(2) == 0 {
                0
            } else {
                1 + rng.below(3000) as u32
            };
            out.push((p.0, p.1, p.2, party));
        }
    }
    out
}

/// A resolver with every player joined and a site next to each player.
fn resolver(workers: u32) -> (Resolver, Vec<(i32, i32, i32, u32)>) {
    resolver_with(Options {
        seed: 7,
        aoi_radius: 64,
        reach: 8,
        workers,
        ..Options::default()
    })
}

fn resolver_with(opts: Options) -> (Resolver, Vec<(i32, i32, i32, u32)>) {
    let pos = positions();
    let mut r = Resolver::new(opts).unwrap();
    r.add_loot_table(
        1,
        &[
            LootEntry {
                item: 100,
                weight: 90,
                min: 1,
                max: 5,
                rarity: 0,
            },
            LootEntry {
                item: 200,
                weight: 9,
                min: 1,
                max: 2,
                rarity: 2,
            },
            LootEntry {
                item: 300,
                weight: 1,
                min: 1,
                max: 1,
                rarity: 5,
            },
        ],
    )
    .unwrap();
    for (i, &(x, y, z, party)) in pos.iter().enumerate() {
        r.join(i as u32 + 1, x, y, z, party).unwrap();
        r.add_site(i as u32 + 1, x + 1, y, z, 1, u32::MAX).unwrap();
    }
    (r, pos)
}

fn bench_encode(c: &mut Criterion) {
    let f = Fields {
        kind: Kind::Found as u8,
        flags: 1,
        seq: 12345,
        t_us: 987654321,
        site_id: 10,
        finder: 1,
        recipient: 1,
        party: 5,
        x: 100,
        y: 20,
        z: -300,
        item: 100,
        quantity: 3,
        rarity: 2,
        charges_left: 9,
        roll: 0xDEADBEEF12345678,
        dist2: 3,
    };
    let mut g = c.benchmark_group("packet");
    g.sample_size(30)
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500));
    let mut out = [0u8; 128];
    g.bench_function("encode", |b| {
        b.iter(|| {
            encode(black_box(&f), &mut out);
            black_box(&out);
        })
    });
    g.bench_function("patch_recipient", |b| {
        let mut n = 0u32;
        b.iter(|| {
            n = n.wrapping_add(1);
            patch_recipient(&mut out, black_box(n), 2, n);
            black_box(&out);
        })
    });
    g.finish();
}

fn bench_aoi(c: &mut Criterion) {
    let pos = positions();
    let mut grid = Grid::new(64);
    for (i, &(x, y, z, party)) in pos.iter().enumerate() {
        grid.insert(i as u32, i as u32 + 1, party, x, y, z);
    }
    let mut out: Vec<Hit> = Vec::with_capacity(256);
    let mut g = c.benchmark_group("aoi");
    g.sample_size(30)
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500));
    let mut i = 0usize;
    g.bench_function("query_12000_players_r64", |b| {
        b.iter(|| {
            i = (i + 7919) % pos.len();
            let (x, y, z, _) = pos[i];
            out.clear();
            grid.query(x + 1, y, z, 64, &mut out);
            black_box(out.len());
        })
    });
    // The same players and queries against the frozen copy a burst uses.
    let views = pos
        .iter()
        .enumerate()
        .map(|(i, &(x, y, z, party))| PlayerView {
            id: i as u32 + 1,
            party,
            x,
            y,
            z,
        });
    let frozen = FrozenGrid::build(views, cell_shift_for(64)).expect("dense enough");
    g.bench_function("frozen_query_12000_players_r64", |b| {
        b.iter(|| {
            i = (i + 7919) % pos.len();
            let (x, y, z, _) = pos[i];
            out.clear();
            frozen.query(x + 1, y, z, 64, &mut out);
            black_box(out.len());
        })
    });
    g.finish();
}

fn bench_dig(c: &mut Criterion) {
    let mut g = c.benchmark_group("dig");
    g.sample_size(20)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_millis(500));
    // Default: a single dig is resolved inline; inline_max_digs = 0 forces
    // the hop to a worker thread (and back), to show what that costs.
    for (name, inline_max_digs) in [
        ("one_dig_end_to_end", 4),
        ("one_dig_end_to_end_via_worker", 0),
    ] {
        let (mut r, pos) = resolver_with(Options {
            seed: 7,
            aoi_radius: 64,
            reach: 8,
            workers: 2,
            inline_max_digs,
            ..Options::default()
        });
        let mut buf = vec![0u8; 4096 * 128];
        let mut i = 0usize;
        g.bench_function(name, |b| {
            b.iter(|| {
                i = (i + 7919) % pos.len();
                let (x, y, z, _) = pos[i];
                r.dig(i as u32 + 1, x + 1, y, z, 1).unwrap().unwrap();
                r.flush().unwrap();
                let n = r.poll_into(&mut buf, 4096).unwrap();
                black_box(n);
            })
        });
    }
    g.finish();
}

fn bench_batch(c: &mut Criterion) {
    for workers in [1, 2] {
        let (mut r, pos) = resolver(workers);
        let recs: Vec<DigRecord> = pos
            .iter()
            .enumerate()
            .map(|(i, &(x, y, z, _))| DigRecord::new(i as u32 + 1, x + 1, y, z, i as u64))
            .collect();
        let bytes = encode_digs(&recs);
        let mut buf = vec![0u8; 4096 * 128];
        // How many packets per batch (for the report).
        r.dig_batch(&bytes).unwrap();
        r.flush().unwrap();
        let mut packets = 0;
        loop {
            let n = r.poll_into(&mut buf, 4096).unwrap();
            if n == 0 {
                break;
            }
            packets += n;
        }
        eprintln!(
            "batch: {} digs -> {} packets ({:.1} per dig)",
            recs.len(),
            packets,
            packets as f64 / recs.len() as f64
        );
        let mut g = c.benchmark_group("batch");
        g.sample_size(10)
            .measurement_time(Duration::from_secs(4))
            .warm_up_time(Duration::from_secs(1));
        g.throughput(Throughput::Elements(recs.len() as u64));
        g.bench_function(
            format!("12000_digs_12000_players_end_to_end_w{workers}"),
            |b| {
                b.iter_batched(
                    || (),
                    |()| {
                        r.dig_batch(&bytes).unwrap().unwrap();
                        let mut total = 0;
                        loop {
                            let n = r.poll_into(&mut buf, 4096).unwrap();
                            total += n;
                            if n == 0 && r.stats().unwrap().pending_packets == 0 {
                                break;
                            }
                            if n == 0 {
                                r.flush().unwrap();
                            }
                        }
                        black_box(total);
                    },
                    BatchSize::PerIteration,
                )
            },
        );
        g.finish();
        let s = r.stats().unwrap();
        eprintln!(
            "w{workers} resolve latency p50 {:.1} us p99 {:.1} us p999 {:.1} us max {:.1} us",
            s.resolve_p50_us, s.resolve_p99_us, s.resolve_p999_us, s.resolve_max_us
        );
    }
}

criterion_group!(benches, bench_encode, bench_aoi, bench_dig, bench_batch);
criterion_main!(benches);
