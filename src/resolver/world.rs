//! The world a dig is decided in: loot tables, sites and players.

use mlua::{Lua, Value};

use super::NativeResolver;
use crate::args::{self, nth};
use treasure_core::{Error, Method};

use crate::tables;

/// `r:add_loot_table(id, entries)`.
pub fn add_loot_table(lua: &Lua, r: &mut NativeResolver, a: &[Value]) -> Result<(), Error> {
    let m = Method::AddLootTable;
    let id = args::id(lua, m, "id", nth(a, 0))?;
    let entries = tables::loot_entries(lua, nth(a, 1))?;
    r.core().get(m)?.add_loot_table(id, &entries)
}

/// `r:add_site(id, x, y, z, loot_table_id, charges)`.
pub fn add_site(lua: &Lua, r: &mut NativeResolver, a: &[Value]) -> Result<(), Error> {
    let m = Method::AddSite;
    let id = args::id(lua, m, "id", nth(a, 0))?;
    let (x, y, z) = args::xyz(lua, m, a, 1)?;
    let table = args::id(lua, m, "loot_table_id", nth(a, 4))?;
    let charges = args::charges(lua, m, nth(a, 5))?;
    r.core().get(m)?.add_site(id, x, y, z, table, charges)
}

/// `r:remove_site(id)`.
pub fn remove_site(lua: &Lua, r: &mut NativeResolver, a: &[Value]) -> Result<(), Error> {
    let m = Method::RemoveSite;
    let id = args::id(lua, m, "id", nth(a, 0))?;
    r.core().get(m)?.remove_site(id)
}

/// `r:join(player, x, y, z [, party])`.
pub fn join(lua: &Lua, r: &mut NativeResolver, a: &[Value]) -> Result<(), Error> {
    let m = Method::Join;
    let p = args::id(lua, m, "player", nth(a, 0))?;
    let (x, y, z) = args::xyz(lua, m, a, 1)?;
    let party = args::opt(nth(a, 4), |v| args::party(lua, m, v))?.unwrap_or(0);
    r.core().get(m)?.join(p, x, y, z, party)
}

/// `r:move(player, x, y, z)`.
pub fn move_player(lua: &Lua, r: &mut NativeResolver, a: &[Value]) -> Result<(), Error> {
    let m = Method::Move;
    let p = args::id(lua, m, "player", nth(a, 0))?;
    let (x, y, z) = args::xyz(lua, m, a, 1)?;
    r.core().get(m)?.move_player(p, x, y, z)
}

/// `r:set_party(player, party)`.
pub fn set_party(lua: &Lua, r: &mut NativeResolver, a: &[Value]) -> Result<(), Error> {
    let m = Method::SetParty;
    let p = args::id(lua, m, "player", nth(a, 0))?;
    let party = args::party(lua, m, nth(a, 1))?;
    r.core().get(m)?.set_party(p, party)
}

/// `r:leave(player)`.
pub fn leave(lua: &Lua, r: &mut NativeResolver, a: &[Value]) -> Result<(), Error> {
    let m = Method::Leave;
    let p = args::id(lua, m, "player", nth(a, 0))?;
    r.core().get(m)?.leave(p)
}

/// `r:move_batch(records)`: packed move records (docs/API.md).
pub fn move_batch(_: &Lua, r: &mut NativeResolver, a: &[Value]) -> Result<(), Error> {
    let m = Method::MoveBatch;
    let records = args::string(m, "records", nth(a, 0))?;
    r.core().get(m)?.move_batch(&records.as_bytes())
}
