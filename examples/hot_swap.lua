-- examples/hot_swap.lua: a game loop that starts on the pure-Lua backend and
-- moves to the native one while running, without its clients noticing.
--
--   LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='build/?.so;;' \
--     luajit examples/hot_swap.lua [--players N] [--sites N] [--seconds S]
--       [--digs-per-tick N] [--burst N] [--from lua] [--to native] [--fast]
--
-- The load is the harness's in miniature (bench/harness.lua has the full
-- one): players in parties of four standing around dig sites, some of them
-- stepping each tick (one move_batch), --digs-per-tick digs every tick plus
-- a burst of --burst digs every second (one dig_batch; a busy refusal is
-- retried next tick), and a send loop that poll_into()s one preallocated
-- buffer. Ticks are 20 Hz in real time (--fast: back to back).
--
-- Halfway, right after a dig_batch, while that batch's packets are still
-- undelivered, it calls treasure.swap(r, "native"): the resolver's state
-- and its undelivered packets move to a native resolver and the old one is
-- closed. The send loop just keeps polling the new one.
--
-- Printed: the swap's own cost and how many packets it carried over, and the
-- latency of every dig (from just before the dig_batch that carried it to
-- the poll_into call that returned its last packet) as p50/p99/max before
-- the swap, for the digs carried across it (their latency includes the
-- swap), and after it. Checked: the stream's seq order is unbroken across the
-- swap (seqs start at 1, never go back, have no gaps; recipients ascend
-- within a seq) and the last seq equals stats().digs. A failed check exits 1.
local ffi = require("ffi")
local bit = require("bit")
local treasure = require("treasure")

ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } hot_swap_timespec;
int hot_swap_clock_gettime(int clk, hot_swap_timespec *ts) __asm__("clock_gettime");
int hot_swap_nanosleep(const hot_swap_timespec *req, hot_swap_timespec *rem) __asm__("nanosleep");
typedef struct { uint32_t player; int32_t x, y, z; } hot_swap_move_rec;
typedef struct { uint32_t player; int32_t x, y, z; uint64_t t_us; } hot_swap_dig_rec;
]]

local O = { players = 3000, sites = 20000, seconds = 6, digs = 20, burst = 300,
  from = "lua", to = "native", fast = false, seed = 1 }
do
  local i = 1
  while i <= #arg do
    local a = arg[i]
    local function num() i = i + 1; return assert(tonumber(arg[i]), a .. ": number expected") end
    if a == "--players" then O.players = num()
    elseif a == "--sites" then O.sites = num()
    elseif a == "--seconds" then O.seconds = num()
    elseif a == "--digs-per-tick" then O.digs = num()
    elseif a == "--burst" then O.burst = num()
    elseif a == "--seed" then O.seed = num()
    elseif a == "--from" then i = i + 1; O.from = arg[i]
    elseif a == "--to" then i = i + 1; O.to = arg[i]
    elseif a == "--fast" then O.fast = true
    else
      io.stderr:write("usage: luajit examples/hot_swap.lua [--players N] [--sites N] [--seconds S]\n" ..
        "  [--digs-per-tick N] [--burst N] [--seed S] [--from lua|native] [--to lua|native] [--fast]\n")
      os.exit(2)
    end
    i = i + 1
  end
end

local ts = ffi.new("hot_swap_timespec")
local function now()
  ffi.C.hot_swap_clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end
local function sleep(sec)
  if sec <= 0 then return end
  local req = ffi.new("hot_swap_timespec")
  req.tv_sec = math.floor(sec)
  req.tv_nsec = (sec - math.floor(sec)) * 1e9
  ffi.C.hot_swap_nanosleep(req, nil)
end

-- xorshift32: the example's own generator, so both runs see one world
local rs = 2463534242 + O.seed
local function rnd(n)
  rs = bit.bxor(rs, bit.lshift(rs, 13)); rs = bit.bxor(rs, bit.rshift(rs, 17)); rs = bit.bxor(rs, bit.lshift(rs, 5))
  return (rs % 4294967296) % n
end

---------------------------------------------------------------- the world
local from = require((O.from == "lua" or O.from == "legacy") and "treasure.legacy" or "treasure.native")
local r = from.new({ seed = O.seed, aoi_radius = 48, reach = 6 })
r:add_loot_table(1, { { item = 1, weight = 10, min = 1, max = 3, rarity = 0 },
                      { item = 2, weight = 1, min = 1, max = 1, rarity = 3 } })
local W = math.max(256, math.floor(math.sqrt(O.sites) * 16))
local site_x, site_z = {}, {}
local placed = {}
for i = 1, O.sites do
  local x, z
  repeat x, z = rnd(W) - math.floor(W / 2), rnd(W) - math.floor(W / 2) until not placed[x * 65536 + z]
  placed[x * 65536 + z] = true
  r:add_site(i, x, 0, z, 1, 1000)
  site_x[i], site_z[i] = x, z
end
local px, pz, home = {}, {}, {}
for p = 1, O.players do
  local leader = p - (p - 1) % 4        -- parties of four around one site
  local s = p == leader and 1 + rnd(O.sites) or home[leader]
  home[p] = s
  px[p], pz[p] = site_x[s] + rnd(5) - 2, site_z[s] + rnd(5) - 2
  r:join(p, px[p], 0, pz[p], math.floor((p - 1) / 4) + 1)
end

---------------------------------------------------------------- stream checks
local MAXP = 4096
local buf = ffi.new("uint8_t[?]", MAXP * 128)
local u32p = ffi.typeof("const uint32_t *")
local last_seq, last_rcpt, packets, errors = 0, 0, 0, 0
local submit_time = {}       -- seq -> time of its dig_batch
local last_poll = {}         -- seq -> time of the poll that returned its latest packet
local lat = { {}, {}, {} }   -- latencies (s) per phase
local phase_of = {}          -- seq -> 1 before the swap, 2 carried across it, 3 after
local function fail(msg)
  errors = errors + 1
  if errors <= 10 then io.stderr:write("hot_swap: STREAM ERROR: " .. msg .. "\n") end
end

local function finish(seq)
  local t = submit_time[seq]
  if t then
    local l = lat[phase_of[seq]]
    l[#l + 1] = last_poll[seq] - t
    submit_time[seq], last_poll[seq], phase_of[seq] = nil, nil, nil
  end
end

--- Polls until nothing is left; returns packets read.
local function poll_all(res)
  local got_total = 0
  while true do
    local n = res:poll_into(buf, MAXP)
    if n == 0 then return got_total end
    local t = now()
    for i = 0, n - 1 do
      local w = ffi.cast(u32p, buf + i * 128)
      local seq = w[2] + w[3] * 4294967296
      local rcpt = w[8]
      if seq == last_seq then
        if rcpt <= last_rcpt then fail(("seq %d: recipient %d after %d"):format(seq, rcpt, last_rcpt)) end
      else
        if seq ~= last_seq + 1 then fail(("seq %d after %d (gap or reorder)"):format(seq, last_seq)) end
        if last_seq > 0 then finish(last_seq) end
        last_seq = seq
      end
      last_rcpt = rcpt
      last_poll[seq] = t
    end
    packets = packets + n
    got_total = got_total + n
  end
end

---------------------------------------------------------------- the loop
local TICK = 0.05
local ticks = math.floor(O.seconds * 20)
local swap_tick = math.floor(ticks / 2)
local moves = ffi.new("hot_swap_move_rec[?]", O.players)
local digs = ffi.new("hot_swap_dig_rec[?]", O.digs + O.burst)
local retry, retry_n, retry_t = nil, 0, 0
local last_accepted = 0
local busy, swap_info = 0, nil
local phase = 1
local t_start = now()

for tick = 1, ticks do
  local tick_start = now()
  -- movement: ~5 % of the players step one block, mostly around home
  local nm = 0
  for _ = 1, math.floor(O.players / 20) do
    local p = 1 + rnd(O.players)
    local s = home[p]
    px[p] = math.max(site_x[s] - 3, math.min(site_x[s] + 3, px[p] + rnd(3) - 1))
    pz[p] = math.max(site_z[s] - 3, math.min(site_z[s] + 3, pz[p] + rnd(3) - 1))
    moves[nm].player, moves[nm].x, moves[nm].y, moves[nm].z = p, px[p], 0, pz[p]
    nm = nm + 1
  end
  r:move_batch(ffi.string(moves, nm * 16))
  -- digs (a busy batch is retried as is next tick, keeping its first time)
  local records, n, t0
  if retry then
    records, n, t0 = retry, retry_n, retry_t
  else
    n = O.digs + ((tick % 20 == 0) and O.burst or 0)
    for k = 0, n - 1 do
      local p = 1 + rnd(O.players)
      digs[k].player, digs[k].x, digs[k].y, digs[k].z = p, site_x[home[p]], 0, site_z[home[p]]
      digs[k].t_us = math.floor((tick_start - t_start) * 1e6)
    end
    records, t0 = ffi.string(digs, n * 24), now()
  end
  local first, count = r:dig_batch(records)
  if first then
    local ph = tick == swap_tick and 2 or phase
    for seq = first, first + count - 1 do submit_time[seq], phase_of[seq] = t0, ph end
    last_accepted = first + count - 1
    retry = nil
  else
    busy = busy + 1
    retry, retry_n, retry_t = records, n, t0
  end
  -- the live swap, with this tick's packets still undelivered
  if tick == swap_tick then
    local pending = r:stats().pending_packets
    local ts0 = now()
    r = treasure.swap(r, O.to)
    swap_info = { ms = (now() - ts0) * 1000, pending = pending, tick = tick, next_seq = last_accepted + 1 }
    phase = 3
  end
  -- send loop: poll until every accepted dig is delivered or the tick ends
  repeat
    poll_all(r)
    if last_seq >= last_accepted then break end
    sleep(0.0002)
    if now() - tick_start > 5 then fail("digs undelivered 5 s after their tick"); break end
  until not O.fast and now() - tick_start > TICK * 0.9
  if not O.fast then sleep(TICK - (now() - tick_start)) end
end
r:flush()
poll_all(r)
if last_seq > 0 then finish(last_seq) end
local st = r:stats()
r:close()

---------------------------------------------------------------- report
if last_seq ~= st.digs then fail(("last seq %d but stats().digs is %d"):format(last_seq, st.digs)) end
if st.packets ~= packets then fail(("polled %d packets but stats().packets is %d"):format(packets, st.packets)) end
if not swap_info then fail("no swap happened") end

local function q(list, p)
  if #list == 0 then return 0 end
  table.sort(list)
  return list[math.max(1, math.ceil(p * #list))] * 1000
end
local names = { O.from, O.from .. ">" .. O.to, O.to }
local rows = { "before", "across", "after" }
print(("hot_swap: %d players, %d sites, %d ticks at %s, swap %s -> %s at tick %d")
  :format(O.players, O.sites, ticks, O.fast and "full speed" or "20 Hz", O.from, O.to, swap_tick))
if swap_info then
  print(("swap: %.2f ms, %d undelivered packets carried over, new digs continue at seq %d")
    :format(swap_info.ms, swap_info.pending, swap_info.next_seq))
end
print("phase    backend       digs     p50_ms   p99_ms   max_ms   (dig to last packet)")
for i = 1, 3 do
  local l = lat[i]
  print(("%-8s %-13s %-8d %-8.3f %-8.3f %-8.3f"):format(rows[i], names[i], #l, q(l, 0.5), q(l, 0.99), q(l, 1)))
end
print("(across: the digs of the swap tick, accepted by the old resolver and delivered by the new one)")
print(("stream: %d packets, seqs 1..%d, %d busy retries: %s"):format(packets, last_seq, busy,
  errors == 0 and "order unbroken across the swap" or (errors .. " ERRORS")))
os.exit(errors == 0 and 0 or 1)
