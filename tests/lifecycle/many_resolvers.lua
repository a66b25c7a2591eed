--- Issue 4: creating, using and dropping 1,000 resolvers keeps RSS flat.
-- Every resolver gets players, a site and digs still in flight when it is
-- let go; a third are closed explicitly, the rest are left to the GC.
local C = require("common")
local M, name = C.backend(arg[1])

local records = C.dig_records(32)
local function churn(n)
  for i = 1, n do
    local r = C.world(M, { workers = 2, aoi_radius = 16 }, 32)
    r:dig_batch(records)
    if i % 3 == 0 then r:close() end
    if i % 50 == 0 then collectgarbage("collect") end
  end
  collectgarbage("collect")
  collectgarbage("collect")
end

churn(100)
local base = C.rss_kb()
churn(1000)
local after = C.rss_kb()
C.check(after - base < 16 * 1024, "%s: RSS grew from %d kB to %d kB over 1000 resolvers", name, base, after)
print(string.format("many_resolvers %s: RSS %d kB -> %d kB after 1000 more resolvers", name, base, after))
