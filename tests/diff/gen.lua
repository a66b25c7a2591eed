-- tests/diff/gen.lua: seeded generator of random resolver call sequences.
--
-- Deterministic from an integer seed (own xorshift128 PRNG on `bit` ops, never
-- math.random) and prefix-stable: the first N calls of a sequence do not depend
-- on how many calls are asked for, so `--calls N` replays a failure exactly.
--
-- A call is a table { m = method, n = argc, [1..n] = args, self = marker|nil }.
-- Argument values are plain Lua numbers/strings/booleans/nil, or descriptors
-- the driver materializes afresh for every backend:
--   { __tbl = { {k, v}, ... }, __meta = pairs|nil }   a table built from ordered
--                                         pairs (with an __index metatable)
--   { __buf = "vla"|"fixed"|"int32"|"ptr"|"const"|"ctype"|"ctype_vla", size = bytes }
--                                         an FFI buffer ("ctype": the ctype
--                                         object uint8_t[size], not an instance)
--   { __fn = true }                       a function
--   { __i64 = v }                         a boxed int64_t cdata
-- `self` (when present) replaces the resolver: "nil", "table", "number".
-- Methods: "new" (always call 1: the resolver under test, opts in arg 1),
-- "new_check" (module.new(opts) whose resolver is closed at once), and the
-- resolver methods of docs/API.md.
local bit = require("bit")
local bxor, lshift, rshift, tobit = bit.bxor, bit.lshift, bit.rshift, bit.tobit

local M = {}

local COORD_MIN, COORD_MAX = -1048576, 1048575
local U32 = 4294967295
local MAX53 = 9007199254740991

---------------------------------------------------------------- PRNG
local Rng = {}
Rng.__index = Rng

local function u32(x) return x % 4294967296 end

function M.rng(seed)
  seed = tonumber(seed) or 0
  local lo = tobit(seed % 4294967296)
  local hi = tobit(math.floor(seed / 4294967296) % 4294967296)
  -- xorshift32 scrambler to spread the seed over 4 words
  local s = bxor(lo, 0x6b43a9b5)
  if s == 0 then s = 0x1234567 end
  local function step32()
    s = bxor(s, lshift(s, 13)); s = bxor(s, rshift(s, 17)); s = bxor(s, lshift(s, 5))
    return s
  end
  local r = setmetatable({}, Rng)
  r.a = bxor(step32(), hi); r.b = step32(); r.c = bxor(step32(), 0x2545F491); r.d = step32()
  if r.a == 0 and r.b == 0 and r.c == 0 and r.d == 0 then r.d = 1 end
  for _ = 1, 32 do r:u32() end
  return r
end

-- xorshift128 (Marsaglia); returns an unsigned 32-bit integer as a double
function Rng:u32()
  local t = bxor(self.a, lshift(self.a, 11))
  self.a, self.b, self.c = self.b, self.c, self.d
  self.d = bxor(bxor(self.d, rshift(self.d, 19)), bxor(t, rshift(t, 8)))
  return u32(self.d)
end

function Rng:below(n) -- integer in [0, n)
  if n <= 4294967296 then return self:u32() % n end
  return (self:u32() * 4294967296 + self:u32()) % n
end
function Rng:int(lo, hi) return lo + self:below(hi - lo + 1) end
function Rng:chance(p) return self:u32() < p * 4294967296 end
function Rng:pick(list) return list[self:below(#list) + 1] end
function Rng:u53() return (self:u32() % 2097152) * 4294967296 + self:u32() end
function Rng:weighted(tbl) -- { {w, v}, ... }
  local total = 0
  for i = 1, #tbl do total = total + tbl[i][1] end
  local x = self:below(total)
  for i = 1, #tbl do
    x = x - tbl[i][1]
    if x < 0 then return tbl[i][2] end
  end
  return tbl[#tbl][2]
end

---------------------------------------------------------------- binary packing
local schar = string.char
local function le32(v) -- v integer in [-2^31, 2^32)
  if v < 0 then v = v + 4294967296 end
  return schar(v % 256, math.floor(v / 256) % 256, math.floor(v / 65536) % 256, math.floor(v / 16777216) % 256)
end
local function le64(hi, lo) return le32(lo) .. le32(hi) end
local function u64parts(v) return math.floor(v / 4294967296), v % 4294967296 end
M.le32, M.le64 = le32, le64

---------------------------------------------------------------- values
local NAN = 0 / 0
local BAD_GENERIC = {
  function() return 1.5 end,
  function() return NAN end,
  function() return 1 / 0 end,
  function() return -1 / 0 end,
  function() return "1" end,
  function() return nil end,
  function() return true end,
  function() return { __tbl = {} } end,
  function() return 1e300 end,
  function() return -2.5 end,
  function() return { __i64 = 1 } end,
  function() return { __fn = true } end,
  function() return 2 ^ 53 end,
  function() return 1e15 + 0.5 end,
}

-- a value that is NOT an integer in [lo, hi]
local function bad_num(r, lo, hi)
  local k = r:below(10)
  if k < 3 then return lo - 1 end
  if k < 5 then return hi + 1 end
  if k == 5 and lo > 0 then return -0.0 end
  if k == 5 then return lo + 0.5 end
  return r:pick(BAD_GENERIC)()
end
M.bad_num = bad_num

---------------------------------------------------------------- generator
local Gen = {}
Gen.__index = Gen

local PLAYER_IDS_RARE = { U32, U32 - 1, 1000000, 65536 }
local SITE_IDS_RARE = { U32, 2147483648, 77777 }
local TABLE_IDS_RARE = { U32, 4096 }

function M.new(seed, gopts)
  gopts = gopts or {}
  local r = M.rng(seed)
  local g = setmetatable({ r = r, i = 0, seed = seed }, Gen)
  g.tiny = gopts.tiny
  if g.tiny == nil then g.tiny = r:chance(0.2) end
  g.workers = gopts.workers
  g.negzero = gopts.negzero ~= false -- false: valid -0 arguments are generated as 0 (same sequence otherwise)
  g.closeable = r:chance(0.08)
  g.closed = false
  -- world shape
  g.spread = r:pick({ 3, 5, 8, 12, 20, 40 })
  g.nplayers = r:int(4, 26)
  g.nsites = r:int(3, 30)
  g.ntables = r:int(1, 6)
  g.nparties = r:int(1, 4)
  local cx = r:chance(0.2) and r:int(-200000, 200000) or 0
  g.clusters = {
    { cx, r:int(-20, 20), cx == 0 and 0 or r:int(-50, 50) },
    -- a corner cluster at the coordinate limits
    { r:chance(0.5) and COORD_MAX or COORD_MIN, r:chance(0.5) and COORD_MAX or COORD_MIN, r:chance(0.5) and COORD_MAX or COORD_MIN },
  }
  -- state shadow (approximate: only used to aim calls)
  g.players, g.plist = {}, {}
  g.sites, g.slist, g.blocks = {}, {}, {}
  g.tables, g.tlist = {}, {}
  g.t = r:below(1000000)
  -- pacing
  g.poll_rate = g.tiny and 14 or r:pick({ 3, 6, 10 })
  -- cluster mode (issue 17), from its own stream so that every other
  -- sequence is the same as before: about a third of the sequences create
  -- their resolver as shard s of n (n in 1..4); a quarter of the others call
  -- the cluster methods on a plain resolver now and then (they must raise)
  local cr = M.rng(seed * 11 + 5)
  if gopts.cluster ~= nil then g.cluster = gopts.cluster else g.cluster = cr:chance(1 / 3) end
  if g.cluster then
    g.shards = cr:int(1, 4)
    g.shard = cr:int(0, g.shards - 1)
    g.logpos = 0
    g.big_batches = cr:chance(0.3) -- dig_batch_big now and then (its records pass 65536 bytes)
  else
    g.probe_cluster = cr:chance(0.25)
  end
  return g
end

local function clamp(v) if v < COORD_MIN then return COORD_MIN elseif v > COORD_MAX then return COORD_MAX end return v end

function Gen:spot()
  local r = self.r
  local k = r:below(100)
  if k < 86 then
    local c = self.clusters[1]
    local s = self.spread
    return clamp(c[1] + r:int(-s, s)), clamp(c[2] + r:int(-(math.floor(s / 2) + 1), math.floor(s / 2) + 1)), clamp(c[3] + r:int(-s, s))
  elseif k < 93 then
    local c = self.clusters[1]
    local function far() local d = r:int(100, 5000); return r:chance(0.5) and d or -d end
    return clamp(c[1] + far()), clamp(c[2] + r:int(-3, 3)), clamp(c[3] + far())
  else
    local c = self.clusters[2]
    local function edge(v) return clamp(v + (v > 0 and -r:below(4) or r:below(4))) end
    return edge(c[1]), edge(c[2]), edge(c[3])
  end
end

function Gen:near(x, y, z, d)
  local r = self.r
  return clamp(x + r:int(-d, d)), clamp(y + r:int(-d, d)), clamp(z + r:int(-d, d))
end

function Gen:new_player_id()
  local r = self.r
  if r:chance(0.04) then return r:pick(PLAYER_IDS_RARE) end
  return r:int(1, self.nplayers)
end
function Gen:joined_player()
  if #self.plist == 0 then return nil end
  return self.plist[self.r:below(#self.plist) + 1]
end
function Gen:unjoined_player()
  for _ = 1, 10 do
    local p = self:new_player_id()
    if not self.players[p] then return p end
  end
  return 999999
end
function Gen:party()
  local r = self.r
  if r:chance(0.35) then return 0 end
  if r:chance(0.03) then return U32 end
  return r:int(1, self.nparties)
end

local function list_remove(list, v)
  for i = 1, #list do if list[i] == v then table.remove(list, i); return end end
end
local function bkey(x, y, z) return x .. "," .. y .. "," .. z end

-- pick an arg: with probability p a bad value for [lo, hi], else `good`
function Gen:arg(good, lo, hi, p)
  if self.r:chance(p or 0) then return bad_num(self.r, lo, hi), true end
  if good == 0 and self.r:chance(0.05) then return self.negzero and -0.0 or 0, false end -- -0 is the integer 0
  return good, false
end

function Gen:tus()
  local r = self.r
  local k = r:below(100)
  if k < 2 then return 0 end
  if k < 4 then return MAX53 end
  if k < 5 then return -0.0 end
  self.t = self.t + r:below(5000)
  return self.t
end

---------------------------------------------------------------- loot tables
function Gen:entry_fields(valid)
  local r = self.r
  local e = {
    item = r:chance(0.05) and U32 or r:int(1, 60),
    weight = r:chance(0.05) and r:int(1000000, 4000000) or r:int(1, 10),
    min = 0, max = 0,
    rarity = r:chance(0.1) and 255 or r:int(0, 5),
  }
  local a, b = r:int(0, 4), r:int(0, 6)
  if r:chance(0.05) then a, b = 0, 65535 elseif r:chance(0.05) then a, b = 65535, 65535 end
  if a > b then a, b = b, a end
  e.min, e.max = a, b
  return e
end

local FIELDS = { "item", "weight", "min", "max", "rarity" }
local RANGES = { item = { 1, U32 }, weight = { 1, U32 }, min = { 0, 65535 }, max = { 0, 65535 }, rarity = { 0, 255 } }

function Gen:entry_tbl(e, extra)
  local pairs_ = {}
  -- shuffle field order so the native binding cannot rely on insertion order
  local order = { 1, 2, 3, 4, 5 }
  for i = 5, 2, -1 do local j = self.r:int(1, i); order[i], order[j] = order[j], order[i] end
  for _, fi in ipairs(order) do
    local f = FIELDS[fi]
    if e[f] ~= nil then pairs_[#pairs_ + 1] = { f, e[f] } end
  end
  if extra then pairs_[#pairs_ + 1] = extra end
  return { __tbl = pairs_ }
end

function Gen:gen_add_loot_table()
  local r = self.r
  local id
  if #self.tlist > 0 and r:chance(0.12) then
    id = self.tlist[r:below(#self.tlist) + 1]
  elseif r:chance(0.05) then
    id = r:pick(TABLE_IDS_RARE)
  else
    id = r:int(1, self.ntables + 2)
  end
  local bad_id
  id, bad_id = self:arg(id, 1, U32, 0.05)
  local n = r:chance(0.1) and r:int(6, 12) or r:int(1, 4)
  local entries = {}
  local bad = r:chance(0.3)
  for i = 1, n do entries[i] = self:entry_fields() end
  local entry_vals = {}
  for i = 1, n do entry_vals[i] = self:entry_tbl(entries[i]) end
  local etbl, etbl_set
  if bad then
    local k = r:below(15)
    local i = r:int(1, n)
    local e = entries[i]
    if k == 0 then
      etbl, etbl_set = { __tbl = {} }, true -- empty
    elseif k == 1 then
      etbl, etbl_set = r:pick({ "x", 5, true, { __fn = true } }), true -- entries not a table
      if etbl == 5 and r:chance(0.5) then etbl = nil end
    elseif k == 2 then
      -- array shape: an extra non-array key
      local prs = {}
      for j = 1, n do prs[j] = { j, entry_vals[j] } end
      prs[#prs + 1] = r:pick({ { "foo", 1 }, { 0, entry_vals[1] }, { 1.5, entry_vals[1] }, { n + 2, entry_vals[1] } })
      etbl, etbl_set = { __tbl = prs }, true
    elseif k == 3 then
      entry_vals[i] = r:pick({ 7, "e", true, { __fn = true } }) -- entry not a table
    elseif k == 4 then
      local key = r:pick({ "wieght", "Item", "chance", "name", 1, 2.5, true, "wieght" })
      if key == 1 and r:chance(0.3) then key = { __tbl = {} } end
      entry_vals[i] = self:entry_tbl(e, { key, 1 })
    elseif k == 5 then
      local f = r:pick(FIELDS); e[f] = nil; entry_vals[i] = self:entry_tbl(e) -- missing field
      if r:chance(0.5) then entry_vals[i].__meta = { { f, 1 } } end -- fields are read raw
    elseif k <= 8 then
      local f = r:pick(FIELDS)
      e[f] = bad_num(r, RANGES[f][1], RANGES[f][2]); entry_vals[i] = self:entry_tbl(e)
    elseif k == 9 then
      e.weight = 0; entry_vals[i] = self:entry_tbl(e)
    elseif k <= 11 then
      e.min, e.max = r:int(1, 65535), 0; e.max = r:below(e.min); entry_vals[i] = self:entry_tbl(e) -- min > max
    elseif k == 12 then
      -- total weight overflow
      for j = 1, n do entries[j].weight = r:chance(0.5) and U32 or 2147483648; entry_vals[j] = self:entry_tbl(entries[j]) end
      if n == 1 then
        local e2 = self:entry_fields(); e2.weight = 1
        entry_vals[2] = self:entry_tbl(e2); n = 2
      end
    elseif k == 14 then
      -- entry i has a bad field, a later entry an unknown key or a non-table (per-entry check order)
      local f = r:pick(FIELDS)
      e[f] = bad_num(r, RANGES[f][1], RANGES[f][2]); entry_vals[i] = self:entry_tbl(e)
      if i < n then
        local j = r:int(i + 1, n)
        entry_vals[j] = r:chance(0.5) and self:entry_tbl(entries[j], { "wieght", 2 }) or 42
      else
        entries[n + 1] = self:entry_fields()
        entry_vals[n + 1] = r:chance(0.5) and self:entry_tbl(entries[n + 1], { "wieght", 2 }) or 42
        n = n + 1
      end
    else
      -- two problems: a later entry bad and an earlier one bad
      local f = r:pick(FIELDS)
      e[f] = bad_num(r, RANGES[f][1], RANGES[f][2]); entry_vals[i] = self:entry_tbl(e)
      local j = r:int(1, n)
      if j ~= i then
        local e2 = entries[j]; e2.min, e2.max = 9, 3; entry_vals[j] = self:entry_tbl(e2)
      end
    end
  elseif r:chance(0.05) then
    -- exact total weight limit (valid)
    local e1 = self:entry_fields(); e1.weight = U32 - n + 1
    entry_vals[1] = self:entry_tbl(e1)
    for j = 2, n do entries[j].weight = 1; entry_vals[j] = self:entry_tbl(entries[j]) end
  end
  if not etbl_set then
    local prs = {}
    for j = 1, n do prs[j] = { j, entry_vals[j] } end
    etbl = { __tbl = prs }
  end
  local call = { m = "add_loot_table", n = 2, id, etbl }
  if not bad and not bad_id and not self.tables[id] then
    self.tables[id] = true; self.tlist[#self.tlist + 1] = id
  end
  return call
end

---------------------------------------------------------------- sites
function Gen:gen_add_site()
  local r = self.r
  local id
  if #self.slist > 0 and r:chance(0.08) then id = self.slist[r:below(#self.slist) + 1]
  elseif r:chance(0.04) then id = r:pick(SITE_IDS_RARE)
  else id = r:int(1, self.nsites + 8) end
  local x, y, z
  if #self.slist > 0 and r:chance(0.08) then
    local s = self.sites[self.slist[r:below(#self.slist) + 1]]
    x, y, z = s[1], s[2], s[3] -- occupied block
  else
    x, y, z = self:spot()
  end
  if x == 0 and r:chance(0.3) and self.negzero then x = -0.0 end
  if z == 0 and r:chance(0.3) and self.negzero then z = -0.0 end
  local t
  if #self.tlist > 0 and not r:chance(0.06) then t = self.tlist[r:below(#self.tlist) + 1]
  else t = r:chance(0.5) and 99 or r:int(1, 8) end
  local charges = r:weighted({ { 8, 0 }, { 30, 1 }, { 40, r:int(2, 5) }, { 10, r:int(6, 50) }, { 4, U32 }, { 3, U32 - 1 } })
  local bad = {}
  local b
  id, b = self:arg(id, 1, U32, 0.02); bad[1] = b
  x, b = self:arg(x, COORD_MIN, COORD_MAX, 0.015); bad[2] = b
  y, b = self:arg(y, COORD_MIN, COORD_MAX, 0.015); bad[3] = b
  z, b = self:arg(z, COORD_MIN, COORD_MAX, 0.015); bad[4] = b
  t, b = self:arg(t, 1, U32, 0.015); bad[5] = b
  charges, b = self:arg(charges, 0, U32, 0.02); bad[6] = b
  local anybad = bad[1] or bad[2] or bad[3] or bad[4] or bad[5] or bad[6]
  if not anybad and not self.sites[id] and not self.blocks[bkey(x, y, z)] and self.tables[t] then
    self.sites[id] = { x, y, z }; self.slist[#self.slist + 1] = id; self.blocks[bkey(x, y, z)] = id
  end
  return { m = "add_site", n = 6, id, x, y, z, t, charges }
end

function Gen:gen_remove_site()
  local r = self.r
  local id
  if #self.slist > 0 and r:chance(0.85) then id = self.slist[r:below(#self.slist) + 1]
  else id = r:int(1, self.nsites + 3) end
  local bad
  id, bad = self:arg(id, 1, U32, 0.05)
  if not bad and self.sites[id] then
    local s = self.sites[id]
    self.blocks[bkey(s[1], s[2], s[3])] = nil
    self.sites[id] = nil; list_remove(self.slist, id)
  end
  return { m = "remove_site", n = 1, id }
end

---------------------------------------------------------------- players
function Gen:gen_join()
  local r = self.r
  local p = r:chance(0.1) and (self:joined_player() or self:unjoined_player()) or self:unjoined_player()
  local x, y, z = self:spot()
  local party = self:party()
  local nargs = 5
  if party == 0 and r:chance(0.5) then nargs = 4 end
  local b1, b2, b3, b4, b5
  p, b1 = self:arg(p, 1, U32, 0.02)
  x, b2 = self:arg(x, COORD_MIN, COORD_MAX, 0.01)
  if r:chance(0.01) then x = r:pick({ COORD_MAX + 1, COORD_MIN - 1 }); b2 = true end
  y, b3 = self:arg(y, COORD_MIN, COORD_MAX, 0.01)
  z, b4 = self:arg(z, COORD_MIN, COORD_MAX, 0.01)
  if nargs == 5 then
    party, b5 = self:arg(party, 0, U32, 0.02)
    if party == nil then party = 0 end -- explicit nil party == default 0
  end
  if not (b1 or b2 or b3 or b4 or b5) and not self.players[p] then
    self.players[p] = { x, y, z, party }; self.plist[#self.plist + 1] = p
  end
  if nargs == 5 and party == 0 and r:chance(0.3) then
    return { m = "join", n = 5, p, x, y, z, nil }
  end
  return { m = "join", n = nargs, p, x, y, z, party }
end

function Gen:gen_leave()
  local r = self.r
  local p = r:chance(0.85) and self:joined_player() or self:unjoined_player()
  p = p or self:unjoined_player()
  local bad
  p, bad = self:arg(p, 1, U32, 0.04)
  if not bad and self.players[p] then self.players[p] = nil; list_remove(self.plist, p) end
  return { m = "leave", n = 1, p }
end

function Gen:move_target(p)
  local r = self.r
  local k = r:below(10)
  if k < 5 and #self.slist > 0 then
    local s = self.sites[self.slist[r:below(#self.slist) + 1]]
    return self:near(s[1], s[2], s[3], r:pick({ 0, 1, 2, 3, 5, 9 }))
  elseif k < 8 and p and self.players[p] then
    local q = self.players[p]
    return self:near(q[1], q[2], q[3], 3)
  end
  return self:spot()
end

function Gen:gen_move()
  local r = self.r
  local p = r:chance(0.92) and self:joined_player() or self:unjoined_player()
  p = p or self:unjoined_player()
  local x, y, z = self:move_target(p)
  local b1, b2, b3, b4
  p, b1 = self:arg(p, 1, U32, 0.02)
  x, b2 = self:arg(x, COORD_MIN, COORD_MAX, 0.01)
  y, b3 = self:arg(y, COORD_MIN, COORD_MAX, 0.01)
  z, b4 = self:arg(z, COORD_MIN, COORD_MAX, 0.01)
  if not (b1 or b2 or b3 or b4) and self.players[p] then
    local q = self.players[p]; q[1], q[2], q[3] = x, y, z
  end
  return { m = "move", n = 4, p, x, y, z }
end

function Gen:gen_set_party()
  local r = self.r
  local p = r:chance(0.9) and self:joined_player() or self:unjoined_player()
  p = p or self:unjoined_player()
  local party = self:party()
  local b1, b2
  p, b1 = self:arg(p, 1, U32, 0.02)
  party, b2 = self:arg(party, 0, U32, 0.03)
  return { m = "set_party", n = 2, p, party }
end

---------------------------------------------------------------- digs
-- returns player, x, y, z for a (valid-looking) dig
function Gen:dig_target(joined_only)
  local r = self.r
  local p = (joined_only or r:chance(0.97)) and self:joined_player() or nil
  if not p then p = self:unjoined_player() end
  local q = self.players[p]
  local k = r:below(100)
  local x, y, z
  if q and k < 40 and #self.slist > 0 then
    -- a site within reach, if any (else the nearest of a few)
    local reach2 = self.reach * self.reach
    local cands = {}
    for _, id in ipairs(self.slist) do
      local s = self.sites[id]
      if (s[1] - q[1]) ^ 2 + (s[2] - q[2]) ^ 2 + (s[3] - q[3]) ^ 2 <= reach2 then cands[#cands + 1] = s end
    end
    if #cands > 0 then
      local s = cands[r:below(#cands) + 1]
      x, y, z = s[1], s[2], s[3]
    end
  end
  if x == nil and q and k < 65 and #self.slist > 0 then
    local best, bd
    for _ = 1, 3 do
      local s = self.sites[self.slist[r:below(#self.slist) + 1]]
      local d = (s[1] - q[1]) ^ 2 + (s[2] - q[2]) ^ 2 + (s[3] - q[3]) ^ 2
      if not bd or d < bd then best, bd = s, d end
    end
    x, y, z = best[1], best[2], best[3]
  end
  if x ~= nil then
  elseif q and k < 85 then
    x, y, z = self:near(q[1], q[2], q[3], r:pick({ 0, 1, 2, 4, 8, 12 }))
  elseif k < 93 and #self.slist > 0 then
    local s = self.sites[self.slist[r:below(#self.slist) + 1]]
    x, y, z = s[1], s[2], s[3]
  else
    x, y, z = self:spot()
  end
  return p, x, y, z
end

function Gen:gen_dig()
  local r = self.r
  local p, x, y, z = self:dig_target()
  local t = self:tus()
  -- a player that wandered next to the site first, sometimes
  p = self:arg(p, 1, U32, 0.02)
  x = self:arg(x, COORD_MIN, COORD_MAX, 0.015)
  y = self:arg(y, COORD_MIN, COORD_MAX, 0.01)
  z = self:arg(z, COORD_MIN, COORD_MAX, 0.01)
  t = self:arg(t, 0, MAX53, 0.015)
  if r:chance(0.003) then return { m = "dig", n = 4, p, x, y, z } end -- t_us missing
  return { m = "dig", n = 5, p, x, y, z, t }
end

function Gen:batch_count()
  local r = self.r
  local k = r:below(100)
  if k < 6 then return 0 end
  if k < 50 then return r:int(1, 4) end
  if k < 90 then return r:int(5, 16) end
  if k < 98 then return r:int(17, 48) end
  return r:int(100, 600) -- many native chunks in flight
end

-- bad-record helpers: returns the packed record
function Gen:gen_dig_batch()
  local r = self.r
  local n = self:batch_count()
  local recs = {}
  local bad_at = (n > 0 and r:chance(0.12)) and r:int(1, n) or nil
  local bad2 = (bad_at and r:chance(0.25)) and r:int(1, n) or nil
  for i = 1, n do
    local p, x, y, z = self:dig_target(true)
    local hi, lo = u64parts(self:tus())
    if i == bad_at or i == bad2 then
      local k = r:below(9)
      if k == 0 then p = 0
      elseif k == 1 then p = self:unjoined_player()
      elseif k == 2 then x = r:pick({ COORD_MAX + 1, COORD_MIN - 1, 2000000, -2147483648, 2147483647 })
      elseif k == 3 then y = r:pick({ COORD_MAX + 1, COORD_MIN - 1, 2000000 })
      elseif k == 4 then z = r:pick({ COORD_MAX + 1, COORD_MIN - 1, -2000000 })
      elseif k == 5 then hi, lo = 2097152, 0 -- 2^53
      elseif k == 6 then hi, lo = 2097152, 1 -- 2^53 + 1 (not a double)
      elseif k == 7 then hi, lo = 4294967295, 4294967295
      else p = 4294967295 - r:below(2); if self.players[p] then p = 0 end
      end
    end
    recs[i] = le32(p) .. le32(x) .. le32(y) .. le32(z) .. le64(hi, lo)
  end
  local s = table.concat(recs)
  local k = r:below(100)
  if k < 4 then s = s .. string.sub("\1\2\3\4\5\6\7\8\9\10\11\12\13\14\15\16\17\18\19\20\21\22\23", 1, r:int(1, 23))
  elseif k < 5 and #s > 0 then s = s:sub(1, #s - r:int(1, math.min(#s, 23)))
  elseif k < 7 then s = r:pick(BAD_GENERIC)(); if s == "1" then s = { __tbl = {} } end end
  return { m = "dig_batch", n = 1, s }
end

function Gen:gen_move_batch()
  local r = self.r
  local n = self:batch_count()
  local recs = {}
  local bad_at = (n > 0 and r:chance(0.15)) and r:int(1, n) or nil
  local moves = {}
  for i = 1, n do
    local p = self:joined_player() or self:unjoined_player()
    local x, y, z = self:move_target(p)
    if i == bad_at then
      local k = r:below(5)
      if k == 0 then p = 0
      elseif k == 1 then p = self:unjoined_player()
      elseif k == 2 then x = r:pick({ COORD_MAX + 1, COORD_MIN - 1, 2147483647 })
      elseif k == 3 then y = r:pick({ COORD_MAX + 1, -2147483648 })
      else z = r:pick({ COORD_MAX + 1, COORD_MIN - 1 }) end
    end
    moves[i] = { p, x, y, z }
    recs[i] = le32(p) .. le32(x) .. le32(y) .. le32(z)
  end
  local s = table.concat(recs)
  local k = r:below(100)
  local ok = not bad_at
  if k < 4 then s = s .. string.rep("\0", r:int(1, 15)); ok = false
  elseif k < 6 then s = r:pick(BAD_GENERIC)(); if s == "1" then s = 3 end; ok = false end
  if ok then
    for _, mv in ipairs(moves) do
      local q = self.players[mv[1]]
      if q then q[1], q[2], q[3] = mv[2], mv[3], mv[4] end
    end
  end
  return { m = "move_batch", n = 1, s }
end

---------------------------------------------------------------- polling
function Gen:poll_max()
  local r = self.r
  local k = r:below(100)
  if k < 30 then return nil, 0 end -- no max
  if k < 33 then return nil, 1 end -- explicit nil
  if k < 38 then return (self.negzero and k == 37) and -0.0 or 0, 1 end
  if k < 85 then return r:int(1, 60), 1 end
  if k < 90 then return MAX53, 1 end
  return bad_num(r, 0, MAX53), 1
end

function Gen:gen_poll()
  local mx, n = self:poll_max()
  return { m = "poll", n = n, mx }
end

-- issue 16: a poll_view op (run.lua drives it to the poll it stands for)
function Gen:gen_poll_view()
  local mx, n = self:poll_max()
  return { m = "poll_view", n = n, mx }
end

function Gen:gen_poll_into()
  local r = self.r
  local k = r:below(100)
  local buf, mx
  local cap
  if k < 60 then
    cap = r:pick({ 0, 1, 2, 3, 5, 8, 16, 33, 64 })
    local size = cap * 128
    if r:chance(0.25) then size = size + r:int(1, 127) end
    buf = { __buf = "vla", size = size }
  elseif k < 85 then
    cap = r:pick({ 1, 2, 4, 7, 20 })
    local size = cap * 128
    if r:chance(0.25) then size = size + r:int(1, 127) end
    buf = { __buf = "fixed", size = size }
  elseif k < 88 then buf = { __buf = "int32", size = 512 }
  elseif k < 90 then buf = { __buf = "ptr", size = 512 }
  elseif k < 92 then -- issue 12: a ctype object (an easy slip for ffi.new), a const array
    buf = r:pick({ { __buf = "ctype", size = 512 }, { __buf = "ctype_vla", size = 0 }, { __buf = "const", size = 512 } })
  else
    buf = r:pick({ "buf", 5, { __tbl = {} }, true })
    if buf == 5 and r:chance(0.3) then buf = nil end
  end
  cap = cap or 4
  local j = r:below(100)
  if j < 70 then mx = r:int(0, cap); if mx == 0 and self.negzero and r:chance(0.2) then mx = -0.0 end
  elseif j < 80 then mx = cap + r:int(1, 3)
  elseif j < 85 then return { m = "poll_into", n = 1, buf }
  else mx = bad_num(r, 0, MAX53) end
  return { m = "poll_into", n = 2, buf, mx }
end

---------------------------------------------------------------- new()
function Gen:opts_main()
  local r = self.r
  local prs = {}
  self.reach = 8
  local k = r:below(10)
  if k < 8 then
    prs[#prs + 1] = { "seed", r:weighted({ { 3, 0 }, { 3, MAX53 }, { 6, r:u32() }, { 6, r:u53() }, { 1, 1 } }) }
  end
  if not r:chance(0.15) then
    prs[#prs + 1] = { "aoi_radius", r:weighted({ { 6, 0 }, { 6, 1 }, { 6, 2 }, { 10, 4 }, { 10, 8 }, { 8, 16 }, { 4, 64 }, { 3, 1048576 } }) }
  end
  if not r:chance(0.15) then
    prs[#prs + 1] = { "reach", r:weighted({ { 6, 0 }, { 6, 1 }, { 10, 2 }, { 10, 4 }, { 10, 8 }, { 2, 1048576 } }) }
    self.reach = prs[#prs][2]
  end
  if self.workers then prs[#prs + 1] = { "workers", self.workers } end
  if self.cluster then
    prs[#prs + 1] = { "shard", self.shard }
    prs[#prs + 1] = { "shards", self.shards }
  end
  if self.tiny then
    prs[#prs + 1] = { "max_pending_packets", r:int(1, 20) }
  elseif r:chance(0.15) then
    prs[#prs + 1] = { "max_pending_packets", r:pick({ r:int(20, 300), 1048576, MAX53 }) }
  end
  -- shuffle
  for i = #prs, 2, -1 do local j = r:int(1, i); prs[i], prs[j] = prs[j], prs[i] end
  local t = { __tbl = prs }
  -- options are read raw: a metatable's seed must not count
  if r:chance(0.1) then t.__meta = { { "seed", 12345 }, { "aoi_radius", 1048576 } } end
  return t
end

local OPT_KEYS = { "seed", "aoi_radius", "reach", "workers", "max_pending_packets" }
local OPT_RANGES = { seed = { 0, MAX53 }, aoi_radius = { 0, 1048576 }, reach = { 0, 1048576 }, workers = { 0, 256 }, max_pending_packets = { 1, MAX53 } }

function Gen:gen_new_check()
  local r = self.r
  local k = r:below(10)
  if k == 0 then return { m = "new_check", n = 0 } end
  if k == 1 then return { m = "new_check", n = 1, r:pick({ "opts", 5, true, { __fn = true } }) } end
  local prs = {}
  for _, key in ipairs(OPT_KEYS) do
    if r:chance(0.5) then
      local rg = OPT_RANGES[key]
      local v = r:chance(0.5) and rg[1] or rg[2]
      if key == "workers" then v = r:pick({ 0, 1, 2 }) end
      if r:chance(0.35) then v = bad_num(r, rg[1], rg[2]) end
      prs[#prs + 1] = { key, v }
    end
  end
  if r:chance(0.2) then prs[#prs + 1] = { r:pick({ "sede", "aoi", "Seed", "max_pending", 1, -0.5, false }), 1 } end
  local t = { __tbl = prs }
  if r:chance(0.1) then t.__meta = { { "sede", 1 }, { "seed", -1 } } end -- read raw: no effect
  return { m = "new_check", n = 1, t }
end

---------------------------------------------------------------- misc
local SELF_BAD = { "nil", "table", "number" }
local ALL_METHODS = { "add_loot_table", "add_site", "remove_site", "join", "move", "set_party", "leave",
  "dig", "dig_batch", "move_batch", "poll", "poll_into", "flush", "stats", "close", "poll_view" }

function Gen:gen_bad_self()
  local r = self.r
  local m = r:pick(ALL_METHODS)
  local c
  if m == "add_loot_table" then c = self:gen_add_loot_table()
  elseif m == "add_site" then c = { m = m, n = 6, 1, 0, 0, 0, 1, 1 }
  elseif m == "remove_site" or m == "leave" then c = { m = m, n = 1, 1 }
  elseif m == "join" or m == "move" then c = { m = m, n = 4, 1, 1, 1, 1 }
  elseif m == "set_party" then c = { m = m, n = 2, 1, 1 }
  elseif m == "dig" then c = { m = m, n = 5, 1.5, 0, 0, 0, 0 } -- self checked before args
  elseif m == "dig_batch" or m == "move_batch" then c = { m = m, n = 1, "" }
  elseif m == "poll" then c = { m = m, n = 0 }
  elseif m == "poll_into" then c = { m = m, n = 2, { __buf = "vla", size = 128 }, 1 }
  else c = { m = m, n = 0 } end
  -- note: a bad-self add_loot_table has already updated the shadow; harmless
  c.self = r:pick(SELF_BAD)
  return c
end

function Gen:step()
  local r = self.r
  self.i = self.i + 1
  local i = self.i
  if i == 1 then
    return { m = "new", n = 1, self:opts_main() }
  end
  -- setup phase: tables, sites, players
  if i <= 1 + self.ntables then return self:gen_add_loot_table() end
  if i <= 1 + self.ntables + self.nsites then return self:gen_add_site() end
  if i <= 1 + self.ntables + self.nsites + self.nplayers then return self:gen_join() end
  if self.closeable and not self.closed and i > 800 and r:chance(1 / 800) then
    self.closed = true
    return { m = "close", n = 0 }
  end
  if self.closed and r:chance(0.02) then return { m = "close", n = 0 } end
  -- a finalized, resurrected side resolver (run.lua's finalize_probe); by
  -- call index, so the random stream of every other call is unchanged
  if i % 397 == 0 then return { m = "finalize", n = 0 } end
  local kind = r:weighted({
    { 300, "dig" }, { 40, "dig_batch" }, { 90, "move" }, { 20, "move_batch" },
    { 22 + (#self.plist < 4 and 40 or 0), "join" }, { 16, "leave" }, { 25, "set_party" },
    { 16 + (#self.slist < 4 and 40 or 0), "add_site" }, { 12, "remove_site" }, { 8, "add_loot_table" },
    { self.poll_rate * 8, "poll" }, { self.poll_rate * 4, "poll_into" }, { self.poll_rate * 4, "poll_view" },
    { 25, "flush" },
    { 12, "stats" }, { 4, "new_check" }, { 4, "bad_self" }, { 3, "burst" },
    -- issue 17, last so a plain sequence's picks are unchanged (weight 0)
    { self.cluster and 30 or (self.probe_cluster and 2 or 0), "set_host" },
    { self.cluster and 45 or (self.probe_cluster and 2 or 0), "take_records" },
    { self.cluster and 55 or (self.probe_cluster and 2 or 0), "apply_records" },
    { self.cluster and 3 or 0, "resnap" },
    { self.big_batches and 1 or 0, "dig_batch_big" },
    { (self.cluster or self.probe_cluster) and 3 or 0, "new_check_cluster" },
  })
  return self["gen_" .. kind](self)
end

-- a tight loop of valid-looking digs and moves, run by the driver without a
-- pcall per call so it gets JIT-compiled (FFI fast paths run from traces)
function Gen:gen_burst()
  local r = self.r
  local ops = {}
  for j = 1, r:int(50, 250) do
    if r:chance(0.7) or #self.plist == 0 then
      local p, x, y, z = self:dig_target(true)
      local t = self:tus()
      ops[j] = { 1, p, x, y, z, t }
    else
      local p = self:joined_player()
      local x, y, z = self:move_target(p)
      local q = self.players[p]
      if q then q[1], q[2], q[3] = x, y, z end
      ops[j] = { 2, p, x, y, z }
    end
  end
  return { m = "burst", n = 0, ops = ops }
end

---------------------------------------------------------------- cluster mode (issue 17)
local SELF_BAD_C = { "nil", "table", "number" }

-- set_host(player, host): joined players mostly, valid hosts mostly; often
-- right after digs (native: digs still in flight, whose host is the old one)
function Gen:gen_set_host()
  local r = self.r
  local p = r:chance(0.88) and self:joined_player() or self:unjoined_player()
  p = p or self:unjoined_player()
  local n = self.shards or 1
  local host = r:chance(0.3) and (self.shard or 0) or r:int(0, n - 1)
  p = self:arg(p, 1, U32, 0.03)
  host = self:arg(host, 0, n - 1, 0.05)
  local c = { m = "set_host", n = 2, p, host }
  if r:chance(0.01) then c.n = 1 end -- host missing
  if r:chance(0.015) then c.self = r:pick(SELF_BAD_C) end
  return c
end

function Gen:gen_take_records()
  local c = { m = "take_records", n = 0 }
  if self.r:chance(0.015) then c.self = self.r:pick(SELF_BAD_C) end
  return c
end

-- a record entry from another shard (the driver gives it its seq: the
-- previous entry's + dseq)
function Gen:syn_entry()
  local r = self.r
  local x, y, z = self:spot()
  local nr = r:weighted({ { 10, 1 }, { 5, 2 }, { 3, 3 }, { 1, r:int(4, 9) } })
  local ids, seen = {}, {}
  for _ = 1, nr do
    local id = r:chance(0.85) and self:joined_player() or nil
    if not id then id = r:chance(0.1) and r:pick({ U32, 1, U32 - 1 }) or r:int(1, 40) end
    if not seen[id] then seen[id] = true; ids[#ids + 1] = id end
  end
  table.sort(ids)
  local rs = {}
  for j, id in ipairs(ids) do
    rs[j] = { id, r:chance(0.05) and U32 or r:below(300), r:below(4) }
  end
  local party = r:chance(0.4) and 0 or r:int(1, self.nparties)
  return {
    dseq = r:weighted({ { 8, 1 }, { 2, 2 }, { 1, r:int(3, 40) } }),
    t_us = math.abs(self:tus()), kind = r:int(1, 4), flags = r:chance(0.2) and 4 or 0, rarity = r:below(256),
    quantity = r:below(65536), site_id = r:chance(0.2) and 0 or r:u32(), finder = ids[1], party = party,
    x = x, y = y, z = z, item = r:u32(), charges_left = r:u32(), roll_hi = r:u32(), roll_lo = r:u32(),
    recipients = rs,
  }
end

function Gen:syn_entries()
  local t = {}
  for j = 1, self.r:weighted({ { 6, 1 }, { 4, 2 }, { 2, self.r:int(3, 6) } }) do t[j] = self:syn_entry() end
  return t
end

-- a source shard other than this one, or nil with one shard
function Gen:other_src()
  local n, s = self.shards or 1, self.shard or 0
  if n == 1 then return nil end
  local v = self.r:int(0, n - 2)
  if v >= s then v = v + 1 end
  return v
end

M.BAD_REASONS = { "trunc_header", "magic", "version", "length_small", "length_big", "crc", "dest", "src", "prev_ge_to",
  "entry_trunc", "trailing", "seq", "kind", "flags", "norecip", "recip_id", "recip_flags", "padding" }

-- one piece of an apply_records string; run.lua's transport turns it into
-- bytes (it holds the records taken and the other shards' streams)
function Gen:apply_piece()
  local r = self.r
  local kind = r:weighted({ { 30, "own" }, { 6, "own_dup" }, { 4, "own_skip" }, { 3, "other" }, { 3, "own_flip" },
    { 25, "syn" }, { 6, "syn_dup" }, { 4, "syn_skip" }, { 5, "syn_partial" }, { 16, "bad" } })
  local src = self:other_src()
  if kind:sub(1, 4) == "syn_" or kind == "syn" then
    if not src then kind = ({ syn = "own", syn_dup = "own_dup", syn_skip = "own_skip", syn_partial = "own" })[kind] end
  end
  if kind == "own" then return { "own", r:int(1, 4) } end
  if kind == "own_dup" then return { "own_dup", r:below(1000) } end
  if kind == "own_skip" or kind == "other" then return { kind } end
  if kind == "own_flip" then return { kind, r:below(1000000), r:below(8) } end
  if kind == "syn" or kind == "syn_skip" then return { kind, src, self:syn_entries(), r:chance(0.2) and r:int(1, 3) or 0 } end
  if kind == "syn_dup" then return { kind, src, r:below(1000) } end
  if kind == "syn_partial" then return { kind, src, self:syn_entries() } end
  -- a corrupted record: one reason (sometimes a second fault after it, to pin the check order)
  local p = { "bad", reason = r:pick(M.BAD_REASONS), src = src or (self.shard or 0), entries = self:syn_entries(), v = r:u32() }
  if r:chance(0.1) then p.second = r:pick(M.BAD_REASONS) end
  return p
end

function Gen:gen_apply_records()
  local r = self.r
  local c = { m = "apply_records", n = 1 }
  if r:chance(0.015) then c.self = r:pick(SELF_BAD_C) end
  if r:chance(0.03) then
    c[1] = r:pick({ { __tbl = {} }, 5, true, { __fn = true }, { __i64 = 1 } })
    if c[1] == 5 and r:chance(0.4) then c[1] = nil end
    return c
  end
  local pieces = {}
  if r:chance(0.5) then
    pieces[1] = { "own", r:int(1, 8) }
  else
    for j = 1, r:int(1, 3) do pieces[j] = self:apply_piece() end
  end
  c[1] = { __recs = pieces }
  local k = r:below(100)
  if k < 25 then
    -- a transport's stream sequence: mostly increasing, sometimes lower (the max is kept)
    self.logpos = (self.logpos or 0) + r:int(0, 5)
    c.n, c[2] = 2, r:weighted({ { 2, 0 }, { 1, MAX53 }, { 12, self.logpos }, { 2, r:below(self.logpos + 1) } })
  elseif k < 29 then
    c.n, c[2] = 2, bad_num(r, 0, MAX53)
  elseif k < 31 then
    c.n, c[2] = 2, nil
  end
  return c
end

-- snapshot + restore of the resolver under test on every backend (the
-- snapshots must be deep-equal across backends)
function Gen:gen_resnap() return { m = "resnap", n = 0 } end

-- a long batch so one call's records pass 65536 bytes for a destination
function Gen:gen_dig_batch_big()
  local r = self.r
  local recs = {}
  for i = 1, r:int(700, 1200) do
    local p, x, y, z = self:dig_target(true)
    local hi, lo = u64parts(self:tus())
    if not p or not self.players[p] then break end
    recs[i] = le32(p) .. le32(x) .. le32(y) .. le32(z) .. le64(hi, lo)
  end
  return { m = "dig_batch", n = 1, table.concat(recs) }
end

-- new(opts) probes of the shard options
function Gen:gen_new_check_cluster()
  local r = self.r
  local prs = {}
  if r:chance(0.7) then
    local v = r:weighted({ { 6, r:int(0, 4) }, { 1, 65534 }, { 1, 65535 } })
    if r:chance(0.3) then v = bad_num(r, 0, 65534) end
    prs[#prs + 1] = { "shard", v }
  end
  if r:chance(0.7) then
    local v = r:weighted({ { 6, r:int(1, 4) }, { 1, 65535 }, { 1, 65536 }, { 1, 0 } })
    if r:chance(0.3) then v = bad_num(r, 1, 65535) end
    prs[#prs + 1] = { "shards", v }
  end
  if r:chance(0.2) then prs[#prs + 1] = { "reach", r:chance(0.5) and -1 or 3 } end -- an existing option checked first
  if r:chance(0.1) then prs[#prs + 1] = { "Shard", 1 } end
  for i = #prs, 2, -1 do local j = r:int(1, i); prs[i], prs[j] = prs[j], prs[i] end
  return { m = "new_check", n = 1, { __tbl = prs } }
end

function Gen:gen_flush() return { m = "flush", n = 0 } end
function Gen:gen_stats() return { m = "stats", n = 0 } end

function M.generate(seed, ncalls, gopts)
  local g = M.new(seed, gopts)
  local calls = {}
  for i = 1, ncalls do calls[i] = g:step() end
  return calls, g
end

M.Gen = Gen
M.COORD_MIN, M.COORD_MAX, M.U32, M.MAX53 = COORD_MIN, COORD_MAX, U32, MAX53
return M
