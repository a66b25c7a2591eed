//! The world a dig is resolved in: players (the part workers read, with
//! their AOI grid, party lists and frozen index) and sites with their loot
//! tables (the caller's thread only).
//!
//! Dependencies point one way: `space` (geometry and value types) <-
//! `grid`, `frozen` <- `players`; `sites` uses `space` only.

pub(crate) mod frozen;
pub(crate) mod grid;
pub(crate) mod players;
mod sites;
pub(crate) mod space;

pub(crate) use players::Players;
pub(crate) use sites::{Site, Sites};
pub(crate) use space::{block_key, dist2, Hit, PlayerView};
