-- tests/lua/storm.lua BACKEND: the allocation storm of hardening_spec.lua, in
-- a process of its own (a small heap, so a GC cycle is short and the bombs go
-- off inside the calls; and the JIT can be off for this process only).
--
-- A resolver's calls are hit by raising __gc finalizers (newproxy "bombs",
-- armed before each call, with the GC at pause 0 / stepmul 10000 so they go
-- off in the GC steps of the call's own allocations). Every call that raised
-- a bomb is retried; a seeded 1200-call sequence is compared byte for byte
-- (results, packets, stats, snapshot, a restore of each snapshot) with a twin
-- resolver that never saw a bomb. Prints "storm ok: fired N, inside M" and
-- exits 0, or prints the first difference and exits 1.
--
-- The JIT is off: Debian's luajit 2.1.0-beta3 segfaults when a __gc finalizer
-- raises while JIT-compiled code runs (a runtime bug, not ours).
jit.off()
local backend = arg[1] or "lua"
local T = require(backend == "native" and "treasure.native" or "treasure.legacy")
local S = require("support")
local ffi = require("ffi")

local B = require("storm_bombs")

local function world() return S.small_world(T) end

B.run(backend, function()
  local a, b = world(), world() -- a sees the bombs, b is its twin
  local bufa, bufb = ffi.new("uint8_t[?]", 16 * 128), ffi.new("uint8_t[?]", 16 * 128)
  local rand = B.rng(12345)
  local next_player, next_site, next_table = 100, 100, 100
  local t = 0
  local call = B.twin(a, b, function() return 1 + rand(3) end)
  for _ = 1, B.CALLS do
    local op = rand(16)
    local p = 1 + rand(next_player - 1)
    t = t + 1
    if op <= 3 then
      call("dig", p, 3 * (1 + rand(32)), rand(2), 0, t)
    elseif op == 4 then
      local recs = {}
      for k = 1, 1 + rand(4) do recs[k] = { 1 + rand(24), 3 * (1 + rand(32)), 0, 0, t + k } end
      call("dig_batch", S.dig_records(recs))
    elseif op == 5 then
      call("move", p, rand(200) - 100, rand(60) - 30, rand(3))
    elseif op == 6 then
      local recs = {}
      for k = 1, 1 + rand(5) do recs[k] = { 1 + rand(24), rand(300) - 150, rand(40), 0 } end
      call("move_batch", S.move_records(recs))
    elseif op == 7 then
      call("join", next_player, rand(100), 0, rand(3), rand(6))
      next_player = next_player + 1
    elseif op == 8 then
      call("leave", 25 + rand(next_player - 25))
    elseif op == 9 then
      call("set_party", p, rand(7))
    elseif op == 10 then
      call("add_site", next_site, 100 + rand(200), rand(5), 0, 1 + rand(2) * 99, 1 + rand(3))
      next_site = next_site + 1
    elseif op == 11 then
      call("remove_site", 1 + rand(next_site))
    elseif op == 12 then
      call("add_loot_table", next_table, { { item = 1 + rand(9), weight = 1 + rand(5), min = 0, max = rand(3), rarity = 3 } })
      next_table = next_table + 1
    elseif op == 13 then
      call("flush")
      call("poll", rand(3) == 0 and nil or rand(12))
    elseif op == 14 then
      call("flush")
      local max = rand(17)
      local oka, na = B.until_unbombed(1 + rand(3), 0, a.poll_into, a, bufa, max)
      local okb, nb = pcall(b.poll_into, b, bufb, max)
      local sa = S.ser_all(oka, na) .. (oka and ffi.string(bufa, na * 128) or "")
      local sb = S.ser_all(okb, nb) .. (okb and ffi.string(bufb, nb * 128) or "")
      assert(sa == sb, "poll_into differs after the storm")
    elseif op == 15 then
      call("flush")
      call("stats")
    else
      call("dig", p, rand(20), 0, 0, t) -- mostly NOTHING / REJECTED
    end
  end
  call("flush")
  call("stats")
  call("snapshot")
  -- the bombed resolver's own snapshot restores and continues like the twin's
  B.defuse()
  local ra2, rb2 = T.restore(a:snapshot()), T.restore(b:snapshot())
  ra2:dig(1, 3, 0, 0, t + 1); rb2:dig(1, 3, 0, 0, t + 1)
  assert(S.ser_all(ra2:snapshot()) == S.ser_all(rb2:snapshot()), "the restored snapshots differ")
end)
