-- Lifecycle (issue 12 items 1 and 5, DECISIONS.md "Lifecycle"): once a
-- resolver is closed or its userdata finalized (GC, lua_close, resurrection),
-- every method on every path raises `treasure: <method>: resolver is closed`
-- and touches no freed memory; in a forked child every method of a resolver
-- made before the fork raises at once (self, then forked, then closed).
--
-- On 1.0.0 these cases crash (a stale FFI handle read freed memory), raise
-- mlua's "userdata has been destructed", or hang (flush in a forked child).
-- The cases that could take the process down run in a child process: a
-- script (process exit) or fork() (the fork cases), with a timeout.
--
-- Finalizers here never raise (pcall inside), and the cases that run them
-- do so with the JIT off: Debian's LuaJIT 2.1.0-beta3 can crash when a __gc
-- raises while compiled code runs, and was seen to spin forever in its own
-- machine code running these finalizers with the JIT on, on the legacy
-- backend too (its bug, not ours; docs: supported runtimes).

local backends = require("backends")
local ffi = require("ffi")

for _, decl in ipairs({
  "int fork(void);", "void _exit(int status);", "int waitpid(int pid, int *status, int options);",
  "int getpid(void);", "int pipe(int fd[2]);", "long write(int fd, const void *buf, size_t n);",
  "long read(int fd, void *buf, size_t n);", "int close(int fd);", "int kill(int pid, int sig);",
  "int usleep(unsigned int us);",
}) do
  pcall(ffi.cdef, decl) -- another spec may have declared it already
end
local C = ffi.C

local LUAJIT = os.getenv("LUAJIT") or "luajit"
local ENTRY = { { item = 1, weight = 1, min = 1, max = 1, rarity = 0 } }

-- Every method with arguments that succeed on an open world() resolver.
local function method_calls()
  return {
    { "add_loot_table", 2, ENTRY }, { "add_site", 2, 5, 5, 5, 1, 3 }, { "remove_site", 1 },
    { "join", 3, 0, 0, 0 }, { "move", 1, 1, 0, 0 }, { "set_party", 1, 4 },
    { "dig", 1, 0, 0, 0, 7 }, { "dig_batch", "" }, { "move_batch", "" }, { "poll" },
    { "poll_into", ffi.new("uint8_t[?]", 256), 2 }, { "flush" }, { "wait", 0 }, { "stats" },
    { "snapshot" }, { "leave", 1 }, { "in_flight" }, { "fd" },
    { "poll_view", 2 }, { "release_view" },
  }
end

local function world(T)
  local r = T.new({ seed = 3, aoi_radius = 8, reach = 4 })
  r:add_loot_table(1, ENTRY)
  r:add_site(1, 0, 0, 0, 1, 5)
  r:join(1, 0, 0, 0)
  return r
end

-- Runs f with the JIT off (restored after, also on error).
local function jit_off(f)
  return function()
    local was_on = jit.status()
    jit.off(); jit.flush()
    local ok, e = pcall(f)
    if was_on then jit.on() end
    if not ok then error(e, 0) end
  end
end

local function closed(m) return "treasure: " .. m .. ": resolver is closed" end

local function err_of(f, ...)
  local ok, e = pcall(f, ...)
  if ok then return "ok" end
  return tostring(e)
end

-- A resolver finalized by the GC but reachable again: another object's __gc
-- (same collection) stores it. The resolver is created after that object,
-- so Lua finalizes it first (reverse order of creation). `fetch` lists
-- methods to fetch (`local dig = r.dig`) while it is alive.
local function resurrect(T, fetch)
  local fetched = {}
  local function make() -- in its own frame, so no stack slot keeps them alive
    local box = {}
    local guard = newproxy(true)
    getmetatable(guard).__gc = function() _G.__treasure_lifecycle_kept = box.r end
    box.g = guard
    box.r = world(T)
    for _, m in ipairs(fetch or {}) do fetched[m] = box.r[m] end
  end
  make()
  collectgarbage(); collectgarbage()
  local r = _G.__treasure_lifecycle_kept
  _G.__treasure_lifecycle_kept = nil
  assert(r ~= nil, "the guard's finalizer did not run")
  collectgarbage(); collectgarbage() -- later cycles: still usable as a closed resolver
  return r, fetched
end

-- Runs `code` as a LuaJIT script in its own process (the test's LUA_PATH and
-- LUA_CPATH, TREASURE_NATIVE_FFI inherited); returns exit status and output.
local function run_script(code)
  local path = os.tmpname()
  local f = assert(io.open(path, "w"))
  f:write(code)
  f:close()
  local p = io.popen("timeout 60 " .. LUAJIT .. " " .. path .. " 2>&1; echo \"rc=$?\"")
  local out = p:read("*a")
  p:close()
  os.remove(path)
  local rc = tonumber(out:match("rc=(%d+)%s*$"))
  return rc, (out:gsub("rc=%d+%s*$", ""))
end

-- Runs `body` in a forked child; the child reports body's return (a string)
-- through a pipe and _exits. The parent waits at most `seconds`, then kills
-- it: a hang is a failure, never a stuck suite. Returns status, report.
local function in_child(body, seconds)
  local fds = ffi.new("int[2]")
  assert(C.pipe(fds) == 0, "pipe")
  io.stdout:flush(); io.stderr:flush()
  local pid = C.fork()
  assert(pid >= 0, "fork failed")
  if pid == 0 then
    C.close(fds[0])
    local ok, s = pcall(body)
    local msg = (ok and "" or "child raised: ") .. tostring(s)
    C.write(fds[1], msg, #msg)
    C._exit(ok and 0 or 1)
  end
  C.close(fds[1])
  local st = ffi.new("int[1]")
  local done = false
  for _ = 1, (seconds or 15) * 100 do
    if C.waitpid(pid, st, 1 --[[WNOHANG]]) == pid then done = true; break end
    C.usleep(10000)
  end
  if not done then
    C.kill(pid, 9)
    C.waitpid(pid, st, 0)
  end
  local chunks, buf = {}, ffi.new("char[4096]")
  while true do
    local n = tonumber(C.read(fds[0], buf, 4096))
    if n <= 0 then break end
    chunks[#chunks + 1] = ffi.string(buf, n)
  end
  C.close(fds[0])
  assert(done, "the child hung (killed after " .. (seconds or 15) .. " s); it said: " .. table.concat(chunks))
  return st[0], table.concat(chunks), pid
end

for _, B in ipairs(backends) do
  local T = B.module
  local native = B.name == "native"
  describe(B.name .. " lifecycle", function()
    it("every method after close or finalization, called as r:m() and fetched earlier, says closed", jit_off(function()
      -- closed by close(): methods fetched before and after
      local r = world(T)
      local early = {}
      for _, c in ipairs(method_calls()) do early[c[1]] = r[c[1]] end
      r:close()
      for _, c in ipairs(method_calls()) do
        local m = c[1]
        assert.equals(closed(m), err_of(function() return r[m](r, unpack(c, 2)) end))
        assert.equals(closed(m), err_of(early[m], r, unpack(c, 2)))
      end
      -- finalized by the GC, then resurrected: a stale handle on native
      local names = {}
      for _, c in ipairs(method_calls()) do names[#names + 1] = c[1] end
      local f, fetched = resurrect(T, names)
      for _, c in ipairs(method_calls()) do
        local m = c[1]
        local got = err_of(function() return f[m](f, unpack(c, 2)) end)
        local got_early = err_of(fetched[m], f, unpack(c, 2))
        -- both backends: a legacy resolver is a finalizable userdata too
        assert.equals(closed(m), got)
        assert.equals(closed(m), got_early)
      end
      -- close and tostring on a finalized resolver do not raise
      assert.equals("ok", err_of(function() return f:close() end))
      assert.equals("ok", err_of(tostring, f))
      assert.equals(native and "treasure.native resolver (closed)" or "treasure.resolver(lua, closed)", tostring(f))
    end))

    it("a method called from another object's __gc in the same collection as the resolver", jit_off(function()
      local log = {}
      local function make() -- in its own frame, so no stack slot keeps them alive
        local box = {}
        local guard = newproxy(true)
        getmetatable(guard).__gc = function()
          local r = box.r
          log[#log + 1] = err_of(function() return r:dig(1, 0, 0, 0, 9) end)
          log[#log + 1] = err_of(function() return r:flush() end)
          log[#log + 1] = err_of(function() return r:poll_into(ffi.new("uint8_t[256]"), 2) end)
          log[#log + 1] = err_of(tostring, r)
          log[#log + 1] = err_of(function() return r:close() end)
        end
        box.g = guard
        box.r = world(T) -- created after the guard: finalized before it
        box.r:dig(1, 0, 0, 0, 1) -- work in flight
      end
      make()
      collectgarbage(); collectgarbage()
      assert.same({ closed("dig"), closed("flush"), closed("poll_into"), "ok", "ok" }, log)
    end))

    it("at process exit (lua_close) a shutdown guard draining the resolver does not crash", function()
      local template = [[
        local T = require(%q)
        local box = {}
        local function drain()
          local ok, e = pcall(function() local r = box.r; r:flush(); return (r:poll()) end)
          io.stdout:write(%q, " ", tostring(ok), " ", tostring(e), "\n")
          io.stdout:flush()
        end
        local function resolver()
          local r = T.new({ seed = 1, aoi_radius = 8, reach = 4 })
          r:add_loot_table(1, { { item = 1, weight = 1, min = 1, max = 1, rarity = 0 } })
          r:add_site(1, 0, 0, 0, 1, 5); r:join(1, 0, 0, 0)
          for t = 1, 50 do r:dig(1, 0, 0, 0, t) end -- in flight at exit
          return r
        end
        local function guard() local g = newproxy(true); getmetatable(g).__gc = drain; return g end
        %s
        KEEP = box
      ]]
      local modname = package.loaded["treasure.native"] == T and "treasure.native" or "treasure.legacy"
      -- guard made first: lua_close finalizes the resolver before the guard runs
      local rc, out = run_script(template:format(modname, "late-guard", "box.g = guard(); box.r = resolver()"))
      assert.equals(0, rc, out)
      assert.equals("late-guard false " .. closed("flush") .. "\n", out)
      -- guard made last: it runs first and drains every packet
      rc, out = run_script(template:format(modname, "early-guard", "box.r = resolver(); box.g = guard()"))
      assert.equals(0, rc, out)
      assert.equals("early-guard true 50\n", out)
    end)

    it("fork: a resolver made before fork() raises at once in the child, close/GC there do not hang", jit_off(function()
      local r = world(T)
      r:dig(1, 0, 0, 0, 1)
      local dropped = world(T) -- never closed: the child's GC finalizes it
      local parent = C.getpid()
      local status, report, child = in_child(function()
        local out = {}
        for _, c in ipairs(method_calls()) do
          out[#out + 1] = c[1] .. "=" .. err_of(function() return r[c[1]](r, unpack(c, 2)) end)
        end
        out[#out + 1] = "close=" .. err_of(function() return r:close() end)
        out[#out + 1] = "after_close=" .. err_of(function() return r:flush() end)
        dropped = nil
        collectgarbage(); collectgarbage()
        out[#out + 1] = "gc=done"
        return table.concat(out, "\n")
      end, 10)
      assert.equals(0, status, report)
      local want = {}
      for _, c in ipairs(method_calls()) do
        if native then
          want[#want + 1] = c[1] .. "=treasure: " .. c[1] .. ": resolver was created in process " .. parent ..
            " and used in process " .. child .. "; create it after the fork (OpenResty: init_worker_by_lua)"
        else
          want[#want + 1] = c[1] .. "=ok" -- legacy has no threads: it keeps working
        end
      end
      want[#want + 1] = "close=ok"
      want[#want + 1] = native and ("after_close=treasure: flush: resolver was created in process " .. parent ..
        " and used in process " .. child .. "; create it after the fork (OpenResty: init_worker_by_lua)")
        or ("after_close=" .. closed("flush"))
      want[#want + 1] = "gc=done"
      assert.same(want, (function() local t = {} for l in report:gmatch("[^\n]+") do t[#t + 1] = l end return t end)())
      -- the parent's resolver is untouched
      r:flush()
      assert.equals(1, (r:poll()))
      r:close(); dropped:close()
    end))

    it("fork: a resolver created in the child works there", function()
      local status, report = in_child(function()
        local r = world(T)
        local seq = r:dig(1, 0, 0, 0, 1)
        r:flush()
        local n = r:poll()
        r:close()
        return "seq=" .. tostring(seq) .. " polled=" .. tostring(n)
      end, 10)
      assert.equals(0, status, report)
      assert.equals("seq=1 polled=1", report)
    end)
  end)
end
