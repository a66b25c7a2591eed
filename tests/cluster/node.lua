-- tests/cluster/node.lua: one process of the cluster test (tests/cluster/run.py
-- starts them): the single-server reference or one shard.
--
--   luajit tests/cluster/node.lua reference --out DIR [world options]
--   luajit tests/cluster/node.lua shard --shard I --out DIR --url nats://... \
--     --start-at EPOCH_S --ticks T [--hz 20] [--restore] [world options]
--
-- Both replay the world script of tests/cluster/world.lua tick by tick:
-- movement (move_batch), then the tick's digs in one global order.
--   reference: one plain resolver holding the whole world, every dig, packets
--     polled after each tick into DIR/reference.bin; DIR/hosts.txt (the host
--     of each player) and DIR/expect.txt (per host: the digs with at least
--     one recipient hosted there, i.e. the entries it must apply).
--   shard I: a cluster-mode resolver (shard = I) holding its hosted players
--     and its ghosts (derived from the same script: join/leave/move/set_host
--     per tick), the sites of its stripe, and resolving the digs on its blocks
--     (one dig_batch per tick). A link of `treasure.cluster` ships the records;
--     between ticks the node pumps the link and polls its host packets every
--     --pump-us, appending them to DIR/shard<I>.bin (what it sent to its
--     clients). Logs: DIR/owner<I>.log ("tick wall_us wall_us" before and
--     after each dig_batch), DIR/poll<I>.log ("first_packet_index n wall_us" per
--     poll) and DIR/pump<I>.log ("wall_us records" when a pump took
--     records), CLOCK_REALTIME, joined offline by check.py. Every --snapshot-every
--     ticks: link:flush(), then the resolver snapshot (with the link's log
--     position inside it) and the tick into DIR/snap<I>.lua. --restore: truncate
--     the output to a multiple of 128 bytes, restore the snapshot, reconnect
--     from its log position and re-run from the tick after it.
--   After the last tick the shard drains: it keeps pumping until its
--   stats().applied_digs reaches DIR/expect.txt's count for it (exact: a
--   shorter count means something is lost), then flushes its link and writes
--   DIR/shard<I>.json (resolver and link stats). Exit 3 on drain timeout.

local ffi = require("ffi")
local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
package.path = here .. "/?.lua;" .. package.path
local world_m = require("world")

local floor = math.floor

ffi.cdef[[
typedef struct { uint32_t player; int32_t x, y, z; uint64_t t_us; } __attribute__((packed)) cluster_dig_rec;
typedef struct { long tv_sec; long tv_nsec; } cluster_timespec;
int clock_gettime(int clk, cluster_timespec *ts);
int nanosleep(const cluster_timespec *req, cluster_timespec *rem);
int truncate(const char *path, long length);
]]
assert(ffi.sizeof("cluster_dig_rec") == 24)

local ts = ffi.new("cluster_timespec")
local function now_us()
  ffi.C.clock_gettime(0, ts)   -- CLOCK_REALTIME: comparable across processes
  return tonumber(ts.tv_sec) * 1000000 + floor(tonumber(ts.tv_nsec) / 1000)
end
local req = ffi.new("cluster_timespec")
local function sleep_us(us)
  if us <= 0 then return end
  req.tv_sec = floor(us / 1000000)
  req.tv_nsec = (us % 1000000) * 1000
  ffi.C.nanosleep(req, nil)
end

local function die(msg) io.stderr:write("node: ", msg, "\n") os.exit(2) end

-- command line: a role, then --key value pairs (--restore is a flag)
local role = arg[1]
if role ~= "reference" and role ~= "shard" and role ~= "emulate" then
  die("usage: node.lua reference|emulate|shard --out DIR [--key value ...]")
end
local opt = { hz = 20, ticks = 400, pump_us = 500, snapshot_every = 40, drain_timeout = 60,
  stream = "TREASURE", storage = "file", duplicate_every = 0, duplicate_raw_every = 0 }
do
  local i = 2
  while i <= #arg do
    local k = arg[i]:match("^%-%-([%w_-]+)$")
    if not k then die("bad argument " .. arg[i]) end
    k = k:gsub("-", "_")
    if k == "restore" then opt.restore = true i = i + 1
    else
      local v = arg[i + 1]
      if v == nil then die("--" .. k .. " needs a value") end
      opt[k] = tonumber(v) or v
      i = i + 2
    end
  end
end
if not opt.out then die("--out DIR is required") end

local wopt = {}
for k in pairs(world_m.DEFAULTS) do wopt[k] = opt[k] end
local world = world_m.new(wopt)
local P = world.players

local T = require(os.getenv("TREASURE_BACKEND") == "legacy" and "treasure.legacy" or "treasure")
-- --fake 1: tests/cluster/fake_cluster.lua stands in for cluster mode and the
-- transport (to develop this driver and run.py; not the contract's code)
local fake = (opt.fake == 1 or opt.fake_link == 1) and require("fake_cluster") or nil

local function write_file(path, s)
  local f = assert(io.open(path .. ".tmp", "wb"))
  assert(f:write(s))
  assert(f:close())
  assert(os.rename(path .. ".tmp", path))
end

--- A Lua literal for a plain table of integers, strings, booleans and tables
-- (a snapshot): keys sorted, strings with every unusual byte as \ddd.
local function serialize(v, out)
  local t = type(v)
  if t == "number" then
    if v ~= floor(v) then error("serialize: non-integer " .. v) end
    out[#out + 1] = string.format("%.17g", v)
  elseif t == "boolean" then out[#out + 1] = tostring(v)
  elseif t == "string" then
    out[#out + 1] = '"' .. v:gsub('[%z\1-\31"\\\127-\255]', function(c) return string.format("\\%03d", c:byte()) end) .. '"'
  elseif t == "table" then
    out[#out + 1] = "{"
    local n = #v
    for i = 1, n do serialize(v[i], out) out[#out + 1] = "," end
    local keys = {}
    for k in pairs(v) do
      if not (type(k) == "number" and k >= 1 and k <= n and k == floor(k)) then keys[#keys + 1] = k end
    end
    table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
    for _, k in ipairs(keys) do
      if type(k) == "string" and k:match("^[%a_][%w_]*$") then out[#out + 1] = k .. "="
      else
        out[#out + 1] = "["
        serialize(k, out)
        out[#out + 1] = "]="
      end
      serialize(v[k], out)
      out[#out + 1] = ","
    end
    out[#out + 1] = "}"
  else error("serialize: cannot write a " .. t) end
  return out
end
local function to_lua(v) return "return " .. table.concat(serialize(v, {})) .. "\n" end

-- the dig records of the current tick for owner `s` (nil: all), as a string
local dig_buf = ffi.new("cluster_dig_rec[?]", math.max(world.digs_per_tick, world.burst_digs) + 1)
local function dig_records(s)
  local n = world.digs()
  local m = 0
  for j = 0, n - 1 do
    local x = world.dig_x[j]
    if s == nil or world.owner(x) == s then
      local d = dig_buf[m]
      d.player, d.x, d.y, d.z, d.t_us = world.dig_player[j] + 1, x, world.dig_y[j], world.dig_z[j], world.t_us(j)
      m = m + 1
    end
  end
  return ffi.string(dig_buf, m * 24), m
end

local move_buf = ffi.new("harness_move_rec[?]", P)

-- ---------------------------------------------------------------- reference
if role == "reference" then
  local r = T.new({ seed = world.seed, aoi_radius = world.aoi, reach = world.reach })
  world.populate_sites(r)
  for i = 0, P - 1 do r:join(i + 1, world.px[i], world.PY, world.pz[i], world.pparty[i]) end
  local out = assert(io.open(opt.out .. "/reference.bin", "wb"))
  -- per host: digs (reference seq) with at least one recipient hosted there
  local expect = {}
  for s = 0, world.shards - 1 do expect[s] = 0 end
  local seen = {}                  -- [host] = last seq counted
  local packets, digs = 0, 0
  for _ = 1, opt.ticks do
    local nm = world.step()
    for k = 0, nm - 1 do
      local i = world.moved[k]
      local m = move_buf[k]
      m.player, m.x, m.y, m.z = i + 1, world.px[i], world.PY, world.pz[i]
    end
    if nm > 0 then r:move_batch(ffi.string(move_buf, nm * 16)) end
    local recs, nd = dig_records(nil)
    if nd > 0 then assert(r:dig_batch(recs)) end
    digs = digs + nd
    r:flush()
    local n, bytes = r:poll()
    if n > 0 then
      out:write(bytes)
      local p = ffi.cast("const uint8_t *", bytes)
      for k = 0, n - 1 do
        local q = p + k * 128
        local seq = tonumber(ffi.cast("const uint64_t *", q + 8)[0])
        local rcpt = ffi.cast("const uint32_t *", q + 32)[0]
        local h = world.host[rcpt - 1]
        if seen[h] ~= seq then seen[h] = seq expect[h] = expect[h] + 1 end
      end
      packets = packets + n
    end
  end
  out:close()
  local hl = {}
  for i = 0, P - 1 do hl[#hl + 1] = tostring(world.host[i]) end
  write_file(opt.out .. "/hosts.txt", table.concat(hl, "\n") .. "\n")
  local el = {}
  for s = 0, world.shards - 1 do el[#el + 1] = tostring(expect[s]) end
  write_file(opt.out .. "/expect.txt", table.concat(el, "\n") .. "\n")
  local st = r:stats()
  io.stdout:write(string.format('{"role":"reference","backend":"%s","ticks":%d,"digs":%d,"packets":%d,' ..
    '"found":%d,"empty":%d,"nothing":%d,"rejected":%d,"border_sites":%d}\n', T.backend, opt.ticks, digs, packets,
    st.found, st.empty, st.nothing, st.rejected, world.border_sites))
  os.exit(0)
end

local want = ffi.new("uint8_t[?]", P)
local sync_count = { joins = 0, leaves = 0 }

-- Bring resolver r of shard s to the script's held set of this tick: leave,
-- move the ones still held, join the new ones (a ghost: with its host when r
-- is in cluster mode). `held` (uint8_t[P]) is what r holds, kept up to date.
local function sync_players(s, r, held, nmoved, cluster_mode)
  world.held(s, want)
  local nm = 0
  for i = 0, P - 1 do
    if held[i] == 1 and want[i] == 0 then r:leave(i + 1) held[i] = 0 sync_count.leaves = sync_count.leaves + 1 end
  end
  for k = 0, nmoved - 1 do
    local i = world.moved[k]
    if held[i] == 1 then
      local m = move_buf[nm]
      m.player, m.x, m.y, m.z = i + 1, world.px[i], world.PY, world.pz[i]
      nm = nm + 1
    end
  end
  if nm > 0 then r:move_batch(ffi.string(move_buf, nm * 16)) end
  for i = 0, P - 1 do
    if held[i] == 0 and want[i] == 1 then
      r:join(i + 1, world.px[i], world.PY, world.pz[i], world.pparty[i])
      if cluster_mode and world.host[i] ~= s then r:set_host(i + 1, world.host[i]) end
      held[i] = 1
      sync_count.joins = sync_count.joins + 1
    end
  end
end

-- ---------------------------------------------------------------- emulate
-- Without cluster mode: one plain resolver per shard holding exactly what
-- that shard would (hosted players, script ghosts, its own sites), resolving
-- only the digs on its blocks; each packet is routed to its recipient's host,
-- which renumbers it with its own host seq (owners applied in shard order per
-- tick) and re-seals the CRC. check.py must find these outputs identical to
-- the reference: proof that the world script gives every owner the exact
-- recipients (ghost sync by determinism), independent of the cluster code.
if role == "emulate" then
  local packet = require("treasure.packet")
  local N = world.shards
  local rs, helds, outs, hseq = {}, {}, {}, {}
  for s = 0, N - 1 do
    rs[s] = T.new({ seed = world.seed, aoi_radius = world.aoi, reach = world.reach })
    world.populate_sites(rs[s], s)
    helds[s] = ffi.new("uint8_t[?]", P)
    sync_players(s, rs[s], helds[s], 0, false)
    outs[s] = assert(io.open(opt.out .. "/shard" .. s .. ".bin", "wb"))
    hseq[s] = 0
  end
  local last = {}          -- [host] = owner .. ":" .. owner seq of the host's last entry
  local tmp = ffi.new("uint8_t[128]")
  local total = 0
  for _ = 1, opt.ticks do
    local nm = world.step()
    for s = 0, N - 1 do sync_players(s, rs[s], helds[s], nm, false) end
    for s = 0, N - 1 do
      local recs, nd = dig_records(s)
      if nd > 0 then assert(rs[s]:dig_batch(recs)) end
      rs[s]:flush()
      local n, bytes = rs[s]:poll()
      local p = ffi.cast("const uint8_t *", bytes)
      for k = 0, n - 1 do
        ffi.copy(tmp, p + k * 128, 128)
        local seq = tonumber(ffi.cast("uint64_t *", tmp + 8)[0])
        local h = world.host[ffi.cast("uint32_t *", tmp + 32)[0] - 1]
        local id = s .. ":" .. seq
        if last[h] ~= id then last[h] = id hseq[h] = hseq[h] + 1 end
        ffi.cast("uint64_t *", tmp + 8)[0] = hseq[h]
        ffi.cast("uint32_t *", tmp + 124)[0] = packet.crc32c_ptr(tmp, 124)
        outs[h]:write(ffi.string(tmp, 128))
      end
      total = total + n
    end
  end
  local held_n = {}
  for s = 0, N - 1 do
    outs[s]:close()
    local c = 0
    for i = 0, P - 1 do c = c + helds[s][i] end
    held_n[#held_n + 1] = tostring(c)
  end
  io.stdout:write(string.format('{"role":"emulate","packets":%d,"held_at_end":[%s],"joins":%d,"leaves":%d}\n',
    total, table.concat(held_n, ","), sync_count.joins, sync_count.leaves))
  os.exit(0)
end

-- ---------------------------------------------------------------- shard
local S = opt.shard
if type(S) ~= "number" then die("shard: --shard I is required") end
if not opt.url then die("shard: --url is required") end
if not opt.start_at then die("shard: --start-at EPOCH_S is required") end
local cluster = fake or require("treasure.cluster")
if fake and opt.fake == 1 then T = fake end
local dir = opt.out
local out_path = dir .. "/shard" .. S .. ".bin"
local snap_path = dir .. "/snap" .. S .. ".lua"

local held = ffi.new("uint8_t[?]", P)      -- held now (joined in r)
local r, tick0, link
if opt.restore then
  local f = io.open(snap_path, "rb")
  if not f then die("restore: no snapshot " .. snap_path) end
  local chunk = assert(loadstring(f:read("*a")))
  f:close()
  local saved = chunk()
  tick0 = saved.tick
  -- what the clients were sent: whole packets only (a kill -9 can cut one)
  local g = io.open(out_path, "rb")
  local size = g and g:seek("end") or 0
  if g then g:close() end
  if size % 128 ~= 0 then assert(ffi.C.truncate(out_path, size - size % 128) == 0, "truncate failed") end
  r = T.restore(saved.snapshot)
  for _ = 1, tick0 do world.step() end
  world.held(S, held)
  -- the script's held set must be the snapshot's players
  local n = 0
  for i = 0, P - 1 do n = n + held[i] end
  if n ~= #saved.snapshot.players then die("restore: held set " .. n .. " ~= snapshot players " .. #saved.snapshot.players) end
else
  os.remove(out_path)
  tick0 = 0
  r = T.new({ seed = world.seed, aoi_radius = world.aoi, reach = world.reach, shard = S, shards = world.shards })
  world.populate_sites(r, S)
  sync_players(S, r, held, 0, true)
end
local from = r:stats().log_position
link = cluster.connect({ url = opt.url, stream = opt.stream, shard = S, shards = world.shards, from = from,
  storage = opt.storage, duplicate_every = opt.duplicate_every > 0 and opt.duplicate_every or nil,
  duplicate_raw_every = opt.duplicate_raw_every > 0 and opt.duplicate_raw_every or nil })

local out = assert(io.open(out_path, "ab"))
local written = floor((out:seek("end")) / 128)
local owner_log = assert(io.open(dir .. "/owner" .. S .. ".log", "ab"))
local poll_log = assert(io.open(dir .. "/poll" .. S .. ".log", "ab"))
local pump_log = assert(io.open(dir .. "/pump" .. S .. ".log", "ab"))   -- when a pump took records
owner_log:setvbuf("full") poll_log:setvbuf("full") pump_log:setvbuf("full")

local sent_last = 0
local function drain_once()
  local t_pump = now_us()
  local sent = link:pump(r)
  if sent and sent > 0 then pump_log:write(string.format("%.0f %d %.0f\n", now_us(), sent, t_pump)) end
  sent_last = sent or 0
  local n, bytes = r:poll()
  if n > 0 then
    local t = now_us()
    out:write(bytes)
    out:flush()
    poll_log:write(string.format("%d %d %.0f\n", written, n, t))
    written = written + n
  end
  return n
end

local start_us = opt.start_at * 1000000
local tick_us = floor(1000000 / opt.hz)
local busy_retries = 0
for t = tick0 + 1, opt.ticks do
  -- between ticks: pump and poll until this tick is due
  local due = start_us + t * tick_us
  while true do
    drain_once()
    local left = due - now_us()
    if left <= 0 then break end
    sleep_us(math.min(left, opt.pump_us))
  end
  local nm = world.step()
  sync_players(S, r, held, nm, true)
  local recs, nd = dig_records(S)
  if nd > 0 then
    local t_before = now_us()
    while true do
      local ok, why = r:dig_batch(recs)
      if ok then break end
      if why ~= "busy" then die("dig_batch: " .. tostring(why)) end
      busy_retries = busy_retries + 1
      drain_once()
    end
    owner_log:write(string.format("%d %.0f %.0f\n", t, t_before, now_us()))
  end
  drain_once()
  -- --eager-us N: after the digs, pump every 20 µs (for at most N µs) until
  -- the call's records are taken, instead of at the --pump-us pace
  if nd > 0 and (opt.eager_us or 0) > 0 then
    local stop = now_us() + opt.eager_us
    while sent_last == 0 and now_us() < stop do
      sleep_us(20)
      drain_once()
    end
  end
  owner_log:flush() poll_log:flush() pump_log:flush()   -- a kill -9 loses at most this tick's lines
  if t % opt.snapshot_every == 0 then
    -- every record taken so far is acked; no pump until the snapshot is
    -- written (a record taken after the flush but lost with a kill would be
    -- neither in the snapshot's outgoing nor re-made by the re-run)
    local ok, why = link:flush(10000)
    if not ok then die("link:flush before snapshot: " .. tostring(why)) end
    out:flush() owner_log:flush() poll_log:flush()
    write_file(snap_path, to_lua({ tick = t, snapshot = r:snapshot() }))
  end
end
owner_log:flush() poll_log:flush()

-- drain: until every entry addressed to this shard is applied
local expect
do
  local f = io.open(dir .. "/expect.txt", "rb")
  if not f then die("no " .. dir .. "/expect.txt (run the reference first)") end
  local k = 0
  for line in f:lines() do
    if k == S then expect = tonumber(line) end
    k = k + 1
  end
  f:close()
end
local deadline = now_us() + opt.drain_timeout * 1000000
local timed_out = false
while r:stats().applied_digs < expect do
  if now_us() > deadline then timed_out = true break end
  if drain_once() == 0 then sleep_us(opt.pump_us) end
end
local ok, why = link:flush(10000)
drain_once()
out:close() owner_log:close() poll_log:close() pump_log:close()

local st, ls = r:stats(), link:stats()
local function kv(t)
  local keys, parts = {}, {}
  for k, v in pairs(t) do if type(v) == "number" or type(v) == "boolean" then keys[#keys + 1] = k end end
  table.sort(keys)
  for _, k in ipairs(keys) do parts[#parts + 1] = string.format('"%s":%s', k, tostring(t[k])) end
  return "{" .. table.concat(parts, ",") .. "}"
end
local json = string.format('{"role":"shard","shard":%d,"restored":%s,"expect":%d,"timed_out":%s,"flushed":%s,' ..
  '"busy_retries":%d,"stats":%s,"link":%s}\n', S, tostring(opt.restore == true), expect, tostring(timed_out),
  tostring(ok == true), busy_retries, kv(st), kv(ls))
write_file(dir .. "/shard" .. S .. ".json", json)
io.stdout:write(string.format('{"role":"shard","shard":%d,"restored":%s,"expect":%d,"applied_digs":%d,' ..
  '"duplicate_digs":%d,"next_host_seq":%d,"log_position":%d,"timed_out":%s}\n', S, tostring(opt.restore == true),
  expect, st.applied_digs, st.duplicate_digs, st.next_host_seq, st.log_position, tostring(timed_out)))
link:close()
os.exit(timed_out and 3 or 0)
