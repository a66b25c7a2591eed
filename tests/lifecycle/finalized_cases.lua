-- The lifecycle cases of tests/lua/lifecycle_spec.lua as one plain script,
-- sized for valgrind memcheck (issue 12 item 1):
--   valgrind --error-exitcode=99 luajit tests/lifecycle/finalized_cases.lua
-- Stale handles (closed, finalized by another finalizer of the same cycle,
-- resurrected, methods fetched earlier), a pre-fork resolver in a forked
-- child, and a shutdown guard that runs at lua_close after the resolver was
-- finalized. Exits 0 and prints "finalized_cases: ok" when every answer is
-- the contract's; memcheck reports any read of freed memory.
jit.off() -- Debian's 2.1.0-beta3 misbehaves running finalizers under the JIT
local ffi = require("ffi")
local T = require("treasure.native")
ffi.cdef([[int fork(void); void _exit(int); int waitpid(int, int *, int); int getpid(void);]])

local ENTRY = { { item = 1, weight = 1, min = 1, max = 1, rarity = 0 } }
local function world()
  local r = T.new({ seed = 3, aoi_radius = 8, reach = 4 })
  r:add_loot_table(1, ENTRY)
  r:add_site(1, 0, 0, 0, 1, 5)
  r:join(1, 0, 0, 0)
  for t = 1, 20 do r:dig(1, 0, 0, 0, t) end
  return r
end
local CALLS = {
  { "dig", 1, 0, 0, 0, 7 }, { "move", 1, 1, 0, 0 }, { "dig_batch", ("\0"):rep(24) },
  { "move_batch", ("\0"):rep(16) }, { "poll_into", ffi.new("uint8_t[?]", 256), 2 },
  { "poll" }, { "flush" }, { "wait", 0 }, { "stats" }, { "snapshot" }, { "join", 2, 0, 0, 0 },
}
local function expect(m, f, ...)
  local ok, e = pcall(f, ...)
  local want = "treasure: " .. m .. ": resolver is closed"
  if ok or e ~= want then error(("%s: want %q, got %s %s"):format(m, want, tostring(ok), tostring(e)), 0) end
end
local function all_closed(r, fetched)
  for _, c in ipairs(CALLS) do
    expect(c[1], function() return r[c[1]](r, unpack(c, 2)) end)
    if fetched then expect(c[1], fetched[c[1]], r, unpack(c, 2)) end
  end
  assert(pcall(r.close, r))
  assert(tostring(r) == "treasure.native resolver (closed)")
end

-- closed
local r = world()
local fetched = {}
for _, c in ipairs(CALLS) do fetched[c[1]] = r[c[1]] end
r:close()
all_closed(r, fetched)

-- finalized in the same cycle as another object whose __gc resurrects it
for _ = 1, 20 do
  local kept, early = nil, {}
  local log = {}
  local function make()
    local box = {}
    local guard = newproxy(true)
    getmetatable(guard).__gc = function()
      kept = box.r
      local ok, e = pcall(function() return box.r:dig(1, 0, 0, 0, 1) end)
      log[1] = tostring(ok) .. " " .. tostring(e)
    end
    box.g = guard
    box.r = world()
    for _, c in ipairs(CALLS) do early[c[1]] = box.r[c[1]] end
  end
  make()
  collectgarbage(); collectgarbage()
  assert(log[1] == "false treasure: dig: resolver is closed", log[1])
  collectgarbage(); collectgarbage()
  all_closed(kept, early)
end

-- fork: the child answers at once and exits; close and GC there do not hang
local pre = world()
local dropped = world()
local parent = ffi.C.getpid()
local pid = ffi.C.fork()
if pid == 0 then
  local ok, e = pcall(pre.flush, pre)
  local want = "treasure: flush: resolver was created in process " .. parent .. " and used in process " ..
    ffi.C.getpid() .. "; create it after the fork (OpenResty: init_worker_by_lua)"
  local good = not ok and e == want and pcall(pre.close, pre)
  dropped = nil
  collectgarbage(); collectgarbage()
  ffi.C._exit(good and 0 or 1)
end
local st = ffi.new("int[1]")
assert(ffi.C.waitpid(pid, st, 0) == pid and st[0] == 0, "fork child failed: status " .. st[0])
pre:flush(); assert(pre:poll() == 20)
pre:close(); dropped:close()

-- lua_close: this guard is created before the resolver, so the resolver is
-- finalized first; the guard's drain must get the contract's message.
local late = {}
local guard = newproxy(true)
getmetatable(guard).__gc = function()
  local ok, e = pcall(function() late.r:flush(); return late.r:poll() end)
  io.stdout:write("at exit: ", tostring(ok), " ", tostring(e), "\n")
end
late.g = guard
late.r = world()
KEEP_UNTIL_EXIT = late
print("finalized_cases: ok")
