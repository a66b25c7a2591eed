//! Random call sequences against `treasure_core::Resolver`, checked against
//! the brute-force reference model that the core's model test uses too
//! (`crates/treasure-core/tests/reference/`, docs/API.md read independently:
//! players and parties in a map scanned in full for every FOUND dig, sites
//! and charges, loot tables, the pending packet queue, the counters).
//!
//! The input decodes into resolver options (1-3 workers; sometimes chunks of
//! 1-3 digs, 1-3 chunks in flight, a `max_pending_packets` of 1-16; mostly
//! `inline_max_digs` 0 so digs go through the worker pipeline), most often a
//! populated start (a loot table, 1-3 sites, 2-9 players), then up to 300
//! operations: join, move, leave, set_party, add_loot_table, add_site,
//! remove_site, dig, dig_batch, move_batch, poll, poll_into, flush, stats,
//! close (any number of times; every later call must fail as closed). A
//! quarter of the inputs continue from the resolver's own snapshot moved a
//! few seqs below 2^53, so digs and batches reach the seq refusal. Arguments are mostly a joined player and a site's block (picked
//! by index from the model's state), else small values (a few blocks around
//! the origin, 10 player ids, 6 site ids) so digs hit sites, share AOIs and
//! parties, and run charges out; now and then out of range, to take the
//! error paths.
//!
//! Checked after every call, and after the final flush + poll:
//! * no panic (a panic aborts the fuzzer and saves the input);
//! * every result equals the model's: the seq of an accepted dig, busy
//!   exactly when the model's pending packets exceed `max_pending_packets`,
//!   the exact error text (so a failing call also changes nothing: the
//!   model is not touched and later results would differ);
//! * every polled packet passes `Packet::new_checked` (CRC), has zero
//!   reserved bytes and equals, field by field, the head of the model's queue:
//!   so every accepted dig's packets arrive exactly once, in (seq, recipient)
//!   order, with recipients = digger ∪ brute-force AOI ∪ party, kind, item,
//!   quantity, roll and charges_left (never below 0: the model's charges are
//!   unsigned and checked) as the contract says;
//! * `poll` never returns more than the model has pending, and after `flush`
//!   everything pending is available;
//! * `stats()` equals the model's counters (digs, packets, kinds, busy,
//!   players, sites, and the exact `pending_packets`).
#![no_main]

use libfuzzer_sys::arbitrary::{Result as AResult, Unstructured};
use libfuzzer_sys::fuzz_target;
use treasure_core::{Error, LootEntry, Options, Packet, Resolver, Stats};

const MAX_OPS: usize = 300;

// The brute-force reference model, shared with the core's model test.
#[path = "../../crates/treasure-core/tests/reference/mod.rs"]
mod reference;
use reference::*;

// ----------------------------------------------------------------- checks --

fn same<T: PartialEq + std::fmt::Debug>(what: &str, got: Result<T, Error>, want: R<T>) {
    let got = got.map_err(|e| e.to_string());
    assert_eq!(got, want, "{what}: resolver vs model");
}

/// Checks `n` polled packets in `bytes` against the head of the model's queue.
fn take_packets(model: &mut Model, bytes: &[u8], n: usize) {
    assert_eq!(bytes.len(), n * 128);
    assert!(
        n as u64 <= model.pending(),
        "polled {n} packets, model has {} pending",
        model.pending()
    );
    for chunk in bytes.chunks_exact(128) {
        let p = Packet::new_checked(chunk)
            .expect("polled packet fails new_checked (CRC/magic/version)");
        assert!(p.reserved_is_zero(), "non-zero reserved bytes");
        let want = model.queue.pop_front().unwrap();
        assert_eq!(
            p.fields(),
            want,
            "polled packet differs from the model's next packet"
        );
        assert_eq!(chunk, encode(&want), "polled packet's bytes");
    }
}

fn check_stats(model: &Model, s: &Stats) {
    let got = Counters {
        digs: s.counters.digs,
        packets: s.counters.packets,
        found: s.counters.found,
        empty: s.counters.empty,
        nothing: s.counters.nothing,
        rejected: s.counters.rejected,
        busy: s.counters.busy,
    };
    assert_eq!(got, model.c, "stats() counters");
    assert_eq!(s.counters.digs, s.counters.found + s.counters.empty + s.counters.nothing + s.counters.rejected);
    assert_eq!(s.players, model.players.len() as u64, "stats().players");
    assert_eq!(s.sites, model.sites.len() as u64, "stats().sites");
    assert_eq!(
        s.pending_packets,
        model.pending(),
        "stats().pending_packets"
    );
}

/// The resolver's player snapshot (grid, slots, parties) is consistent and
/// holds exactly the model's players.
fn check_players(r: &Resolver, model: &Model) {
    let Some(ps) = r.players() else {
        assert!(model.closed);
        return;
    };
    ps.check_invariants();
    let mut got: Vec<_> = ps
        .iter()
        .map(|v| (v.id, v.party, (v.x, v.y, v.z)))
        .collect();
    got.sort_unstable();
    let want: Vec<_> = model
        .players
        .iter()
        .map(|(&id, p)| (id, p.party, p.pos))
        .collect();
    assert_eq!(got, want, "players: resolver vs model");
}

// ---------------------------------------------------------------- decoding --

fn pick<T: Copy>(u: &mut Unstructured, xs: &[T]) -> AResult<T> {
    Ok(*u.choose(xs)?)
}

/// Mostly a few blocks around the origin; sometimes the range edges or
/// out-of-range values.
fn coord(u: &mut Unstructured, span: i32) -> AResult<i32> {
    Ok(match u.int_in_range(0u8..=63)? {
        0 => pick(u, &[CMIN - 1, CMAX + 1, i32::MIN, i32::MAX, 2_000_000])?,
        1 => pick(u, &[CMIN, CMAX])?,
        2..=4 => u.int_in_range(-40..=40)?,
        _ => u.int_in_range(-span..=span)?,
    })
}
fn player(u: &mut Unstructured) -> AResult<u32> {
    Ok(match u.int_in_range(0u8..=63)? {
        0 => 0,
        1 => u32::MAX,
        _ => u.int_in_range(1..=10)?,
    })
}
fn party(u: &mut Unstructured) -> AResult<u32> {
    Ok(match u.int_in_range(0u8..=31)? {
        0 => u32::MAX,
        _ => u.int_in_range(0..=3)?,
    })
}
fn t_us(u: &mut Unstructured) -> AResult<u64> {
    Ok(match u.int_in_range(0u8..=63)? {
        0 => pick(u, &[SAFE, SAFE + 1, u64::MAX])?,
        _ => u.int_in_range(0..=1_000_000)?,
    })
}
fn small_id(u: &mut Unstructured, hi: u32) -> AResult<u32> {
    Ok(match u.int_in_range(0u8..=31)? {
        0 => 0,
        _ => u.int_in_range(1..=hi)?,
    })
}
fn block(u: &mut Unstructured) -> AResult<(i32, i32, i32)> {
    let y = if u.ratio(1u8, 4)? { coord(u, 1)? } else { 0 };
    Ok((coord(u, 2)?, y, coord(u, 2)?))
}

/// Mostly a player that has joined (so calls get past validation and digs
/// resolve), else any id.
fn known_player(u: &mut Unstructured, m: &Model) -> AResult<u32> {
    if !m.players.is_empty() && u.ratio(7u8, 8)? {
        let i = u.choose_index(m.players.len())?;
        return Ok(*m.players.keys().nth(i).unwrap());
    }
    player(u)
}

/// Mostly the block of an existing site (so digs are FOUND or EMPTY and fan
/// out), sometimes next to one, else any block.
fn known_block(u: &mut Unstructured, m: &Model) -> AResult<(i32, i32, i32)> {
    if !m.sites.is_empty() && u.ratio(3u8, 4)? {
        let i = u.choose_index(m.sites.len())?;
        let (x, y, z) = m.sites.values().nth(i).unwrap().pos;
        if u.ratio(1u8, 8)? {
            return Ok((x + u.int_in_range(-1..=1)?, y, z + u.int_in_range(-1..=1)?));
        }
        return Ok((x, y, z));
    }
    block(u)
}

/// A populated start (most inputs): a loot table, 1-3 sites with charges
/// and 2-9 players near the origin. Every call is still checked against the
/// model like any other.
fn preamble(u: &mut Unstructured, r: &mut Resolver, m: &mut Model) -> AResult<()> {
    let es = [
        LootEntry {
            item: u.int_in_range(1..=1000)?,
            weight: u.int_in_range(1..=10)?,
            min: 0,
            max: u.int_in_range(0..=3)?,
            rarity: u.arbitrary()?,
        },
        LootEntry {
            item: u.int_in_range(1..=1000)?,
            weight: u.int_in_range(1..=10)?,
            min: 1,
            max: 5,
            rarity: u.arbitrary()?,
        },
    ];
    same(
        "add_loot_table",
        r.add_loot_table(1, &es),
        m.add_loot_table(1, &es),
    );
    for sid in 1..=u.int_in_range(1..=3)? {
        let (x, y, z) = (u.int_in_range(-2..=2)?, 0, u.int_in_range(-2..=2)?);
        let ch = u.int_in_range(1..=6)?;
        same(
            "add_site",
            r.add_site(sid, x, y, z, 1, ch),
            m.add_site(sid, x, y, z, 1, ch),
        );
    }
    for p in 1..=u.int_in_range(2..=9)? {
        let (x, y, z) = (
            u.int_in_range(-5..=5)?,
            u.int_in_range(-1..=1)?,
            u.int_in_range(-5..=5)?,
        );
        let pa = u.int_in_range(0..=3)?;
        same("join", r.join(p, x, y, z, pa), m.join(p, x, y, z, pa));
    }
    Ok(())
}

fn options(u: &mut Unstructured) -> AResult<Options> {
    let mut o = Options {
        seed: match u.int_in_range(0u8..=31)? {
            0 => pick(u, &[SAFE, SAFE + 1, u64::MAX])?,
            _ => u.arbitrary::<u32>()? as u64,
        },
        aoi_radius: match u.int_in_range(0u8..=31)? {
            0 => pick(u, &[1_048_576, 1_048_577, u32::MAX])?,
            _ => u.int_in_range(0..=12)?,
        },
        reach: match u.int_in_range(0u8..=31)? {
            0 => pick(u, &[1_048_576, 1_048_577])?,
            _ => u.int_in_range(0..=6)?,
        },
        workers: match u.int_in_range(0u8..=31)? {
            0 => 257,
            _ => u.int_in_range(1..=3)?,
        },
        max_pending_packets: match u.int_in_range(0u8..=7)? {
            0 => 0,
            1..=4 => u.int_in_range(1..=16)?,
            5 => SAFE + 1,
            _ => 1 << 20,
        },
        ..Options::default()
    };
    if u.ratio(1u8, 2)? {
        o.chunk_digs = u.int_in_range(0..=3)?;
        o.max_inflight_chunks = u.int_in_range(0..=3)?;
    }
    // Chunks up to inline_max_digs are resolved on the caller's thread:
    // mostly 0 here, so the digs take the worker pipeline.
    o.inline_max_digs = match u.int_in_range(0u8..=3)? {
        0 | 1 => 0,
        2 => u.int_in_range(1..=3)?,
        _ => Options::default().inline_max_digs,
    };
    // Mostly build the frozen grid for every chunk with a FOUND dig, so the
    // frozen query path is the one under test.
    o.freeze_min_found = u.int_in_range(0..=3)?.min(1) as usize;
    Ok(o)
}

fn dig_records(u: &mut Unstructured, m: &Model) -> AResult<Vec<u8>> {
    let n = u.int_in_range(0..=8)?;
    let mut b = Vec::with_capacity(n * 24);
    for _ in 0..n {
        let p = known_player(u, m)?;
        let (x, y, z) = known_block(u, m)?;
        b.extend_from_slice(&p.to_le_bytes());
        for v in [x, y, z] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.extend_from_slice(&t_us(u)?.to_le_bytes());
    }
    if u.ratio(1u8, 32)? {
        let cut = u.int_in_range(1..=23)?;
        b.extend(std::iter::repeat_n(0u8, cut));
    }
    Ok(b)
}

fn move_records(u: &mut Unstructured, m: &Model) -> AResult<Vec<u8>> {
    let n = u.int_in_range(0..=6)?;
    let mut b = Vec::with_capacity(n * 16);
    for _ in 0..n {
        let p = known_player(u, m)?;
        b.extend_from_slice(&p.to_le_bytes());
        for _ in 0..3 {
            b.extend_from_slice(&coord(u, 6)?.to_le_bytes());
        }
    }
    if u.ratio(1u8, 32)? {
        let cut = u.int_in_range(1..=15)?;
        b.extend(std::iter::repeat_n(0u8, cut));
    }
    Ok(b)
}

fn entries(u: &mut Unstructured) -> AResult<Vec<LootEntry>> {
    let n = if u.ratio(1u8, 32)? {
        0
    } else {
        u.int_in_range(1..=4)?
    };
    (0..n)
        .map(|_| {
            let min = u.int_in_range(0..=3)?;
            Ok(LootEntry {
                item: if u.ratio(1u8, 32)? {
                    0
                } else {
                    u.int_in_range(1..=1000)?
                },
                weight: match u.int_in_range(0u8..=31)? {
                    0 => 0,
                    1 => 3_000_000_000,
                    _ => u.int_in_range(1..=10)?,
                },
                min,
                max: if u.ratio(1u8, 32)? {
                    min.wrapping_sub(1)
                } else {
                    min + u.int_in_range(0..=4)?
                },
                rarity: u.arbitrary()?,
            })
        })
        .collect()
}

// ------------------------------------------------------------------- run --

fn run(u: &mut Unstructured) -> AResult<()> {
    let opts = options(u)?;
    let mut model = match Model::new(&opts) {
        Ok(m) => m,
        Err(want) => {
            same("new", Resolver::new(opts).map(|_| ()), Err(want));
            return Ok(());
        }
    };
    let mut r = Resolver::new(opts).expect("valid options");
    if u.ratio(3u8, 4)? {
        preamble(u, &mut r, &mut model)?;
    }
    if u.ratio(1u8, 4)? {
        // Continue from the resolver's own snapshot moved just below the
        // seq limit, so digs run into the 2^53 refusal (which must change
        // nothing) and packets and busy saturate.
        let next = SAFE + 1 - u.int_in_range(0..=40)?;
        jump_near_seq_limit(&mut r, &mut model, next, SAFE - 30, SAFE - 2);
    }
    let mut polled = Vec::new();
    let mut ops = 0;
    while !u.is_empty() && ops < MAX_OPS {
        ops += 1;
        match u.int_in_range(0u8..=99)? {
            0..=9 => {
                let (p, x, y, z, pa) = (
                    player(u)?,
                    coord(u, 6)?,
                    coord(u, 2)?,
                    coord(u, 6)?,
                    party(u)?,
                );
                same("join", r.join(p, x, y, z, pa), model.join(p, x, y, z, pa));
            }
            10..=16 => {
                let (p, x, y, z) = (
                    known_player(u, &model)?,
                    coord(u, 6)?,
                    coord(u, 2)?,
                    coord(u, 6)?,
                );
                same(
                    "move",
                    r.move_player(p, x, y, z),
                    model.move_player(p, x, y, z),
                );
            }
            17..=20 => {
                let (p, pa) = (known_player(u, &model)?, party(u)?);
                same("set_party", r.set_party(p, pa), model.set_party(p, pa));
            }
            21..=23 => {
                let p = known_player(u, &model)?;
                same("leave", r.leave(p), model.leave(p));
            }
            24..=27 => {
                let (t, es) = (small_id(u, 3)?, entries(u)?);
                same(
                    "add_loot_table",
                    r.add_loot_table(t, &es),
                    model.add_loot_table(t, &es),
                );
            }
            28..=33 => {
                let sid = small_id(u, 6)?;
                let (x, y, z) = block(u)?;
                let t = small_id(u, 3)?;
                let ch = match u.int_in_range(0u8..=15)? {
                    0 => u32::MAX,
                    1..=6 => u.int_in_range(0..=2)?,
                    _ => u.int_in_range(1..=20)?,
                };
                same(
                    "add_site",
                    r.add_site(sid, x, y, z, t, ch),
                    model.add_site(sid, x, y, z, t, ch),
                );
            }
            34..=35 => {
                let sid = small_id(u, 6)?;
                same("remove_site", r.remove_site(sid), model.remove_site(sid));
            }
            36..=59 => {
                let p = known_player(u, &model)?;
                let (x, y, z) = known_block(u, &model)?;
                let t = t_us(u)?;
                same("dig", r.dig(p, x, y, z, t), model.dig(p, x, y, z, t));
            }
            60..=67 => {
                let b = dig_records(u, &model)?;
                same("dig_batch", r.dig_batch(&b), model.dig_batch(&b));
            }
            68..=72 => {
                let b = move_records(u, &model)?;
                same("move_batch", r.move_batch(&b), model.move_batch(&b));
            }
            73..=82 => {
                let max = match u.int_in_range(0u8..=3)? {
                    0 => usize::MAX,
                    _ => u.int_in_range(0..=5)?,
                };
                polled.clear();
                match r.poll(max, &mut polled) {
                    Ok(n) => {
                        model
                            .open("poll")
                            .expect("poll succeeded on a closed resolver");
                        assert!(n <= max);
                        take_packets(&mut model, &polled, n);
                    }
                    Err(e) => assert_eq!(Err(e.to_string()), model.open("poll")),
                }
            }
            83..=88 => {
                let cap = u.int_in_range(0..=4)?;
                let extra = u.int_in_range(0..=127)?;
                let max = if u.ratio(1u8, 8)? {
                    cap + 1
                } else {
                    u.int_in_range(0..=cap)?
                };
                let mut buf = vec![0xAAu8; cap * 128 + extra];
                let want_err = model.open("poll_into").err().or_else(|| {
                    (max > cap).then(|| {
                        format!("treasure: poll_into: max must be at most {cap} (the packets buf holds), got {max}")
                    })
                });
                match (r.poll_into(&mut buf, max), want_err) {
                    (Ok(n), None) => {
                        assert!(n <= max);
                        take_packets(&mut model, &buf[..n * 128], n);
                        assert!(
                            buf[n * 128..].iter().all(|&b| b == 0xAA),
                            "poll_into wrote past n packets"
                        );
                    }
                    (Err(e), Some(w)) => {
                        assert_eq!(e.to_string(), w);
                        assert!(buf.iter().all(|&b| b == 0xAA), "a failed poll_into wrote");
                    }
                    (got, want) => panic!("poll_into: resolver {got:?}, model {want:?}"),
                }
            }
            89 => {
                // wait without a timeout returns once a packet is ready, and
                // at once (0) when nothing is pending.
                match (r.wait(None), model.open("wait")) {
                    (Ok(n), Ok(())) => {
                        assert!(n as u64 <= model.pending());
                        assert_eq!(n > 0, model.pending() > 0, "wait: {n} pollable");
                    }
                    (Err(e), Err(w)) => assert_eq!(e.to_string(), w),
                    (got, want) => panic!("wait: resolver {got:?}, model {want:?}"),
                }
            }
            90..=92 => {
                same("flush", r.flush(), model.open("flush"));
                if !model.closed {
                    assert_eq!(
                        r.available_packets() as u64,
                        model.pending(),
                        "after flush all pending must be pollable"
                    );
                }
            }
            // stats() never waits (issue 15): flush first (a no-op when closed)
            93..=97 => match {
                let _ = r.flush(); // its error, if any, is stats()'s too
                r.stats()
            } {
                Ok(s) => check_stats(&model, &s),
                Err(e) => assert_eq!(Err(e.to_string()), model.open("stats")),
            },
            98 => {
                // Closing twice is fine; every later call fails as closed.
                if u.ratio(1u8, 4)? {
                    r.close();
                    model.close();
                    assert!(r.is_closed());
                    assert!(r.snapshot().is_err());
                    assert_eq!(r.available_packets(), 0);
                }
            }
            _ => {
                // Available packets never exceed the pending ones, and never block.
                assert!(r.available_packets() as u64 <= model.pending());
            }
        }
        check_players(&r, &model);
    }
    // The end: every accepted dig's packets, exactly once, then nothing.
    if !model.closed {
        r.flush().expect("flush");
        polled.clear();
        let n = r.poll(usize::MAX, &mut polled).expect("poll");
        assert_eq!(
            n as u64,
            model.pending(),
            "final poll must return every pending packet"
        );
        take_packets(&mut model, &polled, n);
        assert!(model.queue.is_empty());
        polled.clear();
        assert_eq!(r.poll(usize::MAX, &mut polled).expect("poll"), 0);
        check_stats(&model, &r.stats().expect("stats"));
        r.close();
    }
    assert_eq!(
        r.dig(1, 0, 0, 0, 0).unwrap_err().to_string(),
        "treasure: dig: resolver is closed"
    );
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let _ = run(&mut u);
});
