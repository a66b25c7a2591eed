--- Issue 16: views (r:poll_view) held to the end of the process. Several
-- resolvers with digs in flight and a view each; one is closed, one is
-- dropped and collected; then the state closes (argv[2]: "end" falls off
-- the script, "exit-close" is os.exit(0, true)) with a shutdown guard made
-- last, which lua_close finalizes first: it reads every view (ended or not)
-- and takes one more from each open resolver. The process must exit 0: no
-- view read may touch freed memory, at any point of lua_close.
local ffi = require("ffi")
local C = require("common")
local M, name = C.backend(arg[1])
local how = arg[2] or "end"

local views, rs = {}, {}
for i = 1, 4 do
  local r = C.world(M, { workers = 2, aoi_radius = 16 }, 200)
  r:poll_view(0)
  local records = C.dig_records(200)
  r:dig_batch(records)
  r:flush()
  local n, p = r:poll_view()
  C.check(n > 0 and p ~= nil, "resolver %d: no view", i)
  views[#views + 1] = { p, n }
  for _ = 1, 5 do r:dig_batch(records) end -- in flight at exit (native)
  rs[i] = r
end
rs[1]:close()
rs[2] = nil
collectgarbage(); collectgarbage()

local guard = newproxy(true)
getmetatable(guard).__gc = function()
  pcall(function()
    local bytes = 0
    for _, v in ipairs(views) do bytes = bytes + #ffi.string(v[1], v[2] * 128) end
    for i = 3, 4 do
      local n, p = rs[i]:poll_view()
      if n > 0 then bytes = bytes + #ffi.string(p, n * 128) end
    end
    io.write("view_exit ", name, " ", how, ": guard read ", bytes, " bytes\n")
    io.flush()
  end)
end
KEEP = { guard = guard, rs = rs }
if how == "exit-close" then os.exit(0, true) end
