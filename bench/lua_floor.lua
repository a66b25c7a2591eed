-- bench/lua_floor.lua: what a 12,000-dig burst must cost the game loop's
-- thread (issue 16's burst_lua_ms), split into parts that are measured
-- apart, on one thread, with no worker running while a part is timed:
--
--   check    dig_batch refused as busy (a few packets are left pending,
--            and max_pending_packets is 1): every record's checks and
--            player lookup, the seq bound and the busy rule; nothing is
--            applied. The part of dig_batch that must run in the call (an
--            invalid batch must raise there and change nothing). (Not an
--            invalid batch: the FFI fast path answers busy itself, but
--            hands an error to the slow path, which checks the batch again
--            before it raises: twice the checks.)
--   dig      the whole dig_batch (the checks plus accepting: seq, reach,
--            the jobs handed to the ruler, which decides site, charge and
--            roll on the pool, off this thread); dig - check is accepting's
--            share.
--   cold     check and dig again after 16 MiB of other writes (the state a
--            game loop's tick leaves the caches in between two bursts).
--   copy     the poll_into contract's own floor: the burst's packets written
--            as 128-byte copies of a hot packet (ffi.copy) into the same
--            4096-packet buffer, i.e. the bytes poll_into must write.
--   into     poll_into of the flushed burst (expanding the workers' compact
--            packets into that buffer).
--   view     poll_view of the flushed burst (the workers wrote the packets
--            in full): per call, and per burst.
--
-- The world is shaped like the harness's scale (12,000 players in parties
-- of four, 100,000 sites, aoi 64), every burst dig FOUND. CPU is the thread
-- CPU clock; each figure is the median of ROUNDS bursts after WARM.
--
--   LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='build/?.so;;' \
--     luajit bench/lua_floor.lua [--json]

local ffi = require("ffi")
local T = require("treasure.native")
local json_out = arg[1] == "--json"

-- the harness's clocks (bench/harness/measure.lua), next to this file
local here = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
package.path = here .. "/?.lua;" .. package.path
local cpu_now = require("harness.measure").cpu_now -- CLOCK_THREAD_CPUTIME_ID

ffi.cdef [[
typedef struct { uint32_t player; int32_t x, y, z; uint64_t t_us; } lf_dig_rec;
]]

local P, SITES, MAXP, ROUNDS, WARM = 12000, 100000, 4096, 15, 3
local EVICT_BYTES = 16 * 1024 * 1024 -- more than this machine's L2 (2 MiB per core)

-- Player p stands at (x, 30, z) with LAYERS sites beside it, at x + 1 ..
-- x + LAYERS (all within reach); burst k digs layer k % LAYERS, so a burst's
-- site probes miss the cache as the harness's do (the other layers' probes
-- came in between), instead of hitting the previous burst's slots.
local LAYERS = 8
local function world(viewed, max_pending)
  local r = T.new({ aoi_radius = 64, reach = 8, max_pending_packets = max_pending })
  if viewed then r:poll_view(0) end -- the workers write in full from the first dig
  r:add_loot_table(1, { { item = 1, weight = 3, min = 1, max = 4, rarity = 1 },
                        { item = 2, weight = 1, min = 1, max = 1, rarity = 3 } })
  local batches = {}
  local recs = ffi.new("lf_dig_rec[?]", P)
  for p = 1, P do
    local x, z = (p % 100) * 40, math.floor(p / 100) * 34
    r:join(p, x, 30, z, math.floor((p - 1) / 4) + 1)
    for l = 1, LAYERS do r:add_site(l * P + p, x + l, 30, z, 1, 1000000) end
  end
  -- the rest of the 100,000 sites, one per block on the plane below
  for id = 1, SITES - LAYERS * P do r:add_site((LAYERS + 1) * P + id, id % 4096, 10, math.floor(id / 4096), 1, 1) end
  for l = 1, LAYERS do
    for p = 1, P do
      local x, z = (p % 100) * 40, math.floor(p / 100) * 34
      recs[p - 1].player, recs[p - 1].x, recs[p - 1].y, recs[p - 1].z = p, x + l, 30, z
    end
    batches[l] = ffi.string(recs, P * 24)
  end
  return r, batches, recs
end

local function median(t)
  table.sort(t)
  return t[math.floor((#t + 1) / 2)]
end

local res = {}

-- check, dig, into, copy
do
  local r, batches = world(false, 1)
  -- A FOUND dig by player 1 (its neighbours within the AOI see it too):
  -- once flushed its packets are pending, so the next batch is busy.
  local function leave_pending()
    assert(r:dig(1, 41, 30, 0, 0))
    r:flush()
  end
  local function refused_busy(batch)
    local first, why = r:dig_batch(batch)
    assert(first == nil and why == "busy", "the check batch must be refused as busy")
  end
  local buf = ffi.new("uint8_t[?]", MAXP * 128)
  local hot = ffi.new("uint8_t[128]")
  local check, dig, into, copy, pkts = {}, {}, {}, {}, 0
  local check_cold, dig_cold = {}, {}
  local evict = ffi.new("uint8_t[?]", EVICT_BYTES)
  for round = 1, ROUNDS do
    -- cold: the same two calls after EVICT_BYTES of other writes, as a game
    -- loop's tick between bursts leaves the caches
    leave_pending()
    ffi.fill(evict, EVICT_BYTES, round)
    local k0 = cpu_now()
    refused_busy(batches[(round + 3) % LAYERS + 1])
    local k1 = cpu_now()
    repeat until r:poll_into(buf, MAXP) == 0
    ffi.fill(evict, EVICT_BYTES, round)
    local k2 = cpu_now()
    assert(r:dig_batch(batches[(round + 3) % LAYERS + 1]))
    local k3 = cpu_now()
    r:flush()
    repeat until r:poll_into(buf, MAXP) == 0
    if round > WARM then check_cold[#check_cold + 1], dig_cold[#dig_cold + 1] = k1 - k0, k3 - k2 end
    leave_pending()
    local c0 = cpu_now()
    refused_busy(batches[round % LAYERS + 1])
    local c1 = cpu_now()
    repeat until r:poll_into(buf, MAXP) == 0
    local c1b = cpu_now()
    assert(r:dig_batch(batches[round % LAYERS + 1]))
    local c2 = cpu_now()
    r:flush()
    local n, total = 0, 0
    local c3 = cpu_now()
    repeat
      n = r:poll_into(buf, MAXP)
      total = total + n
    until n == 0
    local c4 = cpu_now()
    -- the same bytes, written as copies of one hot packet
    local left = total
    while left > 0 do
      local k = left < MAXP and left or MAXP
      for i = 0, k - 1 do ffi.copy(buf + i * 128, hot, 128) end
      left = left - k
    end
    local c5 = cpu_now()
    if round > WARM then
      check[#check + 1], dig[#dig + 1] = c1 - c0, c2 - c1b
      into[#into + 1], copy[#copy + 1] = c4 - c3, c5 - c4
      pkts = total
    end
  end
  res.packets = pkts
  res.check_ms, res.dig_batch_ms = median(check) * 1e3, median(dig) * 1e3
  res.accept_ms = res.dig_batch_ms - res.check_ms
  res.check_cold_ms, res.dig_batch_cold_ms = median(check_cold) * 1e3, median(dig_cold) * 1e3
  res.accept_cold_ms = res.dig_batch_cold_ms - res.check_cold_ms
  res.poll_into_ms, res.copy_ms = median(into) * 1e3, median(copy) * 1e3
  r:close()
end

-- view
do
  local r, batches = world(true, 100000000)
  local per_burst, per_call, calls = {}, {}, 0
  for round = 1, ROUNDS do
    assert(r:dig_batch(batches[round % LAYERS + 1]))
    r:flush()
    local k, c0 = 0, cpu_now()
    repeat
      local n = r:poll_view(MAXP)
      k = k + 1
    until n == 0
    local c1 = cpu_now()
    if round > WARM then
      per_burst[#per_burst + 1], per_call[#per_call + 1], calls = c1 - c0, (c1 - c0) / k, k
    end
  end
  res.view_ms, res.view_call_us, res.view_calls = median(per_burst) * 1e3, median(per_call) * 1e6, calls
  r:close()
end

res.floor_into_ms = res.check_ms + res.copy_ms
res.floor_view_ms = res.check_ms + res.view_ms
if json_out then
  local keys = {}
  for k in pairs(res) do keys[#keys + 1] = k end
  table.sort(keys)
  local parts = {}
  for _, k in ipairs(keys) do parts[#parts + 1] = string.format('"%s": %.4g', k, res[k]) end
  print("{" .. table.concat(parts, ", ") .. "}")
else
  print(string.format([[
Lua thread, one 12,000-dig burst (%d packets), nothing else running; median of %d bursts:
  dig_batch          %.3f ms = checks %.3f ms (batch refused as busy) + accepting %.3f ms
  dig_batch, cold    %.3f ms = checks %.3f ms + accepting %.3f ms (after 16 MiB of other writes)
  poll_into          %.3f ms (%.2f ns/packet); the same bytes as 128-byte copies: %.3f ms (%.2f ns/packet)
  poll_view          %.3f ms in %d calls (%.2f us/call)
  floor, poll_into:  checks + copies = %.3f ms
  floor, poll_view:  checks + view calls = %.3f ms]],
    res.packets, ROUNDS - WARM, res.dig_batch_ms, res.check_ms, res.accept_ms,
    res.dig_batch_cold_ms, res.check_cold_ms, res.accept_cold_ms,
    res.poll_into_ms, res.poll_into_ms / res.packets * 1e6, res.copy_ms, res.copy_ms / res.packets * 1e6,
    res.view_ms, res.view_calls, res.view_call_us, res.floor_into_ms, res.floor_view_ms))
end
