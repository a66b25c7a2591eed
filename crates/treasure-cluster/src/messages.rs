//! Every message text of the transport and of its Lua binding
//! (`require("treasure.cluster")`), written once, in the contract's style:
//! `treasure: <function>: <what> <rule>, got <value>`.
//!
//! The binding (`src/cluster/` of the root crate) builds its failures with
//! these constructors and maps them to Lua in `src/error.rs`; it formats no
//! message itself. They live here rather than in the core's `contract/`
//! because the transport is a separate crate the core does not know.

use std::fmt;

/// Smallest shard.
pub const SHARD_MIN: u16 = 0;
/// Largest shard (one below the largest shard count).
pub const SHARD_MAX: u16 = 65534;
/// Fewest shards.
pub const SHARDS_MIN: u16 = 1;
/// Most shards.
pub const SHARDS_MAX: u16 = 65535;
/// The longest `flush` wait.
pub const FLUSH_TIMEOUT_MS_MAX: u64 = 3_600_000;
/// `link:flush()` without a timeout waits this long.
pub const FLUSH_TIMEOUT_MS_DEFAULT: u64 = 5_000;
/// The longest timeout option of `connect` (`*_ms`).
pub const OPTION_MS_MAX: u64 = 3_600_000;
/// Most publishes in flight at once.
pub const MAX_IN_FLIGHT_MAX: u64 = 65_536;
/// The largest `max_unacked`.
pub const MAX_UNACKED_MAX: u64 = 16_777_216;
/// `max_unacked` when not given: records queued and not yet acknowledged
/// past which `pump` takes no more of the resolver's records.
pub const MAX_UNACKED_DEFAULT: u64 = 65_536;
/// 2^53 - 1: the largest stream position a Lua number holds exactly (the
/// largest `from`).
pub const POSITION_MAX: u64 = 9_007_199_254_740_991;

/// The function a failure is reported for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Function {
    /// `cluster.connect(opts)`, and `Link::connect`.
    Connect,
    /// `link:pump(r)`.
    Pump,
    /// `link:flush([timeout_ms])`.
    Flush,
    /// `link:stats()`.
    Stats,
    /// `link:close()`.
    Close,
    /// `Link::send` (Rust only; the binding sends from `pump`).
    Send,
}

impl Function {
    /// The name printed after `treasure: `.
    pub const fn name(self) -> &'static str {
        match self {
            Function::Connect => "cluster.connect",
            Function::Pump => "cluster.pump",
            Function::Flush => "cluster.flush",
            Function::Stats => "cluster.stats",
            Function::Close => "cluster.close",
            Function::Send => "cluster.send",
        }
    }
}

impl fmt::Display for Function {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What went wrong; each variant's doc is its text after `treasure: <function>: `.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// `<arg> must be <expected>, got <got>`
    WrongType {
        arg: String,
        expected: &'static str,
        got: String,
    },
    /// `<arg> must be an integer in [<lo>, <hi>], got <got>`
    OutOfRange {
        arg: String,
        lo: u64,
        hi: u64,
        got: String,
    },
    /// `opts: <message>`: the options table did not deserialize (an unknown
    /// key, a value of the wrong type), with the deserializer's message.
    Options(String),
    /// `opts.<field> must be given, got nil`
    Missing(&'static str),
    /// `opts.shard must be below opts.shards (<shards>), got <shard>`
    ShardNotBelowShards { shard: u16, shards: u16 },
    /// `opts.stream must be a NATS stream name (letters, digits, '-' and '_'), got '<name>'`
    BadStreamName(String),
    /// `opts.storage must be 'file' or 'memory', got '<s>'`
    BadStorage(String),
    /// `record must be at least 40 bytes (the record header), got <n>`
    ShortRecord(usize),
    /// `record src shard <s> is not this link's shard <own>`
    ForeignRecord { src: u16, own: u16 },
    /// `record dest shard <d> must be below shards (<n>)`
    DestOutOfRange { dest: u16, shards: u16 },
    /// `link is closed`
    Closed,
    /// `cannot connect to <url>: <reason>`
    ConnectFailed { url: String, reason: String },
    /// `cannot create or open stream <name>: <reason>`
    StreamFailed { stream: String, reason: String },
    /// `cannot start the transport thread: <reason>`
    ThreadFailed(String),
    /// `r is closed`
    ResolverClosed,
    /// `r was created in process <created> and used in process <used>`
    ResolverForeign { created: u32, used: u32 },
    /// `r is already in a call (from another thread, or a __gc finalizer run inside that call)`
    ResolverInCall,
    /// `resolver gave a malformed record stream at byte <at>`: the records
    /// `take_records` returned cannot be cut at their `length` fields.
    MalformedRecords { at: usize },
    /// `internal error: <what>` (a Rust panic caught in the binding)
    Panicked(String),
    /// `<message>`: an error of the Lua runtime met while reading or
    /// building a value.
    Lua(String),
}

/// A transport failure: the function and what went wrong. `Display` is the
/// full message text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    pub function: Function,
    pub kind: ErrorKind,
}

impl Error {
    pub fn new(function: Function, kind: ErrorKind) -> Error {
        Error { function, kind }
    }

    /// `<arg> must be <expected>, got <got>`.
    pub fn wrong_type(
        function: Function,
        arg: impl Into<String>,
        expected: &'static str,
        got: impl Into<String>,
    ) -> Error {
        let (arg, got) = (arg.into(), got.into());
        Error::new(function, ErrorKind::WrongType { arg, expected, got })
    }

    /// `<arg> must be an integer in [<lo>, <hi>], got <got>`.
    pub fn out_of_range(
        function: Function,
        arg: impl Into<String>,
        lo: u64,
        hi: u64,
        got: impl Into<String>,
    ) -> Error {
        let (arg, got) = (arg.into(), got.into());
        Error::new(function, ErrorKind::OutOfRange { arg, lo, hi, got })
    }

    /// `link is closed`.
    pub fn closed(function: Function) -> Error {
        Error::new(function, ErrorKind::Closed)
    }
}

/// `expected` texts of [`ErrorKind::WrongType`].
pub mod expected {
    /// `self` of a link method.
    pub const LINK: &str = "a cluster link";
    /// `r` of `pump`.
    pub const RESOLVER: &str = "a resolver";
    /// `opts` of `connect`.
    pub const TABLE: &str = "a table";
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "treasure: {}: ", self.function)?;
        match &self.kind {
            ErrorKind::WrongType { arg, expected, got } => {
                write!(f, "{arg} must be {expected}, got {got}")
            }
            ErrorKind::OutOfRange { arg, lo, hi, got } => {
                write!(f, "{arg} must be an integer in [{lo}, {hi}], got {got}")
            }
            ErrorKind::Options(m) => write!(f, "opts: {m}"),
            ErrorKind::Missing(field) => write!(f, "opts.{field} must be given, got nil"),
            ErrorKind::ShardNotBelowShards { shard, shards } => write!(
                f,
                "opts.shard must be below opts.shards ({shards}), got {shard}"
            ),
            ErrorKind::BadStreamName(s) => write!(
                f,
                "opts.stream must be a NATS stream name (letters, digits, '-' and '_'), got '{s}'"
            ),
            ErrorKind::BadStorage(s) => {
                write!(f, "opts.storage must be 'file' or 'memory', got '{s}'")
            }
            ErrorKind::ShortRecord(n) => write!(
                f,
                "record must be at least 40 bytes (the record header), got {n}"
            ),
            ErrorKind::ForeignRecord { src, own } => {
                write!(f, "record src shard {src} is not this link's shard {own}")
            }
            ErrorKind::DestOutOfRange { dest, shards } => {
                write!(f, "record dest shard {dest} must be below shards ({shards})")
            }
            ErrorKind::Closed => f.write_str("link is closed"),
            ErrorKind::ConnectFailed { url, reason } => {
                write!(f, "cannot connect to {url}: {reason}")
            }
            ErrorKind::StreamFailed { stream, reason } => {
                write!(f, "cannot create or open stream {stream}: {reason}")
            }
            ErrorKind::ThreadFailed(r) => write!(f, "cannot start the transport thread: {r}"),
            ErrorKind::ResolverClosed => f.write_str("r is closed"),
            ErrorKind::ResolverForeign { created, used } => write!(
                f,
                "r was created in process {created} and used in process {used}"
            ),
            ErrorKind::ResolverInCall => f.write_str(
                "r is already in a call (from another thread, or a __gc finalizer run inside that call)",
            ),
            ErrorKind::MalformedRecords { at } => {
                write!(f, "resolver gave a malformed record stream at byte {at}")
            }
            ErrorKind::Panicked(w) => write!(f, "internal error: {w}"),
            ErrorKind::Lua(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts() {
        let e = Error::new(
            Function::Connect,
            ErrorKind::ShardNotBelowShards {
                shard: 3,
                shards: 3,
            },
        );
        assert_eq!(
            e.to_string(),
            "treasure: cluster.connect: opts.shard must be below opts.shards (3), got 3"
        );
        let e = Error::out_of_range(Function::Connect, "opts.shard", 0, 65534, "-1");
        assert_eq!(
            e.to_string(),
            "treasure: cluster.connect: opts.shard must be an integer in [0, 65534], got -1"
        );
        let e = Error::wrong_type(Function::Pump, "self", expected::LINK, "nil");
        assert_eq!(
            e.to_string(),
            "treasure: cluster.pump: self must be a cluster link, got nil"
        );
        assert_eq!(
            Error::closed(Function::Flush).to_string(),
            "treasure: cluster.flush: link is closed"
        );
    }
}
