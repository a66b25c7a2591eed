--- Issue 4: the process exits cleanly when the script ends (LuaJIT closes
-- the state and dlcloses the module) or calls os.exit while workers are
-- still resolving. argv[2] picks the way out.
local C = require("common")
local M = require("treasure.native")
local how = arg[2] or "end"

local rs = {}
for i = 1, 4 do
  local r = C.world(M, { workers = 4, aoi_radius = 16 }, 256)
  local records = C.dig_records(256)
  for _ = 1, 20 do r:dig_batch(records) end
  rs[i] = r
end
io.write("exit_inflight ", how, ": leaving with digs in flight\n")
io.flush()
if how == "exit" then os.exit(0) end
if how == "exit-close" then os.exit(0, true) end
-- "end": fall off the end of the script
