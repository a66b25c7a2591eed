-- Issue 15: what an event loop needs, on every backend.
--  * r:fd(): readable whenever poll would return >= 1 packet, unreadable once
--    polled empty, woken with no lost wakeup, closed by close()/GC.
--  * r:in_flight() and stats() never block; stats() right after a huge
--    dig_batch in a dense world returns while the work is still in flight.
--  * the latency histogram keys of stats() are cumulative and end at count.

local backends = require("backends")
local S = require("support")
local ffi = require("ffi")

if not pcall(ffi.typeof, "struct treasure_spec_pollfd") then
  ffi.cdef([[
struct treasure_spec_pollfd { int fd; short events; short revents; };
int treasure_spec_poll(struct treasure_spec_pollfd *fds, unsigned long nfds, int timeout) asm("poll");
int treasure_spec_fcntl(int fd, int cmd) asm("fcntl");
]])
end
if not pcall(ffi.typeof, "struct treasure_spec_rlimit") then
  ffi.cdef([[
struct treasure_spec_rlimit { uint64_t rlim_cur, rlim_max; };
int treasure_spec_getrlimit(int resource, struct treasure_spec_rlimit *rlim) asm("getrlimit");
int treasure_spec_setrlimit(int resource, const struct treasure_spec_rlimit *rlim) asm("setrlimit");
int treasure_spec_open(const char *path, int flags) asm("open");
int treasure_spec_close(int fd) asm("close");
]])
end
local C = ffi.C
local POLLIN, F_GETFD, FD_CLOEXEC = 1, 1, 1
local RLIMIT_NOFILE = 7 -- Linux
local pfd = ffi.new("struct treasure_spec_pollfd[1]")

--- Is fd readable within `ms` milliseconds (0: right now)?
local function readable(fd, ms)
  pfd[0].fd, pfd[0].events, pfd[0].revents = fd, POLLIN, 0
  return C.treasure_spec_poll(pfd, 1, ms or 0) == 1 and pfd[0].revents == POLLIN
end

local function is_open(fd)
  return C.treasure_spec_fcntl(fd, F_GETFD) ~= -1
end

local ENTRY = { { item = 1, weight = 1, min = 1, max = 1, rarity = 0 } }

local function world(T, players)
  local r = T.new({ seed = 1, aoi_radius = 64, reach = 8 })
  r:add_loot_table(1, ENTRY)
  r:add_site(1, 1, 0, 0, 1, 4000000000)
  for p = 1, players do r:join(p, p % 5, (p * 3) % 5, 0) end -- all within reach of the site
  return r
end

for _, B in ipairs(backends) do
  local T = B.module
  local native = B.name == "native"

  describe(B.name .. " readiness (issue 15)", function()
    it("fd() is one eventfd: close-on-exec, unreadable until a dig, readable until polled empty", function()
      local r = world(T, 3)
      local fd = r:fd()
      assert.is_number(fd)
      assert.equals(fd, r:fd())
      assert.equals(FD_CLOEXEC, C.treasure_spec_fcntl(fd, F_GETFD))
      assert.is_false(readable(fd))
      r:dig(1, 1, 0, 0, 5)
      assert.is_true(readable(fd, 5000), "a dig's packets wake the fd")
      local buf = ffi.new("uint8_t[?]", 128)
      assert.equals(1, r:poll_into(buf, 1))
      r:flush()
      local n = r:poll()
      assert.is_true(n >= 1)
      assert.is_false(readable(fd), "polled empty: unreadable")
      r:close()
      assert.is_false(is_open(fd), "close() closes the eventfd")
    end)

    it("fd() made when packets are already pending is readable at once", function()
      local r = world(T, 2)
      r:dig(1, 1, 0, 0, 5)
      r:flush()
      local fd = r:fd()
      assert.is_true(readable(fd))
      r:poll()
      assert.is_false(readable(fd))
      r:close()
    end)

    -- In a child process: a full collection inside busted can spin forever
    -- on legacy even without fd() (seen with LuaJIT 2.1.0-beta3, reported
    -- to the lead); the child keeps this check about the eventfd alone.
    it("GC of a resolver closes its eventfd", function()
      local code = ([[
local ffi = require("ffi")
ffi.cdef("int fcntl(int fd, int cmd);")
local r = require("%s").new()
local fd = r:fd()
r = nil
collectgarbage(); collectgarbage()
io.write(ffi.C.fcntl(fd, 1) == -1 and "closed" or "open")
]]):format(B.name == "native" and "treasure.native" or "treasure.legacy")
      local path = os.tmpname()
      local f = assert(io.open(path, "w")); f:write(code); f:close()
      local p = io.popen("timeout 30 " .. (os.getenv("LUAJIT") or "luajit") .. " " .. path .. " 2>&1")
      local out = p:read("*a"); p:close(); os.remove(path)
      assert.equals("closed", out)
    end)

    it("no lost wakeup: 300 rounds of dig / wait on the fd / drain", function()
      local r = world(T, 40)
      local fd = r:fd()
      local buf = ffi.new("uint8_t[?]", 64 * 128)
      local total = 0
      for round = 1, 300 do
        local batch = {}
        for i = 1, (round % 5) + 1 do batch[i] = { (i % 40) + 1, 1, 0, 0, round } end
        r:dig_batch(S.dig_records(batch))
        -- the loop sleeps on the fd only; never on r:wait/flush
        for spin = 1, 1e6 do
          assert(spin < 1e6, "round " .. round .. ": the fd stays readable with nothing to poll")
          assert.is_true(readable(fd, 5000), "round " .. round .. ": no wakeup")
          local n = r:poll_into(buf, 64)
          total = total + n
          if n == 0 then
            -- a spurious wakeup is allowed; polling empty reset it
            assert.is_false(readable(fd) and r:in_flight() == 0 and r:wait(0) == 0)
          end
          if r:in_flight() == 0 and r:wait(0) == 0 then
            r:poll_into(buf, 0) -- nothing left: the fd must now be unreadable
            assert.is_false(readable(fd), "round " .. round .. ": readable with nothing to poll")
            break
          end
        end
      end
      r:flush()
      assert.equals(r:stats().packets, total)
      r:close()
    end)

    it("fd() out of descriptors raises the OS error and changes nothing; the next fd() works", function()
      local r = world(T, 3)
      r:dig(1, 1, 0, 0, 5)
      r:flush()
      -- the soft descriptor limit lowered to the lowest free descriptor, so
      -- that the eventfd cannot be made (EMFILE), then restored
      local lim = ffi.new("struct treasure_spec_rlimit")
      assert.equals(0, C.treasure_spec_getrlimit(RLIMIT_NOFILE, lim))
      local saved = lim.rlim_cur
      local lowest = C.treasure_spec_open("/dev/null", 0)
      assert.is_true(lowest >= 0)
      C.treasure_spec_close(lowest)
      lim.rlim_cur = lowest
      assert.equals(0, C.treasure_spec_setrlimit(RLIMIT_NOFILE, lim))
      local ok, err = pcall(r.fd, r)
      lim.rlim_cur = saved
      assert.equals(0, C.treasure_spec_setrlimit(RLIMIT_NOFILE, lim))
      assert.is_false(ok)
      assert.equals("treasure: fd: eventfd failed: Too many open files (errno 24)", err)
      -- nothing changed: the packet is still pending, and fd() now works
      local fd = r:fd()
      assert.is_number(fd)
      assert.is_true(readable(fd, 5000), "packets already pending make the new fd readable")
      assert.equals(3, (r:poll()))   -- the digger and the two others in the AOI
      assert.equals(0, (r:poll()))
      assert.is_false(readable(fd))
      r:close()
    end)

    it("fd() and in_flight() on a closed resolver raise 'resolver is closed'", function()
      local r = world(T, 1)
      r:close()
      assert.has_error(function() r:fd() end, "treasure: fd: resolver is closed")
      assert.has_error(function() r:in_flight() end, "treasure: in_flight: resolver is closed")
    end)

    it("stats() returns at once after a huge dig_batch in a dense world; in_flight() says what is left", function()
      local players = native and 600 or 100
      local digs = native and 6000 or 300
      local r = world(T, players)
      local batch = {}
      for i = 1, digs do batch[i] = { (i % players) + 1, 1, 0, 0, i } end
      local recs = S.dig_records(batch)
      if not pcall(ffi.typeof, "struct treasure_spec_ts") then
        ffi.cdef([[
struct treasure_spec_ts { long tv_sec; long tv_nsec; };
int treasure_spec_clock_gettime(int clk, struct treasure_spec_ts *ts) asm("clock_gettime");
]])
      end
      local ts = ffi.new("struct treasure_spec_ts")
      local function us()
        C.treasure_spec_clock_gettime(1, ts) -- CLOCK_MONOTONIC
        return tonumber(ts.tv_sec) * 1e6 + tonumber(ts.tv_nsec) / 1e3
      end
      assert.is_number(r:dig_batch(recs))
      local t0 = us()
      local s = r:stats()
      local t1 = us()
      local inflight = r:in_flight()
      print(string.format("\n  [%s] stats() right after a %d-dig batch over %d players: %.0f us, inflight_digs %d",
        B.name, digs, players, t1 - t0, s.inflight_digs))
      if native then
        assert.is_true(s.inflight_digs > 0, "stats() did not wait: digs still in flight")
        assert.is_true(s.pending_packets < digs * players, "pending_packets counts resolved packets only")
      else
        assert.equals(0, s.inflight_digs)
        assert.equals(0, inflight)
      end
      assert.is_true(inflight <= digs)
      r:flush()
      assert.equals(0, r:in_flight())
      local f = r:stats()
      assert.equals(0, f.inflight_digs)
      assert.equals(digs * players, f.pending_packets)
      assert.equals(digs * players, f.packets)
      r:close()
    end)

    it("the resolve latency buckets are cumulative and end at resolve_count (= digs once flushed)", function()
      local r = world(T, 5)
      for i = 1, 50 do r:dig((i % 5) + 1, 1, 0, 0, i) end
      r:flush()
      local s = r:stats()
      local C = require("treasure.contract")
      local prev = 0
      for i, b in ipairs(C.RESOLVE_BUCKETS_US) do
        local v = s["resolve_bucket_le_" .. b .. "_us"]
        assert.is_number(v, C.RESOLVE_BUCKET_KEYS[i])
        assert.is_true(v >= prev)
        prev = v
      end
      assert.is_true(prev <= s.resolve_count)
      assert.equals(50, s.resolve_count)
      assert.is_true(s.resolve_sum_us >= 0)
      if not native then
        assert.equals(50, prev)
        assert.equals(0, s.resolve_sum_us)
      end
      r:close()
    end)
  end)
end
