-- bench/poll_cost.lua: the game loop's per-packet cost with nothing else
-- running. A 12,000-dig burst is resolved and flushed first, then polled
-- with poll_into (4096 packets per call) and read by a send loop like the
-- harness's (seq, recipient and kind of every packet, order checks), each
-- timed with the thread CPU clock. The harness measures the same two costs
-- while the workers run (poll_ns_per_packet, harness_ns_per_packet);
-- docs/BENCHMARKS.md compares them.
--
--   LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='build/?.so;;' \
--     luajit bench/poll_cost.lua [lua|native] [into|view]  (default native into)
--
-- `view` drains with r:poll_view instead (issue 16: the workers wrote the
-- packets in full; the send loop reads them in place); it also reports the
-- wall time of each flush (the workers' share, materializing included).

local ffi = require("ffi")
local backend = arg[1] or "native"
local drain = arg[2] or "into"
local T = require(backend == "lua" and "treasure.legacy" or "treasure.native")

ffi.cdef [[
typedef struct { uint32_t sec_lo, sec_hi, nsec_lo, nsec_hi; } pc_timespec;
int pc_clock_gettime(int clk, pc_timespec *ts) __asm__("clock_gettime");
typedef struct { uint32_t player; int32_t x, y, z; uint64_t t_us; } pc_dig_rec;
]]
local ts = ffi.new("pc_timespec")
local function cpu_now() -- CLOCK_THREAD_CPUTIME_ID
  ffi.C.pc_clock_gettime(3, ts)
  return ts.sec_lo + ts.sec_hi * 4294967296 + ts.nsec_lo * 1e-9
end

-- 12,000 players 40 x 34 blocks apart (about 12 within the 64-block radius),
-- parties of four, each next to its own site: every dig is FOUND.
local P, MAXP, ROUNDS, WARM = 12000, 4096, 15, 3
local r = T.new({ aoi_radius = 64, reach = 8, max_pending_packets = 10000000 })
r:add_loot_table(1, { { item = 1, weight = 1, min = 1, max = 1, rarity = 0 } })
local recs = ffi.new("pc_dig_rec[?]", P)
for p = 1, P do
  local x, z = (p % 100) * 40, math.floor(p / 100) * 34
  r:join(p, x, 30, z, math.floor((p - 1) / 4) + 1)
  r:add_site(p, x + 1, 30, z, 1, 1000000)
  recs[p - 1].player, recs[p - 1].x, recs[p - 1].y, recs[p - 1].z = p, x + 1, 30, z
end
local batch = ffi.string(recs, P * ffi.sizeof("pc_dig_rec"))

local buf = ffi.new("uint8_t[?]", MAXP * 128)
local u32p = ffi.typeof("const uint32_t *")
local cast = ffi.cast

-- the harness's per-packet checks, reduced to locals
local cur, last, errors = 0, -1, 0
local function send_loop(n, src)
  for i = 0, n - 1 do
    local p = src + i * 128
    local q = cast(u32p, p)
    local seq = q[3] * 4294967296 + q[2]
    local rcp = q[8]
    local kind = p[6]
    if seq ~= cur then
      if seq < cur then errors = errors + 1 end
      cur, last = seq, -1
    end
    if rcp <= last or kind ~= 1 then errors = errors + 1 end
    last = rcp
  end
end

local function wall_now() -- CLOCK_MONOTONIC
  ffi.C.pc_clock_gettime(1, ts)
  return ts.sec_lo + ts.sec_hi * 4294967296 + ts.nsec_lo * 1e-9
end
local view = drain == "view"
if view then r:poll_view(0) end -- the workers write in full from the first dig
local t_poll, t_send, packets, t_flush, calls = 0, 0, 0, 0, 0
for round = 1, ROUNDS do
  assert(r:dig_batch(batch))
  local w0 = wall_now()
  r:flush()
  if round > WARM then t_flush = t_flush + (wall_now() - w0) end
  while true do
    local c0 = cpu_now()
    local n, src
    if view then n, src = r:poll_view(MAXP) else n, src = r:poll_into(buf, MAXP), buf end
    local c1 = cpu_now()
    if round > WARM then calls = calls + 1 end
    if n == 0 then break end
    send_loop(n, src)
    local c2 = cpu_now()
    if round > WARM then
      t_poll, t_send, packets = t_poll + (c1 - c0), t_send + (c2 - c1), packets + n
    end
  end
end
assert(errors == 0, "packet order errors: " .. errors)
print(string.format("%s, nothing else running: %s %.2f ns/packet, send loop %.2f ns/packet (%d packets, %d bursts of %d digs; %d calls; flush wall %.2f ms/burst)",
  backend, view and "poll_view" or "poll_into", t_poll / packets * 1e9, t_send / packets * 1e9, packets, ROUNDS - WARM, P,
  calls, t_flush / (ROUNDS - WARM) * 1e3))
