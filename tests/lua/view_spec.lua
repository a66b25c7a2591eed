-- Issue 16 item 1: r:poll_view([max]), the zero-copy drain, on every backend
-- and both native call paths (tests/lua/backends.lua; the Makefile runs the
-- suite again with TREASURE_NATIVE_FFI=0).
--  * the bytes are poll_into's, in stream order, however views, poll_into
--    and poll are interleaved; counts obey max, VIEW_RUN_PACKETS and the
--    pending count; max = 0 and an empty stream take nothing;
--  * a view stays unchanged until the next poll of its resolver, whatever
--    else runs meanwhile (digs, other resolvers' workers and views);
--  * a view read after it ended (next poll, release_view, close, GC of the
--    resolver, swap, from a finalizer, in a forked child) reads mapped
--    memory: the process survives and the bytes are packet-sized data;
--  * bad arguments raise the contract's message and take nothing.

local backends = require("backends")
local S = require("support")
local ffi = require("ffi")
local contract = require("treasure.contract")
local packet = require("treasure.packet")
local treasure = require("treasure")

for _, decl in ipairs({
  "int fork(void);", "void _exit(int status);", "int waitpid(int pid, int *status, int options);",
}) do
  pcall(ffi.cdef, decl) -- another spec may have declared it already
end
local C = ffi.C

local RUN = contract.VIEW_RUN_PACKETS
local ENTRY = { { item = 7, weight = 1, min = 1, max = 3, rarity = 1 } }

-- A dense world: every dig is FOUND and fans out to many recipients.
local function world(T, tuning)
  local opts = { seed = 11, aoi_radius = 40, reach = 60 }
  local r
  if tuning and T._new_with_tuning then r = T._new_with_tuning(opts, tuning) else r = T.new(opts) end
  r:add_loot_table(1, ENTRY)
  r:add_site(1, 0, 0, 0, 1, 4000000000)
  for p = 1, 300 do r:join(p, (p * 7) % 61 - 30, 0, (p * 13) % 41 - 20, p % 6) end
  return r
end

local function burst(n, t)
  local recs = {}
  for i = 1, n do recs[i] = { 1 + (i * 17) % 300, 0, 0, 0, t or i } end
  return S.dig_records(recs)
end

-- Everything the view drain gives, as one string, and the counts per call.
local function drain_views(r, max)
  local parts, counts = {}, {}
  while true do
    local n, p = r:poll_view(max)
    if n == 0 then
      assert.is_nil(p)
      break
    end
    assert.equals("cdata", type(p))
    assert.is_true(ffi.istype("const uint8_t *", p))
    counts[#counts + 1] = n
    parts[#parts + 1] = ffi.string(p, n * 128)
  end
  return table.concat(parts), counts
end

local function drain_into(r)
  local buf = ffi.new("uint8_t[?]", 4096 * 128)
  local parts = {}
  while true do
    local n = r:poll_into(buf, 4096)
    if n == 0 then break end
    parts[#parts + 1] = ffi.string(buf, n * 128)
  end
  return table.concat(parts)
end

local function err_of(f, ...)
  local ok, e = pcall(f, ...)
  if ok then return "ok" end
  return tostring(e)
end

-- Reads every byte of n packets at p (a stale view must still be mapped).
local function touch(p, n)
  local s = ffi.string(p, n * 128)
  assert.equals(n * 128, #s)
  return s
end

for _, B in ipairs(backends) do
  local T = B.module
  local native = B.name == "native"

  describe(B.name .. " poll_view (issue 16)", function()
    it("gives poll_into's bytes, in order, in runs of at most max and VIEW_RUN_PACKETS", function()
      for _, case in ipairs({ { first_view = true }, { first_view = false } }) do
        local a, b = world(T), world(T)
        -- the first view before the digs: native's workers write in full;
        -- without it the first chunks are compact and written on the caller's thread
        if case.first_view then assert.same({ 0 }, { b:poll_view() }) end
        local recs = burst(900)
        a:dig_batch(recs); b:dig_batch(recs)
        a:flush(); b:flush()
        local want = drain_into(a)
        local pending = b:stats().pending_packets
        assert.equals(#want / 128, pending)
        local got, counts = drain_views(b)
        assert.equals(#want, #got)
        assert.is_true(want == got, "view bytes differ from poll_into's")
        local sum = 0
        for _, n in ipairs(counts) do
          assert.is_true(n >= 1 and n <= RUN, "count " .. n)
          sum = sum + n
        end
        assert.equals(pending, sum)
        assert.equals(0, b:stats().pending_packets)
        -- every packet is a valid packet
        for off = 1, #got, 128 * 97 do assert.is_true(packet.decode(got, off) ~= nil) end
        a:close(); b:close()
      end
    end)

    it("max bounds each run; max = 0 and an empty stream take nothing", function()
      local r = world(T)
      assert.same({ 0 }, { r:poll_view() })
      assert.same({ 0 }, { r:poll_view(5) })
      r:dig_batch(burst(40))
      r:flush()
      local pending = r:stats().pending_packets
      assert.is_true(pending > 40)
      local n0, p0 = r:poll_view(0)
      assert.equals(0, n0); assert.is_nil(p0)
      assert.equals(pending, r:stats().pending_packets)
      local ref = world(T)
      ref:dig_batch(burst(40)); ref:flush()
      local _, want = ref:poll()
      local parts, taken = {}, 0
      for _, max in ipairs({ 1, 3, 7, 1000, 2, 9007199254740991 }) do
        local n, p = r:poll_view(max)
        if n == 0 then break end
        assert.is_true(n >= 1 and n <= max and n <= RUN)
        taken = taken + n
        assert.equals(pending - taken, r:stats().pending_packets)
        parts[#parts + 1] = ffi.string(p, n * 128)
      end
      local rest = drain_views(r, -0)  -- -0 is 0: nothing
      assert.equals("", rest)
      parts[#parts + 1] = (drain_views(r))
      assert.is_true(table.concat(parts) == want)
      r:close(); ref:close()
    end)

    it("interleaved with poll and poll_into, the stream is the same", function()
      local a, b = world(T, { chunk_digs = 3 }), world(T, { chunk_digs = 3 })
      local got, buf = {}, ffi.new("uint8_t[?]", 64 * 128)
      for round = 1, 6 do
        local recs = burst(25, round)
        a:dig_batch(recs); b:dig_batch(recs)
        a:flush(); b:flush()
        local step = 0
        while true do
          step = step + 1
          local k = (step + round) % 3
          local n, s
          if k == 0 then
            local p
            n, p = b:poll_view(50)
            s = n > 0 and ffi.string(p, n * 128) or ""
          elseif k == 1 then
            n = b:poll_into(buf, 64)
            s = ffi.string(buf, n * 128)
          else
            n, s = b:poll(70)
          end
          if n == 0 and b:stats().pending_packets == 0 then break end
          got[#got + 1] = s
        end
      end
      local want = {}
      repeat local n, s = a:poll(); want[#want + 1] = s until n == 0
      assert.is_true(table.concat(want) == table.concat(got))
      a:close(); b:close()
    end)

    it("a view stays unchanged until the next poll, whatever runs meanwhile", function()
      local r, other = world(T), world(T)
      r:poll_view(); other:poll_view()
      r:dig_batch(burst(600)); r:flush()
      local n, p = r:poll_view(RUN)
      assert.is_true(n >= 1)
      local copy = ffi.string(p, n * 128)
      -- more digs on this resolver, another resolver's workers and views,
      -- snapshots, stats: none of them is a poll of r
      for round = 1, 4 do
        r:dig_batch(burst(300, round)); other:dig_batch(burst(300, round))
        other:flush()
        local _ = drain_views(other)
        r:stats(); r:in_flight()
        local snap = r:snapshot()
        assert.equals("table", type(snap))
        assert.is_true(ffi.string(p, n * 128) == copy, "view changed in round " .. round)
      end
      -- the snapshot does not hold the viewed packets: they were taken
      r:flush()
      local restored = T.restore(r:snapshot())
      assert.is_true(drain_into(restored) == drain_into(r))
      r:close(); other:close(); restored:close()
    end)

    it("after release_view, the next poll, close, GC and swap a stale view is still mapped", function()
      collectgarbage(); collectgarbage()
      local views = {}
      -- after release_view and the next poll
      local r = world(T)
      r:dig_batch(burst(200)); r:flush()
      local n1, p1 = r:poll_view(); views[#views + 1] = { p1, n1 }
      r:release_view()
      touch(p1, n1)
      local n2, p2 = r:poll_view(); views[#views + 1] = { p2, n2 }
      local _ = r:poll(3)
      touch(p2, n2)
      -- after close
      local n3, p3 = r:poll_view(); views[#views + 1] = { p3, n3 }
      r:close()
      touch(p3, n3)
      assert.equals("treasure: poll_view: resolver is closed", err_of(function() return r:poll_view() end))
      assert.equals("treasure: release_view: resolver is closed", err_of(function() return r:release_view() end))
      -- after garbage collection of the resolver
      local function dropped()
        local d = world(T)
        d:dig_batch(burst(200)); d:flush()
        local n, p = d:poll_view()
        return n, p
      end
      local n4, p4 = dropped()
      views[#views + 1] = { p4, n4 }
      collectgarbage(); collectgarbage()
      touch(p4, n4)
      -- after a swap (to the other backend when both load, else the same)
      local s = world(T)
      s:dig_batch(burst(200)); s:flush()
      local n5, p5 = s:poll_view(); views[#views + 1] = { p5, n5 }
      local ref = world(T)
      ref:dig_batch(burst(200)); ref:flush()
      local _, skip = ref:poll_view(n5)
      local target = native and "legacy" or (pcall(require, "treasure.native") and "native" or "legacy")
      local s2 = treasure.swap(s, target)
      touch(p5, n5)
      assert.equals("treasure: poll_view: resolver is closed", err_of(function() return s:poll_view() end))
      -- the swapped resolver continues after the viewed packets
      assert.is_true(drain_into(s2) == drain_into(ref))
      assert.is_not_nil(skip)
      -- new resolvers reuse the pool: the old views still read mapped memory
      for _ = 1, 3 do
        local q = world(T)
        q:dig_batch(burst(300)); q:flush()
        drain_views(q)
        q:close()
      end
      for _, v in ipairs(views) do touch(v[1], v[2]) end
      s2:close(); ref:close()
    end)

    it("from a finalizer, and a view taken in a finalizer, read after the collection", function()
      local was_on = jit.status()
      jit.off(); jit.flush()
      local ok, e = pcall(function()
        local got = {}
        local function make() -- in its own frame: nothing on the stack keeps them
          local box = {}
          local r = world(T) -- created before the guard: still open when the guard runs
          box.r = r
          r:dig_batch(burst(50)); r:flush()
          local guard = newproxy(true)
          getmetatable(guard).__gc = function()
            pcall(function()
              local n, p = box.r:poll_view()
              got.n, got.p = n, p
              got.s = n > 0 and ffi.string(p, n * 128) or ""
            end)
          end
          box.g = guard
        end
        make()
        collectgarbage(); collectgarbage(); collectgarbage()
        assert.is_true(got.n ~= nil, "the guard's finalizer did not run")
        assert.is_true(got.n > 0)
        -- the resolver was finalized in the same collection: the view ended, still mapped
        touch(got.p, got.n)
        assert.equals(got.n * 128, #got.s)
      end)
      if was_on then jit.on() end
      if not ok then error(e, 0) end
    end)

    it("a view read in a forked child is mapped there; the child's poll_view raises on native", function()
      local r = world(T)
      r:dig_batch(burst(100)); r:flush()
      local n, p = r:poll_view()
      local copy = ffi.string(p, n * 128)
      io.stdout:flush(); io.stderr:flush()
      local pid = C.fork()
      assert.is_true(pid >= 0)
      if pid == 0 then
        local code = 0
        local ok = pcall(function()
          if ffi.string(p, n * 128) ~= copy then code = 3 end
          local e = err_of(function() return r:poll_view() end)
          if native and not e:find("^treasure: poll_view: resolver was created in process") then code = 4 end
          if not native and e ~= "ok" then code = 5 end
        end)
        C._exit(ok and code or 2)
      end
      local st = ffi.new("int[1]")
      assert.equals(pid, C.waitpid(pid, st, 0))
      assert.equals(0, st[0])
      assert.is_true(ffi.string(p, n * 128) == copy)
      r:close()
    end)

    it("bad arguments raise the contract's message and take nothing", function()
      local r = world(T)
      r:dig_batch(burst(5)); r:flush()
      local pending = r:stats().pending_packets
      local COUNT = "[0, 9007199254740991]"
      for _, v in ipairs({ -1, 1.5, 0 / 0, math.huge, 2 ^ 53 }) do
        assert.equals("treasure: poll_view: max must be an integer in " .. COUNT .. ", got " .. tostring(v),
          err_of(function() return r:poll_view(v) end))
      end
      for _, v in ipairs({ "3", {}, true }) do
        -- the same rule and text as poll's max
        local want = err_of(function() return r:poll(v) end):gsub("^treasure: poll:", "treasure: poll_view:")
        assert.equals(want, err_of(function() return r:poll_view(v) end))
      end
      assert.equals("treasure: poll_view: self must be a resolver, got nil", err_of(function() return r.poll_view(nil) end))
      assert.equals("treasure: poll_view: self must be a resolver, got table", err_of(function() return r.poll_view({}) end))
      assert.equals("treasure: release_view: self must be a resolver, got nil", err_of(function() return r.release_view() end))
      assert.equals(pending, r:stats().pending_packets)
      r:close()
    end)
  end)
end
