--- Helpers for the lifecycle scripts: each script exits 0 when its checks
-- hold and raises (exit 1) otherwise.
local ffi = require("ffi")
local C = {}

--- The backend module named by argv[1] ("lua" or "native", default native).
function C.backend(name)
  name = name or "native"
  return require(name == "lua" and "treasure.legacy" or "treasure.native"), name
end

--- Resident set size of this process in kB, from /proc.
function C.rss_kb()
  local f = assert(io.open("/proc/self/status"))
  local s = f:read("*a")
  f:close()
  return tonumber(s:match("VmRSS:%s*(%d+)"))
end

local rec_t = ffi.typeof("struct { uint32_t player; int32_t x, y, z; uint64_t t_us; }")
--- One dig_batch string: every player in 1..players digs the block (0,0,0).
function C.dig_records(players)
  local buf = ffi.new(ffi.typeof("$[?]", rec_t), players)
  for i = 0, players - 1 do
    buf[i].player, buf[i].x, buf[i].y, buf[i].z, buf[i].t_us = i + 1, 0, 0, 0, i
  end
  return ffi.string(buf, players * 24)
end

--- A small dense world: `players` players within reach of site 1 on (0,0,0),
-- all in each other's AOI, half of them in party 7.
function C.world(M, opts, players)
  local r = M.new(opts)
  r:add_loot_table(1, { { item = 5, weight = 1, min = 1, max = 3, rarity = 1 } })
  r:add_site(1, 0, 0, 0, 1, 4294967295)
  for i = 1, players do r:join(i, i % 3, 0, (i * 7) % 3, i % 2 == 0 and 7 or 0) end
  return r
end

function C.check(cond, fmt, ...)
  if not cond then error(string.format(fmt, ...), 0) end
end

return C
