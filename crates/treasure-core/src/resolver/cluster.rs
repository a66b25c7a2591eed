//! Cluster mode's methods (docs/API.md, issue 17): `set_host`,
//! `take_records`, `apply_records`. Each checks in the contract's order:
//! closed, then cluster mode, then its arguments, then the state.
//!
//! Where a dig's recipients go is decided by the worker that resolves it,
//! from the player snapshot of the dig's chunk (`Outbox` keeps each
//! packet's host): that snapshot is the one copy of the players as of the
//! dig, and the worker drops it before it publishes, so a later `set_host`
//! (copy-on-write) never changes an earlier dig's records and never forces
//! a copy of the players to be kept until the records are taken.

use crate::cluster::incoming::Applied;
use crate::contract::checks::{check_id, check_range};
use crate::contract::limits;
use crate::contract::{Arg, Error, Method};

use super::{Cluster, OpenResolver, Resolver};

const PLAYER: Arg = Arg::Plain("player");

impl OpenResolver {
    /// The cluster state, or `resolver has no shard (...)` for `method`.
    fn cluster(&mut self, method: Method) -> Result<&mut Cluster, Error> {
        self.cluster
            .as_deref_mut()
            .ok_or(Error::not_cluster(method))
    }
}

impl Resolver {
    /// `(shard, shards)` when made with the shard options (or restored
    /// from such a snapshot); `None` otherwise and when closed. A binding
    /// reads `shards` to check a `host` argument before converting it.
    pub fn shard(&self) -> Option<(u16, u16)> {
        let c = self.open.as_deref()?.cluster.as_deref()?;
        Some((c.shard, c.shards))
    }

    /// `r:set_host(player, host)`: `player` (joined) is connected to shard
    /// `host` from now on; digs already accepted keep the host they saw.
    ///
    /// # Errors
    ///
    /// Closed, not cluster mode, `player` out of range or not joined, or
    /// `host` not in `[0, shards - 1]`.
    pub fn set_host(&mut self, player: u32, host: u16) -> Result<(), Error> {
        let m = Method::SetHost;
        let open = self.open(m)?;
        let shards = open.cluster(m)?.shards;
        check_id(m, PLAYER, player)?;
        if !open.players.contains(player) {
            return Err(Error::not_joined(m, PLAYER, player));
        }
        check_range(m, Arg::Plain("host"), limits::shard_of(shards), host)?;
        if open.players.host(player) != Some(host) {
            open.players_mut().set_host(player, host);
        }
        Ok(())
    }

    /// `r:take_records()`: appends the records of every wholly resolved
    /// dig call, in dig order, to `out` and returns how many (never
    /// blocks; [`flush`](Resolver::flush) first to get every accepted
    /// dig's).
    ///
    /// # Errors
    ///
    /// Closed, a worker panic, or not cluster mode.
    pub fn take_records(&mut self, out: &mut Vec<u8>) -> Result<usize, Error> {
        let m = Method::TakeRecords;
        let open = self.open(m)?;
        let c = open.cluster(m)?;
        let n = c.outgoing.take(out);
        c.incoming.counters.records_out += n;
        Ok(n as usize)
    }

    /// Undoes the [`take_records`](Resolver::take_records) that just
    /// returned `n` records as `bytes` (with no other call in between): a
    /// binding that failed to hand them to its caller puts them back, so the
    /// call changed nothing. Nothing happens on a closed or plain resolver.
    pub fn untake_records(&mut self, bytes: Vec<u8>, n: usize) {
        let Some(c) = self
            .open
            .as_deref_mut()
            .and_then(|o| o.cluster.as_deref_mut())
        else {
            return;
        };
        c.outgoing.untake(bytes, n as u64);
        c.incoming.counters.records_out -= n as u64;
    }

    /// True when `player` has joined (false when closed): lets a binding
    /// check a player before it converts the next argument, in the
    /// contract's order.
    pub fn has_joined(&self, player: u32) -> bool {
        self.open
            .as_deref()
            .is_some_and(|o| o.players.contains(player))
    }

    /// `r:apply_records(bytes [, log_position])`: applies the records
    /// addressed to this shard, whole or nothing (see
    /// `crate::cluster::incoming`), making host packets pollable.
    ///
    /// # Errors
    ///
    /// Closed, a worker panic, not cluster mode, `log_position` out of
    /// range, an invalid record, or the host seq past 2^53-1.
    pub fn apply_records(
        &mut self,
        bytes: &[u8],
        log_position: Option<u64>,
    ) -> Result<Applied, Error> {
        let m = Method::ApplyRecords;
        let open = self.open(m)?;
        let max_pending = open.options.max_pending_packets;
        let Some(c) = open.cluster.as_deref_mut() else {
            return Err(Error::not_cluster(m));
        };
        let applied = c
            .incoming
            .apply(bytes, log_position, max_pending, &mut open.counters)?;
        if matches!(applied, Applied::Digs(_)) {
            open.settle_ready();
        }
        Ok(applied)
    }
}
