--- Issue 12 item 4: the thread count is bounded by the cores whatever the
-- caller does. 400 resolvers with workers = 32, each with a FOUND dig really
-- resolved by the workers, dropped WITHOUT close and with the GC stopped (so
-- none is finalized): the process's threads (/proc/self/task) must stay
-- within cores + 4 throughout. With a pool per resolver this peaked at
-- thousands of threads.
local C = require("common")
local M, name = C.backend(arg[1])
local ffi = require("ffi")
pcall(ffi.cdef, "int getpid(void);")
local pid = ffi.C.getpid()

local function threads()
  local p = assert(io.popen("ls /proc/" .. pid .. "/task"))
  local n = 0
  for _ in p:lines() do n = n + 1 end
  p:close()
  return n
end

local p = assert(io.popen("nproc"))
local cores = assert(tonumber(p:read("*l")))
p:close()
local bound = cores + 4

collectgarbage("stop")
local peak = threads()
for i = 1, 400 do
  local r = C.world(M, { workers = 32 }, 8)
  local seq = r:dig(1, 0, 0, 0, i)
  C.check(seq == 1, "%s: resolver %d: dig gave %s", name, i, tostring(seq))
  if i % 4 == 0 then
    -- Some are drained first, so their work surely ran on the workers.
    r:flush()
    local n = r:poll()
    C.check(n == 8, "%s: resolver %d: polled %d packets, want 8", name, i, n)
  end
  local t = threads()
  if t > peak then peak = t end
  C.check(t <= bound, "%s: %d threads after %d dropped resolvers (cores %d, bound %d)",
    name, t, i, cores, bound)
  r = nil -- dropped, not closed
end
collectgarbage("restart")
collectgarbage("collect")
print(string.format("threads %s: peak %d threads over 400 dropped resolvers with workers = 32 (cores %d, bound %d)",
  name, peak, cores, bound))
