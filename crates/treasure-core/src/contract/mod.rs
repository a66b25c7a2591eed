//! The contract of `docs/API.md`, once: its limits ([`limits`]), the exact
//! text of every error the core or the binding raises ([`Error`]), and the
//! checks the live API and `restore` share ([`checks`]).
//!
//! A rule change is made here and nowhere else in Rust: the resolver and
//! the snapshot validation call these checks, and the binding (`src/`)
//! imports the limits and builds its messages with [`Error`]'s constructors,
//! so it writes no message text itself. (The Lua reference has its own
//! single copy in `lua/treasure/contract.lua`.)

pub mod checks;
mod cluster;
mod error;
pub mod limits;
mod names;

pub use cluster::RecordReason;
pub use error::{Error, ErrorKind};
pub use limits::Range;
pub use names::{Arg, EntriesAt, Expected, Got, Method, OptionsAt, SnapshotPath};
