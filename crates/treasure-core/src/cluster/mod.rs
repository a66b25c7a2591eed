//! Cluster mode (issue 17): a resolver made with `shard`/`shards` turns
//! each dig call's outcome into records addressed to its recipients' host
//! shards, and applies the records addressed to it, in log order, as its
//! own numbered packet stream.
//!
//! * `record.rs`: the record layout, its checked reader and its writer.
//! * `outgoing.rs`: the deterministic cut of a dig call into records.
//! * `incoming.rs`: validation of a string of records, the per-source
//!   dedupe and gap rule, the host seq and the host packet queue.

pub mod incoming;
pub mod outgoing;
pub mod record;
