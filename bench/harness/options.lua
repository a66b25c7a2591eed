-- bench/harness/options.lua: the harness's command line (flags, defaults, checks).
--
-- parse(arg) returns the options table or exits 2 with a message naming the
-- flag; `--help` prints USAGE and exits 0.

local floor = math.floor

local M = {}

M.USAGE = [[
usage: luajit bench/harness.lua [flags]
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
                         entries than they gain in cache: docs/BENCHMARKS.md)
  --drain into|view      how the send loop drains: poll_into one preallocated buffer
                         (into, the default) or r:poll_view, reading the packets where
                         the workers wrote them (view, issue 16)
  --flush-burst          block in r:flush() right after a burst's dig_batch, so that
                         the send loop drains it only once every dig is resolved:
                         the drain without the workers running beside it
                         (docs/BENCHMARKS.md, "The CPU a burst costs now")
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
  --floor-passes N       passes of the memory floor measurement after the run (5;
                         floor_ms is the fastest; 0 = not measured)
  --label NAME           scenario name copied into the JSON (for bench/run.sh)
  --quiet                no progress lines
]]

local DEFAULTS = {
  backend = nil, players = 12000, sites = 100000, world = 4096, aoi = 64, reach = 8,
  seed = 1, workers = 0, max_pending = nil, seconds = 10, digs_per_tick = 20,
  burst = 0, burst_every = 20, charges = 20000, hotspots = 256, hotspot_share = 0.5,
  fast = false, json = false, verify = false, no_wait = false, digest = false, sample = 1000,
  latency_out = nil, quiet = false, heap_checkpoint = 0, warmup = 0, poll_us = 200,
  poll_max = 4096, floor_passes = 5, drain = "into", flush_burst = false,
}
local NUMERIC = {
  players = true, sites = true, world = true, aoi = true, reach = true, seed = true,
  workers = true, max_pending = true, seconds = true, digs_per_tick = true, burst = true,
  burst_every = true, charges = true, hotspots = true, hotspot_share = true, sample = true,
  heap_checkpoint = true, warmup = true, poll_us = true, poll_max = true, floor_passes = true,
}
local STRING = { backend = true, latency_out = true, label = true, drain = true }
local SWITCH = {
  fast = true, json = true, verify = true, quiet = true, digest = true, no_wait = true, flush_burst = true,
}

function M.die(msg, code)
  io.stderr:write("harness: ", msg, "\n")
  os.exit(code or 2)
end
local die = M.die

function M.parse(argv)
  local opt = {}
  for k, v in pairs(DEFAULTS) do opt[k] = v end
  local i = 1
  while i <= #argv do
    local a = argv[i]
    if a == "-h" or a == "--help" then io.stdout:write(M.USAGE) os.exit(0) end
    local name, val = a:match("^%-%-([%w%-]+)=(.*)$")
    if not name then name = a:match("^%-%-([%w%-]+)$") end
    if not name then die("unexpected argument '" .. a .. "'\n" .. M.USAGE) end
    local key = name:gsub("%-", "_")
    if SWITCH[key] then
      if val then die("--" .. name .. " takes no value") end
      opt[key] = true
    elseif NUMERIC[key] or STRING[key] then
      if not val then
        i = i + 1
        val = argv[i]
        if val == nil then die("--" .. name .. " needs a value") end
      end
      if NUMERIC[key] then
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
      die("unknown flag --" .. name .. "\n" .. M.USAGE)
    end
    i = i + 1
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
  if opt.drain ~= "into" and opt.drain ~= "view" then die("--drain must be into or view, got '" .. opt.drain .. "'") end
  return opt
end

return M
