//! Pipeline behaviour that the model test cannot see: worker panics,
//! close/drop with work in flight, back-pressure.

mod support;

use treasure_core::records::encode_digs;
use treasure_core::{DigRecord, Method, Options, Resolver, PACKET_SIZE};

fn world(workers: u32, chunk_digs: usize) -> Resolver {
    world_inline(workers, chunk_digs, 0)
}

fn world_inline(workers: u32, chunk_digs: usize, inline_max_digs: usize) -> Resolver {
    let options = Options {
        seed: 1,
        aoi_radius: 32,
        reach: 64,
        workers,
        chunk_digs,
        max_inflight_chunks: 4,
        inline_max_digs,
        ..Options::default()
    };
    support::one_site_world(options, 200, 40, 3)
}

fn batch(n: usize) -> Vec<u8> {
    support::digs_at_origin(n, 200)
}

#[test]
fn worker_panic_becomes_an_error_not_an_abort() {
    let mut r = world(1, 1);
    r.inject_worker_panic_after(5);
    for _ in 0..20 {
        match r.dig(1, 0, 0, 0, 0) {
            Ok(Some(_)) => {}
            Ok(None) => panic!("not busy"),
            Err(e) => {
                assert!(
                    e.to_string()
                        .starts_with("treasure: dig: worker panicked: "),
                    "{e}"
                );
                break;
            }
        }
    }
    let e = r.flush().unwrap_err().to_string();
    assert_eq!(
        e,
        "treasure: flush: worker panicked: injected worker panic at seq 6"
    );
    // Sticky: every later call reports it (naming its own method) ...
    let e = r.join(9999, 0, 0, 0, 0).unwrap_err().to_string();
    assert_eq!(
        e,
        "treasure: join: worker panicked: injected worker panic at seq 6"
    );
    let mut buf = vec![0u8; 128 * 10];
    let panicked = "worker panicked: injected worker panic at seq 6";
    assert_eq!(
        r.poll_into(&mut buf, 10).unwrap_err().to_string(),
        format!("treasure: poll_into: {panicked}")
    );
    // Issue 12 item 7: the method the caller called, whichever core call
    // serves it (the binding's `poll` peeks, then consumes).
    assert_eq!(
        r.peek_into(Method::Poll, &mut buf, 10)
            .unwrap_err()
            .to_string(),
        format!("treasure: poll: {panicked}")
    );
    assert_eq!(
        r.poll(10, &mut Vec::new()).unwrap_err().to_string(),
        format!("treasure: poll: {panicked}")
    );
    assert_eq!(
        r.wait(None).unwrap_err().to_string(),
        format!("treasure: wait: {panicked}")
    );
    assert_eq!(
        r.stats().unwrap_err().to_string(),
        format!("treasure: stats: {panicked}")
    );
    assert_eq!(
        r.snapshot().unwrap_err().to_string(),
        format!("treasure: snapshot: {panicked}")
    );
    // ... the packets before the hole are counted, but the stream is poisoned.
    assert!(r.available_packets() > 0);
    r.close();
    assert_eq!(
        r.flush().unwrap_err().to_string(),
        "treasure: flush: resolver is closed"
    );
}

#[test]
fn panic_in_an_inline_chunk_is_caught_too() {
    let mut r = world_inline(2, 128, 4);
    r.inject_worker_panic_after(2);
    assert_eq!(r.dig(1, 0, 0, 0, 0).unwrap(), Some(1));
    assert_eq!(r.dig(1, 0, 0, 0, 0).unwrap(), Some(2));
    // The third dig is accepted (the panic happens while resolving it) ...
    assert_eq!(r.dig(1, 0, 0, 0, 0).unwrap(), Some(3));
    // ... and the next call reports it.
    assert_eq!(
        r.dig(1, 0, 0, 0, 0).unwrap_err().to_string(),
        "treasure: dig: worker panicked: injected worker panic at seq 3"
    );
}

#[test]
fn inline_digs_leave_no_snapshot_shared() {
    let mut r = world_inline(2, 128, 4);
    r.dig(1, 0, 0, 0, 0).unwrap();
    // Resolved inline: packets are available at once, nothing in flight.
    assert!(r.available_packets() > 0);
    let s = r.stats().unwrap();
    assert_eq!(s.inflight_chunks, 0);
    r.move_player(1, 5, 0, 0).unwrap();
}

#[test]
fn worker_panic_in_a_batch_with_many_workers() {
    let mut r = world(4, 8);
    r.inject_worker_panic_after(1000);
    let first = r.dig_batch(&batch(5000)).unwrap();
    assert_eq!(first, Some((1, 5000)));
    let e = r.flush().unwrap_err().to_string();
    assert!(
        e.starts_with("treasure: flush: worker panicked: injected worker panic at seq "),
        "{e}"
    );
    // drop with the failed chunk and others in the ring must not hang or abort
}

#[test]
fn close_with_digs_in_flight() {
    let mut r = world(2, 4);
    assert_eq!(r.dig_batch(&batch(5_000)).unwrap(), Some((1, 5_000)));
    r.close();
    assert!(r.is_closed());
    r.close();
    assert_eq!(r.available_packets(), 0);
    for (e, want) in [
        (
            r.dig(1, 0, 0, 0, 0).unwrap_err(),
            "treasure: dig: resolver is closed",
        ),
        (
            r.dig_batch(&[]).unwrap_err(),
            "treasure: dig_batch: resolver is closed",
        ),
        (
            r.move_batch(&[]).unwrap_err(),
            "treasure: move_batch: resolver is closed",
        ),
        (
            r.join(1, 0, 0, 0, 0).unwrap_err(),
            "treasure: join: resolver is closed",
        ),
        (
            r.move_player(1, 0, 0, 0).unwrap_err(),
            "treasure: move: resolver is closed",
        ),
        (
            r.set_party(1, 0).unwrap_err(),
            "treasure: set_party: resolver is closed",
        ),
        (
            r.leave(1).unwrap_err(),
            "treasure: leave: resolver is closed",
        ),
        (
            r.add_site(1, 0, 0, 0, 1, 1).unwrap_err(),
            "treasure: add_site: resolver is closed",
        ),
        (
            r.remove_site(1).unwrap_err(),
            "treasure: remove_site: resolver is closed",
        ),
        (
            r.add_loot_table(1, &[]).unwrap_err(),
            "treasure: add_loot_table: resolver is closed",
        ),
        (
            r.poll(1, &mut Vec::new()).unwrap_err(),
            "treasure: poll: resolver is closed",
        ),
        (
            r.poll_into(&mut [], 0).unwrap_err(),
            "treasure: poll_into: resolver is closed",
        ),
        (
            r.flush().unwrap_err(),
            "treasure: flush: resolver is closed",
        ),
        (
            r.stats().unwrap_err(),
            "treasure: stats: resolver is closed",
        ),
    ] {
        assert_eq!(e.to_string(), want);
    }
}

#[test]
fn drop_with_undelivered_packets() {
    for workers in [1, 3] {
        let mut r = world(workers, 16);
        r.dig_batch(&batch(3_000)).unwrap();
        r.flush().unwrap();
        r.dig_batch(&batch(3_000)).unwrap();
        let mut out = Vec::new();
        r.poll(1000, &mut out).unwrap();
        drop(r); // in-flight and ready chunks, partially polled
    }
}

#[test]
fn busy_is_exact_with_found_digs_in_flight() {
    // 200 players all within the AOI: each FOUND dig has 200 recipients.
    let mut r = Resolver::new(Options {
        aoi_radius: 1000,
        reach: 1000,
        workers: 2,
        max_pending_packets: 1000,
        chunk_digs: 1,
        inline_max_digs: 0,
        ..Options::default()
    })
    .unwrap();
    support::add_one_item_table(&mut r, 1, 0, 0);
    r.add_site(1, 0, 0, 0, 1, 100).unwrap();
    for p in 1..=200 {
        r.join(p, p as i32, 0, 0, 0).unwrap();
    }
    // pending after k digs = 200k; refused once 200k > 1000, i.e. k = 6.
    let mut accepted = 0;
    for _ in 0..10 {
        if r.dig(1, 0, 0, 0, 0).unwrap().is_some() {
            accepted += 1;
        }
    }
    assert_eq!(accepted, 6);
    r.flush().unwrap(); // stats() never waits (issue 15)
    let s = r.stats().unwrap();
    assert_eq!(
        (s.counters.busy, s.pending_packets, s.counters.packets),
        (4, 1200, 1200)
    );
    // Batches: one check before the first record.
    assert_eq!(r.dig_batch(&[]).unwrap(), None);
    let mut out = Vec::new();
    assert_eq!(r.poll(250, &mut out).unwrap(), 250);
    assert_eq!(r.dig_batch(&batch(3)).unwrap(), Some((7, 3)));
    r.flush().unwrap(); // stats() never waits (issue 15)
    assert_eq!(r.stats().unwrap().pending_packets, 1200 - 250 + 600);
}

/// The frozen index is built once a snapshot has taken `freeze_min_found`
/// digs in reach (1,024 by default; here all FOUND), counted across batches, and a player
/// change starts the count again on the new snapshot.
#[test]
fn frozen_index_only_for_bursts_and_renewed_on_change() {
    let mut r = world(2, 128);
    let frozen = |r: &Resolver| r.players().unwrap().is_frozen();
    let mut buf = vec![0u8; 128 * 4096];
    let mut drain = |r: &mut Resolver| {
        r.flush().unwrap();
        while r.poll_into(&mut buf, 4096).unwrap() > 0 {}
    };
    r.dig_batch(&batch(1000)).unwrap().unwrap();
    drain(&mut r);
    assert!(!frozen(&r), "1,000 FOUND digs: below the default threshold");
    r.dig_batch(&batch(200)).unwrap().unwrap();
    drain(&mut r);
    assert!(frozen(&r), "1,200 FOUND digs on one snapshot");
    r.move_player(5, 1, 0, 1).unwrap();
    assert!(!frozen(&r), "a move makes a new snapshot");
    r.dig_batch(&batch(1000)).unwrap().unwrap();
    drain(&mut r);
    assert!(!frozen(&r), "the count starts again after the move");
}

/// A batch that brings its snapshot to `freeze_min_found` digs in reach
/// freezes it from its first chunk, not from the chunk that crosses the
/// count: the burst's first chunks do not run their queries on the (slower)
/// live grid. Here `max_inflight_chunks` is 4, so `dig_batch` returns only
/// after the first of its 9 chunks was received; the chunk that takes the
/// count to 1,024 is the 8th, which has rarely started by then.
#[test]
fn a_burst_freezes_its_snapshot_from_its_first_chunk() {
    for _ in 0..5 {
        let mut r = world(1, 128);
        r.move_player(5, 1, 0, 1).unwrap(); // a fresh snapshot, not frozen
        assert!(!r.players().unwrap().is_frozen());
        r.dig_batch(&batch(1100)).unwrap().unwrap();
        assert!(
            r.players().unwrap().is_frozen(),
            "frozen by the batch's first chunk"
        );
        r.flush().unwrap();
    }
}

/// `wait` is how a game loop sleeps between polls: it must return as soon as
/// packets are pollable, never report none while digs are in flight (no
/// timeout), return at once when nothing is in flight, and report a worker
/// failure and a closed resolver like the other calls.
#[test]
fn wait_returns_when_packets_are_ready_and_at_once_when_idle() {
    use std::time::Duration;
    let mut r = world(2, 16);
    // Nothing accepted yet: nothing can arrive, so no blocking.
    assert_eq!(r.wait(None).unwrap(), 0);
    assert_eq!(r.wait(Some(Duration::from_secs(3600))).unwrap(), 0);
    let digs = 3_000;
    assert_eq!(r.dig_batch(&batch(digs)).unwrap(), Some((1, digs as u64)));
    // Until nothing is in flight and nothing is left (in_flight() never
    // waits, issue 15); each wait blocks until the next packets are ready.
    let (mut got, mut buf) = (0u64, vec![0u8; 128 * 64]);
    while r.in_flight().unwrap() > 0 || r.available_packets() > 0 {
        let n = r.wait(None).unwrap();
        assert!(
            n > 0,
            "wait returned 0 with {} digs in flight",
            r.in_flight().unwrap()
        );
        assert!(n <= r.available_packets());
        // Take a few at a time so later waits find packets already there.
        got += r.poll_into(&mut buf, n.min(64)).unwrap() as u64;
    }
    assert_eq!(
        got,
        r.stats().unwrap().counters.packets,
        "every packet polled"
    );
    assert_eq!(r.wait(None).unwrap(), 0, "all polled, nothing in flight");
    assert_eq!(r.wait(Some(Duration::ZERO)).unwrap(), 0);

    // A zero timeout never blocks for packets, and what it reports is there.
    r.dig_batch(&batch(digs)).unwrap();
    let n = r.wait(Some(Duration::ZERO)).unwrap();
    assert!(n <= r.available_packets());
    r.flush().unwrap();

    // A failed worker is reported by wait, naming it.
    let mut r = world(1, 4);
    r.inject_worker_panic_after(10);
    r.dig_batch(&batch(100)).unwrap();
    let mut err = None;
    for _ in 0..1000 {
        match r.wait(None) {
            Ok(n) => {
                let mut buf = vec![0u8; 128 * n];
                r.poll_into(&mut buf, n).unwrap();
            }
            Err(e) => {
                err = Some(e.to_string());
                break;
            }
        }
    }
    assert_eq!(
        err.as_deref(),
        Some("treasure: wait: worker panicked: injected worker panic at seq 11")
    );
    r.close();
    assert_eq!(
        r.wait(None).unwrap_err().to_string(),
        "treasure: wait: resolver is closed"
    );
}

/// Issue 12 item 3: `peek_into` copies without taking, so a caller whose
/// own step fails after the copy (the binding allocating a Lua string) loses
/// nothing; `consume` then takes exactly those packets. Peeks and partial
/// consumes across chunk boundaries give the same stream as plain polls.
#[test]
fn peek_then_consume_takes_exactly_what_was_peeked() {
    let run = |peek: bool| {
        let mut r = world(2, 3);
        r.dig_batch(&batch(40)).unwrap().unwrap();
        r.flush().unwrap();
        let total = r.available_packets();
        assert!(total > 40);
        let mut stream = Vec::new();
        let mut buf = vec![0u8; 17 * PACKET_SIZE];
        let mut step = 0;
        while r.available_packets() > 0 {
            step += 1;
            let max = 1 + step % 17;
            if peek {
                let n = r.peek_into(Method::Poll, &mut buf, max).unwrap();
                // A failed step after the peek: nothing is taken, and the
                // next peek sees the same packets.
                let mut again = vec![0u8; 17 * PACKET_SIZE];
                assert_eq!(r.peek_into(Method::Poll, &mut again, max).unwrap(), n);
                assert_eq!(again[..n * PACKET_SIZE], buf[..n * PACKET_SIZE]);
                assert_eq!(r.available_packets(), total - stream.len() / PACKET_SIZE);
                // Consume only part of it sometimes.
                let k = if step % 3 == 0 { n / 2 } else { n };
                r.consume(k);
                stream.extend_from_slice(&buf[..k * PACKET_SIZE]);
            } else {
                let n = r.poll_into(&mut buf, max).unwrap();
                stream.extend_from_slice(&buf[..n * PACKET_SIZE]);
            }
        }
        assert_eq!(stream.len(), total * PACKET_SIZE);
        assert_eq!(r.stats().unwrap().pending_packets, 0);
        stream
    };
    assert!(run(true) == run(false));
    // The buffer rule is poll_into's, reported for the caller's method.
    let mut r = world(1, 1);
    assert_eq!(
        r.peek_into(Method::Poll, &mut [0u8; 128], 2)
            .unwrap_err()
            .to_string(),
        "treasure: poll: max must be at most 1 (the packets buf holds), got 2"
    );
}

#[test]
#[should_panic(expected = "consume(1) with 0 packets pollable")]
fn consume_more_than_pollable_panics() {
    let mut r = world(1, 1);
    r.consume(1);
}

/// Issue 15: the readiness hook (`r:fd()`'s eventfd in the binding) is
/// raised by whoever publishes the chunk that makes packets pollable (a
/// worker, or the caller for an inline chunk), without the caller polling,
/// and reset by the poll that empties the stream; a waiter that only
/// watches the hook is never left asleep (no lost wakeup), round after round.
#[test]
fn ready_hook_wakes_without_polling_and_is_reset_by_the_emptying_poll() {
    use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
    use std::sync::Arc;
    use std::time::{Duration, Instant};
    use treasure_core::ReadyHook;

    #[derive(Default)]
    struct Flag(AtomicBool);
    impl ReadyHook for Flag {
        fn signal(&self) {
            self.0.store(true, SeqCst);
        }
        fn reset(&self) {
            self.0.store(false, SeqCst);
        }
    }

    for (workers, inline_max) in [(2, 0), (1, 0), (2, 1_000)] {
        let mut r = world_inline(workers, 16, inline_max);
        let flag = Arc::new(Flag::default());
        r.set_ready_hook(Method::Fd, flag.clone()).unwrap();
        assert!(!flag.0.load(SeqCst), "nothing pollable yet");
        let mut buf = vec![0u8; PACKET_SIZE * 256];
        for round in 0..200 {
            let digs = 1 + round % 40;
            r.dig_batch(&batch(digs)).unwrap();
            let deadline = Instant::now() + Duration::from_secs(20);
            while !flag.0.load(SeqCst) {
                assert!(Instant::now() < deadline, "lost wakeup in round {round}");
                std::thread::yield_now();
            }
            while r.in_flight().unwrap() > 0 || r.available_packets() > 0 {
                r.wait(None).unwrap();
                r.poll_into(&mut buf, 256).unwrap();
            }
            assert_eq!(r.in_flight().unwrap(), 0);
            assert!(!flag.0.load(SeqCst), "the emptying poll resets it");
        }
        r.close();
        assert_eq!(Arc::strong_count(&flag), 1, "close drops the hook");
        assert!(
            r.in_flight().is_err(),
            "in_flight on a closed resolver fails"
        );
    }
}

/// Consecutive FOUND digs at one block of one chunk share the AOI query
/// (same snapshot, same block); each still gets its own digger and its own
/// party members beyond the AOI. Their packets must be those of one-dig
/// chunks, where nothing is shared, on the live and on the frozen grid,
/// with parties of about 17 (the members beyond the AOI sorted in with the
/// AOI's) and of 3 (each inserted into the AOI's sorted keys).
#[test]
fn digs_at_one_block_share_the_query_not_the_party() {
    let run = |chunk_digs: usize, freeze_min_found: usize, parties: u32| -> Vec<u8> {
        let mut r = Resolver::new(Options {
            seed: 3,
            aoi_radius: 16,
            reach: 80,
            workers: 2,
            chunk_digs,
            freeze_min_found,
            ..Options::default()
        })
        .unwrap();
        support::add_one_item_table(&mut r, 1, 1, 3);
        r.add_site(1, 0, 0, 0, 1, u32::MAX).unwrap();
        r.add_site(2, 5, 0, 0, 1, u32::MAX).unwrap();
        // Spread over x in [-60, 60]: most diggers and party members are
        // beyond the AOI of the block, all within reach.
        for p in 1..=120u32 {
            let x = (p * 37 % 121) as i32 - 60;
            r.join(p, x, 0, (p % 5) as i32, p % parties).unwrap();
        }
        // Runs of five digs at one block by players of different parties.
        let recs: Vec<DigRecord> = (0..400u32)
            .map(|i| {
                let x = if (i / 5) % 2 == 0 { 0 } else { 5 };
                DigRecord::new(1 + (i * 13) % 120, x, 0, 0, i as u64)
            })
            .collect();
        r.dig_batch(&encode_digs(&recs)).unwrap().unwrap();
        r.flush().unwrap();
        let mut out = Vec::new();
        let mut buf = vec![0u8; PACKET_SIZE * 4096];
        loop {
            let n = r.poll_into(&mut buf, 4096).unwrap();
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n * PACKET_SIZE]);
        }
        assert_eq!(r.stats().unwrap().counters.found, 400);
        out
    };
    for parties in [7, 40] {
        let reference = run(1, 0, parties);
        assert!(
            reference.len() / PACKET_SIZE > 2 * 400,
            "AOI and parties add recipients"
        );
        // Each dig's recipients strictly ascend (the order both paths keep).
        let ids: Vec<(u64, u32)> = reference
            .chunks(PACKET_SIZE)
            .map(|b| {
                let p = treasure_core::wire::Packet::new_checked(b).unwrap();
                (p.seq(), p.recipient())
            })
            .collect();
        for w in ids.windows(2) {
            assert!(w[0] < w[1], "parties {parties}: {:?} then {:?}", w[0], w[1]);
        }
        for (chunk_digs, freeze) in [(128, 0), (128, 1), (7, 1), (1, 1)] {
            assert!(
                run(chunk_digs, freeze, parties) == reference,
                "chunk_digs {chunk_digs}, freeze_min_found {freeze}, parties {parties}"
            );
        }
    }
}

/// The rule of a dig in reach runs off the caller's thread, chunk by chunk
/// in order (`ruler.rs`): a call that reads or changes the sites right after
/// a batch, while most of its chunks are still queued for the ruler, must
/// see that batch wholly ruled and must not reach any of its digs, and
/// `stats()` must count every accepted dig's kind without a flush.
#[test]
fn site_changes_right_after_a_batch_do_not_reach_its_digs() {
    use treasure_core::wire::{Kind, FLAG_DIGGER};
    for workers in [1, 2, 4] {
        let options = Options {
            seed: 1,
            aoi_radius: 8,
            reach: 64,
            workers,
            // 1,000 chunks of 2 digs, none waited for: the caller queues
            // them faster than the ruler rules them.
            chunk_digs: 2,
            max_inflight_chunks: 4096,
            ..Options::default()
        };
        let mut r = support::one_site_world(options.clone(), 200, 40, 3);
        r.remove_site(1).unwrap();
        r.add_site(2, 0, 0, 0, 1, 300).unwrap();
        assert_eq!(r.dig_batch(&batch(2000)).unwrap(), Some((1, 2000)));
        // At once: site 2 gone, a new site 4 on its block.
        r.remove_site(2).unwrap();
        r.add_site(4, 0, 0, 0, 1, 5).unwrap();
        assert_eq!(r.dig_batch(&batch(10)).unwrap(), Some((2001, 10)));
        let c = r.stats().unwrap().counters;
        assert_eq!(
            (c.digs, c.found, c.empty, c.nothing, c.rejected),
            (2010, 305, 1705, 0, 0),
            "workers {workers}"
        );
        r.flush().unwrap();
        let mut out = Vec::new();
        r.poll(usize::MAX, &mut out).unwrap();
        let mut digs = Vec::new();
        for bytes in out.chunks_exact(PACKET_SIZE) {
            let p = treasure_core::Packet::new_checked(bytes).unwrap();
            if p.flags() & FLAG_DIGGER != 0 {
                digs.push((p.seq(), p.kind(), p.site_id(), p.charges_left()));
            }
        }
        let expected: Vec<_> = (1..=2010u64)
            .map(|seq| match seq {
                1..=300 => (seq, Some(Kind::Found), 2, 300 - seq as u32),
                301..=2000 => (seq, Some(Kind::Empty), 2, 0),
                2001..=2005 => (seq, Some(Kind::Found), 4, 2005 - seq as u32),
                _ => (seq, Some(Kind::Empty), 4, 0),
            })
            .collect();
        assert_eq!(digs, expected, "workers {workers}");

        // A snapshot right after a batch has its charges taken.
        let mut r = support::one_site_world(options, 200, 40, 3);
        r.add_site(3, 1, 0, 0, 1, 1500).unwrap();
        let recs: Vec<DigRecord> = (0..2000u32)
            .map(|i| DigRecord::new(1 + i % 200, 1, 0, 0, i as u64))
            .collect();
        r.dig_batch(&encode_digs(&recs)).unwrap().unwrap();
        let s = r.snapshot().unwrap();
        let site3 = s.sites.iter().find(|s| s.id == 3).unwrap();
        assert_eq!(site3.charges, 0, "workers {workers}");
        let c = s.counters;
        assert_eq!((c.found, c.empty), (1500, 500), "workers {workers}");
    }
}
