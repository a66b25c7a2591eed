-- tests/lua/cluster_storm.lua BACKEND: tests/lua/storm.lua's allocation
-- storm on the cluster methods (run by cluster_spec.lua, in a process of its
-- own: a small heap, so the bombs go off inside the calls, and the JIT off).
--
-- Shard 0 of 2 is hit by raising __gc finalizers armed before each call
-- (GC at pause 0 / stepmul 10000, so they go off in the GC steps of the
-- call's own allocations); every call that raised a bomb is retried. A
-- seeded sequence of digs, batches, set_host, take_records, apply_records
-- (in order, replayed, and with gaps: records from its own digs and from an
-- unbombed shard 1), polls, moves and snapshots is compared byte for byte
-- with a twin that never saw a bomb. Prints "storm ok: fired N, inside M"
-- and exits 0, or prints the first difference and exits 1.
jit.off()
local backend = arg[1] or "lua"
local T = require(backend == "native" and "treasure.native" or "treasure.legacy")
local S = require("support")

local B = require("storm_bombs")
local record = require("treasure.record")

local function world(shard)
  local r = S.small_world(T, { seed = 3, aoi_radius = 12, reach = 6, max_pending_packets = 400,
    shard = shard, shards = 2 })
  for p = 1, 24 do r:set_host(p, p % 2) end
  return r
end

--- The records of `src`'s take_records string addressed to `dest`, each a
-- string (read through treasure.record, the layout's one Lua copy).
local function to_dest(bytes, src, dest)
  local recs = assert(record.scan(bytes, src, 2, true))
  local out = {}
  for _, rec in ipairs(recs) do
    if rec.dest == dest then out[#out + 1] = bytes:sub(rec.off + 1, rec.off + rec.length) end
  end
  return out
end

B.run(backend, function()
  local a, b, c = world(0), world(0), world(1) -- a sees the bombs, b is its twin; c feeds them
  local rand = B.rng(4242)
  local log = {}     -- records to shard 0, in log order
  local done = 0     -- how many of them a and b have been given in order
  local t = 0
  local call = B.twin(a, b, function() return 1 + rand(3), rand(12) end)
  for _ = 1, B.CALLS do
    local op = rand(14)
    local p = 1 + rand(24)
    t = t + 1
    if op <= 2 then
      call("dig", p, 3 * (1 + rand(32)), rand(2), 0, t)
    elseif op == 3 then
      local recs = {}
      for k = 1, 1 + rand(4) do recs[k] = { 1 + rand(24), 3 * (1 + rand(32)), 0, 0, t + k } end
      call("dig_batch", S.dig_records(recs))
    elseif op == 4 then
      call("set_host", p, rand(2))
    elseif op == 5 then
      call("flush")
      local ok, _, bytes = call("take_records")
      if ok then for _, rec in ipairs(to_dest(bytes, 0, 0)) do log[#log + 1] = rec end end
    elseif op == 6 then -- shard 1 digs; its records to shard 0 join the log
      c:dig(p, 3 * (1 + rand(32)), rand(2), 0, t)
      c:set_host(1 + rand(24), rand(2))
      c:flush()
      local _, bytes = c:take_records()
      for _, rec in ipairs(to_dest(bytes, 1, 0)) do log[#log + 1] = rec end
    elseif op <= 8 then -- the next records in log order, sometimes with one replayed
      if done < #log then
        local from = (rand(4) == 0 and done > 0) and done or done + 1
        local to = math.min(#log, done + 1 + rand(3))
        local ok, n = call("apply_records", table.concat(log, "", from, to), to)
        if ok and n ~= nil then done = to end
      end
    elseif op == 9 then -- a gap: a later record alone
      if done + 2 <= #log then call("apply_records", log[done + 2], done + 2) end
    elseif op == 10 then
      call("poll", rand(3) == 0 and nil or rand(12))
    elseif op == 11 then
      call("move", p, rand(100), rand(3), 0)
    elseif op == 12 then
      call("flush")
      call("stats")
    elseif op == 13 then
      call("leave", p)
      call("join", p, rand(100), 0, 0, rand(5))
    else
      call("snapshot")
    end
  end
  call("flush")
  call("stats")
  call("snapshot")
  B.defuse()
  local ra2, rb2 = T.restore(a:snapshot()), T.restore(b:snapshot())
  ra2:dig(1, 3, 0, 0, t + 1); rb2:dig(1, 3, 0, 0, t + 1)
  assert(S.ser_all(ra2:snapshot()) == S.ser_all(rb2:snapshot()), "the restored snapshots differ")
  assert(done > 20, "the storm applied too few records: " .. done)
end)
