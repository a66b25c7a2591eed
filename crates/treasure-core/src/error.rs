//! The one error type of the core.
//!
//! Its `Display` is *exactly* the message text of `docs/API.md` (without any
//! Lua position prefix), so the binding can raise `err.to_string()` as is and
//! the legacy Lua resolver and the native one report byte-identical errors.
//!
//! The binding detects Lua type errors itself (`got string`, `got 1.5`, ...);
//! the core receives typed integers but still validates every *range*
//! defensively, because it is also used and tested alone. Values printed by
//! the core are integers, so `got <value>` is the exact decimal integer, which
//! is also what LuaJIT's `tostring` prints for an integer-valued double below
//! 2^53 and what the contract asks for 64-bit values read from batch records.

use std::fmt;

/// The API function an error is reported for (`treasure: <method>: ...`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    New,
    AddLootTable,
    AddSite,
    RemoveSite,
    Join,
    Move,
    SetParty,
    Leave,
    Dig,
    DigBatch,
    MoveBatch,
    Poll,
    PollInto,
    Flush,
    Wait,
    Stats,
    Close,
    /// `r:in_flight()` (issue 15).
    InFlight,
    /// `r:fd()` (issue 15).
    Fd,
}

impl Method {
    /// The Lua-visible name (`move`, not `move_player`).
    pub const fn name(self) -> &'static str {
        match self {
            Method::New => "new",
            Method::AddLootTable => "add_loot_table",
            Method::AddSite => "add_site",
            Method::RemoveSite => "remove_site",
            Method::Join => "join",
            Method::Move => "move",
            Method::SetParty => "set_party",
            Method::Leave => "leave",
            Method::Dig => "dig",
            Method::DigBatch => "dig_batch",
            Method::MoveBatch => "move_batch",
            Method::Poll => "poll",
            Method::PollInto => "poll_into",
            Method::Flush => "flush",
            Method::Wait => "wait",
            Method::Stats => "stats",
            Method::Close => "close",
            Method::InFlight => "in_flight",
            Method::Fd => "fd",
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The path of the argument an error is about, printed as in the contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arg {
    /// A plain argument: `x`, `player`, `id`, `max`.
    Plain(&'static str),
    /// An option field: `opts.aoi_radius`.
    Opt(&'static str),
    /// A field of a loot entry, 1-based: `entries[2].weight`.
    Entry(usize, &'static str),
    /// A field of a batch record, 1-based: `records[3].x`.
    Record(usize, &'static str),
}

impl fmt::Display for Arg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Arg::Plain(name) => f.write_str(name),
            Arg::Opt(name) => write!(f, "opts.{name}"),
            Arg::Entry(i, name) => write!(f, "entries[{i}].{name}"),
            Arg::Record(i, name) => write!(f, "records[{i}].{name}"),
        }
    }
}

/// What went wrong, independent of the method.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// `<arg> must be an integer in [lo, hi], got v`
    OutOfRange {
        arg: Arg,
        lo: i128,
        hi: i128,
        got: i128,
    },
    /// `entries must be a non-empty array of tables, got table`
    EmptyEntries,
    /// `entries[i].min must be <= max, got min > max`
    MinGreaterThanMax { entry: usize, min: u16, max: u16 },
    /// `entries total weight must be <= 4294967295, got total`
    TotalWeight { total: u64 },
    /// `id must not be an existing loot table, got id`
    DuplicateLootTable(u32),
    /// `id must not be an existing site, got id`
    DuplicateSite(u32),
    /// `block must not hold a site already, got x, y, z (site s)`
    OccupiedBlock { x: i32, y: i32, z: i32, site: u32 },
    /// `loot_table_id must be an existing loot table, got id`
    UnknownLootTable(u32),
    /// `id must be an existing site, got id`
    UnknownSite(u32),
    /// `player must not have joined already, got p`
    AlreadyJoined(u32),
    /// `<arg> must have joined, got p` (`player` or `records[i].player`)
    NotJoined { arg: Arg, player: u32 },
    /// `records length must be a multiple of <unit>, got len`
    BatchLength { unit: usize, len: usize },
    /// `max must be at most <capacity> (the packets buf holds), got max`
    BufferTooSmall { capacity: u64, max: u64 },
    /// `seq must stay at most 9007199254740991, got <seq>`: the dig (for a
    /// batch, its last record) would need a seq past 2^53-1 (the largest
    /// integer a Lua number holds exactly). Refused; nothing changes.
    SeqExhausted { got: u64 },
    /// `resolver is closed`
    Closed,
    /// `worker panicked: <msg>`: a worker thread panicked while resolving a
    /// chunk; the packet stream has a hole, so the resolver refuses further
    /// work (only `close` and drop still succeed).
    WorkerPanicked(String),
    /// An environment failure with no contract message (e.g. the worker
    /// threads cannot be started): `<message>`.
    Internal(String),
}

/// A core error: the method it is reported for and what went wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    pub method: Method,
    pub kind: ErrorKind,
}

impl Error {
    pub fn new(method: Method, kind: ErrorKind) -> Error {
        Error { method, kind }
    }

    pub(crate) fn range(method: Method, arg: Arg, lo: i128, hi: i128, got: i128) -> Error {
        Error::new(method, ErrorKind::OutOfRange { arg, lo, hi, got })
    }

    pub(crate) fn closed(method: Method) -> Error {
        Error::new(method, ErrorKind::Closed)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "treasure: {}: ", self.method)?;
        match &self.kind {
            ErrorKind::OutOfRange { arg, lo, hi, got } => {
                write!(f, "{arg} must be an integer in [{lo}, {hi}], got {got}")
            }
            ErrorKind::EmptyEntries => {
                f.write_str("entries must be a non-empty array of tables, got table")
            }
            ErrorKind::MinGreaterThanMax { entry, min, max } => {
                write!(f, "entries[{entry}].min must be <= max, got {min} > {max}")
            }
            ErrorKind::TotalWeight { total } => {
                write!(f, "entries total weight must be <= 4294967295, got {total}")
            }
            ErrorKind::DuplicateLootTable(id) => {
                write!(f, "id must not be an existing loot table, got {id}")
            }
            ErrorKind::DuplicateSite(id) => write!(f, "id must not be an existing site, got {id}"),
            ErrorKind::OccupiedBlock { x, y, z, site } => write!(
                f,
                "block must not hold a site already, got {x}, {y}, {z} (site {site})"
            ),
            ErrorKind::UnknownLootTable(id) => {
                write!(f, "loot_table_id must be an existing loot table, got {id}")
            }
            ErrorKind::UnknownSite(id) => write!(f, "id must be an existing site, got {id}"),
            ErrorKind::AlreadyJoined(p) => {
                write!(f, "player must not have joined already, got {p}")
            }
            ErrorKind::NotJoined { arg, player } => {
                write!(f, "{arg} must have joined, got {player}")
            }
            ErrorKind::BatchLength { unit, len } => {
                write!(f, "records length must be a multiple of {unit}, got {len}")
            }
            ErrorKind::BufferTooSmall { capacity, max } => write!(
                f,
                "max must be at most {capacity} (the packets buf holds), got {max}"
            ),
            ErrorKind::SeqExhausted { got } => {
                write!(f, "seq must stay at most {}, got {got}", limits::MAX_SAFE)
            }
            ErrorKind::Closed => f.write_str("resolver is closed"),
            ErrorKind::WorkerPanicked(msg) => write!(f, "worker panicked: {msg}"),
            ErrorKind::Internal(msg) => f.write_str(msg),
        }
    }
}

impl std::error::Error for Error {}

/// Inclusive ranges of the contract (`docs/API.md`, "Numbers").
pub mod limits {
    /// Smallest block coordinate.
    pub const COORD_MIN: i32 = -1_048_576;
    /// Largest block coordinate.
    pub const COORD_MAX: i32 = 1_048_575;
    /// 2^53 - 1: the largest `t_us`, `seed`, `max_pending_packets`, `max`,
    /// seq, and the value the `packets` and `busy` counters saturate at.
    pub const MAX_SAFE: u64 = 9_007_199_254_740_991;
    /// 2^53: the largest `next_seq` (of a resolver whose last dig took seq
    /// 2^53-1; it refuses every further dig).
    pub const NEXT_SEQ_MAX: u64 = MAX_SAFE + 1;
    /// Largest `aoi_radius` and `reach`.
    pub const RADIUS_MAX: u32 = 1_048_576;
    /// Largest `workers`.
    pub const WORKERS_MAX: u32 = 256;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_match_the_contract() {
        let e = Error::range(
            Method::DigBatch,
            Arg::Record(3, "x"),
            limits::COORD_MIN as i128,
            limits::COORD_MAX as i128,
            2_000_000,
        );
        assert_eq!(
            e.to_string(),
            "treasure: dig_batch: records[3].x must be an integer in [-1048576, 1048575], got 2000000"
        );
        let e = Error::new(
            Method::Move,
            ErrorKind::NotJoined {
                arg: Arg::Plain("player"),
                player: 5,
            },
        );
        assert_eq!(
            e.to_string(),
            "treasure: move: player must have joined, got 5"
        );
        let e = Error::new(
            Method::AddSite,
            ErrorKind::OccupiedBlock {
                x: 1,
                y: 2,
                z: 3,
                site: 9,
            },
        );
        assert_eq!(
            e.to_string(),
            "treasure: add_site: block must not hold a site already, got 1, 2, 3 (site 9)"
        );
        assert_eq!(
            Error::closed(Method::Dig).to_string(),
            "treasure: dig: resolver is closed"
        );
        let e = Error::range(Method::New, Arg::Opt("aoi_radius"), 0, 1_048_576, -1);
        assert_eq!(
            e.to_string(),
            "treasure: new: opts.aoi_radius must be an integer in [0, 1048576], got -1"
        );
        let e = Error::new(
            Method::AddLootTable,
            ErrorKind::MinGreaterThanMax {
                entry: 1,
                min: 5,
                max: 3,
            },
        );
        assert_eq!(
            e.to_string(),
            "treasure: add_loot_table: entries[1].min must be <= max, got 5 > 3"
        );
        let e = Error::new(
            Method::PollInto,
            ErrorKind::BufferTooSmall {
                capacity: 4,
                max: 5,
            },
        );
        assert_eq!(
            e.to_string(),
            "treasure: poll_into: max must be at most 4 (the packets buf holds), got 5"
        );
        let e = Error::new(
            Method::MoveBatch,
            ErrorKind::BatchLength { unit: 16, len: 17 },
        );
        assert_eq!(
            e.to_string(),
            "treasure: move_batch: records length must be a multiple of 16, got 17"
        );
        let e = Error::new(
            Method::DigBatch,
            ErrorKind::SeqExhausted {
                got: 9_007_199_254_740_993,
            },
        );
        assert_eq!(
            e.to_string(),
            "treasure: dig_batch: seq must stay at most 9007199254740991, got 9007199254740993"
        );
    }
}
