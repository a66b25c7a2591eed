-- The Lua half of the binding, compiled into native.so (include_str!) and run
-- once by luaopen_treasure_native. It exists for what only Lua can do:
--
-- 1. mlua raises Rust errors as userdata objects, but the contract says a bad
--    call raises a plain string at level 0 (exactly as treasure.legacy does).
--    Each raw Rust function therefore *returns* (ERR, message) on failure and
--    src/raise.lua's wrapper turns that into error(message, 0). A call still costs
--    one Lua->C call; the wrapper is plain Lua that LuaJIT compiles.
-- 2. Only Lua can ask LuaJIT's FFI what a cdata is and how big it is, which
--    poll_into must know before Rust writes into the caller's buffer: Rust
--    asks lua/treasure/ffi_buffer.lua itself on the mlua path (src/ffi/
--    buffer.rs); the fast path below asks it here and passes the verdict.
-- 3. Only LuaJIT's FFI can call into the library from a compiled trace: the
--    fast path for the per-tick calls (below).
-- 4. Snapshots cross as packed records read and written with the FFI, far
--    cheaper than one C-API table per player or site.
--
-- Arguments: raw (table of Rust functions), raise (src/raise.lua: the
-- ERR-to-error rule),
-- packets_held (lua/treasure/ffi_buffer.lua), snapshot_rules
-- (lua/treasure/snapshot.lua: the validation restore runs first).
local raw, raise, packets_held, snapshot_rules = ...

local ffi = require("ffi")

local check = raise.check
local methods = raise.wrap(raw.methods)

-- The FFI fast path (src/ffi/fast.rs) for the calls a game loop makes every
-- tick. LuaJIT compiles these FFI calls into its traces; the classic C API
-- calls above it cannot be. The fast functions only ever *succeed* or say
-- "take the slow path" (-1) having changed nothing; the slow path then
-- validates again and raises the contract's exact message. Only numbers and
-- strings are handed to the FFI (it would raise its own errors on others).
-- TREASURE_NATIVE_FFI=0 turns the fast path off (for comparisons).
local C
do
  local path = package.searchpath and package.searchpath("treasure.native", package.cpath)
  local ok, lib = false, nil
  if path and os.getenv("TREASURE_NATIVE_FFI") ~= "0" then
    ok, lib = pcall(ffi.load, path)
  end
  if ok then
    ok = pcall(ffi.cdef, [[
      double treasure_native_move(double h, double p, double x, double y, double z);
      double treasure_native_dig(double h, double p, double x, double y, double z, double t);
      double treasure_native_dig_batch(double h, const char *records, size_t len);
      double treasure_native_move_batch(double h, const char *records, size_t len);
      double treasure_native_poll_into(double h, uint8_t *buf, double holds, double max);
      double treasure_native_poll_view(double h, double max, const uint8_t **view);
      const uint8_t *treasure_native_identity(void);
    ]])
    -- Use it only if ffi.load found the very library require loaded.
    if ok and tonumber(ffi.cast("uintptr_t", lib.treasure_native_identity())) == raw.identity() then
      C = lib
    end
  end
end

-- resolver userdata -> handle: a number naming the resolver's cell in the
-- arena of src/ffi/handles.rs, never an address. An entry may outlive its
-- resolver (Lua 5.1 keeps weak keys of finalized userdata; a resurrected
-- one keeps its entry): the handle is then stale, the fast function says
-- "take the slow path", and the slow path answers `resolver is closed`.
local handles = setmetatable({}, { __mode = "k" })

-- A finalized resolver (mlua ran its __gc: lua_close, another finalizer of
-- the same cycle, resurrection) carries mlua's "destructed" metatable, whose
-- every field raises "userdata has been destructed". That metatable belongs
-- to this module's copy of mlua in this state and only our userdata get it:
-- give it our methods, so `r:dig()` reaches the raw method and raises
-- `treasure: dig: resolver is closed`, and a tostring that does not raise.
local getmetatable_any = debug and debug.getmetatable -- nil in a sandbox without debug
if getmetatable_any then
  local finalized_mt = getmetatable_any(raw.finalized_sample())
  rawset(finalized_mt, "__index", function(_, k) return methods[k] end)
  rawset(finalized_mt, "__tostring", function() return "treasure.native resolver (closed)" end)
end

-- Issue 16, the zero-copy drain: r:poll_view([max]) -> n, a `const uint8_t *`
-- to n packets that workers wrote in place (nil when n is 0). The raw
-- method gives the address as a light userdata; the cast makes the view.
local view_ptr_t = ffi.typeof("const uint8_t *")
local MAX_SAFE = 2 ^ 53 - 1
do
  local raw_view = methods.poll_view
  function methods.poll_view(self, max)
    local n, addr = raw_view(self, max)
    if n == 0 then return 0, nil end
    return n, ffi.cast(view_ptr_t, addr)
  end
end

if C then
  local slow = {}
  for k, f in pairs(methods) do slow[k] = f end
  local fmove, fdig, fdigb, fmoveb, fpoll =
    C.treasure_native_move, C.treasure_native_dig, C.treasure_native_dig_batch,
    C.treasure_native_move_batch, C.treasure_native_poll_into

  function methods.move(self, p, x, y, z)
    local h = handles[self]
    if h and type(p) == "number" and type(x) == "number" and type(y) == "number"
        and type(z) == "number" and fmove(h, p, x, y, z) == 0 then
      return
    end
    return slow.move(self, p, x, y, z)
  end

  function methods.dig(self, p, x, y, z, t)
    local h = handles[self]
    if h and type(p) == "number" and type(x) == "number" and type(y) == "number"
        and type(z) == "number" and type(t) == "number" then
      local seq = fdig(h, p, x, y, z, t)
      if seq > 0 then return seq end
      if seq == 0 then return nil, "busy" end
    end
    return slow.dig(self, p, x, y, z, t)
  end

  function methods.dig_batch(self, records)
    local h = handles[self]
    if h and type(records) == "string" then
      local first = fdigb(h, records, #records)
      if first > 0 then return first, #records / 24 end
      if first == 0 then return nil, "busy" end
    end
    return slow.dig_batch(self, records)
  end

  function methods.move_batch(self, records)
    local h = handles[self]
    if h and type(records) == "string" and fmoveb(h, records, #records) == 0 then
      return
    end
    return slow.move_batch(self, records)
  end

  function methods.poll_into(self, buf, max, capacity)
    local h = handles[self]
    if h and type(max) == "number" then
      -- nil: not an accepted buffer (or a bad capacity), never handed to the FFI
      local holds = packets_held(buf, capacity)
      if holds then
        local n = fpoll(h, buf, holds, max)
        if n >= 0 then return n end
      end
    end
    return slow.poll_into(self, buf, max, capacity)
  end

  local fview = C.treasure_native_poll_view
  local view_out = ffi.new("const uint8_t *[1]") -- the run's address, per call
  function methods.poll_view(self, max)
    local h = handles[self]
    local m = max
    if m == nil then m = MAX_SAFE end
    if h and type(m) == "number" then
      local n = fview(h, m, view_out)
      if n > 0 then return n, view_out[0] end
      if n == 0 then return 0, nil end
    end
    return slow.poll_view(self, max)
  end

  function methods.close(self)
    if handles[self] then handles[self] = nil end -- stale from now on anyway
    return slow.close(self)
  end
end

local pack_sites, pack_players
-- Snapshots: sites and players as packed little-endian records (the FFI
-- struct layout on this little-endian host; packet.lua refuses big-endian).
if not pcall(ffi.sizeof, "struct treasure_snapshot_site_v1") then
  ffi.cdef([[
struct treasure_snapshot_site_v1 { uint32_t id; int32_t x, y, z; uint32_t loot_table_id, charges; };
struct treasure_snapshot_player_v1 { uint32_t id; int32_t x, y, z; uint32_t party; };
]])
end
assert(ffi.sizeof("struct treasure_snapshot_site_v1") == 24 and ffi.sizeof("struct treasure_snapshot_player_v1") == 20)
local site_arr_t = ffi.typeof("struct treasure_snapshot_site_v1[?]")
local site_ptr_t = ffi.typeof("const struct treasure_snapshot_site_v1 *")
local player_arr_t = ffi.typeof("struct treasure_snapshot_player_v1[?]")
local player_ptr_t = ffi.typeof("const struct treasure_snapshot_player_v1 *")
local rawget = rawget

function pack_sites(list) -- checked by snapshot_rules: an array of valid sites
  local n = #list
  local a = site_arr_t(n)
  for i = 1, n do
    local s, rec = rawget(list, i), a[i - 1]
    rec.id, rec.x, rec.y, rec.z = rawget(s, "id"), rawget(s, "x"), rawget(s, "y"), rawget(s, "z")
    rec.loot_table_id, rec.charges = rawget(s, "loot_table_id"), rawget(s, "charges")
  end
  return ffi.string(a, n * 24)
end

function pack_players(list)
  local n = #list
  local a = player_arr_t(n)
  for i = 1, n do
    local p, rec = rawget(list, i), a[i - 1]
    rec.id, rec.x, rec.y, rec.z, rec.party = rawget(p, "id"), rawget(p, "x"), rawget(p, "y"), rawget(p, "z"),
      rawget(p, "party")
  end
  return ffi.string(a, n * 20)
end

-- Cluster mode: each player's host, a uint32 per player in the players'
-- order (nil outside cluster mode).
local u32_arr_t = ffi.typeof("uint32_t[?]")
local u32_ptr_t = ffi.typeof("const uint32_t *")
local function pack_hosts(options, list)
  if rawget(options, "shard") == nil then return nil end
  local n = #list
  local a = u32_arr_t(n)
  for i = 1, n do a[i - 1] = rawget(rawget(list, i), "host") end
  return ffi.string(a, n * 4)
end

local raw_snapshot = raw.snapshot
function methods.snapshot(self)
  local s, sites_bin, players_bin, hosts_bin = check(raw_snapshot(self))
  local sites, players = {}, {}
  local sp = ffi.cast(site_ptr_t, sites_bin)
  for i = 0, #sites_bin / 24 - 1 do
    local rec = sp[i]
    sites[i + 1] = { id = rec.id, x = rec.x, y = rec.y, z = rec.z,
      loot_table_id = rec.loot_table_id, charges = rec.charges }
  end
  local pp = ffi.cast(player_ptr_t, players_bin)
  for i = 0, #players_bin / 20 - 1 do
    local rec = pp[i]
    players[i + 1] = { id = rec.id, x = rec.x, y = rec.y, z = rec.z, party = rec.party }
  end
  if hosts_bin then
    local hp = ffi.cast(u32_ptr_t, hosts_bin)
    for i = 0, #hosts_bin / 4 - 1 do players[i + 1].host = hp[i] end
  end
  s.sites, s.players = sites, players
  return s
end

local function register(r)
  if C then handles[r] = raw.handle(r) end
  return r
end

local M = {
  _VERSION = raw._VERSION,
  _VERSION_NUM = raw._VERSION_NUM,
  backend = "native",
  -- true when the FFI fast path is in use (see above)
  _ffi = C ~= nil,
}

function M.new(opts)
  return register(check(raw.new(opts)))
end

-- Test-only: new() with internal queue sizes overridden, so tests can force
-- tiny chunks and a tiny in-flight window (wrap-around and backpressure).
function M._new_with_tuning(opts, tuning)
  return register(check(raw.new(opts, tuning)))
end

-- restore(snapshot): the shared rules check everything first (raising the
-- contract's message), then Rust converts and builds. A restored resolver
-- gets its FFI handle like a new one. Sites and players cross to Rust as
-- packed records (see src/snapshot.rs), the rest as a small table.
local function restore(snapshot, tuning)
  snapshot_rules.check(snapshot)
  local header = {
    version = rawget(snapshot, "version"), options = rawget(snapshot, "options"),
    loot_tables = rawget(snapshot, "loot_tables"), next_seq = rawget(snapshot, "next_seq"),
    counters = rawget(snapshot, "counters"), pending = rawget(snapshot, "pending"),
    cluster = rawget(snapshot, "cluster"),
  }
  local players = rawget(snapshot, "players")
  return register(check(raw.restore(header, pack_sites(rawget(snapshot, "sites")),
    pack_players(players), pack_hosts(rawget(snapshot, "options"), players), tuning)))
end

function M.restore(snapshot)
  return restore(snapshot)
end

-- Test-only: restore() with the internal queue sizes of _new_with_tuning.
function M._restore_with_tuning(snapshot, tuning)
  return restore(snapshot, tuning)
end

-- Test-only: make the next worker task panic after n more chunks.
function M._inject_worker_panic(r, n)
  return check(raw._inject_worker_panic(r, n))
end

return M, methods
