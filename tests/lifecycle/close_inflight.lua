--- Issue 4/7: close() with digs in flight waits for them and frees the
-- resolver; every later call raises; a resolver collected with undelivered
-- packets is freed without a crash.
local C = require("common")
local M, name = C.backend(arg[1])

local r = C.world(M, { workers = 4, aoi_radius = 16 }, 256)
local records = C.dig_records(256)
for _ = 1, 20 do r:dig_batch(records) end   -- 5,120 digs, 1.3 M packets in flight
r:close()
r:close() -- twice is fine
for _, m in ipairs({ "dig", "poll", "flush", "stats", "join", "poll_into" }) do
  local ok, err = pcall(r[m], r, 1, 0, 0, 0, 0)
  C.check(not ok and err == "treasure: " .. m .. ": resolver is closed", "%s after close: %s", m, tostring(err))
end

local g = C.world(M, { workers = 4, aoi_radius = 16 }, 256)
for _ = 1, 10 do g:dig_batch(records) end
g = nil -- luacheck: ignore
collectgarbage("collect")
collectgarbage("collect")
print("close_inflight " .. name .. ": close and collection with digs in flight are clean")
