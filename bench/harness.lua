-- bench/harness.lua: a game-server loop driving the treasure resolver, as a
-- measuring instrument (the code a user copies is examples/game_loop.lua).
--
--   LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='build/?.so;;' \
--     luajit bench/harness.lua [flags]          (--help lists them)
--
-- One concept per file under bench/harness/:
--   options.lua  the flags
--   world.lua    the seeded world (terrain, sites, players in parties) and movement
--   loop.lua     the tick loop: move_batch, dig_batch, the send loop; the burst window
--   stream.lua   every packet checked (order, digger, kind, reach), latencies, bursts
--   measure.lua  clocks, getrusage, the latency histogram, the memory floor, /proc
--   report.lua   the summary: text, and one JSON line (--json) for bench/run.sh
--
-- Any failed check makes the exit status 1. The per-packet and per-dig work
-- allocates nothing (FFI arrays, no tables); the only Lua garbage per tick is
-- the two record strings the API takes, so the Lua heap stays flat (see
-- lua_heap_kb_* in the summary).

-- the harness's modules live next to this file
local here = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
package.path = here .. "/?.lua;" .. package.path

local options = require("harness.options")
local measure = require("harness.measure")
local world_m = require("harness.world")
local stream_m = require("harness.stream")
local loop = require("harness.loop")
local report = require("harness.report")
local die = options.die

local opt = options.parse(arg)

-- backend
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

-- the world and the resolver
local world = world_m.new(opt)
local new_opts = { seed = opt.seed, aoi_radius = opt.aoi, reach = opt.reach, workers = opt.workers }
if opt.max_pending then new_opts.max_pending_packets = opt.max_pending end
local t_setup0 = measure.now()
local r = T.new(new_opts)
world.populate(r, opt.charges)
local setup_s = measure.now() - t_setup0

local TICKS = math.floor(opt.seconds * 20 + 0.5)
local nbursts_max = opt.burst > 0 and (math.floor((TICKS - 1) / opt.burst_every) + 1) or 0
local hist = measure.histogram()
local stream = stream_m.new({ opt = opt, packet = packet, hist = hist, nbursts_max = nbursts_max,
  digs_max = TICKS * opt.digs_per_tick + nbursts_max * opt.burst })
local st = stream.st

collectgarbage("collect")
collectgarbage("collect")
local heap = { start = collectgarbage("count"), checkpoint = -1 }
heap.peak = heap.start

local function progress(t_el)
  if opt.quiet then return end
  io.stderr:write(string.format(
    "[%s] t=%5.1fs tick=%d digs=%d packets=%d p99=%.3fms max=%.3fms misses=%d busy=%d heap=%.0fkB\n",
    backend_name, t_el, st.ticks, st.digs_done, st.packets,
    hist.percentile(0.99, st.digs_measured, st.lat_min, st.lat_max),
    st.lat_max * 1000, st.misses, st.busy, collectgarbage("count")))
end

local wall = loop.run({ opt = opt, r = r, world = world, stream = stream, clock = measure,
  heap = heap, progress = progress })

-- after the run, outside the timing
stream.decode_samples()
heap.peak = math.max(heap.peak, collectgarbage("count"))
heap.end_raw = collectgarbage("count")
collectgarbage("collect")
collectgarbage("collect")
heap.end_ = collectgarbage("count")
local stats = r:stats()
local peak_rss_kb = measure.status_kb("VmHWM")
local cpu_s = measure.process_cpu()   -- every thread, the whole run (setup included)
local loadavg = measure.loadavg()
r:close()

-- the memory floor of this run's mean burst (0 without bursts)
local bursts = stream.bursts()
local floor_bytes = bursts.done > 0 and math.floor(bursts.packets / bursts.done + 0.5) * 128 or 0
local floor_ms = measure.floor_ms(floor_bytes, opt.floor_passes)

local run = {
  opt = opt, backend = backend_name, version = T._VERSION or "?", st = st, bursts = bursts,
  nbursts = stream.nbursts, hist = hist, wall = wall, setup_s = setup_s, cpu_s = cpu_s,
  loadavg = loadavg, peak_rss_kb = peak_rss_kb, heap = heap, floor_bytes = floor_bytes,
  floor_ms = floor_ms, mismatch = report.cross_check(st, stats),
}
local S_ = report.summarize(run)
report.print_text(io.stdout, S_, run)
if stream.lat_out then
  local ok, err = report.write_latencies(opt.latency_out, stream.lat_out, math.min(st.digs_measured, stream.lat_cap))
  if not ok then die("--latency-out: " .. tostring(err)) end
end
if opt.json then io.stdout:write(report.json(S_), "\n") end
io.stdout:flush()
if S_.errors > 0 then
  io.stderr:write("harness: FAILED: ", S_.errors, " check errors\n")
  os.exit(1)
end
