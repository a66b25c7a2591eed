-- bench/drain_cost.lua: the game loop's per-packet drain cost for the
-- harness's own packet stream, with nothing running beside it.
--
-- The harness's world (bench/harness/world.lua, default flags), its burst
-- (every player digs its target site) and its tracker (stream.process, the
-- send loop's per-packet checks and per-dig filing), but each burst is
-- flushed before it is drained, so no worker runs during the drain, and
-- the 20 ticks of movement between bursts run back to back (or, with
-- `sleep`, 50 ms apart as in the harness). poll_into and stream.process
-- are timed with the thread CPU clock, as the harness times them during a
-- live burst (poll_ns_per_packet, harness_ns_per_packet in its JSON), so
-- the two can be compared; bench/poll_cost.lua does the same for a
-- regular lattice world and a send loop reduced to locals.
--
--   LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='build/?.so;;' \
--     luajit bench/drain_cost.lua [sleep]

package.path = "bench/?.lua;" .. package.path
local ffi = require("ffi")
local options = require("harness.options")
local measure = require("harness.measure")
local stream_m = require("harness.stream")
local T = require("treasure.native")

local sleep_ticks = arg[1] == "sleep"
local opt = options.parse({ "--backend", "native", "--digs-per-tick", "0", "--burst", "12000" })
local w = require("harness.world").new(opt)
local r = T.new({ seed = opt.seed, aoi_radius = opt.aoi, reach = opt.reach, max_pending_packets = 10000000 })
w.populate(r, opt.charges)

ffi.cdef [[ typedef struct { uint32_t player; int32_t x, y, z; uint64_t t_us; } dc_dig_rec; ]]
local P, MAXP, ROUNDS, WARM = opt.players, opt.poll_max, 13, 3
local recs = ffi.new("dc_dig_rec[?]", P)
local s = stream_m.new({ opt = opt, hist = measure.histogram(), nbursts_max = ROUNDS, digs_max = ROUNDS * P })
local st = s.st
local buf = ffi.new("uint8_t[?]", MAXP * 128)
local cpu_now, reach2 = measure.cpu_now, opt.reach * opt.reach
local t_poll, t_proc, packets = 0, 0, 0
for round = 1, ROUNDS do
  for _ = 1, opt.burst_every do
    local nm = w.step()
    if nm > 0 then r:move_batch(ffi.string(w.move_buf, nm * 16)) end
    if sleep_ticks then measure.sleep(0.05) end
  end
  for i = 0, P - 1 do
    local k = w.ptarget[i]
    recs[i].player, recs[i].x, recs[i].y, recs[i].z = i + 1, w.sx[k], w.sy[k], w.sz[k]
  end
  local first, count = assert(r:dig_batch(ffi.string(recs, P * ffi.sizeof("dc_dig_rec"))))
  local t = measure.now()
  for i = 0, count - 1 do
    local dx, dy, dz = w.px[i] - recs[i].x, w.py[i] - recs[i].y, w.pz[i] - recs[i].z
    s.track(first + i, t, i + 1, (dx * dx + dy * dy + dz * dz <= reach2) and 1 or 0, 0, 1)
  end
  st.last_sub = first + count - 1
  s.burst_begin(first, first + count - 1)
  r:flush()
  while true do
    local c0 = cpu_now()
    local n = r:poll_into(buf, MAXP)
    local c1 = cpu_now()
    if n == 0 then break end
    s.process(buf, n, measure.now())
    if round > WARM then
      t_poll, t_proc, packets = t_poll + (c1 - c0), t_proc + (cpu_now() - c1), packets + n
    end
  end
  s.account()
end
local errors = st.order_err + st.gap_err + st.digger_err + st.kind_err
assert(errors == 0, "packet stream errors: " .. errors)
print(string.format(
  "harness world, flushed bursts, %s: poll_into %.2f ns/packet, stream.process %.2f ns/packet (%d packets per burst, %d bursts)",
  sleep_ticks and "ticks 50 ms apart" or "ticks back to back", t_poll / packets * 1e9, t_proc / packets * 1e9,
  packets / (ROUNDS - WARM), ROUNDS - WARM))
