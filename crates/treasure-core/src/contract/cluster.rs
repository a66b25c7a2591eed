//! Why bytes are not a valid cluster record (issue 17): the `<reason>` of
//! `records[<i>] must be a valid record for shard <S>, got <reason>`, in the
//! order the rules are checked (`crate::cluster::record`). Numbers print as
//! exact decimal integers, as everywhere in the contract.

use std::fmt;

/// The first record rule broken. Entries (`entry`) and recipients
/// (`recipient`) count from 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordReason {
    /// `truncated header (<k> bytes)`: fewer bytes left than a header.
    TruncatedHeader(usize),
    /// `bad magic`
    BadMagic,
    /// `bad version <v>`
    BadVersion(u16),
    /// `bad length <len>`: below a header or past the bytes left.
    BadLength(u32),
    /// `bad CRC`
    BadCrc,
    /// `dest shard <d>`: addressed to another shard (or, for a record
    /// restored as outgoing, no shard of the cluster).
    DestShard(u16),
    /// `src shard <s>`: no shard of the cluster.
    SrcShard(u16),
    /// `src shard <s> is not this shard <S>`: a restored outgoing record
    /// must come from the resolver's own shard.
    SrcNotThisShard { src: u16, shard: u16 },
    /// `prev <p> not below to <t>`
    PrevNotBelowTo { prev: u64, to: u64 },
    /// `entry <k> truncated`: the entries run past the record's length.
    EntryTruncated(u32),
    /// `trailing <n> bytes`: bytes left over after the header's entries.
    Trailing(usize),
    /// `entry <k> seq <q> not in (<lo>, <to>]`
    EntrySeq {
        entry: u32,
        seq: u64,
        lo: u64,
        to: u64,
    },
    /// `entry <k> kind <v>`
    EntryKind { entry: u32, kind: u8 },
    /// `entry <k> flags <v>`
    EntryFlags { entry: u32, flags: u8 },
    /// `entry <k> has no recipients`
    NoRecipients(u32),
    /// `entry <k> recipient <j> id <id> not above <prev>`
    RecipientId {
        entry: u32,
        recipient: u32,
        id: u32,
        prev: u32,
    },
    /// `entry <k> recipient <j> flags <v>`
    RecipientFlags {
        entry: u32,
        recipient: u32,
        flags: u8,
    },
    /// `entry <k> nonzero padding`
    NonzeroPadding(u32),
}

impl fmt::Display for RecordReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            RecordReason::TruncatedHeader(k) => write!(f, "truncated header ({k} bytes)"),
            RecordReason::BadMagic => f.write_str("bad magic"),
            RecordReason::BadVersion(v) => write!(f, "bad version {v}"),
            RecordReason::BadLength(len) => write!(f, "bad length {len}"),
            RecordReason::BadCrc => f.write_str("bad CRC"),
            RecordReason::DestShard(d) => write!(f, "dest shard {d}"),
            RecordReason::SrcShard(s) => write!(f, "src shard {s}"),
            RecordReason::SrcNotThisShard { src, shard } => {
                write!(f, "src shard {src} is not this shard {shard}")
            }
            RecordReason::PrevNotBelowTo { prev, to } => write!(f, "prev {prev} not below to {to}"),
            RecordReason::EntryTruncated(k) => write!(f, "entry {k} truncated"),
            RecordReason::Trailing(n) => write!(f, "trailing {n} bytes"),
            RecordReason::EntrySeq { entry, seq, lo, to } => {
                write!(f, "entry {entry} seq {seq} not in ({lo}, {to}]")
            }
            RecordReason::EntryKind { entry, kind } => write!(f, "entry {entry} kind {kind}"),
            RecordReason::EntryFlags { entry, flags } => write!(f, "entry {entry} flags {flags}"),
            RecordReason::NoRecipients(k) => write!(f, "entry {k} has no recipients"),
            RecordReason::RecipientId {
                entry,
                recipient,
                id,
                prev,
            } => write!(
                f,
                "entry {entry} recipient {recipient} id {id} not above {prev}"
            ),
            RecordReason::RecipientFlags {
                entry,
                recipient,
                flags,
            } => write!(f, "entry {entry} recipient {recipient} flags {flags}"),
            RecordReason::NonzeroPadding(k) => write!(f, "entry {k} nonzero padding"),
        }
    }
}
