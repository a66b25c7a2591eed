//! The transport against a real nats-server (started per test on a free
//! loopback port, stopped by pid when the test ends, also on failure).

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use support::{drain, receive, record, to_of, Server};
use treasure_cluster::{ErrorKind, Link, Storage};

const WAIT: Duration = Duration::from_secs(20);

#[test]
fn records_arrive_in_queue_order_on_their_dest_subject() {
    let server = Server::start();
    let mut a = Link::connect(server.config("ORDER", 0, 2)).expect("connect shard 0");
    let b = Link::connect(server.config("ORDER", 1, 2)).expect("connect shard 1");
    let n = 600u64;
    for to in 1..=n {
        let dest = (to % 3 == 0) as u16; // every third record to shard 1
        a.send(record(0, dest, to, (to % 7) as usize * 10)).unwrap();
    }
    assert!(a.flush(WAIT), "every publish acked: {:?}", a.stats());
    let want0: Vec<u64> = (1..=n).filter(|t| t % 3 != 0).collect();
    let want1: Vec<u64> = (1..=n).filter(|t| t % 3 == 0).collect();
    let got0 = receive(&a, want0.len(), WAIT);
    let got1 = receive(&b, want1.len(), WAIT);
    assert_eq!(
        got0.iter().map(|d| to_of(&d.bytes)).collect::<Vec<_>>(),
        want0
    );
    assert_eq!(
        got1.iter().map(|d| to_of(&d.bytes)).collect::<Vec<_>>(),
        want1
    );
    // The bytes are the record's, and stream sequences rise with queue order.
    assert_eq!(got1[0].bytes, record(0, 1, 3, 30));
    let mut all: Vec<(u64, u64)> = got0
        .iter()
        .chain(&got1)
        .map(|d| (d.stream_seq, to_of(&d.bytes)))
        .collect();
    all.sort();
    let tos: Vec<u64> = all.iter().map(|p| p.1).collect();
    assert_eq!(tos, (1..=n).collect::<Vec<_>>());
    assert_eq!(all.first().unwrap().0, 1);
    assert_eq!(all.last().unwrap().0, n);
    let s = a.stats();
    assert_eq!((s.queued, s.acked), (n, n));
    // An ack slower than the ack timeout (a loaded machine) is retried, and
    // the server drops the retry if the first copy landed.
    assert!(s.duplicates <= s.retries, "{s:?}");
    assert_eq!(s.received, want0.len() as u64);
    assert_eq!(s.last_seq, got0.last().unwrap().stream_seq);
    assert!(drain(&b, Duration::from_millis(200)).is_empty());
}

#[test]
fn a_repeated_msg_id_is_dropped_and_a_raw_duplicate_is_not() {
    let server = Server::start();
    let mut cfg = server.config("DEDUPE", 0, 1);
    cfg.duplicate_every = 3;
    let mut a = Link::connect(cfg).unwrap();
    for to in 1..=30 {
        a.send(record(0, 0, to, 8)).unwrap();
    }
    assert!(a.flush(WAIT));
    let got = receive(&a, 30, WAIT);
    let got: Vec<u64> = got
        .iter()
        .chain(&drain(&a, Duration::from_millis(300)))
        .map(|d| to_of(&d.bytes))
        .collect();
    assert_eq!(got, (1..=30).collect::<Vec<_>>(), "same Msg-Id: dropped");
    let s = a.stats();
    assert_eq!(s.published, 40 + s.retries, "{s:?}");
    assert!(
        s.duplicates >= 10 && s.duplicates <= 10 + s.retries,
        "{s:?}"
    );
    a.close();

    let mut cfg = server.config("RAWDUP", 0, 1);
    cfg.duplicate_raw_every = 5;
    let mut b = Link::connect(cfg).unwrap();
    for to in 1..=30 {
        b.send(record(0, 0, to, 8)).unwrap();
    }
    assert!(b.flush(WAIT));
    let mut got = receive(&b, 36, WAIT);
    got.extend(drain(&b, Duration::from_millis(300)));
    let mut count: BTreeMap<u64, usize> = BTreeMap::new();
    for d in &got {
        *count.entry(to_of(&d.bytes)).or_default() += 1;
        assert_eq!(d.bytes, record(0, 0, to_of(&d.bytes), 8));
    }
    assert_eq!(got.len(), 36, "another Msg-Id lands again");
    for (to, c) in count {
        assert_eq!(c, if to % 5 == 0 { 2 } else { 1 }, "record {to}");
    }
    let s = b.stats();
    assert!(s.duplicates <= s.retries, "{s:?}");
}

#[test]
fn delivery_resumes_after_from() {
    let server = Server::start();
    let mut a = Link::connect(server.config("RESUME", 0, 1)).unwrap();
    for to in 1..=20 {
        a.send(record(0, 0, to, 0)).unwrap();
    }
    assert!(a.flush(WAIT));
    let first = receive(&a, 20, WAIT);
    assert_eq!(first.len(), 20);
    a.close();
    assert!(a.try_recv().is_none());
    let mut cfg = server.config("RESUME", 0, 1);
    cfg.from = first[9].stream_seq;
    let b = Link::connect(cfg).unwrap();
    let mut again = receive(&b, 10, WAIT);
    again.extend(drain(&b, Duration::from_millis(300)));
    assert_eq!(again, first[10..].to_vec(), "same bytes, same sequences");
    let mut cfg = server.config("RESUME", 0, 1);
    cfg.from = first[19].stream_seq;
    let c = Link::connect(cfg).unwrap();
    assert!(drain(&c, Duration::from_millis(300)).is_empty());
}

#[test]
fn nothing_is_lost_across_a_broker_kill_and_restart() {
    let mut server = Server::start();
    let mut a = Link::connect(server.config("RESTART", 0, 1)).unwrap();
    let n = 3000u64;
    let mut got = Vec::new();
    for to in 1..=n {
        a.send(record(0, 0, to, 100)).unwrap();
        if to % 20 == 0 {
            std::thread::sleep(Duration::from_millis(2));
            while let Some(d) = a.try_recv() {
                got.push(d);
            }
        }
        if to == n / 3 {
            server.kill();
        }
        if to == n / 2 {
            // Down for longer than the ack timeout: publishes must be retried.
            std::thread::sleep(Duration::from_millis(1500));
            server.restart();
        }
    }
    assert!(
        a.flush(Duration::from_secs(60)),
        "acked after the restart: {:?}",
        a.stats()
    );
    let want = n as usize - got.iter().filter(|d| to_of(&d.bytes) <= n).count();
    got.extend(receive(&a, want, WAIT));
    got.extend(drain(&a, Duration::from_millis(500)));
    let mut seen = vec![0u32; n as usize + 1];
    let mut prev_seq = 0;
    for d in &got {
        assert!(d.stream_seq > prev_seq, "stream order");
        prev_seq = d.stream_seq;
        assert_eq!(d.bytes, record(0, 0, to_of(&d.bytes), 100));
        seen[to_of(&d.bytes) as usize] += 1;
    }
    let missing: Vec<usize> = (1..=n as usize).filter(|&t| seen[t] == 0).collect();
    assert!(missing.is_empty(), "lost records {missing:?}");
    let twice: Vec<usize> = (1..=n as usize).filter(|&t| seen[t] > 1).collect();
    assert!(
        twice.is_empty(),
        "the server's dedupe held across the restart: {twice:?}"
    );
    let s = a.stats();
    assert!(
        s.disconnects >= 1 && s.retries >= 1 && s.consumers >= 2,
        "{s:?}"
    );
    assert_eq!(s.acked, n);
}

#[test]
fn publishes_are_retried_until_the_broker_is_back() {
    let mut server = Server::start();
    let mut a = Link::connect(server.config("RETRY", 0, 1)).unwrap();
    a.send(record(0, 0, 1, 0)).unwrap();
    assert!(a.flush(WAIT));
    server.kill();
    for to in 2..=50 {
        a.send(record(0, 0, to, 0)).unwrap();
    }
    assert!(!a.flush(Duration::from_millis(1500)), "no broker, no ack");
    server.restart();
    assert!(a.flush(WAIT), "{:?}", a.stats());
    let got = receive(&a, 50, WAIT);
    let tos: Vec<u64> = got.iter().map(|d| to_of(&d.bytes)).collect();
    let mut sorted = tos.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted, (1..=50).collect::<Vec<_>>());
    let s = a.stats();
    assert!(s.retries >= 1 && s.errors >= 1 && s.consumers >= 1, "{s:?}");
    assert_eq!(s.acked, 50);
}

#[test]
fn memory_storage_and_connect_failures() {
    let server = Server::start();
    let mut cfg = server.config("MEM", 0, 1);
    cfg.storage = Storage::Memory;
    let mut a = Link::connect(cfg).unwrap();
    a.send(record(0, 0, 1, 5)).unwrap();
    assert!(a.flush(WAIT));
    assert_eq!(receive(&a, 1, WAIT)[0].bytes, record(0, 0, 1, 5));
    let e = a.send(record(1, 0, 2, 0)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "treasure: cluster.send: record src shard 1 is not this link's shard 0"
    );
    let e = a.send(vec![0; 39]).unwrap_err();
    assert_eq!(e.kind, ErrorKind::ShortRecord(39));
    a.close();
    assert!(a.send(record(0, 0, 3, 0)).is_err());
    assert!(!a.flush(Duration::from_millis(10)) || a.stats().queued == a.stats().acked);

    let mut cfg = server.config("X", 0, 1);
    cfg.url = format!("nats://127.0.0.1:{}", support_free_port());
    cfg.connect_timeout = Duration::from_secs(2);
    let e = Link::connect(cfg).unwrap_err();
    assert!(matches!(e.kind, ErrorKind::ConnectFailed { .. }), "{e}");
    let mut cfg = server.config("bad.name", 0, 1);
    cfg.connect_timeout = Duration::from_secs(2);
    assert!(matches!(
        Link::connect(cfg).unwrap_err().kind,
        ErrorKind::BadStreamName(_)
    ));
    let cfg = server.config("X", 2, 2);
    assert_eq!(
        Link::connect(cfg).unwrap_err().to_string(),
        "treasure: cluster.connect: opts.shard must be below opts.shards (2), got 2"
    );
}

fn support_free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
