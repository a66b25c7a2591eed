//! Publish -> delivery latency of the transport, one record at a time, on
//! a stream of each storage kind: `cargo run --release -p treasure-cluster
//! --example latency -- URL [COUNT]` (bench/cluster_latency.sh starts a
//! nats-server on loopback and runs it). The caller's thread sends one
//! record, polls `try_recv` until it is back, and records the time;
//! records are sent to this shard's own subject (the waiting thread
//! yields, so it leaves the core to the transport thread on a busy machine).

use std::time::{Duration, Instant};

use treasure_cluster::{Config, Link, Storage};

fn record(to: u64, len: usize) -> Vec<u8> {
    let mut r = vec![0u8; len.max(40)];
    r[0..4].copy_from_slice(b"TRSC");
    r[24..32].copy_from_slice(&to.to_le_bytes());
    let n = r.len() as u32;
    r[32..36].copy_from_slice(&n.to_le_bytes());
    r
}

fn quantile(sorted: &[Duration], q: f64) -> f64 {
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1e3
}

fn run(url: &str, storage: Storage, len: usize, count: usize) {
    // A fresh stream per run: an old one would deliver its messages at once.
    let name = format!(
        "LAT_{}_{len}_{}",
        if storage == Storage::File {
            "FILE"
        } else {
            "MEM"
        },
        std::process::id()
    );
    let mut link = Link::connect(Config {
        url: url.to_owned(),
        stream: name,
        storage,
        ..Config::default()
    })
    .expect("connect");
    let warmup = count / 10 + 10;
    let mut times = Vec::with_capacity(count);
    for i in 0..(warmup + count) {
        let t0 = Instant::now();
        link.send(record(i as u64 + 1, len)).expect("send");
        loop {
            if link.try_recv().is_some() {
                break;
            }
            assert!(t0.elapsed() < Duration::from_secs(30), "no delivery");
            std::thread::yield_now();
        }
        if i >= warmup {
            times.push(t0.elapsed());
        }
    }
    assert!(link.flush(Duration::from_secs(10)));
    times.sort();
    println!(
        "{:>6} {:>7} B  n={count}  p50 {:.3} ms  p99 {:.3} ms  p99.9 {:.3} ms  max {:.3} ms",
        if storage == Storage::File {
            "file"
        } else {
            "memory"
        },
        len,
        quantile(&times, 0.5),
        quantile(&times, 0.99),
        quantile(&times, 0.999),
        times.last().unwrap().as_secs_f64() * 1e3
    );
}

fn main() {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "nats://127.0.0.1:4222".to_owned());
    let count: usize = args.next().map_or(2000, |s| s.parse().expect("COUNT"));
    for storage in [Storage::File, Storage::Memory] {
        run(&url, storage, 128, count);
        run(&url, storage, 64 * 1024, count / 2);
    }
}
