--- treasure.snapshot: the one definition of what a valid snapshot is
-- (docs/API.md, "Snapshot, restore and swap").
--
-- Both backends validate with this file before they build anything:
-- treasure.legacy requires it, and treasure.native compiles the same file
-- into native.so (include_str!, like ffi_buffer.lua) and runs it from
-- native.lua, handing it the packet module. So every backend rejects the
-- same snapshots with the same message, in the contract's style:
--
--   treasure: restore: snapshot.players[3].x must be an integer in [-1048576, 1048575], got 1.5
--
-- Checks run in this order and the first failure is raised: the snapshot's
-- type and unknown keys; version; options; loot_tables; sites; players;
-- counters; pending; next_seq. Within a list, elements first to last, each
-- completely (its type, unknown keys, fields in the documented order, then
-- the rules against earlier elements). Fields are read raw (rawget/next).

local dep = ...
local packet = type(dep) == "table" and dep or require("treasure.packet")
local ffi = require("ffi")

local cast = ffi.cast
local floor = math.floor
local format = string.format
local type, tostring, error, next, rawget = type, tostring, error, next, rawget

local VERSION = 1
local U32_MAX = 4294967295
local SAFE = 9007199254740991
-- next_seq = counters.digs + 1: the resolver that used seq 2^53-1 (the last
-- a dig may take, docs/API.md) snapshots next_seq = 2^53, exact in a double.
local NEXT_SEQ_MAX = 9007199254740992
local I = packet._int_text -- numbers in messages (docs/API.md)

local R_ID = "[1, 4294967295]"
local R_U32_0 = "[0, 4294967295]"
local R_COORD = "[-1048576, 1048575]"
local R_SAFE_0 = "[0, 9007199254740991]"
local R_SAFE_1 = "[1, 9007199254740991]"
local R_NEXT_SEQ = "[1, 9007199254740992]"

local MAGIC = 0x52535254 -- "TRSR" read as a little-endian u32
local u8p = ffi.typeof("const uint8_t *")
local u16p = ffi.typeof("const uint16_t *")
local u32p = ffi.typeof("const uint32_t *")

local function show(v)
  if type(v) == "number" then return tostring(v) end
  return type(v)
end

local function key_text(k)
  if type(k) == "string" then return k end
  return show(k)
end

local function fail(msg)
  error("treasure: restore: " .. msg, 0)
end

local function is_int(v, lo, hi)
  return type(v) == "number" and v >= lo and v <= hi and floor(v) == v
end

local function int(path, v, lo, hi, range)
  if not is_int(v, lo, hi) then
    fail(path .. " must be an integer in " .. range .. ", got " .. show(v))
  end
  return v
end

-- Paths of list elements (`snapshot.sites[3]`) are only built for a
-- message: a valid snapshot of 100,000 sites makes no strings at all.
local function elem(list_path, i)
  if i == nil then return list_path end
  return list_path .. "[" .. i .. "]"
end

--- `t` is a table whose keys are all in `known` (reported in next() order).
local function keys(path, t, known, i)
  if type(t) ~= "table" then fail(elem(path, i) .. " must be a table, got " .. type(t)) end
  for k in next, t do
    if type(k) ~= "string" or not known[k] then
      fail(elem(path, i) .. " has unknown key '" .. key_text(k) .. "'")
    end
  end
  return t
end

local function set(list)
  local s = {}
  for i = 1, #list do s[list[i]] = true end
  return s
end

--- An array of tables: exactly the keys 1..n (n may be 0 unless non_empty).
local function array(path, v, non_empty)
  local what = non_empty and "a non-empty array of tables" or "an array of tables"
  if type(v) ~= "table" then fail(path .. " must be " .. what .. ", got " .. type(v)) end
  local n = 0
  for _ in next, v do n = n + 1 end
  for k in next, v do
    if not is_int(k, 1, n) then fail(path .. " must be " .. what .. ", got table") end
  end
  if non_empty and n == 0 then fail(path .. " must be " .. what .. ", got table") end
  return n
end

local TOP = set({ "version", "options", "loot_tables", "sites", "players", "next_seq", "counters", "pending" })
local OPTS = {
  { "seed", 0, SAFE, R_SAFE_0 },
  { "aoi_radius", 0, 1048576, "[0, 1048576]" },
  { "reach", 0, 1048576, "[0, 1048576]" },
  { "workers", 0, 256, "[0, 256]" },
  { "max_pending_packets", 1, SAFE, R_SAFE_1 },
}
local OPT_KEYS = set({ "seed", "aoi_radius", "reach", "workers", "max_pending_packets" })
local LOOT_KEYS = set({ "id", "entries" })
local ENTRY = {
  { "item", 1, U32_MAX, R_ID },
  { "weight", 1, U32_MAX, R_ID },
  { "min", 0, 65535, "[0, 65535]" },
  { "max", 0, 65535, "[0, 65535]" },
  { "rarity", 0, 255, "[0, 255]" },
}
local ENTRY_KEYS = set({ "item", "weight", "min", "max", "rarity" })
local SITE = {
  { "id", 1, U32_MAX, R_ID },
  { "x", -1048576, 1048575, R_COORD },
  { "y", -1048576, 1048575, R_COORD },
  { "z", -1048576, 1048575, R_COORD },
  { "loot_table_id", 1, U32_MAX, R_ID },
  { "charges", 0, U32_MAX, R_U32_0 },
}
local SITE_KEYS = set({ "id", "x", "y", "z", "loot_table_id", "charges" })
local PLAYER = {
  { "id", 1, U32_MAX, R_ID },
  { "x", -1048576, 1048575, R_COORD },
  { "y", -1048576, 1048575, R_COORD },
  { "z", -1048576, 1048575, R_COORD },
  { "party", 0, U32_MAX, R_U32_0 },
}
local PLAYER_KEYS = set({ "id", "x", "y", "z", "party" })
local COUNTERS = { "digs", "packets", "found", "empty", "nothing", "rejected", "busy" }
local COUNTER_KEYS = set(COUNTERS)

--- The integer fields of element i of a list, in `spec` order.
local function fields(list_path, i, t, spec)
  for k = 1, #spec do
    local f = spec[k]
    local v = rawget(t, f[1])
    if not is_int(v, f[2], f[3]) then
      fail(elem(list_path, i) .. "." .. f[1] .. " must be an integer in " .. f[4] .. ", got " .. show(v))
    end
  end
end

--- Fails if an earlier element had the same id, else records it.
local function unique(list_path, i, seen, id)
  local first = seen[id]
  if first then
    fail(format("%s.id must not repeat %s.id, got %s", elem(list_path, i), elem(list_path, first), I(id)))
  end
  seen[id] = i
end

local M = { VERSION = VERSION, _VERSION = packet._VERSION, _VERSION_NUM = packet._VERSION_NUM }

--- Raises `treasure: restore: ...` unless `s` is a valid snapshot.
-- Returns the number of pending packets.
function M.check(s)
  if type(s) ~= "table" then fail("snapshot must be a table, got " .. type(s)) end
  keys("snapshot", s, TOP)
  local version = rawget(s, "version")
  if version ~= VERSION then fail("snapshot.version must be 1, got " .. show(version)) end

  local o = keys("snapshot.options", rawget(s, "options"), OPT_KEYS)
  for i = 1, #OPTS do
    local f = OPTS[i]
    int("snapshot.options." .. f[1], rawget(o, f[1]), f[2], f[3], f[4])
  end

  local lts = rawget(s, "loot_tables")
  local tables = {}
  for i = 1, array("snapshot.loot_tables", lts) do
    local path = "snapshot.loot_tables[" .. i .. "]"
    local lt = keys(path, rawget(lts, i), LOOT_KEYS)
    local id = int(path .. ".id", rawget(lt, "id"), 1, U32_MAX, R_ID)
    unique("snapshot.loot_tables", i, tables, id)
    local entries = rawget(lt, "entries")
    local total = 0
    local ep = path .. ".entries"
    for j = 1, array(ep, entries, true) do
      local e = keys(ep, rawget(entries, j), ENTRY_KEYS, j)
      fields(ep, j, e, ENTRY)
      local mn, mx = rawget(e, "min"), rawget(e, "max")
      if mn > mx then fail(elem(ep, j) .. ".min must be <= max, got " .. I(mn) .. " > " .. I(mx)) end
      total = total + rawget(e, "weight")
    end
    if total > U32_MAX then
      fail(path .. ".entries total weight must be <= 4294967295, got " .. I(total))
    end
  end

  local sites = rawget(s, "sites")
  local site_ids, blocks = {}, {} -- blocks[x, y packed][z] = site id
  local SP = "snapshot.sites"
  for i = 1, array(SP, sites) do
    local site = keys(SP, rawget(sites, i), SITE_KEYS, i)
    fields(SP, i, site, SITE)
    local id = rawget(site, "id")
    unique(SP, i, site_ids, id)
    local x, y, z = rawget(site, "x") + 0, rawget(site, "y") + 0, rawget(site, "z") + 0
    local xy = (x + 1048576) * 2097152 + (y + 1048576)
    local col = blocks[xy]
    if col == nil then col = {}; blocks[xy] = col end
    local other = col[z]
    if other then
      fail(format("%s block must not hold a site already, got %s, %s, %s (site %s)", elem(SP, i), I(x), I(y), I(z), I(other)))
    end
    col[z] = id
    local lt = rawget(site, "loot_table_id")
    if not tables[lt] then
      fail(elem(SP, i) .. ".loot_table_id must be an existing loot table, got " .. I(lt))
    end
  end

  local players = rawget(s, "players")
  local player_ids = {}
  local PP = "snapshot.players"
  for i = 1, array(PP, players) do
    local p = keys(PP, rawget(players, i), PLAYER_KEYS, i)
    fields(PP, i, p, PLAYER)
    unique(PP, i, player_ids, rawget(p, "id"))
  end

  local c = keys("snapshot.counters", rawget(s, "counters"), COUNTER_KEYS)
  for i = 1, #COUNTERS do
    int("snapshot.counters." .. COUNTERS[i], rawget(c, COUNTERS[i]), 0, SAFE, R_SAFE_0)
  end
  local digs = rawget(c, "digs")
  local kinds = rawget(c, "found") + rawget(c, "empty") + rawget(c, "nothing") + rawget(c, "rejected")
  if digs ~= kinds then
    fail(format("snapshot.counters.digs must be found + empty + nothing + rejected (%s), got %s", I(kinds), I(digs)))
  end

  local pending = rawget(s, "pending")
  if type(pending) ~= "string" then fail("snapshot.pending must be a string, got " .. type(pending)) end
  local len = #pending
  if len % 128 ~= 0 then fail("snapshot.pending length must be a multiple of 128, got " .. len) end
  local n = len / 128
  local base = cast(u8p, pending)
  local last_seq, last_rcpt
  for i = 1, n do
    local path = "snapshot.pending[" .. i .. "]"
    local off = (i - 1) * 128
    local p = base + off
    local why
    if cast(u32p, p)[0] ~= MAGIC then
      why = "bad magic"
    elseif cast(u16p, p + 4)[0] ~= 1 then
      why = "bad version " .. I(cast(u16p, p + 4)[0])
    elseif cast(u32p, p + 124)[0] ~= packet.crc32c_ptr(p, 124) % 4294967296 then
      why = "bad CRC"
    end
    if why then fail(path .. " must be a valid packet (magic, version 1, CRC-32C), got " .. why) end
    local w = cast(u32p, p)
    local seq = w[3] * 4294967296 + w[2]
    local rcpt = w[8]
    if seq < 1 then fail(format("%s.seq must be at least 1, got %s", path, I(seq))) end
    if last_seq then
      if seq < last_seq then
        fail(format("%s.seq must not be below the previous packet's seq %s, got %s", path, I(last_seq), I(seq)))
      end
      if seq == last_seq and rcpt <= last_rcpt then
        fail(format("%s.recipient must be above the previous packet's recipient %s (same seq %s), got %s",
          path, I(last_rcpt), I(seq), I(rcpt)))
      end
    end
    last_seq, last_rcpt = seq, rcpt
  end
  if rawget(c, "packets") < n then
    fail(format("snapshot.counters.packets must be at least the pending packets (%s), got %s", I(n), I(rawget(c, "packets"))))
  end

  local next_seq = int("snapshot.next_seq", rawget(s, "next_seq"), 1, NEXT_SEQ_MAX, R_NEXT_SEQ)
  if last_seq and next_seq <= last_seq then
    fail(format("snapshot.next_seq must be above the last pending packet's seq %s, got %s", I(last_seq), I(next_seq)))
  end
  if next_seq ~= digs + 1 then
    fail(format("snapshot.next_seq must be counters.digs + 1 (%s), got %s", I(digs + 1), I(next_seq)))
  end
  return n
end

return M
