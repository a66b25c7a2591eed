//! The public methods, in the contract's order (`docs/API.md`). Each checks
//! closed, then its arguments left to right, then ids against the state,
//! then (digs only) the seq bound and busy; a failing call changes nothing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::contract::checks::{
    check_capacity, check_coords, check_id, check_loot_entries, check_range, check_seq, record_xyz,
    XYZ,
};
use crate::contract::limits;
use crate::contract::{Arg, EntriesAt, Error, ErrorKind, Method};
use crate::readiness::ReadyHook;
use crate::records::{dig_records, move_records};
use crate::roll::{LootEntry, LootTable};
use crate::stats::{ClusterStats, Stats};
use crate::wire::SIZE;
use crate::world::Site;

use super::{OpenResolver, Resolver};

const PLAYER: Arg = Arg::Plain("player");

impl Resolver {
    /// `r:add_loot_table(id, entries)`.
    ///
    /// # Errors
    ///
    /// Closed, `id` out of range, invalid entries (see
    /// [`check_loot_entries`]), or an existing loot table `id`.
    pub fn add_loot_table(&mut self, id: u32, entries: &[LootEntry]) -> Result<(), Error> {
        let m = Method::AddLootTable;
        let open = self.open(m)?;
        check_id(m, Arg::Plain("id"), id)?;
        check_loot_entries(m, EntriesAt::Argument, entries)?;
        let sites = &mut open.settled().sites;
        if sites.has_table(id) {
            return Err(Error::new(m, ErrorKind::DuplicateLootTable(id)));
        }
        sites.insert_table(id, LootTable::new(entries));
        Ok(())
    }

    /// `r:add_site(id, x, y, z, loot_table_id, charges)`.
    ///
    /// # Errors
    ///
    /// Closed, an argument out of range, an existing site `id`, a block that
    /// holds a site, or an unknown loot table.
    pub fn add_site(
        &mut self,
        id: u32,
        x: i32,
        y: i32,
        z: i32,
        loot_table_id: u32,
        charges: u32,
    ) -> Result<(), Error> {
        let m = Method::AddSite;
        let open = self.open(m)?;
        check_id(m, Arg::Plain("id"), id)?;
        check_coords(m, XYZ, [x, y, z])?;
        let table_arg = Arg::Plain("loot_table_id");
        check_id(m, table_arg, loot_table_id)?;
        let s = &mut open.settled().sites;
        if s.contains(id) {
            return Err(Error::new(m, ErrorKind::DuplicateSite(id)));
        }
        if let Some(site) = s.at(x, y, z) {
            let site = site.id;
            let snapshot_site = None;
            let kind = ErrorKind::OccupiedBlock {
                snapshot_site,
                x,
                y,
                z,
                site,
            };
            return Err(Error::new(m, kind));
        }
        if !s.has_table(loot_table_id) {
            let kind = ErrorKind::UnknownLootTable {
                arg: table_arg,
                id: loot_table_id,
            };
            return Err(Error::new(m, kind));
        }
        let loot_table = loot_table_id;
        s.insert(Site {
            id,
            x,
            y,
            z,
            loot_table,
            charges,
        });
        Ok(())
    }

    /// `r:remove_site(id)`.
    ///
    /// # Errors
    ///
    /// Closed, `id` out of range, or no site `id`.
    pub fn remove_site(&mut self, id: u32) -> Result<(), Error> {
        let m = Method::RemoveSite;
        let open = self.open(m)?;
        check_id(m, Arg::Plain("id"), id)?;
        match open.settled().sites.remove(id) {
            Some(_) => Ok(()),
            None => Err(Error::new(m, ErrorKind::UnknownSite(id))),
        }
    }

    /// `r:join(player, x, y, z, party)` (the binding passes 0 for no party).
    ///
    /// # Errors
    ///
    /// Closed, an argument out of range, or a player that has joined.
    pub fn join(&mut self, player: u32, x: i32, y: i32, z: i32, party: u32) -> Result<(), Error> {
        let m = Method::Join;
        let open = self.open(m)?;
        check_id(m, PLAYER, player)?;
        check_coords(m, XYZ, [x, y, z])?;
        if open.players.contains(player) {
            return Err(Error::new(m, ErrorKind::AlreadyJoined(player)));
        }
        open.players_mut().join(player, x, y, z, party);
        Ok(())
    }

    /// `r:move(player, x, y, z)`.
    ///
    /// # Errors
    ///
    /// Closed, an argument out of range, or a player that has not joined.
    pub fn move_player(&mut self, player: u32, x: i32, y: i32, z: i32) -> Result<(), Error> {
        let m = Method::Move;
        let open = self.open(m)?;
        check_id(m, PLAYER, player)?;
        check_coords(m, XYZ, [x, y, z])?;
        if !open.players.contains(player) {
            return Err(Error::not_joined(m, PLAYER, player));
        }
        open.players_mut().move_to(player, x, y, z);
        Ok(())
    }

    /// `r:set_party(player, party)`.
    ///
    /// # Errors
    ///
    /// Closed, `player` out of range, or a player that has not joined.
    pub fn set_party(&mut self, player: u32, party: u32) -> Result<(), Error> {
        let m = Method::SetParty;
        let open = self.open(m)?;
        check_id(m, PLAYER, player)?;
        match open.players.get(player) {
            None => Err(Error::not_joined(m, PLAYER, player)),
            Some(p) if p.party == party => Ok(()),
            Some(_) => {
                open.players_mut().set_party(player, party);
                Ok(())
            }
        }
    }

    /// `r:leave(player)`.
    ///
    /// # Errors
    ///
    /// Closed, `player` out of range, or a player that has not joined.
    pub fn leave(&mut self, player: u32) -> Result<(), Error> {
        let m = Method::Leave;
        let open = self.open(m)?;
        check_id(m, PLAYER, player)?;
        if !open.players.contains(player) {
            return Err(Error::not_joined(m, PLAYER, player));
        }
        open.players_mut().leave(player);
        Ok(())
    }

    /// `r:move_batch(records)`: 16-byte records, all-or-nothing.
    ///
    /// # Errors
    ///
    /// Closed, a length that is not whole records, or the first record with
    /// a field out of range or a player that has not joined.
    pub fn move_batch(&mut self, records: &[u8]) -> Result<(), Error> {
        let m = Method::MoveBatch;
        let open = self.open(m)?;
        let recs = move_records(records)?;
        for (i, r) in recs.iter().enumerate() {
            let n = i + 1;
            let player = r.player.get();
            check_id(m, Arg::Record(n, "player"), player)?;
            check_coords(m, record_xyz(n), [r.x.get(), r.y.get(), r.z.get()])?;
            if !open.players.contains(player) {
                return Err(Error::not_joined(m, Arg::Record(n, "player"), player));
            }
        }
        if recs.is_empty() {
            return Ok(());
        }
        let players = open.players_mut();
        for r in recs {
            players.move_to(r.player.get(), r.x.get(), r.y.get(), r.z.get());
        }
        Ok(())
    }

    /// `r:dig(player, x, y, z, t_us)`: `Ok(Some(seq))`, or `Ok(None)` when busy.
    ///
    /// # Errors
    ///
    /// Closed, an argument out of range, a player that has not joined, the
    /// seq past 2^53-1, or a worker panic met while deciding busy.
    pub fn dig(
        &mut self,
        player: u32,
        x: i32,
        y: i32,
        z: i32,
        t_us: u64,
    ) -> Result<Option<u64>, Error> {
        let m = Method::Dig;
        let open = self.open(m)?;
        check_id(m, PLAYER, player)?;
        check_coords(m, XYZ, [x, y, z])?;
        check_range(m, Arg::Plain("t_us"), limits::T_US, t_us)?;
        let view = open
            .players
            .get(player)
            .ok_or_else(|| Error::not_joined(m, PLAYER, player))?;
        let seq = open.counters.digs + 1;
        check_seq(m, seq, 1)?;
        let max_pending = open.options.max_pending_packets;
        let later = open.taken_later();
        if open
            .stream
            .is_busy(m, max_pending, later, &mut open.counters)?
        {
            open.count_busy();
            return Ok(None);
        }
        open.stream.open_accepted = Instant::now();
        open.accept(view, x, y, z, t_us);
        open.stream.submit(&open.players, &mut open.counters);
        open.stream.end_call();
        Ok(Some(seq))
    }

    /// `r:dig_batch(records)`: 24-byte records, all-or-nothing. Returns
    /// `Ok(Some((first_seq, count)))`, or `Ok(None)` when busy (checked once,
    /// before the first record, also for an empty batch).
    ///
    /// # Errors
    ///
    /// As [`dig`](Resolver::dig), for the first record that breaks a rule
    /// (`records[i].<field>`), or a length that is not whole records.
    pub fn dig_batch(&mut self, records: &[u8]) -> Result<Option<(u64, u64)>, Error> {
        let m = Method::DigBatch;
        let open = self.open(m)?;
        let recs = dig_records(records)?;
        let mut views = std::mem::take(&mut open.scratch_views);
        views.clear();
        let validated = (|| {
            for (i, r) in recs.iter().enumerate() {
                let n = i + 1;
                let player = r.player.get();
                check_id(m, Arg::Record(n, "player"), player)?;
                check_coords(m, record_xyz(n), [r.x.get(), r.y.get(), r.z.get()])?;
                check_range(m, Arg::Record(n, "t_us"), limits::T_US, r.t_us.get())?;
                let v = open
                    .players
                    .get(player)
                    .ok_or_else(|| Error::not_joined(m, Arg::Record(n, "player"), player))?;
                views.push(v);
            }
            Ok(())
        })();
        let first = open.counters.digs + 1;
        let max_pending = open.options.max_pending_packets;
        let later = open.taken_later();
        let result = validated
            .and_then(|()| check_seq(m, first, recs.len() as u64))
            .and_then(|()| {
                open.stream
                    .is_busy(m, max_pending, later, &mut open.counters)
            })
            .map(|busy| {
                if busy {
                    open.count_busy();
                    return None;
                }
                open.stream.open_accepted = Instant::now();
                open.accept_batch(recs, &views);
                open.stream.submit(&open.players, &mut open.counters);
                open.stream.end_call();
                Some((first, recs.len() as u64))
            });
        open.scratch_views = views;
        result
    }

    /// Packets pollable now without blocking (0 when closed). Never blocks.
    pub fn available_packets(&mut self) -> usize {
        match self.open.as_deref_mut() {
            Some(open) => {
                open.stream.drain(&mut open.counters);
                open.available() as usize
            }
            None => 0,
        }
    }

    /// `r:poll_into(buf, max)`: copies up to `max` packets (`n * 128` bytes)
    /// to the start of `out`, returns `n`. Never blocks.
    ///
    /// # Errors
    ///
    /// Closed, a worker panic, or `max * 128` not fitting in `out` (checked
    /// before anything is copied).
    pub fn poll_into(&mut self, out: &mut [u8], max: usize) -> Result<usize, Error> {
        let m = Method::PollInto;
        let open = self.open(m)?;
        check_capacity(m, out.len(), SIZE, max)?;
        open.stream.release_lent(); // issue 16: the previous view ends
        let n = (max as u64).min(open.available()) as usize;
        open.copy_out(n, &mut out[..n * SIZE]);
        open.advance(n);
        Ok(n)
    }

    /// The first half of an all-or-nothing poll: copies up to `max`
    /// pollable packets to the start of `out` *without* taking them off the
    /// stream, and returns how many. A caller that must still allocate or
    /// convert before its call can succeed (the Lua binding's `poll` builds
    /// a Lua string) does that next and then calls [`consume`] with the
    /// count; if it fails instead, it simply does not consume, and no packet
    /// is lost. `method` is the API function the caller is serving, for the
    /// error messages. Never blocks.
    ///
    /// # Errors
    ///
    /// As [`poll_into`], reported for `method`.
    ///
    /// [`poll_into`]: Resolver::poll_into
    /// [`consume`]: Resolver::consume
    pub fn peek_into(
        &mut self,
        method: Method,
        out: &mut [u8],
        max: usize,
    ) -> Result<usize, Error> {
        let open = self.open(method)?;
        check_capacity(method, out.len(), SIZE, max)?;
        open.stream.release_lent(); // issue 16: the previous view ends
        let n = (max as u64).min(open.available()) as usize;
        open.copy_out(n, &mut out[..n * SIZE]);
        Ok(n)
    }

    /// The second half of an all-or-nothing poll: takes the `n` packets a
    /// [`peek_into`] just copied off the stream. `n` must be at most what
    /// that `peek_into` returned, with no other call in between (then they
    /// are the same packets: only polling removes packets, and new ones are
    /// appended behind them).
    ///
    /// # Panics
    ///
    /// If the resolver is closed or fewer than `n` packets are pollable (the
    /// caller broke the rule above).
    ///
    /// [`peek_into`]: Resolver::peek_into
    pub fn consume(&mut self, n: usize) {
        let open = self
            .open
            .as_deref_mut()
            .expect("consume on a closed resolver");
        let available = open.available();
        assert!(
            n as u64 <= available,
            "consume({n}) with {available} packets pollable"
        );
        open.advance(n);
    }

    /// `r:poll(max)`: appends up to `max` packets to `out` (use `usize::MAX`
    /// for "all available"); returns how many. Never blocks.
    ///
    /// # Errors
    ///
    /// Closed, or a worker panic.
    pub fn poll(&mut self, max: usize, out: &mut Vec<u8>) -> Result<usize, Error> {
        let open = self.open(Method::Poll)?;
        open.stream.release_lent(); // issue 16: the previous view ends
        let n = (max as u64).min(open.available()) as usize;
        let start = out.len();
        out.resize(start + n * SIZE, 0);
        open.copy_out(n, &mut out[start..]);
        open.advance(n);
        Ok(n)
    }

    /// `r:flush()`: waits until every accepted dig's packets are pollable.
    ///
    /// # Errors
    ///
    /// Closed, or a worker panic.
    pub fn flush(&mut self) -> Result<(), Error> {
        let m = Method::Flush;
        let open = self.open(m)?;
        open.stream.wait_all(&mut open.counters);
        open.stream.check_failed(m)?;
        open.cut_resolved_calls();
        Ok(())
    }

    /// `r:wait([timeout_us])`: blocks until at least one packet is pollable,
    /// and returns how many are (as [`available_packets`]). Returns at once
    /// when some already are, or when no dig is in flight (then no packet can
    /// arrive before the caller's next `dig`/`dig_batch`); otherwise after at
    /// most `timeout` (`None`: until the next in-order chunk is resolved,
    /// which every dig in flight eventually is). A game loop that has polled
    /// everything calls this instead of sleeping a fixed interval. The
    /// thread first stays on the CPU for up to `Options::wait_spin_us`,
    /// yielding it to any runnable thread, then parks on the result channel:
    /// a worker publishing the next packets wakes it, and it burns no CPU
    /// meanwhile.
    ///
    /// # Errors
    ///
    /// Closed, or a worker panic.
    ///
    /// [`available_packets`]: Resolver::available_packets
    pub fn wait(&mut self, timeout: Option<Duration>) -> Result<usize, Error> {
        let m = Method::Wait;
        let open = self.open(m)?;
        // A deadline past Instant's range is the same as none.
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        // A cluster resolver's packets come from the caller's own
        // `apply_records`: none can arrive while it waits.
        if open.cluster.is_none() {
            open.stream.wait_for_packets(deadline, &mut open.counters);
            open.stream.check_failed(m)?;
        }
        Ok(open.available() as usize)
    }

    /// `r:stats()`. Never waits for a worker: `packets` and
    /// `pending_packets` count resolved packets (exact for every accepted
    /// dig after [`flush`]); `found`, `empty` and `nothing` count every
    /// accepted dig (the ruler's queue is settled here, see `ruler.rs`).
    ///
    /// # Errors
    ///
    /// Closed, or a worker panic.
    ///
    /// [`flush`]: Resolver::flush
    pub fn stats(&mut self) -> Result<Stats, Error> {
        let open = self.open(Method::Stats)?;
        let sites = open.settled().sites.len() as u64;
        let q = open.stream.shared.histogram.quantiles();
        Ok(Stats {
            counters: open.counters,
            players: open.players.len() as u64,
            sites,
            pending_packets: match open.cluster.as_deref() {
                Some(c) => c.incoming.queue.pending(),
                None => open.stream.resolved_pending(),
            },
            cluster: open.cluster.as_deref().map(|c| ClusterStats {
                shard: c.shard,
                shards: c.shards,
                next_host_seq: c.incoming.next_host_seq(),
                counters: c.incoming.counters,
                pending_records: c.outgoing.pending_records(),
                log_position: c.incoming.log_position(),
            }),
            inflight_digs: open.stream.in_flight(),
            resolve_buckets: open.stream.shared.buckets.snapshot(),
            resolve_p50_us: q.p50_us,
            resolve_p99_us: q.p99_us,
            resolve_p999_us: q.p999_us,
            resolve_max_us: q.max_us,
            inflight_chunks: open.stream.inflight_chunks() as u64,
            ready_chunks: open.stream.ready_chunks() as u64,
            workers: open.stream.config.workers as u64,
        })
    }

    /// `r:in_flight()`: accepted digs whose packets are not yet all
    /// pollable (0: everything submitted so far is ready, `flush` would
    /// return at once). Never blocks.
    ///
    /// # Errors
    ///
    /// Closed, or a worker panic.
    pub fn in_flight(&mut self) -> Result<u64, Error> {
        Ok(self.open(Method::InFlight)?.stream.in_flight())
    }

    /// Registers the readiness hook of `r:fd()` (see [`ReadyHook`]) and
    /// signals it at once if packets are pollable. `method` names the API
    /// function for the closed error. The hook is dropped on close.
    ///
    /// # Errors
    ///
    /// Closed, or a worker panic.
    pub fn set_ready_hook(
        &mut self,
        method: Method,
        hook: Arc<dyn ReadyHook>,
    ) -> Result<(), Error> {
        let open = self.open(method)?;
        open.stream.shared.ready.install(hook);
        open.settle_ready();
        Ok(())
    }
}

impl OpenResolver {
    /// Packets pollable now: the stream's, or in cluster mode the host
    /// packets `apply_records` made.
    pub(super) fn available(&self) -> u64 {
        match self.cluster.as_deref() {
            Some(c) => c.incoming.queue.pending(),
            None => self.stream.available(),
        }
    }

    /// Writes the next `n <= available()` packets into `dst`, leaving them.
    pub(super) fn copy_out(&self, n: usize, dst: &mut [u8]) {
        match self.cluster.as_deref() {
            Some(c) => c.incoming.queue.copy_out(n, dst),
            None => self.stream.copy_out(n, dst),
        }
    }

    /// Takes the next `n <= available()` packets, then settles `r:fd()`.
    pub(super) fn advance(&mut self, n: usize) {
        match self.cluster.as_deref_mut() {
            Some(c) => c.incoming.queue.advance(n),
            None => self.stream.advance(n),
        }
        self.settle_ready();
    }

    /// After packets were taken or added: `r:fd()` readable exactly when
    /// packets are pollable (see `Stream::settle_ready`; in cluster mode no
    /// worker makes packets pollable, so it is signalled or reset here).
    pub(super) fn settle_ready(&mut self) {
        match self.cluster.as_deref() {
            None => self.stream.settle_ready(&mut self.counters),
            Some(c) => {
                let ready = &self.stream.shared.ready;
                if !ready.installed() {
                    return;
                }
                if c.incoming.queue.pending() > 0 {
                    ready.ensure_signalled();
                } else {
                    ready.reset();
                }
            }
        }
    }
}
