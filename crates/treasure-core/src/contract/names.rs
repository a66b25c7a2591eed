//! The vocabulary of a message: the method it is reported for ([`Method`]),
//! the argument path it names ([`Arg`], printed exactly as the contract
//! does), the value it shows ([`Got`]) and the type a rule expects
//! ([`Expected`]).

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
    Snapshot,
    Restore,
    /// `r:in_flight()` (issue 15).
    InFlight,
    /// `r:fd()` (issue 15).
    Fd,
    /// The binding's `handle` (the FFI fast path's resolver handle).
    Handle,
    /// The binding's test hook `_inject_worker_panic`.
    InjectWorkerPanic,
    /// `r:set_host(player, host)` (cluster mode, issue 17).
    SetHost,
    /// `r:take_records()` (cluster mode).
    TakeRecords,
    /// `r:apply_records(bytes [, log_position])` (cluster mode).
    ApplyRecords,
}

impl Method {
    /// Every method, for [`Method::from_name`] and tests.
    pub const ALL: [Method; 26] = [
        Method::New,
        Method::AddLootTable,
        Method::AddSite,
        Method::RemoveSite,
        Method::Join,
        Method::Move,
        Method::SetParty,
        Method::Leave,
        Method::Dig,
        Method::DigBatch,
        Method::MoveBatch,
        Method::Poll,
        Method::PollInto,
        Method::Flush,
        Method::Wait,
        Method::Stats,
        Method::Close,
        Method::Snapshot,
        Method::Restore,
        Method::InFlight,
        Method::Fd,
        Method::Handle,
        Method::InjectWorkerPanic,
        Method::SetHost,
        Method::TakeRecords,
        Method::ApplyRecords,
    ];

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
            Method::Snapshot => "snapshot",
            Method::Restore => "restore",
            Method::InFlight => "in_flight",
            Method::Fd => "fd",
            Method::Handle => "handle",
            Method::InjectWorkerPanic => "_inject_worker_panic",
            Method::SetHost => "set_host",
            Method::TakeRecords => "take_records",
            Method::ApplyRecords => "apply_records",
        }
    }

    /// The method with this Lua-visible name.
    pub fn from_name(name: &str) -> Option<Method> {
        Method::ALL.into_iter().find(|m| m.name() == name)
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Whose loot entries a check is about: the `entries` argument of
/// `add_loot_table`, or a loot table of a snapshot being restored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntriesAt {
    /// `entries`
    Argument,
    /// `snapshot.loot_tables[i].entries` (1-based `i`)
    LootTable(usize),
}

impl fmt::Display for EntriesAt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            EntriesAt::Argument => f.write_str("entries"),
            EntriesAt::LootTable(t) => write!(f, "snapshot.loot_tables[{t}].entries"),
        }
    }
}

/// Where options are checked: `opts` of `new`, or `snapshot.options`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptionsAt {
    /// `opts.<field>`
    New,
    /// `snapshot.options.<field>`
    Snapshot,
}

impl OptionsAt {
    /// The argument naming option `name` here.
    pub const fn arg(self, name: &'static str) -> Arg {
        match self {
            OptionsAt::New => Arg::Opt(name),
            OptionsAt::Snapshot => Arg::Snapshot(SnapshotPath::Option(name)),
        }
    }
}

/// A place inside a snapshot (`restore`'s argument), printed from
/// `snapshot` on. Indexes are 1-based.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SnapshotPath {
    /// `snapshot`
    Root,
    /// `snapshot.<field>`: `version`, `next_seq`, `pending`.
    Field(&'static str),
    /// `snapshot.options.<field>`
    Option(&'static str),
    /// `snapshot.counters.<field>`
    Counter(&'static str),
    /// `snapshot.<list>[i]`: `sites[3]`, `pending[2]`.
    Item(&'static str, usize),
    /// `snapshot.<list>[i].<field>`: `players[2].x`.
    ItemField(&'static str, usize, &'static str),
    /// `snapshot.cluster.<field>`: `next_host_seq`, `outgoing`.
    Cluster(&'static str),
    /// `snapshot.cluster.counters.<field>`
    ClusterCounter(&'static str),
    /// `snapshot.cluster.<list>[i]`: `outgoing[1]`, `applied[2]`.
    ClusterItem(&'static str, usize),
    /// `snapshot.cluster.<list>[i].<field>`: `applied[2].shard`.
    ClusterItemField(&'static str, usize, &'static str),
}

impl fmt::Display for SnapshotPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("snapshot")?;
        match *self {
            SnapshotPath::Root => Ok(()),
            SnapshotPath::Field(name) => write!(f, ".{name}"),
            SnapshotPath::Option(name) => write!(f, ".options.{name}"),
            SnapshotPath::Counter(name) => write!(f, ".counters.{name}"),
            SnapshotPath::Item(list, i) => write!(f, ".{list}[{i}]"),
            SnapshotPath::ItemField(list, i, name) => write!(f, ".{list}[{i}].{name}"),
            SnapshotPath::Cluster(name) => write!(f, ".cluster.{name}"),
            SnapshotPath::ClusterCounter(name) => write!(f, ".cluster.counters.{name}"),
            SnapshotPath::ClusterItem(list, i) => write!(f, ".cluster.{list}[{i}]"),
            SnapshotPath::ClusterItemField(list, i, name) => {
                write!(f, ".cluster.{list}[{i}].{name}")
            }
        }
    }
}

/// The path of the argument an error is about, printed as in the contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arg {
    /// A plain argument or a named part: `x`, `player`, `id`, `max`,
    /// `records`, `opts`, `tuning`, `packed sites`.
    Plain(&'static str),
    /// An option field: `opts.aoi_radius`.
    Opt(&'static str),
    /// The entries of a loot table: `entries`.
    Entries(EntriesAt),
    /// One loot entry, 1-based: `entries[2]`.
    EntryTable(EntriesAt, usize),
    /// A field of a loot entry, 1-based: `entries[2].weight`.
    Entry(EntriesAt, usize, &'static str),
    /// A field of a batch record, 1-based: `records[3].x`.
    Record(usize, &'static str),
    /// A part of a snapshot: `snapshot.sites[3].x`.
    Snapshot(SnapshotPath),
    /// One record of a string of cluster records, 1-based: `records[2]`.
    RecordAt(usize),
}

impl fmt::Display for Arg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Arg::Plain(name) => f.write_str(name),
            Arg::Opt(name) => write!(f, "opts.{name}"),
            Arg::Entries(at) => write!(f, "{at}"),
            Arg::EntryTable(at, i) => write!(f, "{at}[{i}]"),
            Arg::Entry(at, i, name) => write!(f, "{at}[{i}].{name}"),
            Arg::Record(i, name) => write!(f, "records[{i}].{name}"),
            Arg::Snapshot(path) => write!(f, "{path}"),
            Arg::RecordAt(i) => write!(f, "records[{i}]"),
        }
    }
}

/// The value after `got` in a range message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Got {
    /// An integer the core holds: printed in decimal.
    Int(i128),
    /// A Lua value as the binding describes it (`tostring(v)` for a number:
    /// `1.5`, `nan`, `inf`; the type name otherwise).
    Shown(String),
}

impl fmt::Display for Got {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Got::Int(v) => write!(f, "{v}"),
            Got::Shown(s) => f.write_str(s),
        }
    }
}

impl From<i128> for Got {
    fn from(v: i128) -> Got {
        Got::Int(v)
    }
}

impl From<String> for Got {
    fn from(s: String) -> Got {
        Got::Shown(s)
    }
}

impl From<&str> for Got {
    fn from(s: &str) -> Got {
        Got::Shown(s.to_owned())
    }
}

/// What a value must be, in a type rule (`<arg> must be <expected>`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expected {
    /// `a resolver` (`self`)
    Resolver,
    /// `a table`
    Table,
    /// `a string`
    String,
    /// `a non-empty array of tables` (`entries`)
    NonEmptyArrayOfTables,
    /// `a uint8_t array, uint8_t * or void * cdata` (`buf` of `poll_into`)
    PacketBuffer,
}

impl fmt::Display for Expected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Expected::Resolver => "a resolver",
            Expected::Table => "a table",
            Expected::String => "a string",
            Expected::NonEmptyArrayOfTables => "a non-empty array of tables",
            Expected::PacketBuffer => "a uint8_t array, uint8_t * or void * cdata",
        })
    }
}
