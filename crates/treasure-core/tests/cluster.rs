//! Cluster mode (issue 17) at the core's API: shard resolvers that ship
//! every record to its destination give each client the packets one big
//! resolver gives it (except seq and CRC); the record cut; the dedupe and
//! gap rule; whole-or-nothing; set_host as of the dig; snapshots.

use std::collections::BTreeMap;

use treasure_core::cluster_record::{Expect, Record, RecordWriter, Slot};
use treasure_core::contract::limits::{MAX_SAFE, RECORD_SPLIT_BYTES};
use treasure_core::records::encode_digs;
use treasure_core::{
    splitmix64, Applied, DigRecord, Fields, Kind, LootEntry, Options, Packet, Resolver, PACKET_SIZE,
};

const SHARDS: u16 = 3;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = splitmix64(self.0);
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn coord(&mut self, r: i32) -> i32 {
        self.below(2 * r as u64 + 1) as i32 - r
    }
}

fn opts(shard: Option<u16>, workers: u32, chunk_digs: usize) -> Options {
    Options {
        seed: 99,
        aoi_radius: 12,
        reach: 6,
        workers,
        chunk_digs,
        max_inflight_chunks: 4,
        shard,
        shards: shard.map(|_| SHARDS),
        ..Options::default()
    }
}

fn loot() -> Vec<LootEntry> {
    vec![
        LootEntry {
            item: 5,
            weight: 3,
            min: 1,
            max: 4,
            rarity: 0,
        },
        LootEntry {
            item: 6,
            weight: 1,
            min: 1,
            max: 1,
            rarity: 2,
        },
    ]
}

/// The shard that owns the block: zones are 16-block slabs along x.
fn owner(x: i32) -> u16 {
    (x.div_euclid(16)).rem_euclid(SHARDS as i32) as u16
}

/// Splits a string of records (cut by `src`) by destination, in order.
fn by_dest(src: u16, mut bytes: &[u8]) -> BTreeMap<u16, Vec<u8>> {
    let mut out: BTreeMap<u16, Vec<u8>> = BTreeMap::new();
    let expect = Expect::From {
        shard: src,
        shards: SHARDS,
    };
    while !bytes.is_empty() {
        let (r, rest) = Record::new_checked(bytes, expect).expect("a valid record");
        out.entry(r.dest())
            .or_default()
            .extend_from_slice(r.bytes());
        bytes = rest;
    }
    out
}

fn records_of(src: u16, mut bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let expect = Expect::From {
        shard: src,
        shards: SHARDS,
    };
    while !bytes.is_empty() {
        let (r, rest) = Record::new_checked(bytes, expect).expect("a valid record");
        out.push(r.bytes().to_vec());
        bytes = rest;
    }
    out
}

/// The packet without its seq and CRC.
fn strip(p: &[u8]) -> Vec<u8> {
    let mut v = p.to_vec();
    v[8..16].fill(0);
    v[124..128].fill(0);
    v
}

fn seq_of(p: &[u8]) -> u64 {
    Packet::new_checked(p).unwrap().seq()
}

fn recipient_of(p: &[u8]) -> u32 {
    Packet::new_checked(p).unwrap().recipient()
}

struct Cluster {
    plain: Resolver,
    shards: Vec<Resolver>,
    hosts: BTreeMap<u32, u16>,
    /// Per host: the last host seq polled.
    last_seq: Vec<u64>,
    rng: Rng,
}

impl Cluster {
    fn new(seed: u64, workers: u32, chunk_digs: usize) -> Cluster {
        let mut all = vec![Resolver::new(opts(None, workers, chunk_digs)).unwrap()];
        for s in 0..SHARDS {
            all.push(Resolver::new(opts(Some(s), workers, chunk_digs)).unwrap());
        }
        let mut rng = Rng(seed);
        let mut sites = Vec::new();
        for id in 1..=40u32 {
            let (x, z) = (rng.coord(48), rng.coord(10));
            if sites.contains(&(x, z)) {
                continue;
            }
            sites.push((x, z));
            let charges = rng.below(4) as u32;
            for r in &mut all {
                if id == 1 {
                    r.add_loot_table(1, &loot()).unwrap();
                }
                r.add_site(id, x, 0, z, 1, charges).unwrap();
            }
        }
        let plain = all.remove(0);
        let mut c = Cluster {
            plain,
            shards: all,
            hosts: BTreeMap::new(),
            last_seq: vec![0; SHARDS as usize],
            rng,
        };
        for p in 1..=30u32 {
            c.join(p);
        }
        c
    }

    fn each(&mut self, mut f: impl FnMut(&mut Resolver)) {
        f(&mut self.plain);
        for r in &mut self.shards {
            f(r);
        }
    }

    fn join(&mut self, p: u32) {
        let (x, z, party) = (
            self.rng.coord(50),
            self.rng.coord(12),
            self.rng.below(4) as u32,
        );
        self.each(|r| r.join(p, x, 0, z, party).unwrap());
        let host = self.rng.below(SHARDS as u64) as u16;
        for r in &mut self.shards {
            r.set_host(p, host).unwrap();
        }
        self.hosts.insert(p, host);
    }

    /// Player changes, the same on every resolver.
    fn churn(&mut self) {
        let players: Vec<u32> = self.hosts.keys().copied().collect();
        for &p in &players {
            match self.rng.below(10) {
                0..=3 => {
                    let (x, z) = (self.rng.coord(50), self.rng.coord(12));
                    self.each(|r| r.move_player(p, x, 0, z).unwrap());
                }
                4 => {
                    let party = self.rng.below(4) as u32;
                    self.each(|r| r.set_party(p, party).unwrap());
                }
                5 => {
                    let host = self.rng.below(SHARDS as u64) as u16;
                    for r in &mut self.shards {
                        r.set_host(p, host).unwrap();
                    }
                    self.hosts.insert(p, host);
                }
                6 if self.rng.below(4) == 0 => {
                    self.each(|r| r.leave(p).unwrap());
                    self.hosts.remove(&p);
                    self.join(p);
                }
                _ => {}
            }
        }
    }

    /// One round: digs routed to their owners, records shipped, packets
    /// compared per recipient.
    fn round(&mut self, digs: usize, mode: u64) {
        let players: Vec<u32> = self.hosts.keys().copied().collect();
        let mut per_owner: Vec<Vec<DigRecord>> = vec![Vec::new(); SHARDS as usize];
        for _ in 0..digs {
            let p = players[self.rng.below(players.len() as u64) as usize];
            let (x, z) = (self.rng.coord(48), self.rng.coord(10));
            let t = self.rng.below(1 << 40);
            per_owner[owner(x) as usize].push(DigRecord::new(p, x, 0, z, t));
        }
        // The plain resolver digs in the order the shards do, owner by
        // owner; single digs or one batch per owner.
        let batch = self.rng.below(2) == 0;
        for (s, recs) in per_owner.iter().enumerate() {
            if batch {
                let bytes = encode_digs(recs);
                let a = self.plain.dig_batch(&bytes).unwrap().unwrap();
                let b = self.shards[s].dig_batch(&bytes).unwrap().unwrap();
                assert_eq!(a.1, b.1);
            } else {
                for d in recs {
                    let (x, y, z) = (d.x.get(), d.y.get(), d.z.get());
                    let (p, t) = (d.player.get(), d.t_us.get());
                    self.plain.dig(p, x, y, z, t).unwrap().unwrap();
                    self.shards[s].dig(p, x, y, z, t).unwrap().unwrap();
                }
            }
        }
        // Ship: every shard's records to their destinations, in source
        // order, in one call or record by record, sometimes twice.
        let mut inbox: Vec<Vec<u8>> = vec![Vec::new(); SHARDS as usize];
        for (s, r) in self.shards.iter_mut().enumerate() {
            r.flush().unwrap();
            let st = r.stats().unwrap();
            let pending = st.cluster.unwrap().pending_records;
            let mut bytes = Vec::new();
            let n = r.take_records(&mut bytes).unwrap();
            assert_eq!(n as u64, pending);
            assert_eq!(records_of(s as u16, &bytes).len(), n);
            for (dest, b) in by_dest(s as u16, &bytes) {
                inbox[dest as usize].extend_from_slice(&b);
            }
        }
        for (h, bytes) in inbox.iter().enumerate() {
            let r = &mut self.shards[h];
            let before = r.stats().unwrap().cluster.unwrap();
            let applied = match mode % 3 {
                0 => match r.apply_records(bytes, Some(7)).unwrap() {
                    Applied::Digs(n) => n,
                    other => panic!("{other:?}"),
                },
                _ => {
                    let mut n = 0;
                    for rec in records_of_dest(h as u16, bytes) {
                        match r.apply_records(&rec, None).unwrap() {
                            Applied::Digs(k) => n += k,
                            other => panic!("{other:?}"),
                        }
                    }
                    n
                }
            };
            if mode % 2 == 1 {
                // A duplicate delivery changes nothing but the counters.
                assert_eq!(r.apply_records(bytes, None).unwrap(), Applied::Digs(0));
            }
            let after = r.stats().unwrap().cluster.unwrap();
            assert_eq!(after.next_host_seq, before.next_host_seq + applied);
            assert_eq!(
                after.counters.applied_digs,
                before.counters.applied_digs + applied
            );
        }
        // Compare per recipient.
        self.plain.flush().unwrap();
        let mut want: BTreeMap<u32, Vec<Vec<u8>>> = BTreeMap::new();
        let mut out = Vec::new();
        self.plain.poll(usize::MAX, &mut out).unwrap();
        for p in out.chunks_exact(PACKET_SIZE) {
            want.entry(recipient_of(p)).or_default().push(strip(p));
        }
        let mut got: BTreeMap<u32, Vec<Vec<u8>>> = BTreeMap::new();
        for (h, r) in self.shards.iter_mut().enumerate() {
            let mut out = Vec::new();
            let n = r.poll(usize::MAX, &mut out).unwrap();
            assert_eq!(r.stats().unwrap().pending_packets, 0);
            for p in out.chunks_exact(PACKET_SIZE).take(n) {
                assert!(Packet::new_checked(p).is_ok());
                let seq = seq_of(p);
                // Host seq: strictly increasing per applied entry, gapless.
                assert!(
                    seq == self.last_seq[h] || seq == self.last_seq[h] + 1,
                    "host {h}: seq {seq} after {}",
                    self.last_seq[h]
                );
                self.last_seq[h] = seq;
                let rcp = recipient_of(p);
                assert_eq!(
                    self.hosts[&rcp], h as u16,
                    "recipient {rcp} served by its host"
                );
                got.entry(rcp).or_default().push(strip(p));
            }
        }
        assert_eq!(got, want);
    }
}

fn records_of_dest(dest: u16, mut bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let expect = Expect::To {
        shard: dest,
        shards: SHARDS,
    };
    while !bytes.is_empty() {
        let (r, rest) = Record::new_checked(bytes, expect).expect("a valid record");
        out.push(r.bytes().to_vec());
        bytes = rest;
    }
    out
}

fn run(seed: u64, workers: u32, chunk_digs: usize) {
    let mut c = Cluster::new(seed, workers, chunk_digs);
    for round in 0..40u64 {
        c.churn();
        let digs = 1 + c.rng.below(30) as usize;
        c.round(digs, round);
        if round == 20 {
            // A snapshot round trip of every shard mid-run changes nothing.
            for r in &mut c.shards {
                let s = r.snapshot().unwrap();
                assert!(s.cluster.is_some());
                let mut back = Resolver::restore(s.clone()).unwrap();
                assert_eq!(back.snapshot().unwrap(), s);
                *r = back;
            }
        }
    }
    let total: u64 = c
        .shards
        .iter_mut()
        .map(|r| r.stats().unwrap().counters.digs)
        .sum();
    assert_eq!(total, c.plain.stats().unwrap().counters.digs);
    let host_packets: u64 = c
        .shards
        .iter_mut()
        .map(|r| r.stats().unwrap().counters.packets)
        .sum();
    assert_eq!(host_packets, c.plain.stats().unwrap().counters.packets);
}

#[test]
fn three_shards_give_every_client_the_packets_of_one_resolver() {
    run(1, 1, 128);
    run(2, 2, 3);
    run(3, 0, 1);
}

/// A world where one dig reaches `n` players, all hosted by shard 0.
fn crowd(n: u32, workers: u32, chunk_digs: usize) -> Resolver {
    let mut r = Resolver::new(Options {
        aoi_radius: 1000,
        reach: 1000,
        ..opts(Some(0), workers, chunk_digs)
    })
    .unwrap();
    r.add_loot_table(1, &loot()).unwrap();
    r.add_site(1, 0, 0, 0, 1, 1000).unwrap();
    for p in 1..=n {
        r.join(p, (p % 100) as i32, 0, (p / 100) as i32, 0).unwrap();
    }
    r
}

fn cut(n: u32, digs: usize, workers: u32, chunk_digs: usize) -> Vec<u8> {
    let mut r = crowd(n, workers, chunk_digs);
    let recs: Vec<DigRecord> = (0..digs)
        .map(|i| DigRecord::new(1, 0, 0, 0, i as u64))
        .collect();
    r.dig_batch(&encode_digs(&recs)).unwrap().unwrap();
    r.flush().unwrap();
    let mut out = Vec::new();
    r.take_records(&mut out).unwrap();
    out
}

#[test]
fn records_split_before_64_kib_and_the_cut_is_deterministic() {
    // Entries this big: two fit in a record, a third would take it past
    // the split.
    let entry = RecordWriter::entry_len(2000);
    assert!(40 + 2 * entry <= RECORD_SPLIT_BYTES && 40 + 3 * entry > RECORD_SPLIT_BYTES);
    let a = cut(2000, 5, 1, 128);
    assert_eq!(a, cut(2000, 5, 2, 1));
    assert_eq!(a, cut(2000, 5, 0, 2));
    let recs = records_of(0, &a);
    let heads: Vec<(u32, u64, u64, usize)> = recs
        .iter()
        .map(|b| {
            let (r, _) = Record::new_checked(
                b,
                Expect::From {
                    shard: 0,
                    shards: SHARDS,
                },
            )
            .unwrap();
            (r.digs(), r.prev(), r.to(), b.len())
        })
        .collect();
    assert_eq!(
        heads,
        vec![
            (2, 0, 2, 40 + 2 * entry),
            (2, 2, 4, 40 + 2 * entry),
            (1, 4, 5, 40 + entry)
        ]
    );
    // A single entry may be longer than the split.
    let big = cut(6000, 2, 1, 128);
    let recs = records_of(0, &big);
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[0].len(), 40 + RecordWriter::entry_len(6000));
    assert!(recs[0].len() > RECORD_SPLIT_BYTES);
}

#[test]
fn a_later_set_host_does_not_move_an_earlier_digs_packets() {
    for workers in [0, 1, 2] {
        let mut r = crowd(300, workers, 1);
        let recs: Vec<DigRecord> = (0..64)
            .map(|i| DigRecord::new(1, 0, 0, 0, i as u64))
            .collect();
        r.dig_batch(&encode_digs(&recs)).unwrap().unwrap();
        // Digs are in flight (or done): the move comes after them.
        r.set_host(7, 2).unwrap();
        r.flush().unwrap();
        let mut out = Vec::new();
        r.take_records(&mut out).unwrap();
        let dests: Vec<u16> = by_dest(0, &out).keys().copied().collect();
        assert_eq!(dests, vec![0], "workers {workers}");
        r.dig(1, 0, 0, 0, 1).unwrap().unwrap();
        r.flush().unwrap();
        out.clear();
        r.take_records(&mut out).unwrap();
        let split = by_dest(0, &out);
        assert_eq!(split.keys().copied().collect::<Vec<_>>(), vec![0, 2]);
        let (rec, _) = Record::new_checked(
            &split[&2],
            Expect::To {
                shard: 2,
                shards: SHARDS,
            },
        )
        .unwrap();
        let ids: Vec<u32> = rec
            .entries()
            .flat_map(|e| e.slots().map(|s| s.recipient).collect::<Vec<_>>())
            .collect();
        assert_eq!(ids, vec![7]);
        // Its `prev` is 0: the first record for shard 2.
        assert_eq!((rec.prev(), rec.to()), (0, 65));
    }
}

fn fields(seq: u64) -> Fields {
    Fields {
        kind: Kind::Nothing as u8,
        seq,
        finder: 1,
        recipient: 1,
        t_us: seq * 10,
        ..Fields::default()
    }
}

/// A record from `src` to shard 1 with entries for `seqs` (one recipient
/// each).
fn record(src: u16, prev: u64, to: u64, seqs: &[u64]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut w = RecordWriter::begin(&mut out, src, 1, prev);
    for &s in seqs {
        let slot = Slot {
            recipient: 1,
            dist2: 4,
            flags: 1,
        };
        w.entry(&mut out, &fields(s), &[slot]);
    }
    w.finish(&mut out, to);
    out
}

fn host(max_pending: u64) -> Resolver {
    Resolver::new(Options {
        max_pending_packets: max_pending,
        ..opts(Some(1), 1, 128)
    })
    .unwrap()
}

fn cluster_stats(r: &mut Resolver) -> treasure_core::ClusterStats {
    r.stats().unwrap().cluster.unwrap()
}

#[test]
fn dedupe_gap_and_partly_covered_records() {
    let mut r = host(1000);
    let r1 = record(0, 0, 3, &[1, 3]);
    let r2 = record(0, 3, 6, &[5, 6]);
    // The second before the first: a gap, nothing changes.
    assert_eq!(r.apply_records(&r2, Some(9)).unwrap(), Applied::Gap);
    let st = cluster_stats(&mut r);
    assert_eq!(
        (st.next_host_seq, st.counters.records_in, st.log_position),
        (1, 0, 0)
    );
    // Both in one string: the first makes room for the second.
    let both = [r1.clone(), r2.clone()].concat();
    assert_eq!(r.apply_records(&both, Some(9)).unwrap(), Applied::Digs(4));
    // Again: all duplicates.
    assert_eq!(r.apply_records(&r1, Some(4)).unwrap(), Applied::Digs(0));
    let st = cluster_stats(&mut r);
    assert_eq!(st.next_host_seq, 5);
    assert_eq!(st.counters.applied_digs, 4);
    assert_eq!(st.counters.duplicate_digs, 2);
    assert_eq!(st.counters.records_in, 3);
    assert_eq!(st.log_position, 9);
    // Partly covered: prev 4 <= applied 6 < to 9; seqs 5, 6 were seen.
    let r3 = record(0, 4, 9, &[5, 6, 8]);
    assert_eq!(r.apply_records(&r3, None).unwrap(), Applied::Digs(1));
    let st = cluster_stats(&mut r);
    assert_eq!((st.counters.duplicate_digs, st.next_host_seq), (4, 6));
    // Another source has its own chain.
    assert_eq!(
        r.apply_records(&record(2, 1, 2, &[2]), None).unwrap(),
        Applied::Gap
    );
    assert_eq!(
        r.apply_records(&record(2, 0, 2, &[2]), None).unwrap(),
        Applied::Digs(1)
    );
    // The host packets: one per entry applied, seq = host seq.
    let mut out = Vec::new();
    assert_eq!(r.poll(usize::MAX, &mut out).unwrap(), 6);
    let seqs: Vec<u64> = out.chunks_exact(PACKET_SIZE).map(seq_of).collect();
    assert_eq!(seqs, vec![1, 2, 3, 4, 5, 6]);
    let t: Vec<u64> = out
        .chunks_exact(PACKET_SIZE)
        .map(|p| Packet::new_checked(p).unwrap().t_us())
        .collect();
    assert_eq!(t, vec![10, 30, 50, 60, 80, 20]);
    let p = Packet::new_checked(&out[..PACKET_SIZE]).unwrap();
    assert_eq!((p.recipient(), p.flags(), p.dist2()), (1, 1, 4));
}

#[test]
fn a_bad_record_anywhere_changes_nothing() {
    let mut r = host(1000);
    let good = record(0, 0, 3, &[1, 3]);
    let mut bad = record(0, 3, 4, &[4]);
    bad[8] = 2; // dest 2: the CRC no longer matches
    let e = r
        .apply_records(&[good.clone(), bad].concat(), Some(3))
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "treasure: apply_records: records[2] must be a valid record for shard 1, got bad CRC"
    );
    let e = r.apply_records(&good[..50], None).unwrap_err();
    assert_eq!(
        e.to_string(),
        "treasure: apply_records: records[1] must be a valid record for shard 1, got bad length 208"
    );
    let e = r.apply_records(&good, Some(MAX_SAFE + 1)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "treasure: apply_records: log_position must be an integer in [0, 9007199254740991], got 9007199254740992"
    );
    let st = cluster_stats(&mut r);
    assert_eq!(
        (st.next_host_seq, st.counters.records_in, st.log_position),
        (1, 0, 0)
    );
    assert_eq!(r.available_packets(), 0);
    assert_eq!(r.apply_records(&good, None).unwrap(), Applied::Digs(2));
}

#[test]
fn busy_host_and_seq_bound() {
    let mut r = host(2);
    assert_eq!(
        r.apply_records(&record(0, 0, 2, &[1, 2]), None).unwrap(),
        Applied::Digs(2)
    );
    let next = record(0, 2, 3, &[3]);
    assert_eq!(r.apply_records(&next, None).unwrap(), Applied::Busy);
    assert_eq!(r.stats().unwrap().counters.busy, 1);
    assert_eq!(r.stats().unwrap().pending_packets, 2);
    // A host that owns no dig (next_seq 1) snapshots its host packets,
    // whose seqs are host seqs, and restores them.
    let s = r.snapshot().unwrap();
    assert_eq!(s.next_seq, 1);
    assert_eq!(s.pending.len(), 2 * PACKET_SIZE);
    let mut r = Resolver::restore(s.clone()).unwrap();
    assert_eq!(r.snapshot().unwrap(), s);
    let mut bad = s.clone();
    bad.cluster.as_mut().unwrap().next_host_seq = 2;
    assert_eq!(
        Resolver::restore(bad).unwrap_err().to_string(),
        "treasure: restore: snapshot.cluster.next_host_seq must be above the last pending packet's seq 2, got 2"
    );
    let mut out = Vec::new();
    r.poll(1, &mut out).unwrap();
    assert_eq!(r.apply_records(&next, None).unwrap(), Applied::Digs(1));
    // An empty string applies nothing, also when busy is not reached.
    r.poll(usize::MAX, &mut out).unwrap();
    assert_eq!(r.apply_records(&[], None).unwrap(), Applied::Digs(0));

    let mut s = r.snapshot().unwrap();
    s.cluster.as_mut().unwrap().next_host_seq = MAX_SAFE;
    let mut r = Resolver::restore(s).unwrap();
    let e = r
        .apply_records(&record(0, 3, 5, &[4, 5]), None)
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "treasure: apply_records: seq must stay at most 9007199254740991, got 9007199254740992"
    );
    assert_eq!(
        r.apply_records(&record(0, 3, 4, &[4]), None).unwrap(),
        Applied::Digs(1)
    );
}

#[test]
fn options_methods_and_snapshot_rules() {
    let err = |o: Options| Resolver::new(o).unwrap_err().to_string();
    assert_eq!(
        err(Options {
            shard: Some(1),
            ..Options::default()
        }),
        "treasure: new: opts.shards must be given with opts.shard, got nil"
    );
    assert_eq!(
        err(Options {
            shards: Some(3),
            ..Options::default()
        }),
        "treasure: new: opts.shard must be given with opts.shards, got nil"
    );
    assert_eq!(
        err(Options {
            shard: Some(3),
            shards: Some(3),
            ..Options::default()
        }),
        "treasure: new: opts.shard must be below opts.shards (3), got 3"
    );
    assert_eq!(
        err(Options {
            shard: Some(u16::MAX),
            shards: Some(3),
            ..Options::default()
        }),
        "treasure: new: opts.shard must be an integer in [0, 65534], got 65535"
    );
    assert_eq!(
        err(Options {
            shard: Some(0),
            shards: Some(0),
            ..Options::default()
        }),
        "treasure: new: opts.shards must be an integer in [1, 65535], got 0"
    );

    let mut plain = Resolver::new(Options::default()).unwrap();
    plain.join(5, 0, 0, 0, 0).unwrap();
    let no = "resolver has no shard (create it with opts.shard and opts.shards)";
    assert_eq!(
        plain.set_host(5, 0).unwrap_err().to_string(),
        format!("treasure: set_host: {no}")
    );
    assert_eq!(
        plain.take_records(&mut Vec::new()).unwrap_err().to_string(),
        format!("treasure: take_records: {no}")
    );
    assert_eq!(
        plain.apply_records(&[], None).unwrap_err().to_string(),
        format!("treasure: apply_records: {no}")
    );
    assert!(plain.stats().unwrap().cluster.is_none());
    let s = plain.snapshot().unwrap();
    assert!(s.cluster.is_none() && s.players[0].host.is_none());

    let mut r = host(10);
    assert_eq!(
        r.set_host(5, 0).unwrap_err().to_string(),
        "treasure: set_host: player must have joined, got 5"
    );
    r.join(5, 0, 0, 0, 0).unwrap();
    assert_eq!(
        r.set_host(0, 0).unwrap_err().to_string(),
        "treasure: set_host: player must be an integer in [1, 4294967295], got 0"
    );
    assert_eq!(
        r.set_host(5, 3).unwrap_err().to_string(),
        "treasure: set_host: host must be an integer in [0, 2], got 3"
    );
    let s = r.snapshot().unwrap();
    assert_eq!(
        s.players[0].host,
        Some(1),
        "a joined player starts at its shard"
    );
    r.set_host(5, 2).unwrap();
    r.leave(5).unwrap();
    r.join(5, 0, 0, 0, 0).unwrap();
    assert_eq!(r.snapshot().unwrap().players[0].host, Some(1));

    // The core's own snapshot checks.
    let mut bad = |f: &dyn Fn(&mut treasure_core::Snapshot)| {
        let mut s = r.snapshot().unwrap();
        f(&mut s);
        Resolver::restore(s).unwrap_err().to_string()
    };
    assert_eq!(
        bad(&|s| s.players[0].host = Some(3)),
        "treasure: restore: snapshot.players[1].host must be an integer in [0, 2], got 3"
    );
    assert_eq!(
        bad(&|s| s.players[0].host = None),
        "treasure: restore: snapshot.players[1].host must be an integer in [0, 2], got nil"
    );
    assert_eq!(
        bad(&|s| s.cluster = None),
        "treasure: restore: snapshot.cluster must be a table, got nil"
    );
    assert_eq!(
        bad(&|s| {
            let c = s.cluster.as_mut().unwrap();
            c.applied = vec![
                treasure_core::ShardSeq { shard: 2, seq: 1 },
                treasure_core::ShardSeq { shard: 3, seq: 1 },
            ];
        }),
        "treasure: restore: snapshot.cluster.applied[2].shard must be an integer in [0, 2], got 3"
    );
    assert_eq!(
        bad(&|s| {
            let c = s.cluster.as_mut().unwrap();
            c.sent = vec![
                treasure_core::ShardSeq { shard: 2, seq: 1 },
                treasure_core::ShardSeq { shard: 2, seq: 4 },
            ];
        }),
        "treasure: restore: snapshot.cluster.sent[2].shard must not repeat snapshot.cluster.sent[1].shard, got 2"
    );
    assert_eq!(
        bad(&|s| s.cluster.as_mut().unwrap().outgoing = record(0, 0, 1, &[1])),
        "treasure: restore: snapshot.cluster.outgoing[1] must be a valid record for shard 1, got src shard 0 is not this shard 1"
    );
    assert_eq!(
        bad(&|s| s.cluster.as_mut().unwrap().next_host_seq = 0),
        "treasure: restore: snapshot.cluster.next_host_seq must be an integer in [1, 9007199254740992], got 0"
    );
    assert_eq!(
        bad(&|s| {
            s.options.shard = None;
            s.options.shards = None;
            s.players[0].host = None;
        }),
        "treasure: restore: snapshot has unknown key 'cluster'"
    );
}

#[test]
fn snapshot_carries_outgoing_records_and_host_packets() {
    let mut c = Cluster::new(7, 1, 2);
    c.round(20, 0);
    // Digs whose records are not taken, and host packets not polled.
    let recs = vec![
        DigRecord::new(1, 0, 0, 0, 5),
        DigRecord::new(2, 20, 0, 0, 6),
    ];
    let r = &mut c.shards[0];
    r.dig_batch(&encode_digs(&recs)).unwrap().unwrap();
    let s1 = r.snapshot().unwrap();
    let cs = s1.cluster.clone().unwrap();
    assert!(!cs.outgoing.is_empty());
    let mut back = Resolver::restore(s1.clone()).unwrap();
    assert_eq!(back.snapshot().unwrap(), s1);
    let mut a = Vec::new();
    let mut b = Vec::new();
    r.take_records(&mut a).unwrap();
    back.take_records(&mut b).unwrap();
    assert_eq!(a, b);
    assert_eq!(a, cs.outgoing);
    // The next records continue the chain identically.
    for x in [&mut *r, &mut back] {
        x.dig(3, 1, 0, 1, 9).unwrap().unwrap();
        x.flush().unwrap();
    }
    a.clear();
    b.clear();
    r.take_records(&mut a).unwrap();
    back.take_records(&mut b).unwrap();
    assert_eq!(a, b);
    assert_eq!(r.stats().unwrap().cluster, back.stats().unwrap().cluster);
}

#[derive(Default)]
struct Hook {
    signals: std::sync::atomic::AtomicUsize,
    resets: std::sync::atomic::AtomicUsize,
}

impl treasure_core::ReadyHook for Hook {
    fn signal(&self) {
        self.signals
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
    fn reset(&self) {
        self.resets
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

#[test]
fn readiness_follows_host_packets_not_digs() {
    use std::sync::atomic::Ordering::SeqCst;
    let hook = std::sync::Arc::new(Hook::default());
    let mut r = crowd(5, 1, 128);
    r.set_ready_hook(treasure_core::Method::Fd, hook.clone())
        .unwrap();
    assert_eq!(hook.signals.load(SeqCst), 0);
    // A dig makes records, not pollable packets.
    r.dig(1, 0, 0, 0, 1).unwrap().unwrap();
    r.flush().unwrap();
    assert_eq!(r.available_packets(), 0);
    assert_eq!(r.wait(None).unwrap(), 0, "nothing can arrive: no wait");
    assert_eq!(r.in_flight().unwrap(), 0);
    assert_eq!(hook.signals.load(SeqCst), 0);
    let mut out = Vec::new();
    r.take_records(&mut out).unwrap();
    assert_eq!(r.apply_records(&out, None).unwrap(), Applied::Digs(1));
    assert_eq!(hook.signals.load(SeqCst), 1);
    assert_eq!(r.available_packets(), 5);
    let mut buf = vec![0u8; 2 * PACKET_SIZE];
    assert_eq!(r.poll_into(&mut buf, 2).unwrap(), 2);
    assert_eq!(hook.resets.load(SeqCst), 0);
    let mut rest = Vec::new();
    assert_eq!(r.poll(usize::MAX, &mut rest).unwrap(), 3);
    assert_eq!(hook.resets.load(SeqCst), 1);
    assert_eq!(hook.signals.load(SeqCst), 1);
}
