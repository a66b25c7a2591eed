--- Issue 4: polling with poll_into creates no per-packet Lua garbage.
-- Plays at least 1,000,000 packets through dig_batch + poll_into.
--   native: with the GC *stopped*, the Lua heap may grow by at most 256 kB
--           over the whole run (a per-packet allocation of even 8 bytes
--           would be 8 MB).
--   both:   after a full collection the heap is back within 256 kB of where
--           it started (nothing retained per packet).
local C = require("common")
local ffi = require("ffi")
local M, name = C.backend(arg[1])

local PLAYERS = 64            -- 64 digs a batch, each to all 64 players
local r = C.world(M, { aoi_radius = 16, reach = 8 }, PLAYERS)
local records = C.dig_records(PLAYERS)
local MAX = 1024
local buf = ffi.new("uint8_t[?]", MAX * 128)
local u32p = ffi.typeof("const uint32_t *")

local function pump(target)
  local got, checksum = 0, 0
  while got < target do
    local first = r:dig_batch(records)
    C.check(first ~= nil, "dig_batch refused as busy")
    r:flush()
    while true do
      local n = r:poll_into(buf, MAX)
      if n == 0 then break end
      for i = 0, n - 1 do
        checksum = checksum + ffi.cast(u32p, buf + i * 128 + 32)[0]
      end
      got = got + n
    end
  end
  return got, checksum
end

pump(50000) -- warm up: JIT traces, internal buffers at their working size
collectgarbage("collect")
local base = collectgarbage("count")
local strict = name == "native"
if strict then collectgarbage("stop") end
local got = pump(1000000)
local grown = collectgarbage("count") - base
if strict then
  C.check(grown < 256, "%s: Lua heap grew %.1f kB over %d packets with the GC stopped", name, grown, got)
  collectgarbage("restart")
end
collectgarbage("collect")
local retained = collectgarbage("count") - base
C.check(retained < 256, "%s: %.1f kB retained after %d packets", name, retained, got)
print(string.format("heap_flat %s: %d packets, heap +%.1f kB (GC %s), +%.1f kB after full GC",
  name, got, grown, strict and "stopped" or "running", retained))
r:close()
