//! Snapshot and restore: a restored resolver continues exactly where the
//! original was (same packet stream, same stats, same busy answers), and a
//! malformed snapshot is rejected with a message naming the field and rule.

use treasure_core::records::{encode_digs, encode_moves};
use treasure_core::{
    DigRecord, LootEntry, MoveRecord, Options, Resolver, Snapshot, Stats, PACKET_SIZE,
};

/// xorshift64*: the test's own deterministic generator.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn coord(&mut self) -> i32 {
        self.below(41) as i32 - 20
    }
}

fn site_block(k: u32) -> (i32, i32, i32) {
    ((k % 8) as i32 * 5 - 20, 0, (k / 8) as i32 * 5 - 20)
}

/// A dig target: mostly a site's block (some are removed or depleted).
fn target(rng: &mut Rng) -> (i32, i32, i32) {
    if rng.below(4) == 0 {
        (rng.coord(), rng.coord() / 4, rng.coord())
    } else {
        site_block(rng.below(40) as u32)
    }
}

fn opts(seed: u64, workers: u32, chunk_digs: usize, max_pending: u64) -> Options {
    Options {
        seed,
        aoi_radius: 12,
        reach: 16,
        workers,
        max_pending_packets: max_pending,
        chunk_digs,
        max_inflight_chunks: 3,
        ..Options::default()
    }
}

fn entry(item: u32, weight: u32, min: u16, max: u16, rarity: u8) -> LootEntry {
    LootEntry {
        item,
        weight,
        min,
        max,
        rarity,
    }
}

/// A small dense world: 3 loot tables, 40 sites, 60 players in 4 parties.
fn populate(r: &mut Resolver, rng: &mut Rng) {
    r.add_loot_table(2, &[entry(5, 3, 1, 4, 0), entry(6, 1, 1, 1, 9)])
        .unwrap();
    r.add_loot_table(1, &[entry(1, 1, 0, 65535, 255)]).unwrap();
    r.add_loot_table(9, &[entry(7, 10, 2, 2, 1), entry(8, 5, 0, 3, 2)])
        .unwrap();
    // sites on a 5-block lattice (see site_block), ids 100, 107, ...
    for k in 0..40u32 {
        let (x, y, z) = site_block(k);
        let table = [1, 2, 9][rng.below(3) as usize];
        r.add_site(100 + 7 * k, x, y, z, table, 1 + rng.below(6) as u32)
            .unwrap();
    }
    for p in (1..=60).rev() {
        let party = p % 5;
        r.join(p, rng.coord(), rng.coord() / 4, rng.coord(), party)
            .unwrap();
    }
}

/// One random call; appends polled bytes to `stream`. Applied identically
/// to two resolvers it must give identical results.
fn step(r: &mut Resolver, rng: &mut Rng, stream: &mut Vec<u8>) -> String {
    match rng.below(12) {
        0..=3 => {
            let p = 1 + rng.below(70) as u32;
            let res = r.dig(
                p,
                rng.coord(),
                rng.coord() / 4,
                rng.coord(),
                rng.below(1 << 40),
            );
            format!("{res:?}")
        }
        4..=5 => {
            let recs: Vec<DigRecord> = (0..rng.below(30))
                .map(|_| {
                    let p = 1 + rng.below(60) as u32;
                    let (x, y, z) = target(rng);
                    DigRecord::new(p, x, y, z, 7)
                })
                .collect();
            format!("{:?}", r.dig_batch(&encode_digs(&recs)))
        }
        6 => {
            let recs: Vec<MoveRecord> = (0..rng.below(10))
                .map(|_| {
                    let p = 1 + rng.below(60) as u32;
                    MoveRecord::new(p, rng.coord(), rng.coord() / 4, rng.coord())
                })
                .collect();
            format!("{:?}", r.move_batch(&encode_moves(&recs)))
        }
        7 => {
            let p = 1 + rng.below(70) as u32;
            format!("{:?}", r.set_party(p, rng.below(5) as u32))
        }
        8 => {
            let p = 1 + rng.below(70) as u32;
            if rng.below(2) == 0 {
                format!("{:?}", r.leave(p))
            } else {
                format!(
                    "{:?}",
                    r.join(
                        p,
                        rng.coord(),
                        rng.coord(),
                        rng.coord(),
                        rng.below(3) as u32
                    )
                )
            }
        }
        9 => {
            // flush first: poll never blocks, so an unflushed native poll
            // may legitimately return fewer packets than another resolver
            r.flush().unwrap();
            let mut out = Vec::new();
            let n = r.poll(rng.below(40) as usize, &mut out).unwrap();
            stream.extend_from_slice(&out);
            format!("poll {n}")
        }
        10 => {
            let id = 100 + 7 * rng.below(50) as u32;
            format!("{:?}", r.remove_site(id))
        }
        _ => {
            let id = 1000 + rng.below(50) as u32;
            let res = r.add_site(id, rng.coord(), 0, rng.coord(), 2, rng.below(3) as u32);
            // (often refused: the block may hold a lattice site)
            format!("{res:?}")
        }
    }
}

fn drain(r: &mut Resolver, stream: &mut Vec<u8>) {
    r.flush().unwrap();
    r.poll(usize::MAX, stream).unwrap();
}

/// Runs `calls` random calls on a reference resolver and on a twin that is
/// snapshotted and restored at random points; streams, results and stats
/// must be identical.
fn swap_run(seed: u64, workers: u32, chunk_digs: usize, max_pending: u64) -> Stats {
    let o = opts(seed, workers, chunk_digs, max_pending);
    let mut a = Resolver::new(o.clone()).unwrap();
    let mut b = Resolver::new(o).unwrap();
    populate(&mut a, &mut Rng(seed | 1));
    populate(&mut b, &mut Rng(seed | 1));
    let (mut ra, mut rb) = (Rng(seed * 31 + 7), Rng(seed * 31 + 7));
    let mut swaps = Rng(seed ^ 0xABCDEF);
    let (mut sa, mut sb) = (Vec::new(), Vec::new());
    let mut restored = 0;
    for i in 0..600 {
        let (x, y) = (
            step(&mut a, &mut ra, &mut sa),
            step(&mut b, &mut rb, &mut sb),
        );
        assert_eq!(x, y, "seed {seed}: call {i} differs");
        if swaps.below(25) == 0 {
            let snap = b.snapshot().unwrap();
            // taking a snapshot changes nothing, and the same state gives the same snapshot
            assert_eq!(snap, b.snapshot().unwrap());
            assert_eq!(snap.next_seq, snap.counters.digs + 1);
            let before = b.stats().unwrap();
            b.close();
            b = Resolver::restore(snap.clone()).unwrap();
            assert_eq!(
                b.stats().unwrap().contract_values(),
                before.contract_values()
            );
            assert_eq!(
                b.snapshot().unwrap(),
                snap,
                "restore(snapshot).snapshot() == snapshot"
            );
            restored += 1;
        }
    }
    drain(&mut a, &mut sa);
    drain(&mut b, &mut sb);
    assert!(restored > 5, "seed {seed}: only {restored} swaps");
    assert!(sa.len() > 100 * PACKET_SIZE, "seed {seed}: too few packets");
    assert!(sa == sb, "seed {seed}: streams differ");
    assert_eq!(
        a.stats().unwrap().contract_values(),
        b.stats().unwrap().contract_values()
    );
    let (snap_a, snap_b) = (a.snapshot().unwrap(), b.snapshot().unwrap());
    assert_eq!(snap_a, snap_b, "same history, same snapshot");
    a.stats().unwrap()
}

#[test]
fn restore_continues_the_stream_exactly() {
    for seed in 1..=6 {
        let st = swap_run(
            seed,
            1 + (seed % 3) as u32,
            1 + (seed % 4) as usize,
            1 << 20,
        );
        assert!(
            st.counters.found > 10,
            "seed {seed}: found {}",
            st.counters.found
        );
    }
}

#[test]
fn restore_continues_busy_answers_exactly() {
    // a tiny max_pending_packets: busy happens often, so restored pending
    // counts must be exact for the answers to stay the same
    for seed in 10..=13 {
        let st = swap_run(seed, 2, 2, 1 + seed % 7);
        assert!(
            st.counters.busy > 10,
            "seed {seed}: busy {} (want many)",
            st.counters.busy
        );
    }
}

fn base() -> (Resolver, Snapshot) {
    let mut r = Resolver::new(opts(5, 2, 2, 1000)).unwrap();
    populate(&mut r, &mut Rng(99));
    for p in 1..=60u32 {
        let v = r.players().unwrap().get(p).unwrap();
        r.dig(p, v.x, v.y, v.z, 1).unwrap();
    }
    let s = r.snapshot().unwrap();
    assert!(s.pending.len() >= 60 * PACKET_SIZE);
    (r, s)
}

#[test]
fn pending_packets_come_first_then_new_digs_at_next_seq() {
    let (mut r, s) = base();
    let mut restored = Resolver::restore(s.clone()).unwrap();
    assert_eq!(
        restored.stats().unwrap().pending_packets,
        (s.pending.len() / PACKET_SIZE) as u64
    );
    let seq = restored.dig(1, 0, 0, 0, 5).unwrap().unwrap();
    assert_eq!(seq, s.next_seq);
    assert_eq!(r.dig(1, 0, 0, 0, 5).unwrap().unwrap(), seq);
    let (mut x, mut y) = (Vec::new(), Vec::new());
    drain(&mut r, &mut x);
    drain(&mut restored, &mut y);
    assert_eq!(&y[..s.pending.len()], &s.pending[..]);
    assert!(x == y);
}

#[test]
fn snapshot_of_closed_resolver_fails() {
    let (mut r, _) = base();
    r.close();
    assert_eq!(
        r.snapshot().unwrap_err().to_string(),
        "treasure: snapshot: resolver is closed"
    );
}

fn reject(mutate: impl FnOnce(&mut Snapshot), want: &str) {
    let (_, mut s) = base();
    mutate(&mut s);
    let err = Resolver::restore(s).unwrap_err().to_string();
    let want = format!("treasure: restore: {want}");
    assert!(err.starts_with(&want), "got {err:?}, want {want:?}");
}

#[test]
fn a_consistent_hand_edited_snapshot_is_accepted() {
    // dropping the oldest pending packets (as if polled) keeps it valid
    let (_, mut s) = base();
    s.pending.drain(..3 * PACKET_SIZE);
    let mut r = Resolver::restore(s.clone()).unwrap();
    assert_eq!(r.snapshot().unwrap(), s);
}

#[test]
fn malformed_snapshots_are_rejected() {
    reject(|s| s.version = 2, "snapshot.version must be 1, got 2");
    reject(
        |s| s.options.workers = 300,
        "snapshot.options.workers must be an integer in [0, 256], got 300",
    );
    reject(
        |s| s.options.max_pending_packets = 0,
        "snapshot.options.max_pending_packets must be an integer in [1, 9007199254740991], got 0",
    );
    reject(
        |s| s.players[2].x = 2_000_000,
        "snapshot.players[3].x must be an integer in [-1048576, 1048575], got 2000000",
    );
    reject(
        |s| s.players[3].id = s.players[0].id,
        "snapshot.players[4].id must not repeat snapshot.players[1].id, got 1",
    );
    reject(
        |s| s.players[0].id = 0,
        "snapshot.players[1].id must be an integer in [1, 4294967295], got 0",
    );
    reject(
        |s| {
            let first = s.sites[0];
            s.sites[1].x = first.x;
            s.sites[1].y = first.y;
            s.sites[1].z = first.z;
        },
        "snapshot.sites[2] block must not hold a site already, got",
    );
    reject(
        |s| s.sites[0].loot_table_id = 4,
        "snapshot.sites[1].loot_table_id must be an existing loot table, got 4",
    );
    reject(
        |s| s.loot_tables[1].id = 1,
        "snapshot.loot_tables[2].id must not repeat snapshot.loot_tables[1].id, got 1",
    );
    reject(
        |s| s.loot_tables[0].entries.clear(),
        "snapshot.loot_tables[1].entries must be a non-empty array of tables, got table",
    );
    reject(
        |s| s.loot_tables[1].entries[1].min = 9,
        "snapshot.loot_tables[2].entries[2].min must be <= max, got 9 > 1",
    );
    reject(
        |s| s.loot_tables[1].entries[0].weight = u32::MAX,
        "snapshot.loot_tables[2].entries total weight must be <= 4294967295, got 4294967296",
    );
    reject(
        |s| s.counters.found += 1,
        "snapshot.counters.digs must be found + empty + nothing + rejected (61), got 60",
    );
    reject(
        |s| s.pending.push(0),
        "snapshot.pending length must be a multiple of 128, got",
    );
    reject(
        |s| s.pending[200] ^= 1,
        "snapshot.pending[2] must be a valid packet, got bad packet crc",
    );
    reject(
        |s| {
            let last = s.pending.len() - PACKET_SIZE;
            let tail: Vec<u8> = s.pending[last..].to_vec();
            s.pending.splice(0..0, tail);
        },
        "snapshot.pending[2].seq must not be below the previous packet's seq 60, got 1",
    );
    reject(
        |s| {
            s.next_seq = 50;
        },
        "snapshot.next_seq must be above the last pending packet's seq 60, got 50",
    );
    reject(
        |s| s.next_seq += 1,
        "snapshot.next_seq must be counters.digs + 1 (61), got 62",
    );
    reject(
        |s| s.counters.packets = 3,
        "snapshot.counters.packets must be at least the pending packets",
    );
}

const MAX_SEQ: u64 = 9_007_199_254_740_991;

/// `base()`'s snapshot moved to just before the seq limit: nothing pending,
/// `next_seq = next`, the counters consistent with it (extra digs counted as
/// rejected), `packets` and `busy` one below their saturation point.
fn near_the_seq_limit(next: u64) -> Snapshot {
    let (_, mut s) = base();
    s.pending.clear();
    let c = &mut s.counters;
    c.digs = next - 1;
    c.rejected = c.digs - c.found - c.empty - c.nothing;
    c.packets = MAX_SEQ - 1;
    c.busy = MAX_SEQ - 1;
    s.next_seq = next;
    s
}

fn records(digs: &[(u32, i32, i32, i32)]) -> Vec<u8> {
    let recs: Vec<DigRecord> = digs
        .iter()
        .map(|&(p, x, y, z)| DigRecord::new(p, x, y, z, 7))
        .collect();
    encode_digs(&recs)
}

/// Issue 12 item 6: seqs stop at 2^53-1. A dig that would need more is
/// refused with the contract's message after the argument and id checks,
/// before the busy check, and changes nothing; the resolver that used seq
/// 2^53-1 still snapshots and restores; `packets` and `busy` saturate.
#[test]
fn digs_past_seq_2_pow_53_are_refused_and_change_nothing() {
    let s = near_the_seq_limit(MAX_SEQ - 1);
    let mut r = Resolver::restore(s.clone()).unwrap();
    let p1 = *s.players.first().unwrap();
    let site = s.sites[0];
    // A FOUND dig by a player standing on the site: several recipients,
    // so `packets` (2^53-2 before) saturates.
    r.move_player(p1.id, site.x, site.y, site.z).unwrap();
    let seq = r.dig(p1.id, site.x, site.y, site.z, 1).unwrap().unwrap();
    assert_eq!(seq, MAX_SEQ - 1);
    r.flush().unwrap(); // stats() never waits (issue 15)
    let st = r.stats().unwrap();
    assert_eq!(st.counters.packets, MAX_SEQ, "packets saturates");
    let mut stream = Vec::new();
    drain(&mut r, &mut stream);

    // A batch of 2 would need seq 2^53: refused, nothing changes.
    let before = r.snapshot().unwrap();
    let two = records(&[(p1.id, 0, 0, 0), (p1.id, 1, 0, 0)]);
    assert_eq!(
        r.dig_batch(&two).unwrap_err().to_string(),
        "treasure: dig_batch: seq must stay at most 9007199254740991, got 9007199254740992"
    );
    assert_eq!(r.snapshot().unwrap(), before);
    // A batch of 1 takes the last seq.
    let one = records(&[(p1.id, 0, 0, 0)]);
    assert_eq!(r.dig_batch(&one).unwrap(), Some((MAX_SEQ, 1)));
    drain(&mut r, &mut stream);
    let at_limit = r.snapshot().unwrap();
    assert_eq!(at_limit.next_seq, MAX_SEQ + 1);

    let refused = [
        (
            r.dig(p1.id, 0, 0, 0, 1).unwrap_err().to_string(),
            "treasure: dig: seq must stay at most 9007199254740991, got 9007199254740992",
        ),
        (
            r.dig_batch(&two).unwrap_err().to_string(),
            "treasure: dig_batch: seq must stay at most 9007199254740991, got 9007199254740993",
        ),
        // Argument and id checks come first.
        (
            r.dig(p1.id, 0, 0, 0, MAX_SEQ + 1).unwrap_err().to_string(),
            "treasure: dig: t_us must be an integer in [0, 9007199254740991], got 9007199254740992",
        ),
        (
            r.dig(999_999, 0, 0, 0, 1).unwrap_err().to_string(),
            "treasure: dig: player must have joined, got 999999",
        ),
        (
            r.dig_batch(&records(&[(p1.id, 0, 0, 0), (999_999, 0, 0, 0)]))
                .unwrap_err()
                .to_string(),
            "treasure: dig_batch: records[2].player must have joined, got 999999",
        ),
    ];
    for (got, want) in refused {
        assert_eq!(got, want);
    }
    assert_eq!(r.snapshot().unwrap(), at_limit, "refusals change nothing");
    // An empty batch needs no seq.
    assert_eq!(r.dig_batch(&[]).unwrap(), Some((MAX_SEQ + 1, 0)));
    // The resolver that used seq 2^53-1 still snapshots and restores.
    let mut again = Resolver::restore(at_limit.clone()).unwrap();
    assert_eq!(again.snapshot().unwrap(), at_limit);
    assert!(again.dig(p1.id, 0, 0, 0, 1).is_err());
    // next_seq 2^53 is the largest a snapshot may carry.
    let mut past = at_limit.clone();
    past.next_seq += 1;
    past.counters.digs += 1;
    past.counters.rejected += 1;
    assert_eq!(
        Resolver::restore(past).unwrap_err().to_string(),
        "treasure: restore: snapshot.counters.digs must be an integer in [0, 9007199254740991], got 9007199254740992"
    );
    let mut past = at_limit;
    past.next_seq += 1;
    assert_eq!(
        Resolver::restore(past).unwrap_err().to_string(),
        "treasure: restore: snapshot.next_seq must be an integer in [1, 9007199254740992], got 9007199254740993"
    );
}

/// `busy` is a statistic: it saturates at 2^53-1 instead of passing it.
#[test]
fn busy_saturates_at_2_pow_53_minus_1() {
    let mut s = near_the_seq_limit(1000);
    s.options.max_pending_packets = 1;
    let mut r = Resolver::restore(s.clone()).unwrap();
    let p = s.players[0];
    // After two digs (the second may already be busy) at least 2 packets
    // are pending, past max_pending_packets = 1: every later dig is busy.
    r.dig(p.id, 0, 0, 0, 1).unwrap().unwrap();
    let _ = r.dig(p.id, 0, 0, 0, 1).unwrap();
    for _ in 0..3 {
        assert_eq!(r.dig(p.id, 0, 0, 0, 1).unwrap(), None);
    }
    assert_eq!(r.stats().unwrap().counters.busy, MAX_SEQ);
    let snap = r.snapshot().unwrap();
    assert_eq!(snap.counters.busy, MAX_SEQ);
    Resolver::restore(snap).unwrap();
}
