--- treasure.contract: the contract's limits, rules and message texts, once
-- for every Lua module (docs/API.md; the Rust side has its own single copy,
-- treasure_core::contract).
--
-- What lives here is what more than one place must agree on: the numeric
-- limits and the ranges printed in messages, the option table, the loot
-- entry rule (checked by add_loot_table and by restore), the wording of
-- "treasure: <fn>: <arg> <rule>, got <v>", and how a block's coordinates
-- pack into one exact number. What one module alone decides (legacy's grid,
-- a snapshot's ordering rules) stays in that module.
--
-- Plain Lua with no dependencies: treasure.native compiles this file into
-- native.so (include_str!) and hands it to packet.lua, ffi_buffer.lua and
-- snapshot.lua, so native.so never needs package.path.

local floor = math.floor
local format = string.format
local type, tostring, error, next, rawget = type, tostring, error, next, rawget

local M = {}

---------------------------------------------------------------------------
-- Limits
---------------------------------------------------------------------------

M.U32_MAX = 4294967295
--- The largest integer a double holds exactly with all below it (2^53 - 1):
-- the bound of t_us, seq, counts and every "any count" argument.
M.SAFE_INT_MAX = 9007199254740991
--- A block coordinate is 21 bits signed: [-2^20, 2^20 - 1].
M.COORD_BITS = 21
M.COORD_MIN, M.COORD_MAX = -1048576, 1048575
--- aoi_radius and reach: the widest distance between two blocks on one axis.
M.RADIUS_MAX = 1048576
M.WORKERS_MAX = 256
M.QUANTITY_MAX = 65535 -- a packet's u16
M.RARITY_MAX = 255     -- a packet's u8
--- next_seq in a snapshot: the resolver that used seq 2^53-1 (the last a dig
-- may take) snapshots next_seq = 2^53, exact in a double.
M.NEXT_SEQ_MAX = 9007199254740992
M.PACKET_SIZE = 128
-- The most packets one r:poll_view returns (issue 16): one block of the view pool.
M.VIEW_RUN_PACKETS = 512
--- Batch records (docs/API.md, "Batches"): dig = u32 player, i32 x, y, z,
-- u64 t_us; move = u32 player, i32 x, y, z.
M.DIG_RECORD_SIZE, M.MOVE_RECORD_SIZE = 24, 16
--- Cluster mode (issue 17, docs/API.md "Cluster mode"): a shard number is
-- a record's u16 and 65535 shards at most, so the highest shard is 65534.
M.SHARDS_MAX = 65535
M.SHARD_MAX = M.SHARDS_MAX - 1
--- An outcome record is cut before an entry that would take it past this
-- many bytes (a single entry may make a record longer).
M.RECORD_SPLIT_BYTES = 65536

---------------------------------------------------------------------------
-- Numbers and values in messages (docs/API.md, "Numbers in messages")
---------------------------------------------------------------------------

--- A number the module holds or computed (a limit, a capacity, a count, a
-- total weight, a seq, a valid integer argument failing a state rule):
-- an exact decimal integer, never an exponent, -0 as 0.
function M.int_text(v)
  return format("%d", v)
end
local int_text = M.int_text

--- A failing argument, as the integer and type rules show it: numbers as
-- LuaJIT's tostring prints them, everything else by type name (never an
-- address, so the backends agree). The rules that demand a type ("must be a
-- table", "a string", "a resolver", "a uint8_t array cdata") show type(v).
function M.show(v)
  if type(v) == "number" then return tostring(v) end
  return type(v)
end
local show = M.show

--- A failing argument of a rule that names strings ("backend must be
-- 'legacy', 'lua' or 'native'"): a string quoted, as it was passed.
function M.show_choice(v)
  if type(v) == "string" then return "'" .. v .. "'" end
  return show(v)
end

--- An unknown table key: strings as they are, numbers printed, other key
-- types by type name.
function M.key_text(k)
  if type(k) == "string" then return k end
  return show(k)
end
local key_text = M.key_text

---------------------------------------------------------------------------
-- Ranges: the bounds and their printed form, built once from the limits
---------------------------------------------------------------------------

local function range(lo, hi)
  return { lo = lo, hi = hi, text = "[" .. int_text(lo) .. ", " .. int_text(hi) .. "]" }
end

M.range = range
M.ID       = range(1, M.U32_MAX)                -- player, site, loot table, item ids; weights
M.U32      = range(0, M.U32_MAX)                -- party, charges
M.COORD    = range(M.COORD_MIN, M.COORD_MAX)
M.COUNT    = range(0, M.SAFE_INT_MAX)           -- t_us, max, timeout_us, seed, counters
M.COUNT_1  = range(1, M.SAFE_INT_MAX)           -- max_pending_packets
M.RADIUS   = range(0, M.RADIUS_MAX)
M.WORKERS  = range(0, M.WORKERS_MAX)
M.QUANTITY = range(0, M.QUANTITY_MAX)
M.RARITY   = range(0, M.RARITY_MAX)
M.NEXT_SEQ = range(1, M.NEXT_SEQ_MAX)
M.SHARD    = range(0, M.SHARD_MAX)
M.SHARDS   = range(1, M.SHARDS_MAX)

--- The shards a player's host may be on a resolver of `shards` shards.
function M.host_range(shards)
  return range(0, shards - 1)
end

--- The options of new() in the order they are checked (and snapshot), with
-- their defaults: { name, range, default }.
M.OPTIONS = {
  { "seed", M.COUNT, 0 },
  { "aoi_radius", M.RADIUS, 64 },
  { "reach", M.RADIUS, 8 },
  { "workers", M.WORKERS, 0 },
  { "max_pending_packets", M.COUNT_1, 1048576 },
}
--- Cluster mode's options, checked after the five above, in this order,
-- by check_cluster_options (both absent: not cluster mode). Not in OPTIONS:
-- they have no default and are absent from a plain resolver's snapshot.
M.CLUSTER_OPTIONS = { { "shard", M.SHARD }, { "shards", M.SHARDS } }
M.OPTION_KEYS = {}
for i = 1, #M.OPTIONS do M.OPTION_KEYS[M.OPTIONS[i][1]] = true end
for i = 1, #M.CLUSTER_OPTIONS do M.OPTION_KEYS[M.CLUSTER_OPTIONS[i][1]] = true end

--- A loot entry's fields in the order they are checked.
M.ENTRY_FIELDS = {
  { "item", M.ID }, { "weight", M.ID }, { "min", M.QUANTITY }, { "max", M.QUANTITY }, { "rarity", M.RARITY },
}
local ENTRY_FIELDS = M.ENTRY_FIELDS
local ENTRY_KEYS = {}
for i = 1, #ENTRY_FIELDS do ENTRY_KEYS[ENTRY_FIELDS[i][1]] = true end

---------------------------------------------------------------------------
-- Messages: "treasure: <fn>: <arg> <rule>, got <v>"
---------------------------------------------------------------------------

--- The whole message of a refused call of `fn`.
function M.message(fn, text)
  return "treasure: " .. fn .. ": " .. text
end

--- Raises the contract's message (a plain string, level 0: no position).
function M.fail(fn, text)
  error("treasure: " .. fn .. ": " .. text, 0)
end
local fail = M.fail

--- "<name> must be an integer in <range>, got <got>" (`got` already text).
function M.not_in_range(name, r, got)
  return name .. " must be an integer in " .. r.text .. ", got " .. got
end
local not_in_range = M.not_in_range

--- "<name> must stay at most 9007199254740991, got <got>": a counter the call
-- would carry past 2^53-1.
function M.past_limit(name, got)
  return name .. " must stay at most " .. int_text(M.SAFE_INT_MAX) .. ", got " .. got
end

--- "<path> has unknown key '<k>'"
function M.unknown_key(path, k)
  return path .. " has unknown key '" .. key_text(k) .. "'"
end

--- "<path>.min must be <= max, got <min> > <max>"
function M.min_above_max(path, mn, mx)
  return path .. ".min must be <= max, got " .. int_text(mn) .. " > " .. int_text(mx)
end

--- "block must not hold a site already, got x, y, z (site id)"
function M.block_taken(x, y, z, site_id)
  return format("block must not hold a site already, got %s, %s, %s (site %s)",
    int_text(x), int_text(y), int_text(z), int_text(site_id))
end

--- "loot_table_id must be an existing loot table, got id"
function M.unknown_loot_table(id)
  return "loot_table_id must be an existing loot table, got " .. int_text(id)
end

--- poll_into's buffer rules (issue 15). `buf`: "buf must be a uint8_t
-- array, uint8_t * or void * cdata, got <what>"; a NULL pointer: "buf must
-- not be a NULL pointer, got <what>".
M.PACKET_BUFFER = "a uint8_t array, uint8_t * or void * cdata"
function M.bad_buffer(what)
  return "buf must be " .. M.PACKET_BUFFER .. ", got " .. what
end
function M.null_buffer(what)
  return "buf must not be a NULL pointer, got " .. what
end
--- A pointer buf without its capacity.
M.CAPACITY_REQUIRED = "capacity must be given with a pointer buf (the bytes it points at), got nil"
--- An array buf with a capacity above its size in bytes.
function M.capacity_exceeds(size, capacity)
  return "capacity must be at most " .. int_text(size) .. " (the bytes buf holds), got " .. int_text(capacity)
end
--- max above what buf holds.
function M.buffer_too_small(holds, max)
  return "max must be at most " .. int_text(holds) .. " (the packets buf holds), got " .. int_text(max)
end

--- The text of ffi_buffer.lua's refusal `refused` (its code) with its
-- `detail`, for poll_into's `capacity` argument (docs/API.md "poll_into").
function M.buffer_refusal(refused, detail, capacity)
  if refused == "null" then return M.null_buffer(detail) end
  if refused == "capacity" then return not_in_range("capacity", M.COUNT, detail) end
  if refused == "capacity_missing" then return M.CAPACITY_REQUIRED end
  if refused == "capacity_exceeds" then return M.capacity_exceeds(detail, capacity) end
  return M.bad_buffer(detail)
end

--- r:fd() could not make its eventfd: the C library's text for the error
-- and its errno (as treasure.native words it: `Error::eventfd_failed`).
function M.eventfd_failed(text, errno)
  if errno == nil then return "eventfd failed: " .. text end
  return "eventfd failed: " .. text .. " (errno " .. int_text(errno) .. ")"
end

--- A resolver used in a process other than the one that made it.
function M.foreign_process(created, used)
  return "resolver was created in process " .. int_text(created) .. " and used in process "
    .. int_text(used) .. "; create it after the fork (OpenResty: init_worker_by_lua)"
end

---------------------------------------------------------------------------
-- Cluster mode (issue 17): texts shared by new, the cluster methods,
-- apply_records' record check and restore
---------------------------------------------------------------------------

--- A cluster method (set_host, take_records, apply_records) on a resolver
-- made without opts.shard and opts.shards.
M.NO_SHARD = "resolver has no shard (create it with opts.shard and opts.shards)"

--- "<prefix><a> must be given with <prefix><b>, got nil": one of the two
-- cluster options without the other.
function M.given_with(prefix, a, b)
  return prefix .. a .. " must be given with " .. prefix .. b .. ", got nil"
end

--- "<prefix>shard must be below <prefix>shards (<n>), got <s>"
function M.shard_not_below(prefix, shard, shards)
  return prefix .. "shard must be below " .. prefix .. "shards (" .. int_text(shards) .. "), got " .. int_text(shard)
end

--- "<path> must be a valid record for shard <S>, got <reason>": a record of
-- apply_records' string (path "records[i]") or of a snapshot's outgoing
-- records; `reason` is treasure.record's text (docs/API.md, "Record format").
function M.bad_record(path, shard, reason)
  return path .. " must be a valid record for shard " .. int_text(shard) .. ", got " .. reason
end

---------------------------------------------------------------------------
-- stats(): the fixed resolve latency buckets (issue 15)
---------------------------------------------------------------------------

--- Upper bounds (µs) of the cumulative buckets: key
-- `resolve_bucket_le_<b>_us` counts the digs resolved in at most b µs,
-- with `resolve_count` and `resolve_sum_us` (docs/API.md, "stats").
M.RESOLVE_BUCKETS_US = { 50, 100, 250, 500, 1000, 2500, 5000, 10000, 20000, 50000, 100000, 250000 }
M.RESOLVE_BUCKET_KEYS = {}
for i = 1, #M.RESOLVE_BUCKETS_US do
  M.RESOLVE_BUCKET_KEYS[i] = "resolve_bucket_le_" .. int_text(M.RESOLVE_BUCKETS_US[i]) .. "_us"
end

---------------------------------------------------------------------------
-- Checks (each raises the message above naming `fn`)
---------------------------------------------------------------------------

--- v is an integer in [lo, hi]: NaN fails both comparisons, +-inf the
-- range, fractions the floor.
function M.is_int(v, lo, hi)
  return type(v) == "number" and v >= lo and v <= hi and floor(v) == v
end
local is_int = M.is_int

function M.check_int(fn, name, v, r)
  if not is_int(v, r.lo, r.hi) then fail(fn, not_in_range(name, r, show(v))) end
  return v
end
local check_int = M.check_int

--- The cluster options of new() (prefix "opts.") or of a snapshot
-- (prefix "snapshot.options."), given raw: shard's range when given, then
-- shards' range when given, then both or neither, then shard < shards.
-- Returns shard, shards as numbers (-0 as 0), or nothing when both are
-- absent (not cluster mode).
function M.check_cluster_options(fn, prefix, shard, shards)
  if shard ~= nil then check_int(fn, prefix .. "shard", shard, M.SHARD) end
  if shards ~= nil then check_int(fn, prefix .. "shards", shards, M.SHARDS) end
  if shard == nil and shards == nil then return nil, nil end
  if shards == nil then fail(fn, M.given_with(prefix, "shards", "shard")) end
  if shard == nil then fail(fn, M.given_with(prefix, "shard", "shards")) end
  if shard >= shards then fail(fn, M.shard_not_below(prefix, shard, shards)) end
  return shard + 0, shards + 0
end

--- A block: x, y, z each an integer coordinate, checked in that order.
function M.check_block(fn, x, y, z)
  check_int(fn, "x", x, M.COORD)
  check_int(fn, "y", y, M.COORD)
  check_int(fn, "z", z, M.COORD)
end

--- `path .. "[" .. i .. "]"`, built only for a message (a valid snapshot of
-- 100,000 sites makes no strings at all).
function M.element(path, i)
  if i == nil then return path end
  return path .. "[" .. i .. "]"
end
local element = M.element

--- A table whose keys are all in `known` (the first other key found by
-- next() is reported). Names the table `element(path, i)`.
function M.check_keys(fn, path, t, known, i)
  if type(t) ~= "table" then fail(fn, element(path, i) .. " must be a table, got " .. type(t)) end
  for k in next, t do
    if type(k) ~= "string" or not known[k] then fail(fn, M.unknown_key(element(path, i), k)) end
  end
  return t
end
local check_keys = M.check_keys

--- An array of tables: exactly the keys 1..n, n >= 1 when non_empty.
-- Returns n. (The elements are checked by the caller.)
function M.check_array(fn, path, v, non_empty)
  local what = non_empty and "a non-empty array of tables" or "an array of tables"
  if type(v) ~= "table" then fail(fn, path .. " must be " .. what .. ", got " .. type(v)) end
  local n = 0
  for _ in next, v do n = n + 1 end
  for k in next, v do
    if not is_int(k, 1, n) then fail(fn, path .. " must be " .. what .. ", got table") end
  end
  if non_empty and n == 0 then fail(fn, path .. " must be " .. what .. ", got table") end
  return n
end
local check_array = M.check_array

--- The loot entry rule, shared by add_loot_table ("entries") and restore
-- ("snapshot.loot_tables[i].entries"): a non-empty array of tables with
-- only the keys item, weight, min, max, rarity; each an integer in its
-- range, in that order; min <= max; the weights summing to at most 2^32-1
-- (a roll is taken mod the total). Fields are read raw: a metatable cannot
-- supply them. Returns the entry count and the total weight.
--
-- `on_entry`, when given, is called with (i, item, weight, min, max, rarity,
-- running total) for each entry once it has passed, so a caller builds from
-- exactly the values checked (nothing is read twice).
function M.check_loot_entries(fn, path, entries, on_entry)
  local n = check_array(fn, path, entries, true)
  local total = 0
  for i = 1, n do
    local e = check_keys(fn, path, rawget(entries, i), ENTRY_KEYS, i)
    for k = 1, #ENTRY_FIELDS do
      local name, r = ENTRY_FIELDS[k][1], ENTRY_FIELDS[k][2]
      local v = rawget(e, name)
      if not is_int(v, r.lo, r.hi) then fail(fn, not_in_range(element(path, i) .. "." .. name, r, show(v))) end
    end
    local item, weight, mn, mx, rarity =
      rawget(e, "item"), rawget(e, "weight"), rawget(e, "min"), rawget(e, "max"), rawget(e, "rarity")
    if mn > mx then fail(fn, M.min_above_max(element(path, i), mn, mx)) end
    total = total + weight
    if on_entry then on_entry(i, item, weight, mn, mx, rarity, total) end
  end
  if total > M.U32_MAX then
    fail(fn, path .. " total weight must be <= " .. int_text(M.U32_MAX) .. ", got " .. int_text(total))
  end
  return n, total
end

---------------------------------------------------------------------------
-- Blocks as numbers
---------------------------------------------------------------------------

--- Adding COORD_OFFSET maps a coordinate onto [0, 2^21).
M.COORD_OFFSET = -M.COORD_MIN
M.COORD_SPAN = 2 * M.COORD_OFFSET -- 2^21 values per axis
local COORD_OFFSET, COORD_SPAN = M.COORD_OFFSET, M.COORD_SPAN

--- The block column (x, y) as one exact number below 2^42. A whole block
-- needs 63 bits, more than a double holds, so block indexes are two levels:
-- column key, then z.
function M.column_key(x, y)
  return (x + COORD_OFFSET) * COORD_SPAN + (y + COORD_OFFSET)
end

return M
