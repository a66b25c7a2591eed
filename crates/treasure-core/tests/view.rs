//! `poll_view` (issue 16) in the core: the runs a view drain takes add up
//! to what `poll` takes, in runs of at most `VIEW_RUN_PACKETS` inside one
//! block, mixed with `poll_into` in any order; closed and panicked
//! resolvers refuse it. (The bytes are compared through Lua, which can read
//! the address: tests/lua/view_spec.lua and the differential driver.)

mod support;

use treasure_core::contract::limits::VIEW_RUN_PACKETS;
use treasure_core::{Options, Resolver, PACKET_SIZE};

fn world(chunk_digs: usize) -> Resolver {
    let options = Options {
        seed: 5,
        aoi_radius: 40,
        reach: 64,
        chunk_digs,
        ..Options::default()
    };
    support::one_site_world(options, 400, 50, 4)
}

fn batch(n: usize) -> Vec<u8> {
    support::digs_at_origin(n, 400)
}

#[test]
fn view_runs_add_up_to_the_stream() {
    for (first_view, chunk) in [(true, 128), (false, 128), (true, 3)] {
        let (mut a, mut b) = (world(chunk), world(chunk));
        if first_view {
            assert_eq!(b.poll_view(usize::MAX).unwrap(), None);
        }
        let recs = batch(700);
        a.dig_batch(&recs).unwrap();
        b.dig_batch(&recs).unwrap();
        a.flush().unwrap();
        b.flush().unwrap();
        let mut all = Vec::new();
        let total = a.poll(usize::MAX, &mut all).unwrap();
        assert!(total > VIEW_RUN_PACKETS * 3);
        let (mut got, mut k) = (0, 0usize);
        let mut buf = vec![0u8; 100 * PACKET_SIZE];
        loop {
            // a view, then (every third round) a poll_into, then a view with a small max
            k += 1;
            if k % 3 == 0 {
                got += b.poll_into(&mut buf, 100).unwrap();
                continue;
            }
            let max = if k % 3 == 1 { usize::MAX } else { 7 };
            match b.poll_view(max).unwrap() {
                Some((addr, n)) => {
                    assert!(addr != 0 && addr % 16 == 0, "addr {addr:#x}");
                    assert!((1..=VIEW_RUN_PACKETS.min(max)).contains(&n), "n = {n}");
                    got += n;
                }
                None => {
                    if b.available_packets() == 0 {
                        break;
                    }
                }
            }
        }
        assert_eq!(got, total);
        assert_eq!(b.poll_view(0).unwrap(), None);
        b.release_view().unwrap();
        b.close();
        assert_eq!(
            b.poll_view(1).unwrap_err().to_string(),
            "treasure: poll_view: resolver is closed"
        );
        assert_eq!(
            b.release_view().unwrap_err().to_string(),
            "treasure: release_view: resolver is closed"
        );
    }
}

#[test]
fn a_worker_panic_is_reported_by_poll_view() {
    let mut r = world(1);
    r.poll_view(0).unwrap();
    r.inject_worker_panic_after(2);
    let _ = r.dig_batch(&batch(10));
    let _ = r.flush();
    let e = r.poll_view(10).unwrap_err().to_string();
    assert!(
        e.starts_with("treasure: poll_view: worker panicked: "),
        "{e}"
    );
}
