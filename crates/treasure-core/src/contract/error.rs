//! The one error type, whose `Display` is *exactly* the message text of
//! `docs/API.md` (`treasure: <method>: <arg> <rule>, got <v>`, without any
//! Lua position prefix): the binding raises `err.to_string()` as is, and the
//! legacy Lua resolver and the native one report byte-identical errors.
//!
//! Values the core prints are integers ([`Got::Int`]: the exact decimal,
//! which is also what LuaJIT's `tostring` prints for an integer-valued
//! double below 2^53). The binding describes a Lua value itself
//! ([`Got::Shown`]: `tostring(v)` for numbers, the type name otherwise) and
//! passes that text in; every rule's wording is here.

use std::fmt;

use super::cluster::RecordReason;
use super::limits::{Range, MAX_SAFE, SNAPSHOT_VERSION, TOTAL_WEIGHT_MAX};
use super::names::{Arg, EntriesAt, Expected, Got, Method, OptionsAt, SnapshotPath};
use crate::wire::WireError;

/// What went wrong, independent of the method. Each variant's doc is its
/// message text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// `<arg> must be an integer in [lo, hi], got <v>`
    OutOfRange { arg: Arg, range: Range, got: Got },
    /// `<arg> must be <expected>, got <got>` (or without `, got ...` when
    /// `got` is `None`)
    WrongType {
        arg: Arg,
        expected: Expected,
        got: Option<String>,
    },
    /// `<arg> has unknown key '<key>'`
    UnknownKey { arg: Arg, key: String },
    /// `<entries> must be a non-empty array of tables, got table`
    EmptyEntries { at: EntriesAt },
    /// `<entries>[i].min must be <= max, got min > max`
    MinGreaterThanMax {
        at: EntriesAt,
        entry: usize,
        min: u16,
        max: u16,
    },
    /// `<entries> total weight must be <= 4294967295, got total`
    TotalWeight { at: EntriesAt, total: u64 },
    /// `id must not be an existing loot table, got id`
    DuplicateLootTable(u32),
    /// `id must not be an existing site, got id`
    DuplicateSite(u32),
    /// `<list>[i].id must not repeat <list>[first].id, got id` (restore)
    RepeatedId {
        list: &'static str,
        index: usize,
        first: usize,
        id: u32,
    },
    /// `block must not hold a site already, got x, y, z (site s)`; in a
    /// snapshot prefixed with the site: `snapshot.sites[i] block ...`
    OccupiedBlock {
        snapshot_site: Option<usize>,
        x: i32,
        y: i32,
        z: i32,
        site: u32,
    },
    /// `<arg> must be an existing loot table, got id` (`loot_table_id`)
    UnknownLootTable { arg: Arg, id: u32 },
    /// `id must be an existing site, got id`
    UnknownSite(u32),
    /// `player must not have joined already, got p`
    AlreadyJoined(u32),
    /// `<arg> must have joined, got p` (`player` or `records[i].player`)
    NotJoined { arg: Arg, player: u32 },
    /// `<arg> length must be a multiple of <unit>, got len` (`records`,
    /// `snapshot.pending`, `packed sites`)
    LengthNotMultiple { arg: Arg, unit: usize, len: usize },
    /// `max must be at most <capacity> (the packets buf holds), got max`
    BufferTooSmall { capacity: u64, max: u64 },
    /// `seq must stay at most 9007199254740991, got <seq>`: the dig (for a
    /// batch, its last record) would need a seq past 2^53-1 (the largest
    /// integer a Lua number holds exactly). Refused; nothing changes.
    SeqExhausted { got: u64 },
    /// `snapshot.version must be 1, got v`
    SnapshotVersion { got: u32 },
    /// `snapshot.counters.digs must be found + empty + nothing + rejected
    /// (sum), got digs`
    CountersDoNotAddUp { sum: i128, digs: u64 },
    /// `snapshot.counters.packets must be at least the pending packets (n),
    /// got packets`
    PacketsBelowPending { pending: u64, packets: u64 },
    /// `snapshot.pending[i] must be a valid packet, got <why>`
    InvalidPacket { index: usize, error: WireError },
    /// `snapshot.pending[i].seq must be at least 1, got seq`
    PendingSeqZero { index: usize, seq: u64 },
    /// `snapshot.pending[i].seq must not be below the previous packet's seq
    /// p, got seq`
    PendingSeqBelowPrevious {
        index: usize,
        previous: u64,
        seq: u64,
    },
    /// `snapshot.pending[i].recipient must be above the previous packet's
    /// recipient r (same seq s), got recipient`
    PendingRecipientNotAbove {
        index: usize,
        previous: u32,
        seq: u64,
        recipient: u32,
    },
    /// `snapshot.next_seq must be above the last pending packet's seq s,
    /// got next_seq`
    NextSeqNotAbovePending { last: u64, next_seq: u64 },
    /// `snapshot.next_seq must be counters.digs + 1 (d), got next_seq`
    NextSeqNotDigsPlusOne { expected: i128, next_seq: u64 },
    /// `resolver is closed`
    Closed,
    /// `worker panicked: <msg>`: a worker thread panicked while resolving a
    /// chunk; the packet stream has a hole, so the resolver refuses further
    /// work (only `close` and drop still succeed).
    WorkerPanicked(String),
    /// `internal error: <msg>`: the binding caught a Rust panic on the
    /// caller's thread (nothing unwinds into Lua).
    CallPanicked(String),
    /// `resolver was created in process <created> and used in process
    /// <used>; create it after the fork (OpenResty: init_worker_by_lua)`
    ForeignProcess { created: u32, used: u32 },
    /// `too many open resolvers (at most <max> at once)`
    TooManyOpen { max: usize },
    /// `resolver is already in a call (from another thread, or a __gc
    /// finalizer run inside that call)`
    AlreadyInCall,
    /// `FFI buffers are unsupported by this LuaJIT build`
    FfiUnsupported,
    /// `<arg> must not be a NULL pointer, got <got>` (`poll_into`'s `buf`).
    NullPointer { arg: Arg, got: String },
    /// `capacity must be given with a pointer buf (the bytes it points at),
    /// got nil`
    CapacityRequired,
    /// `capacity must be at most <size> (the bytes buf holds), got
    /// <capacity>` (an array `buf` with a larger `capacity`).
    CapacityExceedsBuffer { size: u64, capacity: u64 },
    /// `eventfd failed: <strerror text> (errno <n>)` (`r:fd()`).
    EventFdFailed(String),
    /// `<arg>: <message>` (or `<message>`): an error the Lua runtime raised
    /// while the binding read or built a value (out of memory, a failing
    /// `__pairs`, a conversion).
    Lua { arg: Option<Arg>, message: String },
    /// `resolver has no shard (create it with opts.shard and opts.shards)`:
    /// a cluster method on a resolver made without the shard options.
    NotCluster,
    /// `<arg> must be given with <with>, got nil` (`opts.shards` without
    /// `opts.shard`, and the other way round).
    GivenWithout {
        at: OptionsAt,
        field: &'static str,
        with: &'static str,
    },
    /// `<opts>.shard must be below <opts>.shards (<shards>), got <shard>`
    ShardNotBelowShards {
        at: OptionsAt,
        shards: u16,
        shard: u16,
    },
    /// `<arg> must be a valid record for shard <shard>, got <reason>`
    /// (`records[i]` of `apply_records`, `snapshot.cluster.outgoing[i]`).
    InvalidRecord {
        arg: Arg,
        shard: u16,
        /// Boxed: keeps every `Result<_, Error>` small.
        reason: Box<RecordReason>,
    },
    /// `snapshot.cluster.<list>[i].shard must not repeat
    /// snapshot.cluster.<list>[first].shard, got <shard>`
    RepeatedShard {
        list: &'static str,
        index: usize,
        first: usize,
        shard: u16,
    },
    /// `snapshot.cluster.next_host_seq must be above the last pending
    /// packet's seq <last>, got <next>`
    NextHostSeqNotAbovePending { last: u64, next_host_seq: u64 },
    /// An environment failure with no contract message (e.g. the worker
    /// threads cannot be started): `<message>`.
    Internal(String),
}

/// A contract error: the method it is reported for and what went wrong.
/// `Display` gives the exact message text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    pub method: Method,
    pub kind: ErrorKind,
}

impl Error {
    pub fn new(method: Method, kind: ErrorKind) -> Error {
        Error { method, kind }
    }

    /// `<arg> must be an integer in [lo, hi], got <got>`.
    pub fn out_of_range(method: Method, arg: Arg, range: Range, got: impl Into<Got>) -> Error {
        let got = got.into();
        Error::new(method, ErrorKind::OutOfRange { arg, range, got })
    }

    /// `<arg> must be <expected>, got <got>` (`got`: the Lua type name, or
    /// the text the binding shows for the value).
    pub fn wrong_type(method: Method, arg: Arg, expected: Expected, got: &str) -> Error {
        let got = Some(got.to_owned());
        Error::new(method, ErrorKind::WrongType { arg, expected, got })
    }

    /// `<arg> must be <expected>` (when the value is not worth showing).
    pub fn wrong_type_bare(method: Method, arg: Arg, expected: Expected) -> Error {
        let got = None;
        Error::new(method, ErrorKind::WrongType { arg, expected, got })
    }

    /// `<arg> has unknown key '<key>'`.
    pub fn unknown_key(method: Method, arg: Arg, key: impl Into<String>) -> Error {
        let key = key.into();
        Error::new(method, ErrorKind::UnknownKey { arg, key })
    }

    /// `<arg> length must be a multiple of <unit>, got <len>`.
    pub fn length_not_multiple(method: Method, arg: Arg, unit: usize, len: usize) -> Error {
        Error::new(method, ErrorKind::LengthNotMultiple { arg, unit, len })
    }

    /// `max must be at most <capacity> (the packets buf holds), got <max>`.
    pub fn buffer_too_small(method: Method, capacity: u64, max: u64) -> Error {
        Error::new(method, ErrorKind::BufferTooSmall { capacity, max })
    }

    /// `<arg> must have joined, got <player>`.
    pub fn not_joined(method: Method, arg: Arg, player: u32) -> Error {
        Error::new(method, ErrorKind::NotJoined { arg, player })
    }

    /// `resolver has no shard (create it with opts.shard and opts.shards)`.
    pub fn not_cluster(method: Method) -> Error {
        Error::new(method, ErrorKind::NotCluster)
    }

    /// `resolver is closed`.
    pub fn closed(method: Method) -> Error {
        Error::new(method, ErrorKind::Closed)
    }

    /// `internal error: <what>` (a panic caught on the caller's thread).
    pub fn call_panicked(method: Method, what: impl Into<String>) -> Error {
        Error::new(method, ErrorKind::CallPanicked(what.into()))
    }

    /// `resolver was created in process <created> and used in process
    /// <used>; ...`.
    pub fn foreign_process(method: Method, created: u32, used: u32) -> Error {
        Error::new(method, ErrorKind::ForeignProcess { created, used })
    }

    /// `too many open resolvers (at most <max> at once)`.
    pub fn too_many_open(method: Method, max: usize) -> Error {
        Error::new(method, ErrorKind::TooManyOpen { max })
    }

    /// `resolver is already in a call (...)`.
    pub fn already_in_call(method: Method) -> Error {
        Error::new(method, ErrorKind::AlreadyInCall)
    }

    /// `FFI buffers are unsupported by this LuaJIT build`.
    pub fn ffi_unsupported(method: Method) -> Error {
        Error::new(method, ErrorKind::FfiUnsupported)
    }

    /// `<arg> must not be a NULL pointer, got <got>`.
    pub fn null_pointer(method: Method, arg: Arg, got: impl Into<String>) -> Error {
        let got = got.into();
        Error::new(method, ErrorKind::NullPointer { arg, got })
    }

    /// `capacity must be given with a pointer buf (the bytes it points at),
    /// got nil`.
    pub fn capacity_required(method: Method) -> Error {
        Error::new(method, ErrorKind::CapacityRequired)
    }

    /// `capacity must be at most <size> (the bytes buf holds), got
    /// <capacity>`.
    pub fn capacity_exceeds_buffer(method: Method, size: u64, capacity: u64) -> Error {
        Error::new(method, ErrorKind::CapacityExceedsBuffer { size, capacity })
    }

    /// `eventfd failed: <strerror text> (errno <n>)`, the same text as the
    /// legacy backend's (`lua/treasure/contract.lua`, `eventfd_failed`).
    pub fn eventfd_failed(method: Method, errno: i32) -> Error {
        // std's text for an OS error is the C library's strerror text with
        // " (os error <n>)" after it
        let text = std::io::Error::from_raw_os_error(errno).to_string();
        let suffix = format!(" (os error {errno})");
        let text = text.strip_suffix(&suffix).unwrap_or(&text);
        Error::new(
            method,
            ErrorKind::EventFdFailed(format!("{text} (errno {errno})")),
        )
    }

    /// `<arg>: <message>` or `<message>`: a Lua runtime error met while
    /// reading or building a value.
    pub fn lua(method: Method, arg: Option<Arg>, message: impl fmt::Display) -> Error {
        let message = message.to_string();
        Error::new(method, ErrorKind::Lua { arg, message })
    }

    /// The same error reported for another method (`restore` reporting what
    /// `new` refused).
    pub fn for_method(self, method: Method) -> Error {
        Error { method, ..self }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "treasure: {}: ", self.method)?;
        fmt::Display::fmt(&self.kind, f)
    }
}

impl std::error::Error for Error {}

impl fmt::Display for ErrorKind {
    /// The message after `treasure: <method>: `.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::OutOfRange { arg, range, got } => write!(
                f,
                "{arg} must be an integer in [{}, {}], got {got}",
                range.lo, range.hi
            ),
            ErrorKind::WrongType { arg, expected, got } => match got {
                Some(got) => write!(f, "{arg} must be {expected}, got {got}"),
                None => write!(f, "{arg} must be {expected}"),
            },
            ErrorKind::UnknownKey { arg, key } => write!(f, "{arg} has unknown key '{key}'"),
            ErrorKind::EmptyEntries { at } => {
                let expected = Expected::NonEmptyArrayOfTables;
                write!(f, "{at} must be {expected}, got table")
            }
            ErrorKind::MinGreaterThanMax { at, entry, min, max } => {
                write!(f, "{at}[{entry}].min must be <= max, got {min} > {max}")
            }
            ErrorKind::TotalWeight { at, total } => write!(
                f,
                "{at} total weight must be <= {TOTAL_WEIGHT_MAX}, got {total}"
            ),
            ErrorKind::DuplicateLootTable(id) => {
                write!(f, "id must not be an existing loot table, got {id}")
            }
            ErrorKind::DuplicateSite(id) => write!(f, "id must not be an existing site, got {id}"),
            ErrorKind::RepeatedId {
                list,
                index,
                first,
                id,
            } => write!(
                f,
                "snapshot.{list}[{index}].id must not repeat snapshot.{list}[{first}].id, got {id}"
            ),
            ErrorKind::OccupiedBlock {
                snapshot_site,
                x,
                y,
                z,
                site,
            } => {
                if let Some(i) = snapshot_site {
                    write!(f, "{} ", SnapshotPath::Item("sites", *i))?;
                }
                write!(
                    f,
                    "block must not hold a site already, got {x}, {y}, {z} (site {site})"
                )
            }
            ErrorKind::UnknownLootTable { arg, id } => {
                write!(f, "{arg} must be an existing loot table, got {id}")
            }
            ErrorKind::UnknownSite(id) => write!(f, "id must be an existing site, got {id}"),
            ErrorKind::AlreadyJoined(p) => {
                write!(f, "player must not have joined already, got {p}")
            }
            ErrorKind::NotJoined { arg, player } => {
                write!(f, "{arg} must have joined, got {player}")
            }
            ErrorKind::LengthNotMultiple { arg, unit, len } => {
                write!(f, "{arg} length must be a multiple of {unit}, got {len}")
            }
            ErrorKind::BufferTooSmall { capacity, max } => write!(
                f,
                "max must be at most {capacity} (the packets buf holds), got {max}"
            ),
            ErrorKind::SeqExhausted { got } => {
                write!(f, "seq must stay at most {MAX_SAFE}, got {got}")
            }
            ErrorKind::SnapshotVersion { got } => {
                write!(f, "snapshot.version must be {SNAPSHOT_VERSION}, got {got}")
            }
            ErrorKind::CountersDoNotAddUp { sum, digs } => write!(
                f,
                "snapshot.counters.digs must be found + empty + nothing + rejected ({sum}), got {digs}"
            ),
            ErrorKind::PacketsBelowPending { pending, packets } => write!(
                f,
                "snapshot.counters.packets must be at least the pending packets ({pending}), got {packets}"
            ),
            ErrorKind::InvalidPacket { index, error } => write!(
                f,
                "{} must be a valid packet, got {error}",
                SnapshotPath::Item("pending", *index)
            ),
            ErrorKind::PendingSeqZero { index, seq } => write!(
                f,
                "{} must be at least 1, got {seq}",
                SnapshotPath::ItemField("pending", *index, "seq")
            ),
            ErrorKind::PendingSeqBelowPrevious {
                index,
                previous,
                seq,
            } => write!(
                f,
                "{} must not be below the previous packet's seq {previous}, got {seq}",
                SnapshotPath::ItemField("pending", *index, "seq")
            ),
            ErrorKind::PendingRecipientNotAbove {
                index,
                previous,
                seq,
                recipient,
            } => write!(
                f,
                "{} must be above the previous packet's recipient {previous} (same seq {seq}), got {recipient}",
                SnapshotPath::ItemField("pending", *index, "recipient")
            ),
            ErrorKind::NextSeqNotAbovePending { last, next_seq } => write!(
                f,
                "snapshot.next_seq must be above the last pending packet's seq {last}, got {next_seq}"
            ),
            ErrorKind::NextSeqNotDigsPlusOne { expected, next_seq } => write!(
                f,
                "snapshot.next_seq must be counters.digs + 1 ({expected}), got {next_seq}"
            ),
            ErrorKind::Closed => f.write_str("resolver is closed"),
            ErrorKind::WorkerPanicked(msg) => write!(f, "worker panicked: {msg}"),
            ErrorKind::CallPanicked(msg) => write!(f, "internal error: {msg}"),
            ErrorKind::ForeignProcess { created, used } => write!(
                f,
                "resolver was created in process {created} and used in process {used}; \
                 create it after the fork (OpenResty: init_worker_by_lua)"
            ),
            ErrorKind::TooManyOpen { max } => {
                write!(f, "too many open resolvers (at most {max} at once)")
            }
            ErrorKind::AlreadyInCall => f.write_str(
                "resolver is already in a call (from another thread, or a __gc finalizer run inside that call)",
            ),
            ErrorKind::FfiUnsupported => {
                f.write_str("FFI buffers are unsupported by this LuaJIT build")
            }
            ErrorKind::NullPointer { arg, got } => {
                write!(f, "{arg} must not be a NULL pointer, got {got}")
            }
            ErrorKind::CapacityRequired => f.write_str(
                "capacity must be given with a pointer buf (the bytes it points at), got nil",
            ),
            ErrorKind::CapacityExceedsBuffer { size, capacity } => write!(
                f,
                "capacity must be at most {size} (the bytes buf holds), got {capacity}"
            ),
            ErrorKind::EventFdFailed(e) => write!(f, "eventfd failed: {e}"),
            ErrorKind::Lua { arg, message } => match arg {
                Some(arg) => write!(f, "{arg}: {message}"),
                None => f.write_str(message),
            },
            ErrorKind::NotCluster => f.write_str(
                "resolver has no shard (create it with opts.shard and opts.shards)",
            ),
            ErrorKind::GivenWithout { at, field, with } => write!(
                f,
                "{} must be given with {}, got nil",
                at.arg(field),
                at.arg(with)
            ),
            ErrorKind::ShardNotBelowShards { at, shards, shard } => write!(
                f,
                "{} must be below {} ({shards}), got {shard}",
                at.arg("shard"),
                at.arg("shards")
            ),
            ErrorKind::InvalidRecord { arg, shard, reason } => {
                write!(f, "{arg} must be a valid record for shard {shard}, got {reason}")
            }
            ErrorKind::RepeatedShard {
                list,
                index,
                first,
                shard,
            } => write!(
                f,
                "{} must not repeat {}, got {shard}",
                SnapshotPath::ClusterItemField(list, *index, "shard"),
                SnapshotPath::ClusterItemField(list, *first, "shard")
            ),
            ErrorKind::NextHostSeqNotAbovePending {
                last,
                next_host_seq,
            } => write!(
                f,
                "snapshot.cluster.next_host_seq must be above the last pending packet's seq {last}, got {next_host_seq}"
            ),
            ErrorKind::Internal(msg) => f.write_str(msg),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::limits::{COORD, COUNT, ID, RADIUS};
    use super::*;

    fn text(method: Method, kind: ErrorKind) -> String {
        Error::new(method, kind).to_string()
    }

    #[test]
    fn core_messages_match_the_contract() {
        let e = Error::out_of_range(Method::DigBatch, Arg::Record(3, "x"), COORD, 2_000_000);
        assert_eq!(
            e.to_string(),
            "treasure: dig_batch: records[3].x must be an integer in [-1048576, 1048575], got 2000000"
        );
        assert_eq!(
            Error::not_joined(Method::Move, Arg::Plain("player"), 5).to_string(),
            "treasure: move: player must have joined, got 5"
        );
        let kind = ErrorKind::OccupiedBlock {
            snapshot_site: None,
            x: 1,
            y: 2,
            z: 3,
            site: 9,
        };
        assert_eq!(
            text(Method::AddSite, kind),
            "treasure: add_site: block must not hold a site already, got 1, 2, 3 (site 9)"
        );
        assert_eq!(
            Error::closed(Method::Dig).to_string(),
            "treasure: dig: resolver is closed"
        );
        let e = Error::out_of_range(Method::New, Arg::Opt("aoi_radius"), RADIUS, -1);
        assert_eq!(
            e.to_string(),
            "treasure: new: opts.aoi_radius must be an integer in [0, 1048576], got -1"
        );
        let kind = ErrorKind::MinGreaterThanMax {
            at: EntriesAt::Argument,
            entry: 1,
            min: 5,
            max: 3,
        };
        assert_eq!(
            text(Method::AddLootTable, kind),
            "treasure: add_loot_table: entries[1].min must be <= max, got 5 > 3"
        );
        assert_eq!(
            Error::buffer_too_small(Method::PollInto, 4, 5).to_string(),
            "treasure: poll_into: max must be at most 4 (the packets buf holds), got 5"
        );
        let e = Error::length_not_multiple(Method::MoveBatch, Arg::Plain("records"), 16, 17);
        assert_eq!(
            e.to_string(),
            "treasure: move_batch: records length must be a multiple of 16, got 17"
        );
        let kind = ErrorKind::SeqExhausted {
            got: 9_007_199_254_740_993,
        };
        assert_eq!(
            text(Method::DigBatch, kind),
            "treasure: dig_batch: seq must stay at most 9007199254740991, got 9007199254740993"
        );
    }

    #[test]
    fn restore_paths_print_from_snapshot_on() {
        let kind = ErrorKind::TotalWeight {
            at: EntriesAt::LootTable(2),
            total: 4_294_967_296,
        };
        assert_eq!(
            text(Method::Restore, kind),
            "treasure: restore: snapshot.loot_tables[2].entries total weight must be <= 4294967295, got 4294967296"
        );
        let arg = Arg::Entry(EntriesAt::LootTable(1), 3, "item");
        assert_eq!(
            Error::out_of_range(Method::Restore, arg, ID, 0).to_string(),
            "treasure: restore: snapshot.loot_tables[1].entries[3].item must be an integer in [1, 4294967295], got 0"
        );
        let kind = ErrorKind::OccupiedBlock {
            snapshot_site: Some(4),
            x: 1,
            y: 2,
            z: 3,
            site: 7,
        };
        assert_eq!(
            text(Method::Restore, kind),
            "treasure: restore: snapshot.sites[4] block must not hold a site already, got 1, 2, 3 (site 7)"
        );
        let kind = ErrorKind::RepeatedId {
            list: "players",
            index: 3,
            first: 1,
            id: 9,
        };
        assert_eq!(
            text(Method::Restore, kind),
            "treasure: restore: snapshot.players[3].id must not repeat snapshot.players[1].id, got 9"
        );
        let arg = Arg::Snapshot(SnapshotPath::Counter("busy"));
        assert_eq!(
            Error::out_of_range(Method::Restore, arg, COUNT, -1).to_string(),
            "treasure: restore: snapshot.counters.busy must be an integer in [0, 9007199254740991], got -1"
        );
    }

    #[test]
    fn binding_messages_match_the_contract() {
        let e = Error::out_of_range(Method::Join, Arg::Plain("x"), COORD, "1.5");
        assert_eq!(
            e.to_string(),
            "treasure: join: x must be an integer in [-1048576, 1048575], got 1.5"
        );
        let e = Error::wrong_type(Method::Dig, Arg::Plain("self"), Expected::Resolver, "nil");
        assert_eq!(
            e.to_string(),
            "treasure: dig: self must be a resolver, got nil"
        );
        let e = Error::wrong_type(
            Method::DigBatch,
            Arg::Plain("records"),
            Expected::String,
            "table",
        );
        assert_eq!(
            e.to_string(),
            "treasure: dig_batch: records must be a string, got table"
        );
        let e = Error::wrong_type(
            Method::AddLootTable,
            Arg::Entries(EntriesAt::Argument),
            Expected::NonEmptyArrayOfTables,
            "nil",
        );
        assert_eq!(
            e.to_string(),
            "treasure: add_loot_table: entries must be a non-empty array of tables, got nil"
        );
        assert_eq!(
            Error::new(
                Method::AddLootTable,
                ErrorKind::EmptyEntries {
                    at: EntriesAt::Argument
                }
            )
            .to_string(),
            "treasure: add_loot_table: entries must be a non-empty array of tables, got table"
        );
        let e = Error::wrong_type(
            Method::AddLootTable,
            Arg::EntryTable(EntriesAt::Argument, 2),
            Expected::Table,
            "number",
        );
        assert_eq!(
            e.to_string(),
            "treasure: add_loot_table: entries[2] must be a table, got number"
        );
        let e = Error::wrong_type_bare(
            Method::Restore,
            Arg::Snapshot(SnapshotPath::Field("pending")),
            Expected::String,
        );
        assert_eq!(
            e.to_string(),
            "treasure: restore: snapshot.pending must be a string"
        );
        let e = Error::wrong_type(
            Method::PollInto,
            Arg::Plain("buf"),
            Expected::PacketBuffer,
            "string",
        );
        assert_eq!(
            e.to_string(),
            "treasure: poll_into: buf must be a uint8_t array, uint8_t * or void * cdata, got string"
        );
        let m = Method::PollInto;
        assert_eq!(
            Error::null_pointer(m, Arg::Plain("buf"), "cdata<void *>").to_string(),
            "treasure: poll_into: buf must not be a NULL pointer, got cdata<void *>"
        );
        assert_eq!(
            Error::capacity_required(m).to_string(),
            "treasure: poll_into: capacity must be given with a pointer buf (the bytes it points at), got nil"
        );
        assert_eq!(
            Error::capacity_exceeds_buffer(m, 256, 300).to_string(),
            "treasure: poll_into: capacity must be at most 256 (the bytes buf holds), got 300"
        );
        assert_eq!(
            Error::eventfd_failed(Method::Fd, 24).to_string(),
            "treasure: fd: eventfd failed: Too many open files (errno 24)"
        );
        assert_eq!(
            Error::unknown_key(Method::New, Arg::Plain("opts"), "sed").to_string(),
            "treasure: new: opts has unknown key 'sed'"
        );
        assert_eq!(
            Error::lua(Method::New, Some(Arg::Plain("tuning")), "bad").to_string(),
            "treasure: new: tuning: bad"
        );
        assert_eq!(
            Error::lua(Method::Poll, None, "not enough memory").to_string(),
            "treasure: poll: not enough memory"
        );
        assert_eq!(
            Error::call_panicked(Method::Stats, "boom").to_string(),
            "treasure: stats: internal error: boom"
        );
        assert_eq!(
            Error::foreign_process(Method::Dig, 10, 11).to_string(),
            "treasure: dig: resolver was created in process 10 and used in process 11; \
             create it after the fork (OpenResty: init_worker_by_lua)"
        );
        assert_eq!(
            Error::too_many_open(Method::Restore, 4096).to_string(),
            "treasure: restore: too many open resolvers (at most 4096 at once)"
        );
        assert_eq!(
            Error::already_in_call(Method::Poll).to_string(),
            "treasure: poll: resolver is already in a call (from another thread, or a __gc finalizer run inside that call)"
        );
        assert_eq!(
            Error::ffi_unsupported(Method::PollInto).to_string(),
            "treasure: poll_into: FFI buffers are unsupported by this LuaJIT build"
        );
        let e = Error::length_not_multiple(Method::Restore, Arg::Plain("packed sites"), 24, 25);
        assert_eq!(
            e.to_string(),
            "treasure: restore: packed sites length must be a multiple of 24, got 25"
        );
    }

    #[test]
    fn every_method_is_found_by_its_name() {
        for m in Method::ALL {
            assert_eq!(Method::from_name(m.name()), Some(m));
        }
        assert_eq!(Method::from_name("move_player"), None);
    }
}
