--- Per-call cost of crossing from LuaJIT into each backend (issue 3):
-- ns per `r:move`, `r:dig`, and per record of `move_batch`/`dig_batch`,
-- measured from a LuaJIT loop with CLOCK_MONOTONIC. Packets produced by digs
-- are drained with poll_into outside the timed sections.
--   luajit bench/call_cost.lua [--md]     (LUA_PATH/LUA_CPATH as for tests)
local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } tr_cc_timespec;
  int clock_gettime(int clk, tr_cc_timespec *ts);
]]
local ts = ffi.new("tr_cc_timespec")
local function now()
  ffi.C.clock_gettime(1, ts)
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end

local PLAYERS = 1000
local function world(M)
  local r = M.new({ aoi_radius = 4, reach = 8, workers = 1, max_pending_packets = 1e12 })
  for i = 1, PLAYERS do r:join(i, i * 16, 0, 0) end
  return r
end

local buf = ffi.new("uint8_t[?]", 65536 * 128)
local function drain(r)
  r:flush()
  while r:poll_into(buf, 65536) > 0 do end
end

local function median(t)
  table.sort(t)
  return t[math.floor(#t / 2) + 1]
end

local function measure(M)
  local r = world(M)
  local out = {}
  -- move: each call moves one player one block (stays in its cell mostly)
  local samples = {}
  for rep = 1, 7 do
    local N = 200000
    local t0 = now()
    for i = 1, N do
      local p = i % PLAYERS + 1
      r:move(p, p * 16 + (i % 2), 0, 0)
    end
    samples[rep] = (now() - t0) / N * 1e9
  end
  out.move = median(samples)
  -- dig: a block with no site, in reach: one NOTHING packet per dig
  samples = {}
  local t_us = 0
  for rep = 1, 7 do
    local N = 50000
    local t0 = now()
    for i = 1, N do
      local p = i % PLAYERS + 1
      t_us = t_us + 1
      r:dig(p, p * 16, 1, 0, t_us)
    end
    samples[rep] = (now() - t0) / N * 1e9
    drain(r)
  end
  out.dig = median(samples)
  -- batches: per record
  local dig_t = ffi.typeof("struct { uint32_t p; int32_t x, y, z; uint64_t t; }[?]")
  local mov_t = ffi.typeof("struct { uint32_t p; int32_t x, y, z; }[?]")
  local d, m = dig_t(PLAYERS), mov_t(PLAYERS)
  for i = 0, PLAYERS - 1 do
    d[i].p, d[i].x, d[i].y, d[i].z, d[i].t = i + 1, (i + 1) * 16, 1, 0, i
    m[i].p, m[i].x, m[i].y, m[i].z = i + 1, (i + 1) * 16 + 1, 0, 0
  end
  local ds, ms = ffi.string(d, PLAYERS * 24), ffi.string(m, PLAYERS * 16)
  samples = {}
  for rep = 1, 7 do
    local t0 = now()
    for _ = 1, 50 do r:move_batch(ms) end
    samples[rep] = (now() - t0) / (50 * PLAYERS) * 1e9
  end
  out.move_batch = median(samples)
  samples = {}
  for rep = 1, 7 do
    local t0 = now()
    for _ = 1, 20 do r:dig_batch(ds) end
    samples[rep] = (now() - t0) / (20 * PLAYERS) * 1e9
    drain(r)
  end
  out.dig_batch = median(samples)
  r:close()
  return out
end

local backends = {}
for _, b in ipairs({ { "lua", "treasure.legacy" }, { "native", "treasure.native" } }) do
  local ok, M = pcall(require, b[2])
  if ok then backends[#backends + 1] = { name = b[1], res = measure(M) } end
end

local rows = { { "move", "`r:move(p, x, y, z)`" }, { "dig", "`r:dig(p, x, y, z, t)` (1 packet)" },
  { "move_batch", "`move_batch`, per record" }, { "dig_batch", "`dig_batch`, per record (1 packet)" } }
local md = arg[1] == "--md"
if md then
  local head = "| call (ns, median of 7) |"
  local sep = "|---|"
  for _, b in ipairs(backends) do head = head .. " " .. b.name .. " |"; sep = sep .. "---:|" end
  if #backends == 2 then head = head .. " native/legacy |"; sep = sep .. "---:|" end
  print(head); print(sep)
end
for _, row in ipairs(rows) do
  local line = md and ("| " .. row[2] .. " |") or string.format("%-12s", row[1])
  for _, b in ipairs(backends) do
    line = line .. (md and string.format(" %.0f |", b.res[row[1]]) or string.format(" %s %8.1f ns", b.name, b.res[row[1]]))
  end
  if #backends == 2 then
    local ratio = backends[2].res[row[1]] / backends[1].res[row[1]]
    line = line .. (md and string.format(" %.2f |", ratio) or string.format("  ratio %.2f", ratio))
  end
  print(line)
end
