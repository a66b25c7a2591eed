//! The brute-force reference resolver that the model test
//! (`tests/model.rs`) and the `call_sequence` fuzz target (which includes
//! this file by path) check `Resolver` against. Written from docs/API.md and
//! docs/PACKET.md alone, sharing no code with the core: players and parties
//! in a map scanned in full for every FOUND dig, sites and charges, loot
//! tables, the pending packet queue, the counters, the exact error texts,
//! and its own byte-by-byte packet encoder ([`encode`]).
#![allow(dead_code)] // each user drives a part of it

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use treasure_core::wire::Fields;
use treasure_core::{LootEntry, Options, Resolver};

pub const CMIN: i32 = -1_048_576;
pub const CMAX: i32 = 1_048_575;
pub const SAFE: u64 = (1 << 53) - 1;
pub const U32M: u64 = u32::MAX as u64;

pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

pub fn dist2(a: (i32, i32, i32), b: (i32, i32, i32)) -> u64 {
    let d = |p: i32, q: i32| (p as i64 - q as i64).unsigned_abs().pow(2);
    d(a.0, b.0) + d(a.1, b.1) + d(a.2, b.2)
}

pub type R<T> = Result<T, String>;

pub fn range(m: &str, arg: &str, got: i128, lo: i128, hi: i128) -> R<()> {
    if got < lo || got > hi {
        Err(format!(
            "treasure: {m}: {arg} must be an integer in [{lo}, {hi}], got {got}"
        ))
    } else {
        Ok(())
    }
}
pub fn id(m: &str, arg: &str, v: u32) -> R<()> {
    range(m, arg, v as i128, 1, U32M as i128)
}
pub fn coords(m: &str, pre: &str, x: i32, y: i32, z: i32) -> R<()> {
    for (n, v) in [("x", x), ("y", y), ("z", z)] {
        range(
            m,
            &format!("{pre}{n}"),
            v as i128,
            CMIN as i128,
            CMAX as i128,
        )?;
    }
    Ok(())
}

#[derive(Clone, Copy, Debug)]
pub struct Player {
    pub pos: (i32, i32, i32),
    pub party: u32,
}

#[derive(Clone, Copy, Debug)]
pub struct Site {
    pub pos: (i32, i32, i32),
    pub table: u32,
    pub charges: u32,
}

#[derive(Default, Debug, PartialEq)]
pub struct Counters {
    pub digs: u64,
    pub packets: u64,
    pub found: u64,
    pub empty: u64,
    pub nothing: u64,
    pub rejected: u64,
    pub busy: u64,
}

pub struct Model {
    pub seed: u64,
    pub aoi: u64,
    pub reach: u64,
    pub max_pending: u64,
    pub players: BTreeMap<u32, Player>,
    pub sites: BTreeMap<u32, Site>,
    pub tables: BTreeMap<u32, Vec<LootEntry>>,
    pub next_seq: u64,
    pub c: Counters,
    /// Packets of accepted digs not yet polled, in stream order.
    pub queue: VecDeque<Fields>,
    pub closed: bool,
}

impl Model {
    pub fn new(o: &Options) -> R<Model> {
        let m = "new";
        range(m, "opts.seed", o.seed as i128, 0, SAFE as i128)?;
        range(m, "opts.aoi_radius", o.aoi_radius as i128, 0, 1_048_576)?;
        range(m, "opts.reach", o.reach as i128, 0, 1_048_576)?;
        range(m, "opts.workers", o.workers as i128, 0, 256)?;
        range(
            m,
            "opts.max_pending_packets",
            o.max_pending_packets as i128,
            1,
            SAFE as i128,
        )?;
        Ok(Model {
            seed: o.seed,
            aoi: o.aoi_radius as u64,
            reach: o.reach as u64,
            max_pending: o.max_pending_packets,
            players: BTreeMap::new(),
            sites: BTreeMap::new(),
            tables: BTreeMap::new(),
            next_seq: 1,
            c: Counters::default(),
            queue: VecDeque::new(),
            closed: false,
        })
    }

    pub fn open(&self, m: &str) -> R<()> {
        if self.closed {
            Err(format!("treasure: {m}: resolver is closed"))
        } else {
            Ok(())
        }
    }

    /// `close()`: every later call fails with `resolver is closed` and
    /// changes nothing; closing again does nothing.
    pub fn close(&mut self) {
        self.closed = true;
        self.queue.clear();
    }

    /// The seq rule: `digs` more digs (0 for an empty batch) must not need a
    /// seq past 2^53-1; `got` is the seq the last one would take.
    pub fn seq_room(&self, m: &str, digs: u64) -> R<()> {
        let last = self.next_seq + digs.saturating_sub(1);
        if digs > 0 && last > SAFE {
            return Err(format!(
                "treasure: {m}: seq must stay at most {SAFE}, got {last}"
            ));
        }
        Ok(())
    }

    pub fn joined(&self, m: &str, arg: &str, p: u32) -> R<Player> {
        self.players
            .get(&p)
            .copied()
            .ok_or_else(|| format!("treasure: {m}: {arg} must have joined, got {p}"))
    }

    pub fn add_loot_table(&mut self, tid: u32, es: &[LootEntry]) -> R<()> {
        let m = "add_loot_table";
        self.open(m)?;
        id(m, "id", tid)?;
        if es.is_empty() {
            return Err(format!(
                "treasure: {m}: entries must be a non-empty array of tables, got table"
            ));
        }
        let mut total = 0u64;
        for (i, e) in es.iter().enumerate() {
            let n = i + 1;
            id(m, &format!("entries[{n}].item"), e.item)?;
            id(m, &format!("entries[{n}].weight"), e.weight)?;
            if e.min > e.max {
                return Err(format!(
                    "treasure: {m}: entries[{n}].min must be <= max, got {} > {}",
                    e.min, e.max
                ));
            }
            total += e.weight as u64;
        }
        if total > U32M {
            return Err(format!(
                "treasure: {m}: entries total weight must be <= 4294967295, got {total}"
            ));
        }
        if self.tables.contains_key(&tid) {
            return Err(format!(
                "treasure: {m}: id must not be an existing loot table, got {tid}"
            ));
        }
        self.tables.insert(tid, es.to_vec());
        Ok(())
    }

    pub fn add_site(
        &mut self,
        sid: u32,
        x: i32,
        y: i32,
        z: i32,
        table: u32,
        charges: u32,
    ) -> R<()> {
        let m = "add_site";
        self.open(m)?;
        id(m, "id", sid)?;
        coords(m, "", x, y, z)?;
        id(m, "loot_table_id", table)?;
        if self.sites.contains_key(&sid) {
            return Err(format!(
                "treasure: {m}: id must not be an existing site, got {sid}"
            ));
        }
        if let Some((other, _)) = self.sites.iter().find(|(_, s)| s.pos == (x, y, z)) {
            return Err(format!(
                "treasure: {m}: block must not hold a site already, got {x}, {y}, {z} (site {other})"
            ));
        }
        if !self.tables.contains_key(&table) {
            return Err(format!(
                "treasure: {m}: loot_table_id must be an existing loot table, got {table}"
            ));
        }
        self.sites.insert(
            sid,
            Site {
                pos: (x, y, z),
                table,
                charges,
            },
        );
        Ok(())
    }

    pub fn remove_site(&mut self, sid: u32) -> R<()> {
        let m = "remove_site";
        self.open(m)?;
        id(m, "id", sid)?;
        match self.sites.remove(&sid) {
            Some(_) => Ok(()),
            None => Err(format!(
                "treasure: {m}: id must be an existing site, got {sid}"
            )),
        }
    }

    pub fn join(&mut self, p: u32, x: i32, y: i32, z: i32, party: u32) -> R<()> {
        let m = "join";
        self.open(m)?;
        id(m, "player", p)?;
        coords(m, "", x, y, z)?;
        if self.players.contains_key(&p) {
            return Err(format!(
                "treasure: {m}: player must not have joined already, got {p}"
            ));
        }
        self.players.insert(
            p,
            Player {
                pos: (x, y, z),
                party,
            },
        );
        Ok(())
    }

    pub fn move_player(&mut self, p: u32, x: i32, y: i32, z: i32) -> R<()> {
        let m = "move";
        self.open(m)?;
        id(m, "player", p)?;
        coords(m, "", x, y, z)?;
        self.joined(m, "player", p)?;
        self.players.get_mut(&p).unwrap().pos = (x, y, z);
        Ok(())
    }

    pub fn set_party(&mut self, p: u32, party: u32) -> R<()> {
        let m = "set_party";
        self.open(m)?;
        id(m, "player", p)?;
        self.joined(m, "player", p)?;
        self.players.get_mut(&p).unwrap().party = party;
        Ok(())
    }

    pub fn leave(&mut self, p: u32) -> R<()> {
        let m = "leave";
        self.open(m)?;
        id(m, "player", p)?;
        self.joined(m, "player", p)?;
        self.players.remove(&p);
        Ok(())
    }

    pub fn pending(&self) -> u64 {
        self.queue.len() as u64
    }

    /// The contract's busy rule; counts the refusal.
    pub fn busy(&mut self) -> bool {
        let b = self.pending() > self.max_pending;
        if b {
            // A statistic: saturates at 2^53-1.
            self.c.busy = (self.c.busy + 1).min(SAFE);
        }
        b
    }

    pub fn dig(&mut self, p: u32, x: i32, y: i32, z: i32, t: u64) -> R<Option<u64>> {
        let m = "dig";
        self.open(m)?;
        id(m, "player", p)?;
        coords(m, "", x, y, z)?;
        range(m, "t_us", t as i128, 0, SAFE as i128)?;
        self.joined(m, "player", p)?;
        self.seq_room(m, 1)?;
        if self.busy() {
            return Ok(None);
        }
        Ok(Some(self.resolve(p, (x, y, z), t)))
    }

    /// One accepted dig: kind, charges, roll, and its packets (recipients by
    /// a scan of every player).
    pub fn resolve(&mut self, p: u32, b: (i32, i32, i32), t_us: u64) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.c.digs += 1;
        let me = self.players[&p];
        let d = dist2(me.pos, b);
        let sat = |v: u64| v.min(U32M) as u32;
        let mut f = Fields {
            seq,
            t_us,
            finder: p,
            recipient: p,
            party: me.party,
            x: b.0,
            y: b.1,
            z: b.2,
            flags: 1,
            dist2: sat(d),
            ..Fields::default()
        };
        let site = self.sites.iter().find(|(_, s)| s.pos == b).map(|(&k, _)| k);
        if d > self.reach * self.reach {
            f.kind = 4;
            self.c.rejected += 1;
        } else if let Some(sid) = site.filter(|s| self.sites[s].charges == 0) {
            f.kind = 2;
            f.site_id = sid;
            self.c.empty += 1;
        } else if let Some(sid) = site {
            let s = self.sites.get_mut(&sid).unwrap();
            let before = s.charges;
            s.charges = before.checked_sub(1).expect("charges never negative");
            let roll = splitmix64(self.seed ^ ((sid as u64) << 32) ^ before as u64);
            let es = &self.tables[&s.table];
            let total: u64 = es.iter().map(|e| e.weight as u64).sum();
            let pick = roll % total;
            let mut run = 0u64;
            let e = es
                .iter()
                .find(|e| {
                    run += e.weight as u64;
                    run > pick
                })
                .expect("pick < total");
            f.kind = 1;
            f.site_id = sid;
            f.item = e.item;
            f.quantity = (e.min as u64 + (roll >> 40) % (e.max as u64 - e.min as u64 + 1)) as u16;
            f.rarity = e.rarity;
            f.charges_left = before - 1;
            f.roll = roll;
            self.c.found += 1;
            let last = if before == 1 { 4 } else { 0 };
            let aoi2 = self.aoi * self.aoi;
            let mut rcpt = BTreeSet::new();
            rcpt.insert(p);
            for (&q, ql) in &self.players {
                if dist2(ql.pos, b) <= aoi2 || (me.party != 0 && ql.party == me.party) {
                    rcpt.insert(q);
                }
            }
            for q in rcpt {
                let ql = self.players[&q];
                f.recipient = q;
                f.flags = last
                    | if q == p {
                        1
                    } else if me.party != 0 && ql.party == me.party {
                        2
                    } else {
                        0
                    };
                f.dist2 = sat(dist2(ql.pos, b));
                self.queue.push_back(f);
                self.c.packets = (self.c.packets + 1).min(SAFE);
            }
            return seq;
        } else {
            f.kind = 3;
            self.c.nothing += 1;
        }
        self.queue.push_back(f);
        self.c.packets = (self.c.packets + 1).min(SAFE);
        seq
    }

    /// The player id and block of batch record `n` (1-based), range-checked
    /// as both batch calls check them first (`records[n].player`, `.x`...).
    fn record_head(&self, m: &str, n: usize, r: &[u8]) -> R<(u32, (i32, i32, i32))> {
        let p = u32::from_le_bytes(r[0..4].try_into().unwrap());
        let x = i32::from_le_bytes(r[4..8].try_into().unwrap());
        let y = i32::from_le_bytes(r[8..12].try_into().unwrap());
        let z = i32::from_le_bytes(r[12..16].try_into().unwrap());
        let pre = format!("records[{n}].");
        id(m, &format!("{pre}player"), p)?;
        coords(m, &pre, x, y, z)?;
        Ok((p, (x, y, z)))
    }

    pub fn dig_batch(&mut self, recs: &[u8]) -> R<Option<(u64, u64)>> {
        let m = "dig_batch";
        self.open(m)?;
        if !recs.len().is_multiple_of(24) {
            return Err(format!(
                "treasure: {m}: records length must be a multiple of 24, got {}",
                recs.len()
            ));
        }
        let mut ok = Vec::new();
        for (i, r) in recs.chunks_exact(24).enumerate() {
            let n = i + 1;
            let (p, b) = self.record_head(m, n, r)?;
            let t = u64::from_le_bytes(r[16..24].try_into().unwrap());
            range(m, &format!("records[{n}].t_us"), t as i128, 0, SAFE as i128)?;
            self.joined(m, &format!("records[{n}].player"), p)?;
            ok.push((p, b, t));
        }
        self.seq_room(m, ok.len() as u64)?;
        if self.busy() {
            return Ok(None);
        }
        let first = self.next_seq;
        for (p, b, t) in &ok {
            self.resolve(*p, *b, *t);
        }
        Ok(Some((first, ok.len() as u64)))
    }

    pub fn move_batch(&mut self, recs: &[u8]) -> R<()> {
        let m = "move_batch";
        self.open(m)?;
        if !recs.len().is_multiple_of(16) {
            return Err(format!(
                "treasure: {m}: records length must be a multiple of 16, got {}",
                recs.len()
            ));
        }
        let mut ok = Vec::new();
        for (i, r) in recs.chunks_exact(16).enumerate() {
            let n = i + 1;
            let (p, pos) = self.record_head(m, n, r)?;
            self.joined(m, &format!("records[{n}].player"), p)?;
            ok.push((p, pos));
        }
        for (p, pos) in ok {
            self.players.get_mut(&p).unwrap().pos = pos;
        }
        Ok(())
    }
}

/// Moves `r` and its model `m` close to the seq limit: `r` is replaced by
/// the restore of its own snapshot edited to `next_seq = next` (the skipped
/// digs counted as rejected) and the `packets` and `busy` counters raised to
/// at least `packets` and `busy`, so sequences reach the 2^53 refusal and
/// the counters' saturation. Both must be open; `next` must not be below
/// the current next seq.
pub fn jump_near_seq_limit(r: &mut Resolver, m: &mut Model, next: u64, packets: u64, busy: u64) {
    let mut s = r.snapshot().expect("snapshot of an open resolver");
    assert_eq!(
        s.next_seq, m.next_seq,
        "model and resolver agree on next_seq"
    );
    let skipped = next - s.next_seq;
    s.next_seq = next;
    s.counters.digs += skipped;
    s.counters.rejected += skipped;
    s.counters.packets = s.counters.packets.max(packets);
    s.counters.busy = s.counters.busy.max(busy);
    *r = Resolver::restore(s.clone()).expect("restore of an edited own snapshot");
    m.next_seq = next;
    m.c.digs += skipped;
    m.c.rejected += skipped;
    m.c.packets = s.counters.packets;
    m.c.busy = s.counters.busy;
}

impl Counters {
    /// digs, packets, found, empty, nothing, rejected, busy.
    pub fn as_array(&self) -> [u64; 7] {
        [
            self.digs,
            self.packets,
            self.found,
            self.empty,
            self.nothing,
            self.rejected,
            self.busy,
        ]
    }
}

/// The packet's 128 bytes as docs/PACKET.md lays them out, written field by
/// field here (not with the core's encoder), CRC-32C over bytes 0..124.
pub fn encode(f: &Fields) -> [u8; 128] {
    let mut b = [0u8; 128];
    b[0..4].copy_from_slice(b"TRSR");
    b[4] = 1;
    b[6] = f.kind;
    b[7] = f.flags;
    b[8..16].copy_from_slice(&f.seq.to_le_bytes());
    b[16..24].copy_from_slice(&f.t_us.to_le_bytes());
    b[24..28].copy_from_slice(&f.site_id.to_le_bytes());
    b[28..32].copy_from_slice(&f.finder.to_le_bytes());
    b[32..36].copy_from_slice(&f.recipient.to_le_bytes());
    b[36..40].copy_from_slice(&f.party.to_le_bytes());
    b[40..44].copy_from_slice(&f.x.to_le_bytes());
    b[44..48].copy_from_slice(&f.y.to_le_bytes());
    b[48..52].copy_from_slice(&f.z.to_le_bytes());
    b[52..56].copy_from_slice(&f.item.to_le_bytes());
    b[56..58].copy_from_slice(&f.quantity.to_le_bytes());
    b[58] = f.rarity;
    b[60..64].copy_from_slice(&f.charges_left.to_le_bytes());
    b[64..72].copy_from_slice(&f.roll.to_le_bytes());
    b[72..76].copy_from_slice(&f.dist2.to_le_bytes());
    let c = crc32c::crc32c(&b[..124]);
    b[124..].copy_from_slice(&c.to_le_bytes());
    b
}
