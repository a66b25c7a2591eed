--- treasure.legacy: the pure-LuaJIT reference resolver (contract: docs/API.md).
--
-- Every other backend must produce the same packets and the same errors as
-- this one. It resolves each dig inside the call, so `flush()` is a no-op and
-- the latency keys of `stats()` are 0. It shares the contract's vocabulary
-- (limits, ranges, message texts, the loot entry rule: treasure/contract.lua)
-- and the packet layout (treasure/packet.lua) with the native backend, never
-- its code: what a dig decides is written out again here, in plain Lua.
--
-- The file reads in the order of a resolver's life:
--   1. vocabulary        the contract's limits and messages, as used here
--   2. world indexes     the spatial grid, party lists, sites by block
--   3. packet queue      one growing FFI buffer of 128-byte packets
--   4. resolver objects  new(opts), the state registry, close, finalizer
--   5. the world         loot tables, sites, players (add, move, leave)
--   6. a dig             loot roll, recipients, packets; dig and dig_batch
--   7. move_batch        batch records read in place
--   8. the stream        poll, poll_into, flush, wait, stats
--   9. cluster mode      set_host, take_records, apply_records
--  10. snapshot, restore
--
-- Hot-path notes: the world is plain Lua tables; 64-bit arithmetic (uint64_t
-- cdata) is confined to the FOUND path, where the roll needs exact mod-2^64
-- math; packets are written in place into the queue from a per-dig template.
--
-- Every call happens whole or not at all (docs/API.md, Errors). LuaJIT can
-- raise inside any allocation: out of memory, or a __gc finalizer's error
-- surfacing in the GC step an allocation runs (tables, strings,
-- concatenation, ffi.new/cast/string, boxed uint64 arithmetic, queue
-- growth). So every method runs in three phases:
--   check    validate everything, raising the contract's message;
--   prepare  everything that allocates, writing only where nothing reads
--            yet: packets past the queue's tail, array slots past their
--            count, scratch fields (recipient list, stamps, staged charges);
--   commit   plain assignments to fields that exist, which cannot raise.
-- Inserting a new key into a map grows it without a GC step (no finalizer
-- runs there) but can run out of memory: a call makes such inserts last,
-- through insert_all, which undoes the earlier ones if a later one fails.

local ffi = require("ffi")
local bit = require("bit")
local contract = require("treasure.contract")
local packet = require("treasure.packet")
local record = require("treasure.record")
local packets_held = require("treasure.ffi_buffer")
local snapshot_rules = require("treasure.snapshot")
local efd = require("treasure.eventfd")
local bucket_keys = contract.RESOLVE_BUCKET_KEYS

local bor, bxor, lshift, rshift = bit.bor, bit.bxor, bit.lshift, bit.rshift
local cast, copy, sizeof, typeof = ffi.cast, ffi.copy, ffi.sizeof, ffi.typeof
local format = string.format
local sort = table.sort
local type, tostring, tonumber, error, next, pairs, rawget, rawset, setmetatable, getmetatable, pcall, newproxy =
      type, tostring, tonumber, error, next, pairs, rawget, rawset, setmetatable, getmetatable, pcall, newproxy

if not ffi.abi("le") then
  error("treasure.legacy: batch records are read through host-order FFI structs; a little-endian host is required", 0)
end

---------------------------------------------------------------------------
-- 1. Vocabulary: the contract's limits and messages, as this file uses them
---------------------------------------------------------------------------

local U32_MAX = contract.U32_MAX
local SAFE_INT_MAX = contract.SAFE_INT_MAX -- 2^53 - 1
local COORD_MIN, COORD_MAX = contract.COORD_MIN, contract.COORD_MAX
local COORD_OFFSET = contract.COORD_OFFSET -- shifts a coordinate onto [0, 2^21)
local PACKET_SIZE = contract.PACKET_SIZE

-- Ranges (bounds and their printed form).
local ID, U32, COORD, COUNT = contract.ID, contract.U32, contract.COORD, contract.COUNT

-- Cluster mode: a record's header size, and the size past which the cut
-- starts a new record.
local HEADER_SIZE = record.HEADER_SIZE
local RECORD_SPLIT_BYTES = contract.RECORD_SPLIT_BYTES

local KIND, FLAG = packet.KIND, packet.FLAG
local KIND_FOUND, KIND_EMPTY, KIND_NOTHING, KIND_REJECTED = KIND.FOUND, KIND.EMPTY, KIND.NOTHING, KIND.REJECTED
local FLAG_DIGGER, FLAG_PARTY, FLAG_LAST_CHARGE = FLAG.DIGGER, FLAG.PARTY, FLAG.LAST_CHARGE

local fail = contract.fail             -- fail(fn, text): "treasure: <fn>: <text>"
local check_int = contract.check_int   -- check_int(fn, name, v, range)
local check_block = contract.check_block
local not_in_range = contract.not_in_range
local show = contract.show
--- A number the module holds or computed, as it prints in a message: an
-- exact decimal integer, -0 as 0 (docs/API.md, "Numbers in messages").
local I = contract.int_text

--- Exact decimal text of a + b for integers a, b < 2^53 (their sum may not
-- be exact in a double; only built for a message).
local function sum_text(a, b)
  return (tostring(cast("uint64_t", a) + b):gsub("ULL$", ""))
end

--- a + b for a statistic: saturates at 2^53-1 rather than lose exactness.
local function sat_add(a, b)
  local v = a + b
  return v < SAFE_INT_MAX and v or SAFE_INT_MAX
end

--- Exact decimal text of a 64-bit record value (tostring(u64) ends in "ULL").
local function u64_text(lo, hi)
  local v = cast("uint64_t", hi) * 4294967296ULL + lo
  return (tostring(v):gsub("ULL$", ""))
end

--- The map inserts that make one call visible, in order: each t[k] = v adds
-- a key t lacks, so growing t may run out of memory. If one fails, those
-- already made are removed again (assigning nil cannot raise) and the error
-- is raised: the call changed nothing. A nil table is skipped.
local function insert_all(t1, k1, v1, t2, k2, v2, t3, k3, v3)
  local ok, err = true, nil
  if t1 then ok, err = pcall(rawset, t1, k1, v1) end
  if ok and t2 then
    ok, err = pcall(rawset, t2, k2, v2)
    if not ok and t1 then t1[k1] = nil end
  end
  if ok and t3 then
    ok, err = pcall(rawset, t3, k3, v3)
    if not ok then
      if t2 then t2[k2] = nil end
      if t1 then t1[k1] = nil end
    end
  end
  if not ok then error(err, 0) end
end

---------------------------------------------------------------------------
-- 2. World indexes
---------------------------------------------------------------------------

--- Swap-remove entry i of the dense array a[1..n] (plain assignments): the
-- last entry moves into slot i and its position field `pos` follows. The
-- caller updates the count. Serves the grid's cells, its list of occupied
-- cells and the party lists.
local function dense_remove(a, n, i, pos)
  if i ~= n then
    local last = a[n]
    a[i] = last
    last[pos] = i
  end
  a[n] = nil
end

-- The spatial grid: uniform cells, each a dense array of players, for the
-- area-of-interest query.
--
-- The cell edge is the power of two >= aoi_radius (at least 16), so an AOI
-- box spans at most 3 cells per axis. Cell keys pack (cx, cy, cz) into one
-- exact integer: with cells of >= 16 blocks there are <= 2^17 per axis, so
-- the key stays below 2^51. Occupied cells are also kept in a dense list so a
-- query whose box covers more cells than are occupied walks that list
-- instead (keeps a huge aoi_radius fast).

local MIN_CELL_SHIFT = 4 -- cells of at least 16 blocks
local COORD_BITS = contract.COORD_BITS

--- The cell edge's log2 for an aoi_radius: the smallest power of two that
-- is >= aoi_radius, between 2^4 and the whole axis (2^21).
local function cell_shift(aoi_radius)
  local shift = MIN_CELL_SHIFT
  while lshift(1, shift) < aoi_radius and shift < COORD_BITS do shift = shift + 1 end
  return shift
end

local function grid_new(aoi_radius)
  local shift = cell_shift(aoi_radius)
  return {
    shift = shift,
    dim = rshift(contract.COORD_SPAN - 1, shift) + 1, -- cells per axis
    cells = {},                                      -- key -> cell
    list = {}, n = 0,                                -- occupied cells, dense
  }
end

local function cell_key(g, x, y, z)
  local s, d = g.shift, g.dim
  return (rshift(x + COORD_OFFSET, s) * d + rshift(y + COORD_OFFSET, s)) * d + rshift(z + COORD_OFFSET, s)
end

--- A cell not yet in the map: its key, its entry count, its place in the
-- dense list, and move_batch's per-call scratch (token, extra slots).
local function cell_new(g, key)
  return { key = key, n = 0, li = g.n + 1, token = 0, extra = 0 }
end

--- Prepare pl's entry in the cell of `key`, unseen: a new cell (not yet in
-- the map, past the dense list's count) or pl past the cell's count.
-- Returns the cell and whether it is new; the caller inserts a new cell
-- into g.cells (the one write that can fail), then calls grid_commit.
local function grid_stage(g, pl, key)
  local c = g.cells[key]
  local is_new = c == nil
  if is_new then
    c = cell_new(g, key)
    g.list[g.n + 1] = c
  end
  c[c.n + 1] = pl
  return c, is_new
end

--- Make a staged entry count (plain assignments).
local function grid_commit(g, pl, c, is_new)
  if is_new then g.n = g.n + 1 end
  local n = c.n + 1
  c.n = n
  pl.cell, pl.ci = c, n
end

--- Drop an empty cell from the map and the dense list (plain assignments).
local function grid_drop(g, c)
  g.cells[c.key] = nil
  dense_remove(g.list, g.n, c.li, "li")
  g.n = g.n - 1
end

--- Remove entry i of cell c (plain assignments). An emptied cell is dropped,
-- unless keep_empty (move_batch drops its emptied cells at the end); returns
-- true when the cell was emptied.
local function grid_remove(g, c, i, keep_empty)
  local n = c.n
  dense_remove(c, n, i, "ci")
  c.n = n - 1
  if n ~= 1 then return false end
  if not keep_empty then grid_drop(g, c) end
  return true
end

--- Move a known player: stage, then commit (the one insert that can fail
-- comes before any change).
local function grid_move(g, pl, x, y, z)
  local key = cell_key(g, x, y, z)
  local from = pl.cell
  if key ~= from.key then
    local c, is_new = grid_stage(g, pl, key)
    if is_new then g.cells[key] = c end -- the one write that can fail
    local i = pl.ci
    grid_commit(g, pl, c, is_new)
    grid_remove(g, from, i)
  end
  pl.x, pl.y, pl.z = x, y, z
end

-- Party lists: party id -> dense array of its members (party 0, "no party",
-- is not kept). Staged and committed like the grid's cells.

local function party_stage(st, pl, party)
  if party == 0 then return nil, false end
  local m = st.parties[party]
  local is_new = m == nil
  if is_new then m = { n = 0 } end
  m[m.n + 1] = pl
  return m, is_new
end

local function party_commit(pl, party, m)
  pl.party = party
  if m == nil then return end
  local n = m.n + 1
  m.n = n
  pl.pi = n
end

local function party_remove(st, pl)
  local party = pl.party
  if party == 0 then return end
  local m = st.parties[party]
  local n = m.n
  dense_remove(m, n, pl.pi, "pi")
  m.n = n - 1
  if n == 1 then st.parties[party] = nil end
end

-- Sites by block: blocks[column key][z] (contract.column_key: a whole block
-- needs 63 bits, more than a double holds exactly).

local column_key = contract.column_key

local function site_at(st, x, y, z)
  local col = st.blocks[column_key(x, y)]
  return col and col[z]
end

---------------------------------------------------------------------------
-- 3. Packet queue: packets [head, tail) of a uint8_t buffer of cap packets
---------------------------------------------------------------------------

local buf_t = typeof("uint8_t[?]")
local pkt_ptr_t = packet.ptr_t
local QUEUE_START_PACKETS = 64

--- Make room for `n` packets past the tail, of which the first `staged` are
-- already written there (a call's packets, not yet visible). Polled space is
-- reclaimed by moving pending and staged packets to the front of a new
-- buffer (no overlap, so a plain copy is safe); the buffer doubles when it is
-- really full. Allocates first, then swaps the buffer in with plain
-- assignments: the queue's content never changes.
local function queue_reserve(st, staged, n)
  local head, tail = st.head, st.tail
  if tail + n <= st.cap then return end
  local keep = tail - head + staged
  local cap = st.cap
  while keep - staged + n > cap do cap = cap * 2 end
  local nb = buf_t(cap * PACKET_SIZE)
  if keep > 0 then copy(nb, st.buf + head * PACKET_SIZE, keep * PACKET_SIZE) end
  st.buf, st.cap, st.head, st.tail = nb, cap, 0, tail - head
end

--- How many of the pending packets a poll of up to `max` takes (nothing
-- changes yet), and where they start.
local function queue_to_take(st, max)
  local head = st.head
  local pending = st.tail - head
  local n = (max == nil or max > pending) and pending or max + 0 -- -0 is 0
  return n, head
end

--- Take n packets off the head of the queue (plain assignments).
local function queue_take(st, n)
  local h2 = st.head + n
  if h2 == st.tail then
    st.head, st.tail = 0, 0
    if st.efd then efd.lower(st) end -- r:fd(): polled empty
  else
    st.head = h2
  end
end

---------------------------------------------------------------------------
-- 4. Resolver objects
---------------------------------------------------------------------------

local Resolver = {}

--- Private registry: resolver object -> its state. Weak keys so a dropped
-- resolver is collected; the state never points back at its object.
local states = setmetatable({}, { __mode = "k" })

local function not_a_resolver(fn, self)
  fail(fn, "self must be a resolver, got " .. type(self))
end

--- Step 1 of every method's check order: self is ours, then not closed.
local function state_of(fn, self)
  local st = states[self]
  if st == nil then not_a_resolver(fn, self) end
  if st.closed then fail(fn, "resolver is closed") end
  return st
end

--- Step 1 of a cluster method: state_of, then the resolver is in cluster
-- mode (made with opts.shard and opts.shards).
local function cluster_state_of(fn, self)
  local st = state_of(fn, self)
  if not st.cluster then fail(fn, contract.NO_SHARD) end
  return st
end

local function known_player(fn, st, id)
  local p = st.players[id]
  if p == nil then fail(fn, "player must have joined, got " .. I(id)) end
  return p
end

--- The state of every closed or finalized resolver: only the closed flag,
-- so later calls can say so.
local CLOSED = { closed = true }

--- Releases a resolver's state (close, or its finalizer): closes its
-- eventfd (r:fd()), then points the registry entry at CLOSED and leaves the
-- old state to the GC. One assignment to a key that exists: it cannot
-- raise, allocates nothing, and never walks the state (clearing it field by
-- field inside pairs() made LuaJIT 2.1 spin forever in a compiled __gc,
-- where no hook can stop it).
local view_release -- section 8: r:poll_view's lent block back to the pool

local function release(self, st)
  if st.efd_owner then efd.close(st.efd_owner) end
  view_release(st)
  states[self] = CLOSED
end

--- A resolver is a userdata (newproxy) with this one shared metatable, so
-- it is finalized by the GC exactly as a native resolver's userdata is:
-- once finalized (a collection, lua_close at exit, then perhaps resurrected
-- by another finalizer) it is closed, and every method says so on both
-- backends (docs/API.md, "Lifecycle"). A plain table would never be
-- finalized and would keep working where native's cannot.
local resolver_proto = newproxy(true)
local resolver_mt = getmetatable(resolver_proto)
resolver_mt.__index = Resolver
resolver_mt.__tostring = function(self)
  local st = states[self]
  return format("treasure.resolver(lua%s)", st and st.closed and ", closed" or "")
end
resolver_mt.__gc = function(self)
  local st = states[self]
  if st ~= nil and not st.closed then release(self, st) end
end
resolver_mt.__metatable = "treasure.resolver"

--- new([opts]) -> resolver. Options are read raw (a metatable cannot
-- supply them), checked in contract.OPTIONS order, defaults filled in; then
-- the cluster options shard and shards (contract.check_cluster_options).
local function new(opts)
  local o = {}
  if opts ~= nil then
    if type(opts) ~= "table" then fail("new", "opts must be a table, got " .. type(opts)) end
    for k in next, opts do
      if not contract.OPTION_KEYS[k] then fail("new", contract.unknown_key("opts", k)) end
    end
  end
  for i = 1, #contract.OPTIONS do
    local name, range, default = contract.OPTIONS[i][1], contract.OPTIONS[i][2], contract.OPTIONS[i][3]
    local v = opts and rawget(opts, name)
    if v == nil then v = default end
    check_int("new", "opts." .. name, v, range)
    o[name] = v + 0 -- "+ 0": -0 is stored (and snapshot) as 0
  end
  local shard, shards = contract.check_cluster_options("new", "opts.",
    opts and rawget(opts, "shard"), opts and rawget(opts, "shards"))
  o.shard, o.shards = shard, shards

  local st = {
    closed = false,
    opts = o,             -- the validated options, as numbers (for snapshot)
    seed = cast("uint64_t", o.seed),
    aoi_radius = o.aoi_radius,
    aoi2 = o.aoi_radius * o.aoi_radius,
    reach2 = o.reach * o.reach,
    max_pending = o.max_pending_packets,
    loot = {},            -- id -> { n, item[], cum[], min[], max[], rarity[], total, total64 }
    sites = {}, nsites = 0,
    blocks = {},          -- column key -> { [z] = site }
    players = {}, nplayers = 0,
    parties = {},         -- party -> { n, [i] = player }
    grid = grid_new(o.aoi_radius),
    seq = 0,              -- the last seq a dig took
    stamp = 0,            -- scratch: per-dig mark for recipient dedupe
    rcpt = {}, nrcpt = 0, -- scratch: recipient ids of the current dig
    token = 0,            -- scratch: per-call mark of sites with staged charges
    touched = {},         -- scratch: the sites a dig_batch stages charges for
    moves = {}, emptied = {}, -- scratch: move_batch's records and emptied cells
    tpl = packet.init(packet.ctype()), -- scratch: the current dig's common packet
    buf = buf_t(QUEUE_START_PACKETS * PACKET_SIZE), cap = QUEUE_START_PACKETS, head = 0, tail = 0,
    view = false,         -- r:poll_view's lent block (issue 16), or false
    digs = 0, packets = 0, found = 0, empty = 0, nothing = 0, rejected = 0, busy = 0,
    -- cluster mode (section 9); a plain resolver keeps cluster = false
    cluster = shard ~= nil,
    shard = shard, shards = shards,
    host_range = shards and contract.host_range(shards), -- set_host's range and message
    next_host_seq = 1,    -- the host seq the next applied entry's packets get
    log_position = 0,     -- the highest log_position apply_records was given
    applied = {},         -- src shard -> highest owner seq covered from it (0: none)
    sent = {},            -- dest shard -> `to` of the last record cut for it (0: none)
    out = {}, nout = 0,   -- records not yet taken (strings), in dig order
    out_packets = 0,      -- recipients of those records: the busy rule's pending count
    applied_digs = 0, duplicate_digs = 0, records_out = 0, records_in = 0,
    cut = false,          -- scratch: the current dig call's entries by destination
    hosts = {},           -- scratch: the current dig's recipients' hosts
    ebuf = buf_t(record.entry_size(64)), ebuf_slots = 64, -- scratch: one entry being written
  }
  local self = newproxy(resolver_proto)
  states[self] = st
  return self
end

--- close(): idempotent; every later call but close raises "resolver is closed".
function Resolver:close()
  local st = states[self]
  if st == nil then not_a_resolver("close", self) end
  if st.closed then return end
  release(self, st)
end

---------------------------------------------------------------------------
-- 5. The world: loot tables, sites, players
---------------------------------------------------------------------------

function Resolver:add_loot_table(id, entries)
  local fn = "add_loot_table"
  local st = state_of(fn, self)
  check_int(fn, "id", id, ID)
  -- check and prepare together: lt is not reachable until the commit. The
  -- weights become running sums, so a roll picks its entry by binary search.
  local lt = { n = 0, item = {}, cum = {}, min = {}, max = {}, rarity = {}, total = 0, total64 = 0 }
  local n, total = contract.check_loot_entries(fn, "entries", entries,
    function(i, item, _, mn, mx, rarity, running_total)
      lt.item[i], lt.cum[i], lt.min[i], lt.max[i], lt.rarity[i] = item, running_total, mn + 0, mx + 0, rarity + 0
    end)
  if st.loot[id] ~= nil then
    fail(fn, "id must not be an existing loot table, got " .. I(id))
  end
  lt.n = n
  lt.total = total
  lt.total64 = cast("uint64_t", total)
  -- commit
  st.loot[id] = lt -- a new key: if growing the map fails, nothing changed
end

function Resolver:add_site(id, x, y, z, loot_table_id, charges)
  local fn = "add_site"
  local st = state_of(fn, self)
  check_int(fn, "id", id, ID)
  check_block(fn, x, y, z)
  check_int(fn, "loot_table_id", loot_table_id, ID)
  check_int(fn, "charges", charges, U32)
  if st.sites[id] ~= nil then fail(fn, "id must not be an existing site, got " .. I(id)) end
  local other = site_at(st, x, y, z)
  if other ~= nil then
    -- the block as the integers it is (-0 is block 0, as in the packet)
    fail(fn, contract.block_taken(x, y, z, other.id))
  end
  local lt = st.loot[loot_table_id]
  if lt == nil then fail(fn, contract.unknown_loot_table(loot_table_id)) end
  -- prepare ("+ 0": -0 is stored and snapshot as 0)
  x, y, z = x + 0, y + 0, z + 0
  local site = { id = id, x = x, y = y, z = z, loot = lt, charges = charges + 0,
    token = 0, staged = 0 } -- scratch: charges a dig being staged leaves
  local k = column_key(x, y)
  local col = st.blocks[k]
  local new_col = nil
  if col == nil then col = {}; new_col = st.blocks end
  -- commit
  insert_all(new_col, k, col, col, z, site, st.sites, id, site)
  st.nsites = st.nsites + 1
end

function Resolver:remove_site(id)
  local fn = "remove_site"
  local st = state_of(fn, self)
  check_int(fn, "id", id, ID)
  local site = st.sites[id]
  if site == nil then fail(fn, "id must be an existing site, got " .. I(id)) end
  -- commit only (removals cannot raise)
  st.sites[id] = nil
  st.nsites = st.nsites - 1
  local k = column_key(site.x, site.y)
  local col = st.blocks[k]
  col[site.z] = nil
  if next(col) == nil then st.blocks[k] = nil end
end

function Resolver:join(player, x, y, z, party)
  local fn = "join"
  local st = state_of(fn, self)
  check_int(fn, "player", player, ID)
  check_block(fn, x, y, z)
  if party == nil then party = 0 end
  check_int(fn, "party", party, U32)
  if st.players[player] ~= nil then
    fail(fn, "player must not have joined already, got " .. I(player))
  end
  -- prepare ("+ 0" turns -0 into 0 so it is stored and compared canonically)
  x, y, z, party = x + 0, y + 0, z + 0, party + 0
  local pl = { id = player, x = x, y = y, z = z, party = 0,
    host = st.shard,       -- cluster mode: the shard it is connected to (nil otherwise)
    mark = 0,              -- the stamp of the last dig that listed it as a recipient
    cell = false, ci = 0,  -- its grid cell and its index there
    pi = 0 }               -- its index in its party's list
  local g = st.grid
  local key = cell_key(g, x, y, z)
  local c, new_cell = grid_stage(g, pl, key)
  local m, new_party = party_stage(st, pl, party)
  -- commit
  insert_all(new_cell and g.cells, key, c, new_party and st.parties, party, m, st.players, player, pl)
  grid_commit(g, pl, c, new_cell)
  party_commit(pl, party, m)
  st.nplayers = st.nplayers + 1
end

function Resolver:move(player, x, y, z)
  local fn = "move"
  local st = state_of(fn, self)
  check_int(fn, "player", player, ID)
  check_block(fn, x, y, z)
  local pl = known_player(fn, st, player)
  grid_move(st.grid, pl, x + 0, y + 0, z + 0)
end

function Resolver:set_party(player, party)
  local fn = "set_party"
  local st = state_of(fn, self)
  check_int(fn, "player", player, ID)
  check_int(fn, "party", party, U32)
  local pl = known_player(fn, st, player)
  party = party + 0
  if party == pl.party then return end -- the same party: nothing to change
  local m, is_new = party_stage(st, pl, party)
  if is_new then st.parties[party] = m end -- the one write that can fail
  party_remove(st, pl)
  party_commit(pl, party, m)
end

function Resolver:leave(player)
  local fn = "leave"
  local st = state_of(fn, self)
  check_int(fn, "player", player, ID)
  local pl = known_player(fn, st, player)
  -- commit only (removals cannot raise)
  grid_remove(st.grid, pl.cell, pl.ci)
  party_remove(st, pl)
  st.players[player] = nil
  st.nplayers = st.nplayers - 1
end

---------------------------------------------------------------------------
-- 6. A dig: stage_dig prepares one dig (its packets past the tail), the
-- calling method commits the call's digs at once.
---------------------------------------------------------------------------

-- The loot roll (FOUND only): exact 64-bit math with uint64_t cdata.

local function splitmix64(z)
  z = z + 0x9E3779B97F4A7C15ULL
  z = bxor(z, rshift(z, 30)) * 0xBF58476D1CE4E5B9ULL
  z = bxor(z, rshift(z, 27)) * 0x94D049BB133111EBULL
  return bxor(z, rshift(z, 31))
end

--- Index of the first entry whose running weight sum exceeds pick
-- (binary search over the strictly increasing prefix sums).
local function pick_entry(lt, pick)
  local cum = lt.cum
  local lo, hi = 1, lt.n
  while lo < hi do
    local mid = rshift(lo + hi, 1)
    if cum[mid] > pick then hi = mid else lo = mid + 1 end
  end
  return lo
end

-- Recipients: the digger, every player within aoi_radius, the digger's
-- party; each once (the dig's stamp), in ascending id order.

local function add_recipient(st, pl, stamp)
  if pl.mark ~= stamp then
    pl.mark = stamp
    local n = st.nrcpt + 1
    st.rcpt[n] = pl.id
    st.nrcpt = n
  end
end

--- Every player within aoi_radius of block (x, y, z), into st.rcpt.
local function gather_aoi(st, x, y, z, stamp)
  local g, r, r2 = st.grid, st.aoi_radius, st.aoi2
  local s = g.shift
  local x0, x1 = x - r, x + r
  local y0, y1 = y - r, y + r
  local z0, z1 = z - r, z + r
  if x0 < COORD_MIN then x0 = COORD_MIN end; if x1 > COORD_MAX then x1 = COORD_MAX end
  if y0 < COORD_MIN then y0 = COORD_MIN end; if y1 > COORD_MAX then y1 = COORD_MAX end
  if z0 < COORD_MIN then z0 = COORD_MIN end; if z1 > COORD_MAX then z1 = COORD_MAX end
  local cx0, cx1 = rshift(x0 + COORD_OFFSET, s), rshift(x1 + COORD_OFFSET, s)
  local cy0, cy1 = rshift(y0 + COORD_OFFSET, s), rshift(y1 + COORD_OFFSET, s)
  local cz0, cz1 = rshift(z0 + COORD_OFFSET, s), rshift(z1 + COORD_OFFSET, s)
  local ncells = (cx1 - cx0 + 1) * (cy1 - cy0 + 1) * (cz1 - cz0 + 1)
  if ncells > g.n then
    -- The box covers more cells than are occupied: walk the occupied ones.
    local list = g.list
    for i = 1, g.n do
      local c = list[i]
      for j = 1, c.n do
        local pl = c[j]
        local dx, dy, dz = pl.x - x, pl.y - y, pl.z - z
        if dx * dx + dy * dy + dz * dz <= r2 then add_recipient(st, pl, stamp) end
      end
    end
    return
  end
  local cells, d = g.cells, g.dim
  for cx = cx0, cx1 do
    for cy = cy0, cy1 do
      local base = (cx * d + cy) * d
      for cz = cz0, cz1 do
        local c = cells[base + cz]
        if c ~= nil then
          for j = 1, c.n do
            local pl = c[j]
            local dx, dy, dz = pl.x - x, pl.y - y, pl.z - z
            if dx * dx + dy * dy + dz * dz <= r2 then add_recipient(st, pl, stamp) end
          end
        end
      end
    end
  end
end

--- What a recipient's packet says about it: its flags (DIGGER for the
-- digger, else PARTY for a member of the digger's party) and its squared
-- distance to the block, a u32 that saturates.
local function recipient_fields(pl, id, digger, party, x, y, z)
  local flags = 0
  if id == digger then
    flags = FLAG_DIGGER
  elseif party ~= 0 and pl.party == party then
    flags = FLAG_PARTY
  end
  local dx, dy, dz = pl.x - x, pl.y - y, pl.z - z
  local d2 = dx * dx + dy * dy + dz * dz
  if d2 > U32_MAX then d2 = U32_MAX end
  return flags, d2
end

--- Write one packet per recipient in st.rcpt[1..n] (already sorted) past
-- the tail, after the `at` packets this call staged there already: copy the
-- dig's template, patch recipient, flags and dist2, seal the CRC.
local function emit(st, at, n, digger, party, last_flag, x, y, z)
  queue_reserve(st, at, at + n)
  local tpl, players, rcpt = st.tpl, st.players, st.rcpt
  local dst = st.buf + (st.tail + at) * PACKET_SIZE
  for i = 1, n do
    local id = rcpt[i]
    local flags, d2 = recipient_fields(players[id], id, digger, party, x, y, z)
    flags = flags + last_flag
    copy(dst, tpl, PACKET_SIZE)
    local p = cast(pkt_ptr_t, dst)
    p.recipient = id
    p.flags = flags
    p.dist2 = d2
    packet.seal(p)
    dst = dst + PACKET_SIZE
  end
end

--- Cluster mode's emit: the dig's recipients st.rcpt[1..n] (sorted), grouped
-- by their host as of this dig, become one entry per host shard among them,
-- appended to the call's entries for that destination (st.cut). Each entry
-- is the dig's template (st.tpl) with entry flags `last_flag` and a slot per
-- recipient hosted there, ascending id. Allocates only scratch: the call's
-- records are cut from st.cut once all its digs are staged (cut_records).
local function stage_entries(st, seq, n, digger, party, last_flag, x, y, z)
  local cut, players, rcpt, hosts = st.cut, st.players, st.rcpt, st.hosts
  for i = 1, n do hosts[i] = players[rcpt[i]].host end
  for i = 1, n do
    local host = hosts[i]
    if host then -- the first recipient hosted on `host`: its entry takes them all
      local m = 0
      for j = i, n do if hosts[j] == host then m = m + 1 end end
      if m > st.ebuf_slots then
        local slots = st.ebuf_slots
        while slots < m do slots = slots * 2 end
        st.ebuf, st.ebuf_slots = buf_t(record.entry_size(slots)), slots
      end
      local e = cast(record.entry_ptr_t, st.ebuf)
      record.write_entry(e, st.tpl, last_flag, m)
      local k = 0
      for j = i, n do
        if hosts[j] == host then
          hosts[j] = false
          local id = rcpt[j]
          local flags, d2 = recipient_fields(players[id], id, digger, party, x, y, z)
          record.write_slot(e, k, id, d2, flags)
          k = k + 1
        end
      end
      local list = cut.by[host]
      if list == nil then
        list = { n = 0, seq = {} }
        cut.by[host] = list
        cut.nd = cut.nd + 1
        cut.dests[cut.nd] = host
      end
      local at = list.n + 1
      list[at], list.seq[at] = ffi.string(st.ebuf, record.entry_size(m)), seq
      list.n = at
    end
  end
end

--- The packets of a dig's recipients: on the pollable stream (emit), or in
-- cluster mode as entries of the call's records (stage_entries).
local function deliver(st, seq, at, n, digger, party, last_flag, x, y, z)
  if st.cluster then
    stage_entries(st, seq, n, digger, party, last_flag, x, y, z)
  else
    emit(st, at, n, digger, party, last_flag, x, y, z)
  end
end

--- Stage one accepted dig (arguments valid, player known) as seq `seq`,
-- its packets written past the tail after the `at` already staged. A site's
-- charges are read and left in site.staged while site.token == token (the
-- call's mark), so a batch sees its own earlier digs; the caller commits.
-- Returns the number of packets, the kind and the FOUND site (or nil).
local function stage_dig(st, pl, x, y, z, t_us, seq, at, token)
  local tpl = st.tpl
  tpl.seq = seq
  tpl.t_us = t_us
  tpl.finder = pl.id
  tpl.party = pl.party
  tpl.x, tpl.y, tpl.z = x, y, z
  tpl.site_id, tpl.item, tpl.quantity, tpl.rarity, tpl.charges_left = 0, 0, 0, 0, 0
  tpl.roll = 0

  local dx, dy, dz = pl.x - x, pl.y - y, pl.z - z
  local kind, site, before = KIND_REJECTED, nil, 0
  if dx * dx + dy * dy + dz * dz <= st.reach2 then
    site = site_at(st, x, y, z)
    if site == nil then
      kind = KIND_NOTHING
    else
      before = site.token == token and site.staged or site.charges
      if before == 0 then
        kind = KIND_EMPTY
        tpl.site_id = site.id
        site = nil
      else
        kind = KIND_FOUND
      end
    end
  end
  tpl.kind = kind
  if site == nil then -- REJECTED, NOTHING or EMPTY: one packet, to the digger
    st.rcpt[1] = pl.id
    deliver(st, seq, at, 1, pl.id, pl.party, 0, x, y, z)
    return 1, kind, nil
  end

  -- FOUND: the roll depends only on the seed, the site and its charges
  local lt = site.loot
  local roll = splitmix64(bxor(st.seed, lshift(cast("uint64_t", site.id), 32), before))
  local e = pick_entry(lt, tonumber(roll % lt.total64))
  local mn = lt.min[e]
  local qty = mn + tonumber(rshift(roll, 40)) % (lt.max[e] - mn + 1)
  local after = before - 1
  site.token, site.staged = token, after
  tpl.site_id = site.id
  tpl.item = lt.item[e]
  tpl.quantity = qty
  tpl.rarity = lt.rarity[e]
  tpl.charges_left = after
  tpl.roll = roll

  local stamp = st.stamp + 1
  st.stamp = stamp
  local oldn = st.nrcpt
  st.nrcpt = 0
  add_recipient(st, pl, stamp)
  gather_aoi(st, x, y, z, stamp)
  local party = pl.party
  if party ~= 0 then
    local m = st.parties[party]
    for i = 1, m.n do add_recipient(st, m[i], stamp) end
  end
  local n, rcpt = st.nrcpt, st.rcpt
  for i = n + 1, oldn do rcpt[i] = nil end -- keep #rcpt == n for sort
  if n > 1 then sort(rcpt) end
  deliver(st, seq, at, n, pl.id, party, after == 0 and FLAG_LAST_CHARGE or 0, x, y, z)
  return n, kind, site
end

--- Cluster mode, once a call's digs are staged: cut the call's entries
-- (st.cut) into records and write them past st.nout (prepare; the caller
-- commits with commit_records). Destinations ascending; for each, its
-- entries in seq order, a new record started before an entry that would
-- take the record past RECORD_SPLIT_BYTES (a record holds one entry at
-- least); each record's prev is the `to` of the last record cut for that
-- destination; `to` is its last entry's seq, except for the call's last
-- record to that destination, which covers up to the call's last seq.
-- Returns how many records were cut.
local function cut_records(st, last_seq)
  local cut, sent, out = st.cut, st.sent, st.out
  local dests = cut.dests
  sort(dests)
  local k = st.nout
  for i = 1, cut.nd do
    local d = dests[i]
    local list = cut.by[d]
    local prev = sent[d] or 0
    local first, len = 1, HEADER_SIZE
    for j = 1, list.n do
      local size = #list[j]
      if j > first and len + size > RECORD_SPLIT_BYTES then
        k = k + 1
        out[k] = record.encode(st.shard, d, prev, list.seq[j - 1], list, first, j - 1, len)
        prev, first, len = list.seq[j - 1], j, HEADER_SIZE
      end
      len = len + size
    end
    k = k + 1
    out[k] = record.encode(st.shard, d, prev, last_seq, list, first, list.n, len)
    -- 0 means "nothing sent yet" (a snapshot lists only those above 0), so
    -- the key is made now and the commit only assigns
    if sent[d] == nil then sent[d] = 0 end
  end
  return k - st.nout
end

--- Make the records cut_records wrote visible (plain assignments).
local function commit_records(st, nrecords, last_seq)
  local cut = st.cut
  for i = 1, cut.nd do st.sent[cut.dests[i]] = last_seq end
  st.nout = st.nout + nrecords
end

--- Commit a call's staged digs: `ndigs` digs of the given kinds whose
-- `npackets` packets lie past the tail, or in cluster mode are held by the
-- call's records (plain assignments only).
local function commit_digs(st, ndigs, npackets, found, empty, nothing, rejected)
  if st.cluster then
    st.out_packets = st.out_packets + npackets
  else
    st.tail = st.tail + npackets
    st.packets = sat_add(st.packets, npackets) -- a statistic: saturates
  end
  st.seq = st.seq + ndigs
  st.digs = st.digs + ndigs
  st.found, st.empty = st.found + found, st.empty + empty
  st.nothing, st.rejected = st.nothing + nothing, st.rejected + rejected
  if st.efd and not st.cluster and npackets > 0 then efd.raise(st) end -- r:fd(): pending 0 -> > 0
end

--- A dig call in cluster mode gathers its entries in a fresh st.cut
-- (scratch: the one key exists already, so this cannot raise past the
-- table's allocation).
local function cut_begin(st)
  if st.cluster then st.cut = { nd = 0, dests = {}, by = {} } end
end

--- The busy rule: while more than max_pending_packets are pending, a dig
-- is refused with nil, "busy"; the refusal counts (saturating) and changes
-- nothing else. Pending: the packets not yet polled, or in cluster mode the
-- dig packets not yet taken as records (their recipients).
local function is_busy(st)
  local pending = st.cluster and st.out_packets or st.tail - st.head
  if pending > st.max_pending then
    if st.busy < SAFE_INT_MAX then st.busy = st.busy + 1 end
    return true
  end
  return false
end

function Resolver:dig(player, x, y, z, t_us)
  local fn = "dig"
  local st = state_of(fn, self)
  check_int(fn, "player", player, ID)
  check_block(fn, x, y, z)
  check_int(fn, "t_us", t_us, COUNT)
  local pl = known_player(fn, st, player)
  local seq = st.seq + 1
  if seq > SAFE_INT_MAX then fail(fn, contract.past_limit("seq", sum_text(st.seq, 1))) end
  if is_busy(st) then return nil, "busy" end
  -- prepare
  local token = st.token + 1
  st.token = token
  cut_begin(st)
  local n, kind, site = stage_dig(st, pl, x + 0, y + 0, z + 0, t_us + 0, seq, 0, token)
  local nrecords = st.cluster and cut_records(st, seq)
  -- commit
  if site then site.charges = site.staged end
  if nrecords then commit_records(st, nrecords, seq) end
  commit_digs(st, 1, n, kind == KIND_FOUND and 1 or 0, kind == KIND_EMPTY and 1 or 0,
    kind == KIND_NOTHING and 1 or 0, kind == KIND_REJECTED and 1 or 0)
  return seq
end

-- Batch records, read in place from the caller's string (docs/API.md,
-- "Batches"). dig: u32 player, i32 x, y, z, u64 t_us (split into halves so
-- the hot path needs no boxed 64-bit value; little-endian: low word first).
-- Named (and declared once per process) rather than anonymous: LuaJIT
-- 2.1.0-beta3 can resolve "$ *" of a re-created anonymous struct to an older
-- struct of the same shape when a module is loaded twice.
if not pcall(sizeof, "struct treasure_dig_record_v1") then
  ffi.cdef([[
struct treasure_dig_record_v1 { uint32_t player; int32_t x, y, z; uint32_t t_lo, t_hi; };
struct treasure_move_record_v1 { uint32_t player; int32_t x, y, z; };
]])
end
local DIG_RECORD_SIZE, MOVE_RECORD_SIZE = contract.DIG_RECORD_SIZE, contract.MOVE_RECORD_SIZE
assert(sizeof("struct treasure_dig_record_v1") == DIG_RECORD_SIZE
  and sizeof("struct treasure_move_record_v1") == MOVE_RECORD_SIZE,
  "treasure.legacy: batch record structs must be 24 and 16 bytes")
local dig_rec_ptr_t = typeof("const struct treasure_dig_record_v1 *")
local move_rec_ptr_t = typeof("const struct treasure_move_record_v1 *")

--- A record's t_us is at most 2^53-1 exactly when its high word is below
-- this (2^21).
local T_HI_LIMIT = (SAFE_INT_MAX + 1) / 4294967296

--- Validate record i (0-based) of a batch; returns the joined player. The
-- fields are already integers of their C type, so only the ranges remain
-- (a u32 player can be 0; an i32 coordinate can leave the block range).
local function check_record(fn, st, r, i, with_t)
  local path = "records[" .. (i + 1) .. "]."
  local player = r.player
  if player < 1 then fail(fn, not_in_range(path .. "player", ID, show(player))) end
  local x, y, z = r.x, r.y, r.z
  if x < COORD_MIN or x > COORD_MAX then fail(fn, not_in_range(path .. "x", COORD, show(x))) end
  if y < COORD_MIN or y > COORD_MAX then fail(fn, not_in_range(path .. "y", COORD, show(y))) end
  if z < COORD_MIN or z > COORD_MAX then fail(fn, not_in_range(path .. "z", COORD, show(z))) end
  if with_t and r.t_hi >= T_HI_LIMIT then
    fail(fn, not_in_range(path .. "t_us", COUNT, u64_text(r.t_lo, r.t_hi)))
  end
  local pl = st.players[player]
  if pl == nil then fail(fn, path .. "player must have joined, got " .. I(player)) end
  return pl
end

--- A batch's records, all validated (type, length, every record) before
-- anything is applied; returns the record count and the record array.
local function batch_records(fn, st, records, size, ptr_t, with_t)
  if type(records) ~= "string" then fail(fn, "records must be a string, got " .. type(records)) end
  local len = #records
  if len % size ~= 0 then fail(fn, "records length must be a multiple of " .. size .. ", got " .. len) end
  local n = len / size
  local recs = cast(ptr_t, records)
  for i = 0, n - 1 do check_record(fn, st, recs[i], i, with_t) end
  return n, recs
end

function Resolver:dig_batch(records)
  local fn = "dig_batch"
  local st = state_of(fn, self)
  local n, recs = batch_records(fn, st, records, DIG_RECORD_SIZE, dig_rec_ptr_t, true)
  local first = st.seq + 1
  if n > 0 and st.seq + n > SAFE_INT_MAX then
    fail(fn, contract.past_limit("seq", sum_text(st.seq, n)))
  end
  if is_busy(st) then return nil, "busy" end
  -- prepare: every dig staged past the tail, charges in the sites' scratch
  local token = st.token + 1
  st.token = token
  cut_begin(st)
  local players, touched = st.players, st.touched
  local at, ntouched = 0, 0
  local found, empty, nothing, rejected = 0, 0, 0, 0
  for i = 0, n - 1 do
    local r = recs[i]
    local np, kind, site = stage_dig(st, players[r.player], r.x, r.y, r.z, r.t_hi * 4294967296 + r.t_lo,
      first + i, at, token)
    at = at + np
    if kind == KIND_FOUND then
      found = found + 1
      if touched[ntouched] ~= site then -- consecutive digs at one site list it once
        ntouched = ntouched + 1
        touched[ntouched] = site
      end
    elseif kind == KIND_EMPTY then empty = empty + 1
    elseif kind == KIND_NOTHING then nothing = nothing + 1
    else rejected = rejected + 1 end
  end
  local last = first + n - 1
  local nrecords = st.cluster and n > 0 and cut_records(st, last)
  -- commit (a site listed twice gets the same staged value twice)
  for i = 1, ntouched do
    local site = touched[i]
    site.charges = site.staged
  end
  if nrecords then commit_records(st, nrecords, last) end
  commit_digs(st, n, at, found, empty, nothing, rejected)
  return first, n
end

---------------------------------------------------------------------------
-- 7. move_batch
---------------------------------------------------------------------------

function Resolver:move_batch(records)
  local fn = "move_batch"
  local st = state_of(fn, self)
  local n, recs = batch_records(fn, st, records, MOVE_RECORD_SIZE, move_rec_ptr_t, false)
  -- prepare: the records as numbers (scratch), every cell a record moves
  -- into registered (an empty registered cell changes no query) with a slot
  -- past its count for each move into it, and a slot per record for the
  -- cells the batch empties.
  local g, players, mv, emptied = st.grid, st.players, st.moves, st.emptied
  local token = st.token + 1
  st.token = token
  for i = 0, n - 1 do
    local r = recs[i]
    local x, y, z = r.x, r.y, r.z
    local key = cell_key(g, x, y, z)
    local c = g.cells[key]
    if c == nil then
      c = cell_new(g, key)
      g.list[g.n + 1] = c
      g.cells[key] = c
      g.n = g.n + 1
    end
    if c.token ~= token then c.token, c.extra = token, 0 end
    c.extra = c.extra + 1
    c[c.n + c.extra] = false
    local b = 5 * i
    mv[b + 1], mv[b + 2], mv[b + 3], mv[b + 4], mv[b + 5] = players[r.player], x, y, z, c
    emptied[i + 1] = false
  end
  -- commit (plain assignments into the slots prepared above)
  local ne = 0
  for i = 0, n - 1 do
    local b = 5 * i
    local pl, c = mv[b + 1], mv[b + 5]
    local from = pl.cell
    if c ~= from then
      local ci = pl.ci
      local k = c.n + 1
      c[k] = pl
      c.n = k
      pl.cell, pl.ci = c, k
      if grid_remove(g, from, ci, true) then
        ne = ne + 1
        emptied[ne] = from
      end
    end
    pl.x, pl.y, pl.z = mv[b + 2], mv[b + 3], mv[b + 4]
  end
  for i = 1, ne do -- drop the cells the batch left empty (once each)
    local c = emptied[i]
    if c.n == 0 and g.cells[c.key] == c then grid_drop(g, c) end
  end
end

---------------------------------------------------------------------------
-- 8. The stream: the queue's packets in seq order, then recipient order
---------------------------------------------------------------------------

---------------------------------------------------------------------------
-- The zero-copy drain's memory (issue 16, docs/API.md "poll_view"). Legacy
-- has no workers, so a view is a copy: up to VIEW_RUN packets copied from the
-- queue into a block, and the caller reads the block in place. The queue
-- itself cannot be lent (it moves when it grows, and the old buffer is
-- collected), and a view may be read after it ended (the next poll, close,
-- garbage collection of the resolver, a swap): so blocks come from a pool of
-- this Lua state that is never freed. It is anchored in the registry (not in
-- this module, which could be unloaded and collected); every block stays in
-- `all` for the life of the state and is recycled through `free`. A stale
-- view therefore reads a live block that may hold newer packets, never freed
-- memory. `free` has a slot reserved per block, so giving one back (in
-- close or a finalizer) never grows a table.
---------------------------------------------------------------------------
local VIEW_RUN = contract.VIEW_RUN_PACKETS
local view_ptr_t = typeof("const uint8_t *")
local view_pool
do
  local reg = debug and debug.getregistry and debug.getregistry()
  view_pool = reg and reg["treasure.legacy.view_pool"]
  if view_pool == nil then
    view_pool = { all = {}, free = {}, nfree = 0 }
    if reg then reg["treasure.legacy.view_pool"] = view_pool end
  end
end

--- A block for a view: a free one, or a new one (anchored first, so the
-- pool holds it whatever happens next). Takes nothing off the free list.
local function view_block()
  local pool = view_pool
  if pool.nfree > 0 then return pool.free[pool.nfree], true end
  local b = buf_t(VIEW_RUN * PACKET_SIZE)
  local k = #pool.all + 1
  pool.all[k] = b
  pool.free[k] = false -- the slot it takes when it is given back
  return b, false
end

--- The resolver's lent block back to the pool (plain assignments).
function view_release(st)
  local b = st.view
  if b then
    local pool = view_pool
    pool.nfree = pool.nfree + 1
    pool.free[pool.nfree] = b
    st.view = false
  end
end

--- r:poll_view([max]) -> n, a `const uint8_t *` to n packets (nil when n is
-- 0): the next run of at most max (and at most VIEW_RUN) packets, taken off
-- the stream. Valid until this resolver's next poll, poll_into, poll_view,
-- release_view or close.
function Resolver:poll_view(max)
  local fn = "poll_view"
  local st = state_of(fn, self)
  if max ~= nil then check_int(fn, "max", max, COUNT) end
  local n, head = queue_to_take(st, max)
  if n > VIEW_RUN then n = VIEW_RUN end
  if n == 0 then
    view_release(st)
    return 0, nil
  end
  local b, pooled = view_block()                           -- prepare: may allocate
  local p = cast(view_ptr_t, b)
  copy(b, st.buf + head * PACKET_SIZE, n * PACKET_SIZE)
  local pool = view_pool                                   -- commit
  if pooled then
    pool.free[pool.nfree] = false
    pool.nfree = pool.nfree - 1
  end
  view_release(st)
  st.view = b
  queue_take(st, n)
  return n, p
end

--- r:release_view(): ends the current view early.
function Resolver:release_view()
  view_release(state_of("release_view", self))
end

function Resolver:poll(max)
  local fn = "poll"
  local st = state_of(fn, self)
  if max ~= nil then check_int(fn, "max", max, COUNT) end
  view_release(st) -- the previous view ends (issue 16)
  local n, head = queue_to_take(st, max)
  if n == 0 then return 0, "" end
  local s = ffi.string(st.buf + head * PACKET_SIZE, n * PACKET_SIZE) -- prepare
  queue_take(st, n)                                                   -- commit
  return n, s
end

function Resolver:poll_into(buf, max, capacity)
  local fn = "poll_into"
  local st = state_of(fn, self)
  -- the buffer proven before anything is taken (treasure/ffi_buffer.lua)
  local holds, refused, detail = packets_held(buf, capacity)
  if refused == "buf" or refused == "null" then fail(fn, contract.buffer_refusal(refused, detail)) end
  check_int(fn, "max", max, COUNT)
  if refused then fail(fn, contract.buffer_refusal(refused, detail, capacity)) end
  if max > holds then
    fail(fn, contract.buffer_too_small(holds, max))
  end
  view_release(st) -- the previous view ends (issue 16)
  local n, head = queue_to_take(st, max)
  if n > 0 then
    copy(buf, st.buf + head * PACKET_SIZE, n * PACKET_SIZE) -- prepare: the pointer arithmetic allocates
    queue_take(st, n)                                       -- commit
  end
  return n
end

function Resolver:flush()
  state_of("flush", self) -- resolved inside dig: nothing to wait for
end

--- Packets pollable now. Legacy resolves each dig inside the call, so no dig
-- is ever in flight and nothing can arrive while waiting: returns at once.
function Resolver:wait(timeout_us)
  local fn = "wait"
  local st = state_of(fn, self)
  if timeout_us ~= nil then check_int(fn, "timeout_us", timeout_us, COUNT) end
  return st.tail - st.head
end

--- r:fd(): the eventfd an event loop watches (treasure/eventfd.lua); made
-- on the first call, closed by close()/GC. Refused in a forked child, as on
-- native: the child would share the parent's eventfd.
function Resolver:fd()
  local fn = "fd"
  local st = state_of(fn, self)
  if st.efd then
    local pid = efd.pid()
    if pid ~= st.efd_pid then
      fail(fn, contract.foreign_process(st.efd_pid, pid))
    end
    return st.efd
  end
  local fd, owner, errno = efd.open()   -- (on failure: nil, text, errno)
  if fd == nil then fail(fn, contract.eventfd_failed(owner, errno)) end
  st.efd, st.efd_owner, st.efd_pid, st.efd_up = fd, owner, efd.pid(), false
  if st.tail > st.head then efd.raise(st) end
  return fd
end

--- r:in_flight(): legacy resolves inside each call, so nothing is ever in flight.
function Resolver:in_flight()
  state_of("in_flight", self)
  return 0
end

function Resolver:stats()
  local st = state_of("stats", self)
  local t = {
    digs = st.digs, packets = st.packets,
    found = st.found, empty = st.empty, nothing = st.nothing, rejected = st.rejected,
    busy = st.busy, players = st.nplayers, sites = st.nsites,
    pending_packets = st.tail - st.head,
    -- legacy resolves inside the call: there is no queueing latency to report
    resolve_p50_us = 0, resolve_p99_us = 0, resolve_p999_us = 0, resolve_max_us = 0,
    -- issue 15: nothing in flight; every dig resolved in 0 µs, so every
    -- latency bucket holds them all
    inflight_digs = 0, resolve_count = st.digs, resolve_sum_us = 0,
  }
  for i = 1, #bucket_keys do t[bucket_keys[i]] = st.digs end
  if st.cluster then
    t.shard, t.shards = st.shard, st.shards
    t.next_host_seq, t.log_position = st.next_host_seq, st.log_position
    t.applied_digs, t.duplicate_digs = st.applied_digs, st.duplicate_digs
    t.records_out, t.records_in, t.pending_records = st.records_out, st.records_in, st.nout
  end
  return t
end

---------------------------------------------------------------------------
-- 9. Cluster mode (docs/API.md, "Cluster mode"). A dig's recipients leave
-- as outcome records (cut_records above), one or more per destination host
-- shard and dig call; this shard's packets come only from the records
-- applied to it, in log order, numbered with its own host seq.
---------------------------------------------------------------------------

function Resolver:set_host(player, host)
  local fn = "set_host"
  local st = cluster_state_of(fn, self)
  check_int(fn, "player", player, ID)
  local pl = known_player(fn, st, player)
  check_int(fn, "host", host, st.host_range)
  pl.host = host + 0
end

--- Every record of the dig calls so far (legacy resolves inside the call),
-- in dig order, as one string; they are removed.
function Resolver:take_records()
  local st = cluster_state_of("take_records", self)
  local n = st.nout
  if n == 0 then return 0, "" end
  local out = st.out
  local bytes = table.concat(out, "", 1, n) -- prepare
  for i = 1, n do out[i] = nil end          -- commit
  st.nout, st.out_packets = 0, 0
  st.records_out = sat_add(st.records_out, n)
  return n, bytes
end

--- The dedupe and order rule over the checked records `recs`, left to right,
-- against st.applied with the effect of the earlier records of the same
-- string. Returns nil when a record's prev is past what was applied from
-- its src (a gap); else the offsets of the entries to apply (in order),
-- their count and recipients, the duplicates skipped, and `seen` (src ->
-- its applied seq after the string). Changes nothing visible: a src not yet
-- in st.applied gets its key with 0 ("none"), so the commit only assigns.
local function plan_records(st, recs)
  local applied = st.applied
  local seen, plan, nplan, npackets, duplicates = {}, {}, 0, 0, 0
  for i = 1, #recs do
    local rec = recs[i]
    local src = rec.src
    local done = seen[src] or applied[src] or 0
    if rec.to <= done then -- all of it was applied before
      duplicates = duplicates + rec.n
    elseif rec.prev > done then -- a record between them is missing
      return nil
    else
      for k = 1, rec.n do
        if rec.eseq[k] <= done then
          duplicates = duplicates + 1
        else
          nplan = nplan + 1
          plan[nplan] = rec.eoff[k]
          npackets = npackets + rec.ercpt[k]
        end
      end
      seen[src] = rec.to
      if applied[src] == nil then applied[src] = 0 end
    end
  end
  return plan, nplan, npackets, duplicates, seen
end

--- Write the packets of the planned entries past the tail: each entry takes
-- the next host seq; one packet per recipient slot, in slot order.
local function stage_applied(st, records, plan, nplan, npackets)
  queue_reserve(st, 0, npackets)
  local tpl = st.tpl
  local dst = st.buf + st.tail * PACKET_SIZE
  local h = st.next_host_seq
  for i = 1, nplan do
    local e = record.entry_at(records, plan[i])
    record.template(tpl, e)
    tpl.seq = h
    local flags = e.flags
    for j = 0, e.recipients - 1 do
      local slot = record.slot_at(e, j)
      copy(dst, tpl, PACKET_SIZE)
      local p = cast(pkt_ptr_t, dst)
      p.recipient = slot.recipient
      p.flags = bor(flags, slot.flags)
      p.dist2 = slot.dist2
      packet.seal(p)
      dst = dst + PACKET_SIZE
    end
    h = h + 1
  end
end

--- Check order: self, closed, cluster mode; records (a string), then
-- log_position; every record valid (first to last, raising); the dedupe and
-- order rule (nil, "gap"); the host seq limit (raising); busy (nil, "busy").
function Resolver:apply_records(records, log_position)
  local fn = "apply_records"
  local st = cluster_state_of(fn, self)
  if type(records) ~= "string" then fail(fn, "records must be a string, got " .. type(records)) end
  if log_position ~= nil then check_int(fn, "log_position", log_position, COUNT) end
  local recs, bad, why = record.scan(records, st.shard, st.shards)
  if recs == nil then fail(fn, contract.bad_record("records[" .. bad .. "]", st.shard, why)) end
  local plan, nplan, npackets, duplicates, seen = plan_records(st, recs)
  if plan == nil then return nil, "gap" end
  if st.next_host_seq - 1 + nplan > SAFE_INT_MAX then
    fail(fn, contract.past_limit("seq", sum_text(st.next_host_seq - 1, nplan)))
  end
  -- the busy rule of apply_records: the host packets not yet polled, before the call
  if st.tail - st.head >= st.max_pending then
    st.busy = sat_add(st.busy, 1)
    return nil, "busy"
  end
  -- prepare
  stage_applied(st, records, plan, nplan, npackets)
  -- commit
  for src, to in next, seen do st.applied[src] = to end
  st.tail = st.tail + npackets
  st.packets = sat_add(st.packets, npackets)
  st.next_host_seq = st.next_host_seq + nplan
  st.applied_digs = sat_add(st.applied_digs, nplan)
  st.duplicate_digs = sat_add(st.duplicate_digs, duplicates)
  st.records_in = sat_add(st.records_in, #recs)
  if log_position ~= nil and log_position > st.log_position then st.log_position = log_position + 0 end
  if st.efd and npackets > 0 then efd.raise(st) end -- r:fd(): pending 0 -> > 0
  return nplan
end

---------------------------------------------------------------------------
-- 10. Snapshot and restore (docs/API.md, "Snapshot, restore and swap").
-- The validation rules live in treasure/snapshot.lua, shared with native.
---------------------------------------------------------------------------

local function sorted_keys(t)
  local ids, n = {}, 0
  for id in pairs(t) do n = n + 1; ids[n] = id end
  sort(ids)
  return ids, n
end

--- { shard =, seq = } for each shard whose seq in `t` is above 0, ascending.
local function shard_seqs(t)
  local ids, n = sorted_keys(t)
  local out = {}
  for i = 1, n do
    local seq = t[ids[i]]
    if seq > 0 then out[#out + 1] = { shard = ids[i], seq = seq } end
  end
  return out
end

--- The snapshot's `cluster` table (docs/API.md, "Cluster mode").
local function cluster_snapshot(st)
  return {
    next_host_seq = st.next_host_seq,
    log_position = st.log_position,
    applied = shard_seqs(st.applied),
    sent = shard_seqs(st.sent),
    outgoing = table.concat(st.out, "", 1, st.nout),
    counters = { applied_digs = st.applied_digs, duplicate_digs = st.duplicate_digs,
      records_out = st.records_out, records_in = st.records_in },
  }
end

function Resolver:snapshot()
  local st = state_of("snapshot", self)
  local o = st.opts
  local ids, n = sorted_keys(st.loot)
  local loot_tables, table_id = {}, {}
  for i = 1, n do
    local id = ids[i]
    local lt = st.loot[id]
    table_id[lt] = id
    local entries, prev = {}, 0
    for k = 1, lt.n do
      entries[k] = { item = lt.item[k], weight = lt.cum[k] - prev, min = lt.min[k],
        max = lt.max[k], rarity = lt.rarity[k] }
      prev = lt.cum[k]
    end
    loot_tables[i] = { id = id, entries = entries }
  end
  local sites = {}
  ids, n = sorted_keys(st.sites)
  for i = 1, n do
    local site = st.sites[ids[i]]
    sites[i] = { id = site.id, x = site.x, y = site.y, z = site.z,
      loot_table_id = table_id[site.loot], charges = site.charges }
  end
  local players = {}
  ids, n = sorted_keys(st.players)
  for i = 1, n do
    local pl = st.players[ids[i]]
    players[i] = { id = pl.id, x = pl.x, y = pl.y, z = pl.z, party = pl.party, host = pl.host }
  end
  local pending = st.tail - st.head
  return {
    version = snapshot_rules.VERSION,
    options = { seed = o.seed, aoi_radius = o.aoi_radius, reach = o.reach,
      workers = o.workers, max_pending_packets = o.max_pending_packets,
      shard = o.shard, shards = o.shards }, -- nil (absent) on a plain resolver
    loot_tables = loot_tables,
    sites = sites,
    players = players,
    next_seq = st.seq + 1,
    counters = { digs = st.digs, packets = st.packets, found = st.found, empty = st.empty,
      nothing = st.nothing, rejected = st.rejected, busy = st.busy },
    pending = pending > 0 and ffi.string(st.buf + st.head * PACKET_SIZE, pending * PACKET_SIZE) or "",
    cluster = st.cluster and cluster_snapshot(st) or nil,
  }
end

--- The cluster state of a checked snapshot's `cluster` table.
local function restore_cluster(st, cl)
  st.next_host_seq, st.log_position = rawget(cl, "next_host_seq") + 0, rawget(cl, "log_position") + 0
  for key, t in next, { applied = st.applied, sent = st.sent } do
    local list = rawget(cl, key)
    for i = 1, #list do
      local e = rawget(list, i)
      t[rawget(e, "shard") + 0] = rawget(e, "seq") + 0
    end
  end
  local outgoing = rawget(cl, "outgoing")
  local recs = assert(record.scan(outgoing, st.shard, st.shards, true)) -- checked by treasure.snapshot
  for i = 1, #recs do
    local rec = recs[i]
    st.out[i] = outgoing:sub(rec.off + 1, rec.off + rec.length)
    st.out_packets = st.out_packets + rec.recipients
  end
  st.nout = #recs
  local c = rawget(cl, "counters")
  st.applied_digs, st.duplicate_digs = rawget(c, "applied_digs") + 0, rawget(c, "duplicate_digs") + 0
  st.records_out, st.records_in = rawget(c, "records_out") + 0, rawget(c, "records_in") + 0
end

--- restore(snapshot): a new resolver in the snapshot's state; everything is
-- validated before anything is built, then built through the public methods
-- (which cannot fail on a valid snapshot).
local function restore(s)
  snapshot_rules.check(s)
  local o = rawget(s, "options")
  local r = new({ seed = rawget(o, "seed"), aoi_radius = rawget(o, "aoi_radius"),
    reach = rawget(o, "reach"), workers = rawget(o, "workers"),
    max_pending_packets = rawget(o, "max_pending_packets"),
    shard = rawget(o, "shard"), shards = rawget(o, "shards") })
  local lts, sites, players = rawget(s, "loot_tables"), rawget(s, "sites"), rawget(s, "players")
  for i = 1, #lts do
    local lt = rawget(lts, i)
    r:add_loot_table(rawget(lt, "id"), rawget(lt, "entries"))
  end
  for i = 1, #sites do
    local site = rawget(sites, i)
    r:add_site(rawget(site, "id"), rawget(site, "x"), rawget(site, "y"), rawget(site, "z"),
      rawget(site, "loot_table_id"), rawget(site, "charges"))
  end
  for i = 1, #players do
    local p = rawget(players, i)
    r:join(rawget(p, "id"), rawget(p, "x"), rawget(p, "y"), rawget(p, "z"), rawget(p, "party"))
    local host = rawget(p, "host")
    if host ~= nil then r:set_host(rawget(p, "id"), host) end
  end
  local st = states[r]
  local c = rawget(s, "counters")
  st.seq = rawget(s, "next_seq") - 1
  -- "+ 0": a -0 counter is kept (and snapshot) as 0
  st.digs, st.packets, st.busy = rawget(c, "digs") + 0, rawget(c, "packets") + 0, rawget(c, "busy") + 0
  st.found, st.empty = rawget(c, "found") + 0, rawget(c, "empty") + 0
  st.nothing, st.rejected = rawget(c, "nothing") + 0, rawget(c, "rejected") + 0
  local pending = rawget(s, "pending")
  local n = #pending / PACKET_SIZE
  if n > 0 then
    queue_reserve(st, 0, n)
    copy(st.buf, pending, #pending)
    st.tail = n
  end
  local cl = rawget(s, "cluster")
  if cl ~= nil then restore_cluster(st, cl) end
  return r
end

return {
  new = new,
  restore = restore,
  _VERSION = packet._VERSION,
  _VERSION_NUM = packet._VERSION_NUM,
  backend = "lua",
}
