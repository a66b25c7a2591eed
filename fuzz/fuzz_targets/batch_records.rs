//! Batch-record parsing: `dig_batch` / `move_batch` input bytes, raw.
//!
//! Input: 2 header bytes, then the record bytes as `dig_batch` or
//! `move_batch` gets them from Lua (any length, any content).
//! * byte 0: bit 0 picks move records (else dig records); bits 1..3 pick
//!   `max_pending_packets` and whether the resolver is busy before the call;
//! * byte 1: which of players 1..8 have joined.
//!
//! Checked:
//! * the zero-copy views (`dig_records`, `move_records`) accept exactly the
//!   lengths that are multiples of 24 / 16, read every field as the
//!   little-endian value at its offset, and re-encode to the same bytes;
//! * the resolver's verdict equals an independent validation written here
//!   (length, then records first to last, each field in order, then that
//!   record's player has joined; then the busy check), down to the error
//!   text, and a rejected batch changes nothing (stats, players, seqs);
//! * an accepted `dig_batch` returns the next seq and the record count, and
//!   after flush + poll every record has exactly its digger's packet (and
//!   only FOUND digs have others) with the record's block and t_us, in seq
//!   order; an accepted `move_batch` moves exactly the named players, the
//!   last record for a player winning.
#![no_main]

use libfuzzer_sys::fuzz_target;
use treasure_core::records::{dig_records, encode_digs, encode_moves, move_records};
use treasure_core::{LootEntry, Options, Packet, Resolver};

const CMIN: i64 = -1_048_576;
const CMAX: i64 = 1_048_575;
const SAFE: u64 = (1 << 53) - 1;

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}
fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

/// The contract's validation of a batch, written from docs/API.md.
fn validate(
    method: &str,
    unit: usize,
    b: &[u8],
    joined: &dyn Fn(u32) -> bool,
) -> Result<usize, String> {
    if b.len() % unit != 0 {
        return Err(format!(
            "treasure: {method}: records length must be a multiple of {unit}, got {}",
            b.len()
        ));
    }
    for (i, r) in b.chunks_exact(unit).enumerate() {
        let n = i + 1;
        let p = le32(r, 0);
        if p == 0 {
            return Err(format!(
                "treasure: {method}: records[{n}].player must be an integer in [1, 4294967295], got 0"
            ));
        }
        for (k, name) in ["x", "y", "z"].iter().enumerate() {
            let v = le32(r, 4 + 4 * k) as i32 as i64;
            if !(CMIN..=CMAX).contains(&v) {
                return Err(format!(
                    "treasure: {method}: records[{n}].{name} must be an integer in [{CMIN}, {CMAX}], got {v}"
                ));
            }
        }
        if unit == 24 {
            let t = le64(r, 16);
            if t > SAFE {
                return Err(format!(
                    "treasure: {method}: records[{n}].t_us must be an integer in [0, {SAFE}], got {t}"
                ));
            }
        }
        if !joined(p) {
            return Err(format!(
                "treasure: {method}: records[{n}].player must have joined, got {p}"
            ));
        }
    }
    Ok(b.len() / unit)
}

fn check_views(b: &[u8]) {
    match dig_records(b) {
        Ok(rs) => {
            assert_eq!(b.len() % 24, 0);
            assert_eq!(rs.len(), b.len() / 24);
            for (r, raw) in rs.iter().zip(b.chunks_exact(24)) {
                assert_eq!(r.player.get(), le32(raw, 0));
                assert_eq!(r.x.get(), le32(raw, 4) as i32);
                assert_eq!(r.y.get(), le32(raw, 8) as i32);
                assert_eq!(r.z.get(), le32(raw, 12) as i32);
                assert_eq!(r.t_us.get(), le64(raw, 16));
            }
            assert_eq!(encode_digs(rs), b);
        }
        Err(e) => {
            assert_ne!(b.len() % 24, 0);
            assert_eq!(
                e.to_string(),
                format!(
                    "treasure: dig_batch: records length must be a multiple of 24, got {}",
                    b.len()
                )
            );
        }
    }
    match move_records(b) {
        Ok(rs) => {
            assert_eq!(b.len() % 16, 0);
            assert_eq!(rs.len(), b.len() / 16);
            for (r, raw) in rs.iter().zip(b.chunks_exact(16)) {
                assert_eq!(r.player.get(), le32(raw, 0));
                assert_eq!(
                    (r.x.get(), r.y.get(), r.z.get()),
                    (
                        le32(raw, 4) as i32,
                        le32(raw, 8) as i32,
                        le32(raw, 12) as i32
                    )
                );
            }
            assert_eq!(encode_moves(rs), b);
        }
        Err(_) => assert_ne!(b.len() % 16, 0),
    }
}

fn positions(r: &Resolver) -> Vec<(u32, i32, i32, i32, u32)> {
    let mut v: Vec<_> = r
        .players()
        .unwrap()
        .iter()
        .map(|p| (p.id, p.x, p.y, p.z, p.party))
        .collect();
    v.sort_unstable();
    v
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let (cfg, mask, recs) = (data[0], data[1], &data[2..]);
    check_views(recs);

    let moves = cfg & 1 == 1;
    let max_pending = [1u64, 2, 8, 1 << 20][((cfg >> 1) & 3) as usize];
    let prefill = cfg & 8 != 0;
    let mut r = Resolver::new(Options {
        workers: 1,
        aoi_radius: 4,
        reach: 3,
        max_pending_packets: max_pending,
        chunk_digs: 1 + (cfg >> 4) as usize % 3,
        // bit 6: resolve on the caller's thread (inline) or on the worker
        inline_max_digs: if cfg & 64 != 0 { 32 } else { 0 },
        freeze_min_found: (cfg >> 7 & 1) as usize,
        wait_spin_us: 0,
        ..Options::default()
    })
    .unwrap();
    r.add_loot_table(
        1,
        &[LootEntry {
            item: 9,
            weight: 1,
            min: 1,
            max: 2,
            rarity: 0,
        }],
    )
    .unwrap();
    r.add_site(1, 0, 0, 0, 1, 1000).unwrap();
    let joined_ids: Vec<u32> = (1..=8).filter(|i| mask & (1 << (i - 1)) != 0).collect();
    for &p in &joined_ids {
        r.join(p, p as i32 % 3 - 1, 0, p as i32 / 3 - 1, p % 2)
            .unwrap();
    }
    if prefill && !joined_ids.is_empty() {
        // Take pending past max_pending when the max is small (busy).
        for i in 0..3 {
            r.dig(joined_ids[0], 0, 0, 0, i).unwrap();
        }
    }
    // stats() never waits (issue 15): flush first so its counts are exact
    r.flush().unwrap();
    let before = r.stats().unwrap();
    let before_players = positions(&r);
    let joined = |p: u32| joined_ids.contains(&p);

    if moves {
        let want = validate("move_batch", 16, recs, &joined);
        let got = r.move_batch(recs).map_err(|e| e.to_string());
        assert_eq!(
            got.clone().map(|_| ()),
            want.clone().map(|_| ()),
            "move_batch verdict"
        );
        let mut expect = before_players.clone();
        if want.is_ok() {
            for raw in recs.chunks_exact(16) {
                let e = expect.iter_mut().find(|e| e.0 == le32(raw, 0)).unwrap();
                (e.1, e.2, e.3) = (
                    le32(raw, 4) as i32,
                    le32(raw, 8) as i32,
                    le32(raw, 12) as i32,
                );
            }
        }
        assert_eq!(positions(&r), expect, "players after move_batch");
        r.players().unwrap().check_invariants();
        r.flush().unwrap();
        let after = r.stats().unwrap();
        assert_eq!(
            (after.counters.digs, after.counters.packets, after.counters.busy),
            (before.counters.digs, before.counters.packets, before.counters.busy)
        );
        return;
    }

    let want = validate("dig_batch", 24, recs, &joined);
    let got = r.dig_batch(recs);
    r.flush().unwrap();
    let after = r.stats().unwrap();
    assert_eq!(positions(&r), before_players, "dig_batch moved players");
    match (got, want) {
        (Err(e), Err(w)) => {
            assert_eq!(e.to_string(), w);
            assert_eq!(
                after.contract_values(),
                before.contract_values(),
                "a rejected batch changed stats"
            );
        }
        (Ok(None), Ok(_)) => {
            assert!(
                before.pending_packets > max_pending,
                "busy with {} pending <= {max_pending}",
                before.pending_packets
            );
            assert_eq!(after.counters.busy, before.counters.busy + 1);
            assert_eq!((after.counters.digs, after.counters.packets), (before.counters.digs, before.counters.packets));
        }
        (Ok(Some((first, count))), Ok(n)) => {
            assert!(
                before.pending_packets <= max_pending,
                "accepted with {} pending > {max_pending}",
                before.pending_packets
            );
            assert_eq!(first, before.counters.digs + 1, "first seq");
            assert_eq!(count, n as u64);
            assert_eq!(after.counters.digs, before.counters.digs + count);
            assert_eq!(after.counters.busy, before.counters.busy);
            r.flush().unwrap();
            let mut out = Vec::new();
            let total = r.poll(usize::MAX, &mut out).unwrap();
            assert_eq!(total as u64, after.pending_packets);
            let ps: Vec<&Packet> = out
                .chunks_exact(128)
                .map(|c| Packet::new_checked(c).unwrap())
                .collect();
            // the batch's packets are the last ones of the stream
            let batch: Vec<&&Packet> = ps.iter().filter(|p| p.seq() >= first).collect();
            assert_eq!(batch.len() as u64, after.counters.packets - before.counters.packets);
            let mut it = batch.iter().peekable();
            for (k, raw) in recs.chunks_exact(24).enumerate() {
                let seq = first + k as u64;
                let mut mine = Vec::new();
                while let Some(p) = it.next_if(|p| p.seq() == seq) {
                    mine.push(*p);
                }
                assert!(!mine.is_empty(), "seq {seq}: no packets");
                let digger = le32(raw, 0);
                assert_eq!(
                    mine.iter().filter(|p| p.recipient() == digger).count(),
                    1,
                    "seq {seq}: digger packets"
                );
                assert!(
                    mine.windows(2).all(|w| w[0].recipient() < w[1].recipient()),
                    "seq {seq}: order"
                );
                for p in &mine {
                    assert_eq!(p.finder(), digger);
                    assert_eq!(
                        (p.x(), p.y(), p.z()),
                        (
                            le32(raw, 4) as i32,
                            le32(raw, 8) as i32,
                            le32(raw, 12) as i32
                        )
                    );
                    assert_eq!(p.t_us(), le64(raw, 16));
                    assert!(
                        mine.len() == 1 || p.kind_byte() == 1,
                        "seq {seq}: only FOUND digs fan out"
                    );
                }
            }
            assert!(it.next().is_none(), "packets past the batch's last seq");
        }
        (got, want) => panic!("dig_batch: resolver {got:?}, model {want:?}"),
    }
});
