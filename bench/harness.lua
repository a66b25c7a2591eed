-- examples/harness.lua: a game-server loop driving the treasure resolver.
--
--   LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='build/?.so;;' \
--     luajit examples/harness.lua [flags]          (--help lists them)
--
-- The world (built from --seed with the harness's own xoshiro128** PRNG, so
-- every backend and every run sees the same one): W x W blocks of 32 x 32
-- plateaus 30..34 high; --sites dig sites on distinct columns, half of them
-- in 256 "treasure fields" of radius 160, 0..2 blocks below the surface; 16
-- loot tables; --players players in parties of four, each starting next to
-- a site (the party's members near the leader's).
--
-- Every tick (20 Hz in real time, back to back with --fast) does what a
-- server does:
--   1. movement: players at a site stay 5..30 s, shuffling to another spot
--      next to it now and then, then walk (1 block per tick) to a nearby
--      site; one move_batch carries the players whose block changed;
--   2. digs: --digs-per-tick random players dig their site (REJECTED if still
--      walking), and every --burst-every ticks --burst players dig theirs at
--      once; one dig_batch (records built in an FFI array, one ffi.string);
--      a busy refusal is counted and the same records are retried next tick;
--   3. the send loop: poll_into one preallocated buffer until the next tick
--      is due (when nothing is there, blocking in r:wait until a packet is
--      ready or the tick is due; --poll-us with --no-wait), reading each
--      packet's seq (two u32 reads) and recipient through FFI casts and
--      checking the stream order.
--
-- Latency of a dig = CLOCK_MONOTONIC from just before the dig_batch that
-- carried it (its first attempt, if refused as busy) to the poll_into call
-- that returned its last packet. Legacy resolves inside dig_batch, so its
-- latency includes that; native returns at once and resolves on worker
-- threads: same clock, same two points for both. Percentiles come from a
-- histogram of every dig (1 us buckets to 1 ms, then 0.4 %), max is exact.
--
-- Checks on every packet: seq never decreases and has no gaps, recipients
-- strictly ascend within a seq, the digger gets one, all of a dig's packets
-- share its kind, REJECTED exactly when the harness's model says out of
-- reach; at the end the harness's counts must equal stats(). 1 packet in
-- --sample is copied aside and decoded with treasure.packet (CRC) after the
-- run; --verify decodes every packet inline and checks every FOUND dig's
-- recipient count against a brute-force count (slow: latencies then mean
-- little). Any failed check makes the exit status 1.
--
-- The per-packet and per-dig work allocates nothing (FFI arrays, no tables);
-- the only Lua garbage per tick is the two record strings the API takes, so
-- the Lua heap stays flat (see lua_heap_kb_* in the summary).

local ffi = require("ffi")
local bit = require("bit")
local band, bxor, lshift, rshift, rol, tobit = bit.band, bit.bxor, bit.lshift, bit.rshift, bit.rol, bit.tobit
local floor, max, min, abs = math.floor, math.max, math.min, math.abs

ffi.cdef[[
typedef struct { uint32_t sec_lo, sec_hi, nsec_lo, nsec_hi; } harness_timespec;
int harness_clock_gettime(int clk, harness_timespec *ts) __asm__("clock_gettime");
int harness_nanosleep(const harness_timespec *req, harness_timespec *rem) __asm__("nanosleep");
typedef struct { uint32_t player; int32_t x, y, z; } harness_move_rec;
typedef struct { uint32_t player; int32_t x, y, z; uint64_t t_us; } harness_dig_rec;
]]
assert(ffi.sizeof("harness_move_rec") == 16 and ffi.sizeof("harness_dig_rec") == 24)

---------------------------------------------------------------------------
-- flags
---------------------------------------------------------------------------
local USAGE = [[
usage: luajit examples/harness.lua [flags]
  --backend lua|native   backend (default: require("treasure"), honours TREASURE_BACKEND)
  --players N            players online (12000)
  --sites N              dig sites (100000)
  --world W              world is W x W blocks (64..65536), y in [0,64) (4096)
  --aoi R                aoi_radius (64)
  --reach R              reach (8)
  --seed S               world / loot seed (1)
  --workers N            resolver workers, 0 = one per core (0)
  --max-pending N        max_pending_packets (backend default)
  --seconds S            simulated seconds, 20 ticks each (10)
  --digs-per-tick N      random digs every tick (20)
  --burst N              players digging at once on a burst tick (0 = no bursts)
  --burst-every K        every K-th tick is a burst tick (20 = once a second)
  --charges N            charges per site (20000)
  --hotspots N           treasure fields sites cluster in (256)
  --hotspot-share F      share of sites in treasure fields (0.5)
  --fast                 run ticks back to back instead of at 20 Hz
  --json                 print the summary as one JSON object on the last line
  --verify               decode every packet with treasure.packet and check every
                         dig's kind and recipient count against the harness's model
  --sample N             decode 1 packet in N (1000; 0 = none) outside the timing
  --no-wait              when poll_into returns nothing, sleep --poll-us instead of
                         blocking in r:wait until a packet is ready or the tick is due
  --poll-us N            with --no-wait: sleep N us when poll_into returns nothing
                         (200; 0 = spin)
  --poll-max N           packets per poll_into call: the send buffer (4096, 512 kB;
                         smaller buffers cost more per packet in calls and loop
                         entries than they gain in cache: 256 measured ~10 ns worse)
  --digest               hash the whole packet stream (every byte but t_us and crc,
                         which carry the wall clock) to compare backends; use with
                         --fast so that timing cannot change what is dug
  --latency-out FILE     write each dig's latency (ms), one per line
  --warmup S             leave the digs submitted in the first S simulated seconds
                         (and their bursts) out of the latency figures: LuaJIT
                         compiles the send loop's traces and the backend's buffers
                         grow then (0: count everything)
  --heap-checkpoint S    full GC + Lua heap reading after simulated second S (warm
                         state, e.g. grown queues); the end is compared to it
  --label NAME           scenario name copied into the JSON (for bench/run.sh)
  --quiet                no progress lines
]]

local opt = {
  backend = nil, players = 12000, sites = 100000, world = 4096, aoi = 64, reach = 8,
  seed = 1, workers = 0, max_pending = nil, seconds = 10, digs_per_tick = 20,
  burst = 0, burst_every = 20, charges = 20000, hotspots = 256, hotspot_share = 0.5,
  fast = false, json = false, verify = false, no_wait = false, digest = false, sample = 1000, latency_out = nil, quiet = false,
  heap_checkpoint = 0, warmup = 0, poll_us = 200, poll_max = 4096,
}
local numeric = {
  players = true, sites = true, world = true, aoi = true, reach = true, seed = true,
  workers = true, max_pending = true, seconds = true, digs_per_tick = true, burst = true,
  burst_every = true, charges = true, hotspots = true, hotspot_share = true, sample = true,
  heap_checkpoint = true, warmup = true, poll_us = true, poll_max = true,
}
local flags = { fast = true, json = true, verify = true, quiet = true, digest = true, no_wait = true }

local function die(msg, code)
  io.stderr:write("harness: ", msg, "\n")
  os.exit(code or 2)
end

do
  local i = 1
  while i <= #arg do
    local a = arg[i]
    if a == "-h" or a == "--help" then io.stdout:write(USAGE) os.exit(0) end
    local name, val = a:match("^%-%-([%w%-]+)=(.*)$")
    if not name then name = a:match("^%-%-([%w%-]+)$") end
    if not name then die("unexpected argument '" .. a .. "'\n" .. USAGE) end
    local key = name:gsub("%-", "_")
    if flags[key] then
      if val then die("--" .. name .. " takes no value") end
      opt[key] = true
    elseif numeric[key] or key == "backend" or key == "latency_out" or key == "label" then
      if not val then
        i = i + 1
        val = arg[i]
        if val == nil then die("--" .. name .. " needs a value") end
      end
      if numeric[key] then
        local v = tonumber(val)
        if not v or v ~= v or v < 0 or (key ~= "hotspot_share" and v ~= floor(v)) then
          die("--" .. name .. " must be a non-negative " ..
              (key == "hotspot_share" and "number" or "integer") .. ", got " .. val)
        end
        opt[key] = v
      else
        opt[key] = val
      end
    else
      die("unknown flag --" .. name .. "\n" .. USAGE)
    end
    i = i + 1
  end
end
if opt.players < 1 then die("--players must be >= 1") end
if opt.sites < 1 then die("--sites must be >= 1") end
if opt.world < 64 or opt.world > 65536 then die("--world must be in [64, 65536]") end
if opt.sites > opt.world * opt.world / 4 then die("--sites too many for the world") end
if opt.burst_every < 1 then die("--burst-every must be >= 1") end
if opt.hotspot_share > 1 then die("--hotspot-share must be in [0, 1]") end
if opt.seconds <= 0 then die("--seconds must be > 0") end
if opt.warmup >= opt.seconds then die("--warmup must be less than --seconds") end
if opt.poll_max < 1 or opt.poll_max > 65536 then die("--poll-max must be in [1, 65536]") end

---------------------------------------------------------------------------
-- backend
---------------------------------------------------------------------------
local T
if opt.backend == nil then
  local ok, m = pcall(require, "treasure")
  if not ok then die("require('treasure') failed: " .. tostring(m)) end
  T = m
elseif opt.backend == "lua" or opt.backend == "legacy" then
  local ok, m = pcall(require, "treasure.legacy")
  if not ok then die("--backend lua: cannot load treasure.legacy: " .. tostring(m)) end
  T = m
elseif opt.backend == "native" then
  local ok, m = pcall(require, "treasure.native")
  if not ok then
    die("--backend native: cannot load treasure.native (build it with `make build`; " ..
        "LUA_CPATH must reach build/treasure/native.so): " .. tostring(m))
  end
  T = m
else
  die("--backend must be legacy (or lua) or native, got '" .. opt.backend .. "'")
end
local backend_name = T.backend or opt.backend or "?"

-- the packet module: treasure.packet if it exists on its own, else T.packet
local packet
do
  local ok, m = pcall(require, "treasure.packet")
  if ok and type(m) == "table" then packet = m else packet = T.packet end
  if (opt.verify or opt.sample > 0) and type(packet) ~= "table" then
    io.stderr:write("harness: no treasure.packet module: decoding disabled\n")
    opt.sample = 0
    if opt.verify then die("--verify needs treasure.packet") end
  end
end

---------------------------------------------------------------------------
-- clock
---------------------------------------------------------------------------
local C = ffi.C
local ts_now = ffi.new("harness_timespec")
local ts_sleep = ffi.new("harness_timespec")
local CLOCK_MONOTONIC = 1
local function now()   -- seconds, CLOCK_MONOTONIC
  C.harness_clock_gettime(CLOCK_MONOTONIC, ts_now)
  return (ts_now.sec_hi * 4294967296 + ts_now.sec_lo) + ts_now.nsec_lo * 1e-9
end
local ts_cpu = ffi.new("harness_timespec")
local function cpu_now()   -- seconds of this thread's CPU time (immune to preemption)
  C.harness_clock_gettime(3, ts_cpu)   -- CLOCK_THREAD_CPUTIME_ID
  return (ts_cpu.sec_hi * 4294967296 + ts_cpu.sec_lo) + ts_cpu.nsec_lo * 1e-9
end
local function sleep(sec)
  if sec <= 0 then return end
  local s = floor(sec)
  ts_sleep.sec_lo = s
  ts_sleep.sec_hi = 0
  ts_sleep.nsec_lo = floor((sec - s) * 1e9)
  ts_sleep.nsec_hi = 0
  C.harness_nanosleep(ts_sleep, nil)
end

---------------------------------------------------------------------------
-- PRNG: xoshiro128** on 32-bit bit ops, seeded by splitmix64(--seed)
---------------------------------------------------------------------------
local s0, s1, s2, s3
do
  local z = ffi.new("uint64_t", opt.seed)
  local function sm()
    z = z + 0x9E3779B97F4A7C15ULL
    local x = z
    x = bxor(x, rshift(x, 30)) * 0xBF58476D1CE4E5B9ULL
    x = bxor(x, rshift(x, 27)) * 0x94D049BB133111EBULL
    x = bxor(x, rshift(x, 31))
    return tobit(tonumber(band(x, 0xFFFFFFFFULL)))
  end
  s0, s1, s2, s3 = sm(), sm(), sm(), sm()
  if s0 == 0 and s1 == 0 and s2 == 0 and s3 == 0 then s0 = 1 end
end
local function rnd()  -- uniform integer in [0, 2^32) as a number
  local r = tobit(rol(tobit(s1 * 5), 7) * 9)
  local t = lshift(s1, 9)
  s2 = bxor(s2, s0)
  s3 = bxor(s3, s1)
  s1 = bxor(s1, s2)
  s0 = bxor(s0, s3)
  s2 = bxor(s2, t)
  s3 = rol(s3, 11)
  return r % 4294967296
end
local function rndint(n) return rnd() % n end               -- [0, n)
local function rnd01() return rnd() * (1 / 4294967296) end  -- [0, 1)

---------------------------------------------------------------------------
-- world
---------------------------------------------------------------------------
local P, S, W = opt.players, opt.sites, opt.world
local TICKS = floor(opt.seconds * 20 + 0.5)
local TICK = 0.05

-- terrain: 32 x 32 plateaus of height 30..34; players stand on top
local PL = 32
local NPL = floor((W + PL - 1) / PL)
local plateau = ffi.new("uint8_t[?]", NPL * NPL)
for i = 0, NPL * NPL - 1 do plateau[i] = 30 + rndint(5) end
local function height(x, z) return plateau[rshift(x, 5) * NPL + rshift(z, 5)] end

-- sites: distinct (x, z) columns, a share of them in treasure fields
local sx = ffi.new("int32_t[?]", S)
local sy = ffi.new("int32_t[?]", S)
local sz = ffi.new("int32_t[?]", S)
local CELL = 64
local NC = floor((W + CELL - 1) / CELL)
local cell_start = ffi.new("int32_t[?]", NC * NC + 1)
local cell_sites = ffi.new("int32_t[?]", S)
local NLOOT = 16
do
  local HS = max(1, opt.hotspots)
  local hx, hz = {}, {}
  for h = 1, HS do hx[h] = rndint(W) hz[h] = rndint(W) end
  local HR = 160
  -- taken columns: an open-addressing FFI set (a Lua table of 100,000 keys
  -- would cost more peak RSS than the whole set)
  local HSZ = 1
  while HSZ < 2 * S do HSZ = HSZ * 2 end
  local used = ffi.new("double[?]", HSZ)        -- 0 = empty, else x * W + z + 1
  local function take(key)                      -- true if key was not taken yet
    local a, b = key % 65536, floor(key / 65536)
    local h = tobit(a * 40503 + (b % 65536) * 30011 + floor(b / 65536) * 7919)
    h = bxor(h, rshift(h, 13), lshift(h, 7))
    h = band(h, HSZ - 1)
    while true do
      local v = used[h]
      if v == 0 then used[h] = key return true end
      if v == key then return false end
      h = band(h + 1, HSZ - 1)
    end
  end
  local i = 0
  while i < S do
    local x, z
    if opt.hotspots > 0 and rnd01() < opt.hotspot_share then
      local h = 1 + rndint(HS)
      local ox, oz
      repeat ox = rndint(2 * HR + 1) - HR oz = rndint(2 * HR + 1) - HR until ox * ox + oz * oz <= HR * HR
      x, z = hx[h] + ox, hz[h] + oz
    else
      x, z = rndint(W), rndint(W)
    end
    -- keep a one-block margin so every site has stand spots inside the world
    if x >= 1 and x < W - 1 and z >= 1 and z < W - 1 then
      if take(x * W + z + 1) then
        sx[i], sz[i] = x, z
        sy[i] = height(x, z) - rndint(3)
        i = i + 1
      end
    end
  end
  used = nil
  -- cell index (CSR)
  local counts = ffi.new("int32_t[?]", NC * NC)
  for k = 0, S - 1 do
    local c = floor(sx[k] / CELL) * NC + floor(sz[k] / CELL)
    counts[c] = counts[c] + 1
  end
  cell_start[0] = 0
  for c = 0, NC * NC - 1 do cell_start[c + 1] = cell_start[c] + counts[c] counts[c] = 0 end
  for k = 0, S - 1 do
    local c = floor(sx[k] / CELL) * NC + floor(sz[k] / CELL)
    cell_sites[cell_start[c] + counts[c]] = k
    counts[c] = counts[c] + 1
  end
end

-- players
local px = ffi.new("int32_t[?]", P)
local py = ffi.new("int32_t[?]", P)
local pz = ffi.new("int32_t[?]", P)
local ptarget = ffi.new("int32_t[?]", P)   -- site index
local pgx = ffi.new("int32_t[?]", P)       -- stand spot (x, z) next to the target
local pgz = ffi.new("int32_t[?]", P)
local pstate = ffi.new("uint8_t[?]", P)    -- 0 walking, 1 at the site
local pdwell = ffi.new("int32_t[?]", P)    -- ticks left at the site
local pparty = ffi.new("uint32_t[?]", P)

-- a stand spot next to site k: one of the 8 neighbouring columns
local function pick_spot(i, k)
  local d = rndint(8)
  if d >= 4 then d = d + 1 end            -- skip (0, 0)
  pgx[i] = sx[k] + (d % 3) - 1
  pgz[i] = sz[k] + floor(d / 3) - 1
end

-- a new target near (x, z): the nearest of 4 random sites of its cell
local function pick_target(i, x, z, not_k)
  local c = floor(x / CELL) * NC + floor(z / CELL)
  local a, b = cell_start[c], cell_start[c + 1]
  local best, bestd = -1, 1e300
  if b > a then
    for _ = 1, 4 do
      local k = cell_sites[a + rndint(b - a)]
      if k ~= not_k then
        local dx, dz = sx[k] - x, sz[k] - z
        local d = dx * dx + dz * dz
        if d < bestd then best, bestd = k, d end
      end
    end
  end
  if best < 0 then best = rndint(S) end
  ptarget[i] = best
  pick_spot(i, best)
end

local function dwell_ticks() return 100 + rndint(500) end   -- 5 .. 30 s

for i = 0, P - 1 do
  pparty[i] = floor(i / 4) + 1
  local k
  if i % 4 == 0 then
    k = rndint(S)                   -- the party leader picks any site
    ptarget[i] = k
    pick_spot(i, k)
  else                              -- the others pick one near the leader
    local l = i - i % 4
    pick_target(i, sx[ptarget[l]], sz[ptarget[l]], -1)
  end
  px[i], pz[i] = pgx[i], pgz[i]
  py[i] = height(px[i], pz[i])
  pstate[i] = 1
  pdwell[i] = rndint(600)
end

---------------------------------------------------------------------------
-- resolver
---------------------------------------------------------------------------
local new_opts = { seed = opt.seed, aoi_radius = opt.aoi, reach = opt.reach, workers = opt.workers }
if opt.max_pending then new_opts.max_pending_packets = opt.max_pending end
local t_setup0 = now()
local r = T.new(new_opts)
for id = 1, NLOOT do
  local entries = {}
  for e = 1, 3 + rndint(6) do
    local lo = rndint(4)
    entries[e] = { item = 1000 * id + e, weight = 1 + rndint(100), min = lo, max = lo + rndint(8), rarity = rndint(5) }
  end
  r:add_loot_table(id, entries)
end
for k = 0, S - 1 do
  r:add_site(k + 1, sx[k], sy[k], sz[k], 1 + k % NLOOT, opt.charges)
end
for i = 0, P - 1 do
  r:join(i + 1, px[i], py[i], pz[i], pparty[i])
end
local setup_s = now() - t_setup0

---------------------------------------------------------------------------
-- measurement state (all preallocated)
---------------------------------------------------------------------------
local RING = 131072                                  -- in-flight digs tracked
local RMASK = RING - 1
local ring_t = ffi.new("double[?]", RING)            -- submit time by seq
local ring_digger = ffi.new("uint32_t[?]", RING)     -- digger id by seq
local ring_expect = ffi.new("int32_t[?]", RING)      -- expected packets (--verify), -1 rejected
local ring_reach = ffi.new("uint8_t[?]", RING)       -- digger within reach at submit
local ring_measured = ffi.new("uint8_t[?]", RING)    -- submitted after the warm-up
-- completed digs waiting for account() (see complete())
local ring_done = ffi.new("double[?]", RING)         -- time its last packet was polled
local ring_n = ffi.new("int32_t[?]", RING)           -- packets received
local ring_kind = ffi.new("uint8_t[?]", RING)        -- kind of its packets
local ring_seen = ffi.new("uint8_t[?]", RING)        -- 1 if the digger got one

-- latency histogram in microseconds: 1 us buckets below 1024 us, then
-- 256 log-linear buckets per octave (<= 0.4 % error); max is kept exactly.
local HLIN, HSUB, HOCT = 1024, 256, 24
local HN = HLIN + HSUB * HOCT
local hist = ffi.new("uint32_t[?]", HN)
local LN2 = math.log(2)
local function hist_index(us)                        -- (math.frexp is not compiled)
  if us < HLIN then return floor(us) end
  local e = floor(math.log(us) / LN2)                -- 2^e <= us < 2^(e+1)
  local p2 = 2 ^ e
  if p2 > us then e = e - 1 p2 = p2 / 2 elseif p2 * 2 <= us then e = e + 1 p2 = p2 * 2 end
  local idx = HLIN + (e - 10) * HSUB + floor((us / p2 - 1) * HSUB)
  if idx >= HN then idx = HN - 1 end
  return idx
end
local function hist_value(idx)                       -- bucket midpoint, us
  if idx < HLIN then return idx + 0.5 end
  local o = floor((idx - HLIN) / HSUB)
  local sub = (idx - HLIN) % HSUB
  return 2 ^ (o + 10) * (1 + (sub + 0.5) / HSUB)
end
local st  -- counters, below
local function percentile(q, total)                  -- ms
  if total == 0 then return 0 end
  local rank = math.ceil(q * total)
  if rank < 1 then rank = 1 end
  local acc, idx = 0, HN - 1
  for i = 0, HN - 1 do
    acc = acc + hist[i]
    if acc >= rank then idx = i break end
  end
  -- the bucket midpoint, clamped to the exact extremes
  local v = hist_value(idx) / 1e6
  if v > st.lat_max then v = st.lat_max end
  if v < st.lat_min then v = st.lat_min end
  return v * 1000
end

-- per-dig latencies for --latency-out
local lat_cap = 0
local lat_out
if opt.latency_out then
  local bursts = opt.burst > 0 and (floor((TICKS - 1) / opt.burst_every) + 1) or 0
  lat_cap = TICKS * opt.digs_per_tick + bursts * opt.burst + 16
  lat_out = ffi.new("float[?]", lat_cap)
end

-- bursts: seq range, submit time, end (time of its last packet), packets
local NB = opt.burst > 0 and (floor((TICKS - 1) / opt.burst_every) + 1) or 1
local b_first = ffi.new("double[?]", NB)
local b_last = ffi.new("double[?]", NB)
local b_t0 = ffi.new("double[?]", NB)
local b_t1 = ffi.new("double[?]", NB)
local b_pk = ffi.new("double[?]", NB)
local b_found = ffi.new("double[?]", NB)
local nbursts = 0
local b_cur = 0       -- oldest burst not yet complete

-- counters (numbers, kept as upvalues/locals)
st = ffi.new([[struct {
  double digs_sub, digs_done, packets, found, empty, nothing, rejected, found_packets;
  double digs_measured, misses, lat_max, lat_min, lat_sum, order_err, gap_err, digger_err, kind_err, count_err;
  double decoded, decode_err, busy, ring_full, ticks, overruns, tick_max, moves, lat_dropped;
  double cur, cur_n, cur_last_rcp, cur_t, cur_kind, cur_digger_seen, sample_ctr, last_sub;
  double poll_time, proc_time, acct_time, burst_call_cpu, burst_call_wall, timed_packets, polls, samples, digest, completed, accounted;
}]])
st.lat_min = 1e300
st.cur_last_rcp = -1

local SAMPLES = 4096                                -- sampled packets kept for decoding
local sample_buf = ffi.new("uint8_t[?]", opt.sample > 0 and not opt.verify and SAMPLES * 128 or 1)
local MAXP = opt.poll_max
local pbuf = ffi.new("uint8_t[?]", MAXP * 128)
local u32p = ffi.typeof("const uint32_t *")

local function decode_check(p, seq, rcp, kind)
  local s = ffi.string(p, 128)
  local ok, d = pcall(packet.decode, s, 1)
  st.decoded = st.decoded + 1
  if not ok or type(d) ~= "table" or tonumber(d.seq) ~= seq or d.recipient ~= rcp or d.kind ~= kind then
    st.decode_err = st.decode_err + 1
    if st.decode_err <= 5 then
      io.stderr:write(string.format("harness: decode mismatch seq %d recipient %d kind %d: %s\n",
        seq, rcp, kind, ok and (type(d) == "table" and ("decoded seq " .. tostring(d.seq) ..
        " recipient " .. tostring(d.recipient) .. " kind " .. tostring(d.kind)) or tostring(d)) or tostring(d)))
    end
  end
end

-- the bookkeeping of one completed dig (see complete())
local function account_one(seq)
  local slot = band(seq, RMASK)
  local n, kind, digger_seen = ring_n[slot], ring_kind[slot], ring_seen[slot]
  local t = ring_done[slot]
  local lat = t - ring_t[slot]
  st.digs_done = st.digs_done + 1
  if ring_measured[slot] == 1 then
    st.digs_measured = st.digs_measured + 1
    if lat > st.lat_max then st.lat_max = lat end
    if lat < st.lat_min then st.lat_min = lat end
    st.lat_sum = st.lat_sum + lat
    if lat > 0.020 then st.misses = st.misses + 1 end
    local idx = hist_index(lat * 1e6)
    hist[idx] = hist[idx] + 1
    if lat_out then
      local j = st.digs_measured - 1
      if j < lat_cap then lat_out[j] = lat * 1000 else st.lat_dropped = st.lat_dropped + 1 end
    end
  end
  if kind == 1 then
    st.found = st.found + 1
    st.found_packets = st.found_packets + n
  elseif kind == 2 then st.empty = st.empty + 1
  elseif kind == 3 then st.nothing = st.nothing + 1
  elseif kind == 4 then st.rejected = st.rejected + 1
  else st.kind_err = st.kind_err + 1 end
  -- the digger gets a packet; REJECTED exactly when out of reach at submit
  if digger_seen == 0 then st.digger_err = st.digger_err + 1 end
  if (kind == 4) ~= (ring_reach[slot] == 0) then st.kind_err = st.kind_err + 1 end
  if opt.verify then
    local e = ring_expect[slot]
    if kind == 1 and e ~= n then
      st.count_err = st.count_err + 1
      if st.count_err <= 5 then
        io.stderr:write(string.format("harness: seq %d: %d recipients, expected %d\n", seq, n, e))
      end
    elseif kind ~= 1 and n ~= 1 then
      st.count_err = st.count_err + 1
    end
  end
  -- burst bookkeeping (bursts are disjoint, ascending seq ranges)
  local b = b_cur
  if b < nbursts and seq >= b_first[b] then
    b_pk[b] = b_pk[b] + n
    if kind == 1 then b_found[b] = b_found[b] + 1 end
    if seq == b_last[b] then
      b_t1[b] = t
      b_cur = b + 1
    end
  end
end

-- a dig is complete: its last packet (of n, the first of kind `kind`) was
-- polled at time t; digger_seen says whether the digger got one. Digs
-- complete in seq order, so this only files the facts; account() does the
-- bookkeeping (latency histogram, counters, checks, bursts) later, when the
-- send loop is idle or the tick ends, so that it is not counted in the
-- latency of the digs still being polled.
local function complete(seq, n, kind, digger_seen, t)
  local slot = band(seq, RMASK)
  ring_done[slot], ring_n[slot], ring_kind[slot], ring_seen[slot] = t, n, kind, digger_seen
  st.completed = seq
end

-- account for every completed dig not yet accounted for
local function account()
  for seq = st.accounted + 1, st.completed do account_one(seq) end
  st.accounted = st.completed
end
local function timed_account()
  if st.completed == st.accounted then return end
  local c0 = cpu_now()
  account()
  st.acct_time = st.acct_time + (cpu_now() - c0)
end

-- --digest: fold one packet's u32 words into h, skipping t_us (words 4, 5)
-- and crc (31); unrolled (generated once) so that it compiles to straight code
local digest_packet
do
  -- two independent lanes per packet (a rotate-xor chain and a sum), mixed
  -- into h once per packet: short dependency chains, one multiply
  local src = { "local tobit, rol, bxor = ...\nreturn function(h, q)\n  local a, b = 0, 0\n" }
  for w = 0, 30 do
    if w ~= 4 and w ~= 5 then
      src[#src + 1] = ("  a = bxor(rol(a, 5), q[%d]) b = b + q[%d]\n"):format(w, w)
    end
  end
  src[#src + 1] = "  return tobit(rol(bxor(h, a), 13) * 5 + tobit(b))\nend\n"
  digest_packet = assert(loadstring(table.concat(src), "=digest"))(tobit, rol, bxor)
end

-- handle n packets in pbuf, polled at time t. The current dig's state lives
-- in locals here and in st between calls. The per-packet loop touches only
-- locals and the packet (upvalues and ffi.cast hoisted, no per-packet store
-- to st): it is the send loop's cost, counted in every dig's latency.
local cast = ffi.cast
local function process(n, t)
  local verify, sample, digest = opt.verify, opt.sample, opt.digest
  local cur, cur_n, last_rcp, cur_kind, seen = st.cur, st.cur_n, st.cur_last_rcp, st.cur_kind, st.cur_digger_seen
  local cur_t = st.cur_t
  local last_sub = st.last_sub
  local buf, u32 = pbuf, u32p
  local digger = cur > 0 and ring_digger[band(cur, RMASK)] or -1
  for i = 0, n - 1 do
    local p = buf + i * 128
    local q = cast(u32, p)
    local seq = q[3] * 4294967296 + q[2]       -- u64 seq at 8, two u32 reads
    local rcp = q[8]                             -- u32 recipient at 32
    local kind = p[6]
    if seq ~= cur then
      if seq < cur or seq > last_sub then
        st.order_err = st.order_err + 1
      else
        if cur > 0 then complete(cur, cur_n, cur_kind, seen, cur_t) end
        if seq ~= cur + 1 then st.gap_err = st.gap_err + (seq - cur - 1) end
        cur, cur_n, last_rcp, cur_kind, seen = seq, 0, -1, kind, 0
        digger = ring_digger[band(seq, RMASK)]
      end
    end
    if rcp <= last_rcp then st.order_err = st.order_err + 1 end
    if kind ~= cur_kind then st.kind_err = st.kind_err + 1 end
    if rcp == digger then seen = 1 end
    last_rcp = rcp
    cur_n = cur_n + 1
    cur_t = t
    if digest then st.digest = digest_packet(st.digest, q) end
    if verify then decode_check(p, seq, rcp, kind) end
  end
  if sample > 0 and not verify then
    -- keep a copy of every sample-th packet of the stream (decoded after the
    -- run, outside the timing): sample_ctr packets have passed since the last
    local i = sample - 1 - st.sample_ctr
    while i < n do
      local k = st.samples
      if k < SAMPLES then
        ffi.copy(sample_buf + k * 128, buf + i * 128, 128)
        st.samples = k + 1
      end
      i = i + sample
    end
    st.sample_ctr = (st.sample_ctr + n) % sample
  end
  st.cur, st.cur_n, st.cur_last_rcp, st.cur_kind, st.cur_digger_seen = cur, cur_n, last_rcp, cur_kind, seen
  st.cur_t = cur_t
  st.packets = st.packets + n
end

-- expected recipients of a FOUND dig by player index i at site k (--verify)
local aoi2 = opt.aoi * opt.aoi
local function expected_recipients(i, bx, by, bz)
  local party = pparty[i]
  local n = 0
  for j = 0, P - 1 do
    local dx, dy, dz = px[j] - bx, py[j] - by, pz[j] - bz
    if j == i or dx * dx + dy * dy + dz * dz <= aoi2 or (party ~= 0 and pparty[j] == party) then
      n = n + 1
    end
  end
  return n
end

---------------------------------------------------------------------------
-- per-tick record building
---------------------------------------------------------------------------
local move_buf = ffi.new("harness_move_rec[?]", P)
local DIGCAP = 2 * (opt.digs_per_tick + opt.burst) + 64
local dig_buf = ffi.new("harness_dig_rec[?]", DIGCAP)
local dig_t = ffi.new("double[?]", DIGCAP)       -- first-attempt time per record
local dig_reach = ffi.new("uint8_t[?]", DIGCAP)  -- digger within reach at the call
local dig_expect = ffi.new("int32_t[?]", DIGCAP) -- --verify: expected packets
local dig_n = 0                                  -- records waiting (busy retries)
local reach2 = opt.reach * opt.reach
local burst_off = 0

local function step_players()
  local n = 0
  for i = 0, P - 1 do
    local moved = false
    if pstate[i] == 0 then
      local x, z = px[i], pz[i]
      local gx, gz = pgx[i], pgz[i]
      if x < gx then x = x + 1 elseif x > gx then x = x - 1 end
      if z < gz then z = z + 1 elseif z > gz then z = z - 1 end
      px[i], pz[i] = x, z
      py[i] = height(x, z)
      moved = true
      if x == gx and z == gz then
        pstate[i] = 1
        pdwell[i] = dwell_ticks()
      end
    else
      local d = pdwell[i] - 1
      pdwell[i] = d
      if d <= 0 then
        pick_target(i, px[i], pz[i], ptarget[i])
        pstate[i] = 0
      elseif rndint(16) == 0 then               -- shuffle to another spot by the site
        pick_spot(i, ptarget[i])
        if pgx[i] ~= px[i] or pgz[i] ~= pz[i] then
          px[i], pz[i] = pgx[i], pgz[i]
          py[i] = height(px[i], pz[i])
          moved = true
        end
      end
    end
    if moved then
      local m = move_buf[n]
      m.player, m.x, m.y, m.z = i + 1, px[i], py[i], pz[i]
      n = n + 1
    end
  end
  st.moves = st.moves + n
  return n
end

local function add_dig(i)
  if dig_n >= DIGCAP then st.ring_full = st.ring_full + 1 return end
  local k = ptarget[i]
  local d = dig_buf[dig_n]
  d.player, d.x, d.y, d.z = i + 1, sx[k], sy[k], sz[k]
  dig_t[dig_n] = 0                               -- set at the first dig_batch attempt
  dig_n = dig_n + 1
end

-- digs submitted from now on count in the latency figures (see --warmup)
local measuring = opt.warmup == 0

-- submit the waiting records; returns true if accepted (or nothing to do)
local burst_lo, burst_hi = -1, -1   -- record indexes [lo, hi) of a burst not yet accepted
local function submit()
  if dig_n == 0 then return true end
  -- never track more in-flight digs than the ring holds
  if st.last_sub + dig_n - st.digs_done >= RING then
    st.ring_full = st.ring_full + 1
    return false
  end
  -- within reach now? (positions are current: this tick's move_batch is applied)
  local verify = opt.verify
  for j = 0, dig_n - 1 do
    local d = dig_buf[j]
    local i = d.player - 1
    local dx, dy, dz = px[i] - d.x, py[i] - d.y, pz[i] - d.z
    local inreach = dx * dx + dy * dy + dz * dz <= reach2
    dig_reach[j] = inreach and 1 or 0
    if verify then   -- the model's recipient count, computed outside the timing
      dig_expect[j] = inreach and expected_recipients(i, d.x, d.y, d.z) or 1
    end
  end
  local t_us = floor(now() * 1e6)
  for j = 0, dig_n - 1 do dig_buf[j].t_us = t_us end
  local records = ffi.string(dig_buf, dig_n * 24)
  local t_call = now()
  for j = 0, dig_n - 1 do
    if dig_t[j] == 0 then dig_t[j] = t_call end     -- first attempt
  end
  local is_burst = burst_lo >= 0 and burst_hi > burst_lo and measuring
  local c_call = is_burst and cpu_now() or 0
  local first, count = r:dig_batch(records)
  if is_burst and first ~= nil then   -- the game loop's CPU in a burst's dig_batch
    st.burst_call_cpu = st.burst_call_cpu + (cpu_now() - c_call)
    st.burst_call_wall = st.burst_call_wall + (now() - t_call)
  end
  if first == nil then
    st.busy = st.busy + 1
    return false
  end
  for j = 0, count - 1 do
    local seq = first + j
    local slot = band(seq, RMASK)
    -- latency starts just before the first dig_batch that carried it
    ring_t[slot] = dig_t[j]
    local d = dig_buf[j]
    ring_digger[slot] = d.player
    ring_reach[slot] = dig_reach[j]
    ring_expect[slot] = dig_expect[j]
    ring_measured[slot] = measuring and 1 or 0
  end
  st.digs_sub = st.digs_sub + count
  st.last_sub = first + count - 1
  if is_burst then
    local b = nbursts
    if b < NB then
      b_first[b] = first + burst_lo
      b_last[b] = first + burst_hi - 1
      b_t0[b] = ring_t[band(first + burst_lo, RMASK)]
      nbursts = b + 1
    end
  end
  burst_lo, burst_hi = -1, -1
  dig_n = 0
  return true
end

---------------------------------------------------------------------------
-- the loop
---------------------------------------------------------------------------
local function rss_kb(field)
  local f = io.open("/proc/self/status")
  if not f then return 0 end
  local s = f:read("*a")
  f:close()
  return tonumber(s:match(field .. ":%s*(%d+)")) or 0
end

local function progress(t_el)
  if opt.quiet then return end
  io.stderr:write(string.format(
    "[%s] t=%5.1fs tick=%d digs=%d packets=%d p99=%.3fms max=%.3fms misses=%d busy=%d heap=%.0fkB\n",
    backend_name, t_el, st.ticks, st.digs_done, st.packets, percentile(0.99, st.digs_measured),
    st.lat_max * 1000, st.misses, st.busy, collectgarbage("count")))
end

collectgarbage("collect")
collectgarbage("collect")
local heap_start = collectgarbage("count")
local heap_peak = heap_start
local heap_ck_tick = floor(opt.heap_checkpoint * 20 + 0.5)
local heap_ck = -1

local t0 = now()
local next_tick = t0
local next_progress = t0 + 1
local fast = opt.fast
local poll_sleep = opt.poll_us * 1e-6
local use_wait = not opt.no_wait
local dpt, burst, bevery = opt.digs_per_tick, opt.burst, opt.burst_every

local warm_ticks = floor(opt.warmup * 20 + 0.5)
for tick = 0, TICKS - 1 do
  if tick == warm_ticks then measuring = true end
  local tstart = now()
  -- 1. movement
  local nm = step_players()
  if nm > 0 then r:move_batch(ffi.string(move_buf, nm * 16)) end
  -- 2. digs: leftovers from a busy tick first, then this tick's
  for _ = 1, dpt do add_dig(rndint(P)) end
  if burst > 0 and tick % bevery == 0 then
    -- (a burst still waiting after a busy refusal merges with this one)
    if burst_lo < 0 then burst_lo = dig_n end
    for j = 0, burst - 1 do add_dig((burst_off + j) % P) end
    burst_hi = dig_n
    burst_off = (burst_off + burst) % P
  end
  submit()
  -- 3. send loop
  next_tick = next_tick + TICK
  while true do
    -- the thread CPU clock is a ~0.6 us system call: split the send loop's
    -- CPU between poll_into and the checks on one poll in 16 only
    local timed = band(st.polls, 15) == 0
    st.polls = st.polls + 1
    local c0 = timed and cpu_now() or 0
    local n = r:poll_into(pbuf, MAXP)
    local t = now()
    if n > 0 then
      local c1 = timed and cpu_now() or 0
      process(n, t)
      if timed then
        st.poll_time = st.poll_time + (c1 - c0)
        st.proc_time = st.proc_time + (cpu_now() - c1)
        st.timed_packets = st.timed_packets + n
      end
    elseif fast then
      break
    end
    if not fast and t >= next_tick then break end
    if n == 0 then
      timed_account()   -- idle: nothing to send now
      local left = next_tick - now()
      if use_wait then
        -- Block until the next packet is ready or the tick is due. r:wait
        -- returns 0 at once when no dig is in flight (legacy: always):
        -- nothing can arrive before this loop submits again, so sleep.
        if left > 0 and r:wait(floor(left * 1e6)) == 0 then sleep(next_tick - now()) end
      else
        sleep(min(poll_sleep, left))
      end
    end
  end
  local tend = now()
  local dur = tend - tstart
  if dur > st.tick_max then st.tick_max = dur end
  if dur > TICK + 0.001 then st.overruns = st.overruns + 1 end
  timed_account()
  st.ticks = st.ticks + 1
  if tick + 1 == heap_ck_tick then
    collectgarbage("collect")
    heap_ck = collectgarbage("count")
    -- the full GC is the harness's doing: restart the schedule after it
    local t = now()
    if t > next_tick then next_tick = t end
  end
  if tend >= next_progress then
    local h = collectgarbage("count")
    if h > heap_peak then heap_peak = h end
    progress(tend - t0)
    next_progress = next_progress + 1
    if next_progress < tend then next_progress = tend + 1 end
  end
end

-- drain: digs refused as busy are retried until accepted, then flush and poll all
while dig_n > 0 do
  if not submit() then
    local n = r:poll_into(pbuf, MAXP)
    if n > 0 then process(n, now()) else sleep(0.0002) end
  end
end
r:flush()
while true do
  local n = r:poll_into(pbuf, MAXP)
  if n == 0 then break end
  process(n, now())
end
if st.cur > 0 then
  complete(st.cur, st.cur_n, st.cur_kind, st.cur_digger_seen, st.cur_t)
  st.cur = 0
end
account()
local t_end = now()
-- decode the sampled packets (the client's job: CRC and fields), outside the timing
for k = 0, st.samples - 1 do
  local p = sample_buf + k * 128
  local q = ffi.cast(u32p, p)
  decode_check(p, q[3] * 4294967296 + q[2], q[8], p[6])
end
do
  local h = collectgarbage("count")
  if h > heap_peak then heap_peak = h end
end
local heap_end_raw = collectgarbage("count")
collectgarbage("collect")
collectgarbage("collect")
local heap_end = collectgarbage("count")
local stats = r:stats()
local peak_rss_kb = rss_kb("VmHWM")
-- CPU time of the whole process (main thread + any backend threads) and the
-- machine's load: a busy machine makes every figure here worse
local cpu_s, loadavg = 0, -1
do
  local f = io.open("/proc/self/stat")
  if f then
    local s = f:read("*a")
    f:close()
    local rest = s:match("%)%s+(.*)$") or ""
    local fields = {}
    for w in rest:gmatch("%S+") do fields[#fields + 1] = w end
    -- after "pid (comm)": field 3 is state; utime and stime are fields 14 and 15
    cpu_s = ((tonumber(fields[12]) or 0) + (tonumber(fields[13]) or 0)) / 100
  end
  f = io.open("/proc/loadavg")
  if f then loadavg = tonumber((f:read("*l") or ""):match("^(%S+)")) or -1 f:close() end
end
r:close()

---------------------------------------------------------------------------
-- summary
---------------------------------------------------------------------------
local wall = t_end - t0
local digs = st.digs_done
local measured = st.digs_measured
local bursts_done = math.min(nbursts, b_cur)
local b_pk_sum, b_dur_sum, b_dur_max, b_found_sum, b_digs = 0, 0, 0, 0, 0
local burst_ms = {}        -- each measured burst's time to its last packet, in order
for b = 0, bursts_done - 1 do
  local d = b_t1[b] - b_t0[b]
  burst_ms[#burst_ms + 1] = floor(d * 1e5 + 0.5) / 100
  b_pk_sum = b_pk_sum + b_pk[b]
  b_dur_sum = b_dur_sum + d
  if d > b_dur_max then b_dur_max = d end
  b_found_sum = b_found_sum + b_found[b]
  b_digs = b_digs + (b_last[b] - b_first[b] + 1)
end

-- cross-check with the resolver's own counters
local mismatch = {}
local function cmp(name, mine, theirs)
  if theirs ~= nil and mine ~= theirs then
    mismatch[#mismatch + 1] = string.format("%s: harness %d, stats() %s", name, mine, tostring(theirs))
  end
end
cmp("digs", st.digs_sub, stats.digs)
cmp("digs polled", digs, stats.digs)
cmp("packets", st.packets, stats.packets)
cmp("found", st.found, stats.found)
cmp("empty", st.empty, stats.empty)
cmp("nothing", st.nothing, stats.nothing)
cmp("rejected", st.rejected, stats.rejected)
cmp("busy", st.busy, stats.busy)
cmp("pending_packets", 0, stats.pending_packets)

local errors = st.order_err + st.gap_err + st.digger_err + st.kind_err + st.count_err + st.decode_err + #mismatch

local function r3(x) return floor(x * 1000 + 0.5) / 1000 end
local S_ = {
  label = opt.label or "",
  backend = backend_name,
  version = T._VERSION or "?",
  players = P, sites = S, world = W, aoi = opt.aoi, reach = opt.reach, seed = opt.seed,
  workers = opt.workers, seconds = opt.seconds, poll_us = opt.poll_us, wait = not opt.no_wait, poll_max = opt.poll_max, ticks = st.ticks, fast = opt.fast,
  digs_per_tick = dpt, burst = burst, burst_every = bevery, charges = opt.charges,
  wall_s = r3(wall), setup_s = r3(setup_s), cpu_s = r3(cpu_s), loadavg_1m = loadavg,
  digs = digs, packets = st.packets,
  packets_per_s = floor(st.packets / wall + 0.5),
  found = st.found, empty = st.empty, nothing = st.nothing, rejected = st.rejected,
  recipients_per_found = st.found > 0 and r3(st.found_packets / st.found) or 0,
  warmup_s = opt.warmup, digs_measured = measured,
  p50_ms = r3(percentile(0.50, measured)), p99_ms = r3(percentile(0.99, measured)),
  p999_ms = r3(percentile(0.999, measured)), max_ms = r3(st.lat_max * 1000),
  mean_ms = measured > 0 and r3(st.lat_sum / measured * 1000) or 0,
  min_ms = measured > 0 and r3(st.lat_min * 1000) or 0,
  misses_20ms = st.misses,
  bursts = bursts_done,
  burst_digs = b_digs,
  burst_found = b_found_sum,
  burst_packets = b_pk_sum,
  burst_ms_mean = bursts_done > 0 and r3(b_dur_sum / bursts_done * 1000) or 0,
  burst_ms_max = r3(b_dur_max * 1000),
  burst_ms = burst_ms,
  burst_dig_batch_cpu_ms = nbursts > 0 and r3(st.burst_call_cpu / nbursts * 1000) or 0,
  burst_dig_batch_wall_ms = nbursts > 0 and r3(st.burst_call_wall / nbursts * 1000) or 0,
  burst_packets_per_s = b_dur_sum > 0 and floor(b_pk_sum / b_dur_sum + 0.5) or 0,
  moves = st.moves,
  poll_ns_per_packet = st.timed_packets > 0 and r3(st.poll_time / st.timed_packets * 1e9) or 0,
  harness_ns_per_packet = st.timed_packets > 0 and r3(st.proc_time / st.timed_packets * 1e9) or 0,
  account_ns_per_dig = st.accounted > 0 and r3(st.acct_time / st.digs_done * 1e9) or 0,
  busy = st.busy, held_back = st.ring_full,
  peak_rss_mb = r3(peak_rss_kb / 1024),
  lua_heap_kb_start = r3(heap_start), lua_heap_kb_end = r3(heap_end),
  lua_heap_kb_end_raw = r3(heap_end_raw), lua_heap_kb_peak = r3(heap_peak),
  lua_heap_kb_checkpoint = r3(heap_ck), heap_checkpoint_s = opt.heap_checkpoint,
  tick_overruns = st.overruns, tick_max_ms = r3(st.tick_max * 1000),
  order_errors = st.order_err, gap_errors = st.gap_err, digger_errors = st.digger_err,
  kind_errors = st.kind_err, count_errors = st.count_err,
  decoded = st.decoded, decode_errors = st.decode_err, stats_mismatches = #mismatch,
  verify = opt.verify, errors = errors,
  digest = opt.digest and bit.tohex(st.digest) or "",
}
local ORDER = {
  "label", "backend", "version", "players", "sites", "world", "aoi", "reach", "seed", "workers", "seconds", "wait", "poll_us", "poll_max",
  "ticks", "fast", "digs_per_tick", "burst", "burst_every", "charges", "wall_s", "setup_s",
  "cpu_s", "loadavg_1m",
  "digs", "packets", "packets_per_s", "found", "empty", "nothing", "rejected",
  "recipients_per_found", "warmup_s", "digs_measured", "p50_ms", "p99_ms", "p999_ms", "max_ms", "mean_ms", "min_ms",
  "misses_20ms", "bursts", "burst_digs", "burst_found", "burst_packets", "burst_ms_mean",
  "burst_ms_max", "burst_ms", "burst_dig_batch_cpu_ms", "burst_dig_batch_wall_ms", "burst_packets_per_s", "moves", "poll_ns_per_packet", "harness_ns_per_packet", "account_ns_per_dig", "busy", "held_back", "peak_rss_mb",
  "lua_heap_kb_start", "lua_heap_kb_end", "lua_heap_kb_end_raw", "lua_heap_kb_peak",
  "heap_checkpoint_s", "lua_heap_kb_checkpoint",
  "tick_overruns", "tick_max_ms", "order_errors", "gap_errors", "digger_errors",
  "kind_errors", "count_errors", "decoded", "decode_errors", "stats_mismatches", "verify", "errors",
  "digest",
}

local function json_string(v)
  return '"' .. v:gsub('[%c"\\]', function(c)
    return string.format("\\u%04x", c:byte())
  end) .. '"'
end

local function fmtnum(v)
  if v == floor(v) and abs(v) < 2^53 then return string.format("%d", v) end
  return string.format("%.6g", v)
end

local out = io.stdout
out:write(string.format("== treasure harness: backend %s (%s), %s ==\n", backend_name, S_.version,
  opt.fast and "fast" or "real time 20 Hz"))
out:write(string.format("scenario   players %d, sites %d, world %d^2, aoi %d, reach %d, seed %d, %d ticks, %d digs/tick, burst %d every %d ticks\n",
  P, S, W, opt.aoi, opt.reach, opt.seed, st.ticks, dpt, burst, bevery))
out:write(string.format("run        %.2f s wall (setup %.2f s), %d digs (%d found, %d empty, %d nothing, %d rejected), %d packets, %.0f packets/s\n",
  wall, setup_s, digs, st.found, st.empty, st.nothing, st.rejected, st.packets, st.packets / wall))
out:write(string.format("fan-out    %.2f recipients per found dig\n", S_.recipients_per_found))
out:write(string.format("latency    p50 %.3f ms, p99 %.3f ms, p99.9 %.3f ms, max %.3f ms, mean %.3f ms; %d over 20 ms%s\n",
  S_.p50_ms, S_.p99_ms, S_.p999_ms, S_.max_ms, S_.mean_ms, st.misses,
  opt.warmup > 0 and string.format(" (the %d digs submitted after a %g s warm-up)", measured, opt.warmup) or ""))
if bursts_done > 0 then
  out:write(string.format("bursts     %d bursts of %d digs (%d found): %.3f ms mean, %.3f ms max to the last packet, %.0f packets/s\n",
    bursts_done, burst, b_found_sum, S_.burst_ms_mean, S_.burst_ms_max, S_.burst_packets_per_s))
  out:write("           each burst (ms): ", table.concat(burst_ms, " "), "\n")
  out:write(string.format("           the burst's dig_batch call: %.3f ms CPU, %.3f ms wall (mean)\n",
    S_.burst_dig_batch_cpu_ms, S_.burst_dig_batch_wall_ms))
end
out:write(string.format("send loop  CPU per packet: poll_into %.1f ns (backend), harness checks %.1f ns (counted in the latency); bookkeeping %.0f ns per dig (when idle, not counted)\n",
  S_.poll_ns_per_packet, S_.harness_ns_per_packet, S_.account_ns_per_dig))
out:write(string.format("memory     peak RSS %.1f MB; Lua heap %.0f kB at start, %.0f kB at end (%.0f kB before the final GC, %.0f kB peak sampled)\n",
  S_.peak_rss_mb, heap_start, heap_end, heap_end_raw, heap_peak))
if heap_ck >= 0 then
  out:write(string.format("           Lua heap %.0f kB after %g s (full GC): %+.0f kB from there to the end\n",
    heap_ck, opt.heap_checkpoint, heap_end - heap_ck))
end
out:write(string.format("ticks      %d overruns (> 50 ms), longest %.1f ms; busy %d, held back %d; CPU %.2f s (all threads); load average %.2f\n",
  st.overruns, S_.tick_max_ms, st.busy, st.ring_full, cpu_s, loadavg))
out:write(string.format("checks     order %d, gaps %d, digger %d, kind %d, recipients %d, decoded %d (%d bad), stats() mismatches %d%s\n",
  st.order_err, st.gap_err, st.digger_err, st.kind_err, st.count_err, st.decoded, st.decode_err,
  #mismatch, opt.verify and " [--verify: every packet decoded, every dig's recipients counted]" or ""))
if opt.digest then
  out:write(string.format("digest     %s over %d packets (all bytes but t_us and crc)\n", bit.tohex(st.digest), st.packets))
end
for _, m in ipairs(mismatch) do out:write("  stats() mismatch: ", m, "\n") end

if lat_out then
  local f, err = io.open(opt.latency_out, "w")
  if not f then die("--latency-out: " .. tostring(err)) end
  -- the measured digs only (those submitted after --warmup), as filed
  local n = math.min(measured, lat_cap)
  local parts = {}
  for j = 0, n - 1 do
    parts[#parts + 1] = string.format("%.4f", lat_out[j])
    if #parts == 4096 then f:write(table.concat(parts, "\n"), "\n") parts = {} end
  end
  if #parts > 0 then f:write(table.concat(parts, "\n"), "\n") end
  f:close()
end

if opt.json then
  local parts = {}
  for _, k in ipairs(ORDER) do
    local v = S_[k]
    local s
    if type(v) == "number" then s = fmtnum(v)
    elseif type(v) == "boolean" then s = tostring(v)
    elseif type(v) == "table" then     -- a list of numbers
      local items = {}
      for i = 1, #v do items[i] = fmtnum(v[i]) end
      s = "[" .. table.concat(items, ",") .. "]"
    else s = json_string(tostring(v)) end
    parts[#parts + 1] = json_string(k) .. ":" .. s
  end
  out:write("{", table.concat(parts, ","), "}\n")
end
out:flush()
if errors > 0 then
  io.stderr:write("harness: FAILED: ", errors, " check errors\n")
  os.exit(1)
end
