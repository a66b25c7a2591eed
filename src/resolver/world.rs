//! The world a dig is decided in: loot tables, sites and players.

use mlua::{Lua, Value};

use super::NativeResolver;
use crate::args::{self, nth};
use crate::error::Failure;
use crate::tables;

/// `r:add_loot_table(id, entries)`.
pub fn add_loot_table(lua: &Lua, r: &mut NativeResolver, a: &[Value]) -> Result<(), Failure> {
    let f = "add_loot_table";
    let id = args::id(lua, f, "id", nth(a, 0))?;
    let entries = tables::loot_entries(lua, nth(a, 1))?;
    Ok(r.core().get(f)?.add_loot_table(id, &entries)?)
}

/// `r:add_site(id, x, y, z, loot_table_id, charges)`.
pub fn add_site(lua: &Lua, r: &mut NativeResolver, a: &[Value]) -> Result<(), Failure> {
    let f = "add_site";
    let id = args::id(lua, f, "id", nth(a, 0))?;
    let (x, y, z) = args::xyz(lua, f, a, 1)?;
    let table = args::id(lua, f, "loot_table_id", nth(a, 4))?;
    let charges = args::u32_arg(lua, f, "charges", nth(a, 5))?;
    Ok(r.core().get(f)?.add_site(id, x, y, z, table, charges)?)
}

/// `r:remove_site(id)`.
pub fn remove_site(lua: &Lua, r: &mut NativeResolver, a: &[Value]) -> Result<(), Failure> {
    let f = "remove_site";
    let id = args::id(lua, f, "id", nth(a, 0))?;
    Ok(r.core().get(f)?.remove_site(id)?)
}

/// `r:join(player, x, y, z [, party])`.
pub fn join(lua: &Lua, r: &mut NativeResolver, a: &[Value]) -> Result<(), Failure> {
    let f = "join";
    let p = args::id(lua, f, "player", nth(a, 0))?;
    let (x, y, z) = args::xyz(lua, f, a, 1)?;
    let party = args::opt(nth(a, 4), |v| args::u32_arg(lua, f, "party", v))?.unwrap_or(0);
    Ok(r.core().get(f)?.join(p, x, y, z, party)?)
}

/// `r:move(player, x, y, z)`.
pub fn move_player(lua: &Lua, r: &mut NativeResolver, a: &[Value]) -> Result<(), Failure> {
    let f = "move";
    let p = args::id(lua, f, "player", nth(a, 0))?;
    let (x, y, z) = args::xyz(lua, f, a, 1)?;
    Ok(r.core().get(f)?.move_player(p, x, y, z)?)
}

/// `r:set_party(player, party)`.
pub fn set_party(lua: &Lua, r: &mut NativeResolver, a: &[Value]) -> Result<(), Failure> {
    let f = "set_party";
    let p = args::id(lua, f, "player", nth(a, 0))?;
    let party = args::u32_arg(lua, f, "party", nth(a, 1))?;
    Ok(r.core().get(f)?.set_party(p, party)?)
}

/// `r:leave(player)`.
pub fn leave(lua: &Lua, r: &mut NativeResolver, a: &[Value]) -> Result<(), Failure> {
    let f = "leave";
    let p = args::id(lua, f, "player", nth(a, 0))?;
    Ok(r.core().get(f)?.leave(p)?)
}

/// `r:move_batch(records)`: packed move records (docs/API.md).
pub fn move_batch(_: &Lua, r: &mut NativeResolver, a: &[Value]) -> Result<(), Failure> {
    let f = "move_batch";
    let records = args::string(f, "records", nth(a, 0))?;
    Ok(r.core().get(f)?.move_batch(&records.as_bytes())?)
}
