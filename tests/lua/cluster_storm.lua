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

local PAUSE, STEPMUL = tonumber(os.getenv("STORM_PAUSE") or 0), tonumber(os.getenv("STORM_STEPMUL") or 10000)
local CALLS = tonumber(os.getenv("STORM_CALLS") or 1200)

local ser_all = S.ser_all

local function rng(seed)
  local s = seed
  return function(n)
    s = (s * 1103515245 + 12345) % 2147483648
    return s % n
  end
end

local function world(shard)
  local r = S.small_world(T, { seed = 3, aoi_radius = 12, reach = 6, max_pending_packets = 400,
    shard = shard, shards = 2 })
  for p = 1, 24 do r:set_host(p, p % 2) end
  return r
end

--- The records of a take_records string addressed to `dest`, each a string.
local function to_dest(bytes, dest)
  local out, pos = {}, 0
  while pos < #bytes do
    local len = bytes:byte(pos + 33) + 256 * bytes:byte(pos + 34) + 65536 * bytes:byte(pos + 35)
      + 16777216 * bytes:byte(pos + 36)
    if bytes:byte(pos + 9) + 256 * bytes:byte(pos + 10) == dest then
      out[#out + 1] = bytes:sub(pos + 1, pos + len)
    end
    pos = pos + len
  end
  return out
end

-- A bomb that goes off leaves `chain` more behind it, one per GC cycle, so
-- bombs also go off deep inside a call (past its first allocations), not
-- only in its first GC step.
local fired, inside, chain = 0, 0, 0
local BOMB = "treasure-test-bomb"
local arm_one
local function bomb_gc()
  fired = fired + 1
  if chain > 0 then
    chain = chain - 1
    pcall(arm_one)
  end
  error(BOMB, 0)
end
function arm_one()
  local p = newproxy(true)
  getmetatable(p).__gc = bomb_gc
end
local function arm(n, more)
  chain = more
  for _ = 1, n do pcall(arm_one) end
end
local function defuse()
  chain = 0
  while not pcall(collectgarbage) do end
end
local function bombed(ok, e)
  if ok then return false end
  if e == BOMB then return true end
  defuse()
  local seen, text = pcall(tostring, e)
  return seen and text:find(BOMB, 1, true) ~= nil
end

collectgarbage("setpause", PAUSE)
collectgarbage("setstepmul", STEPMUL)
local ok_all, err_all = xpcall(function()
  local a, b, c = world(0), world(0), world(1) -- a sees the bombs, b is its twin; c feeds them
  local rand = rng(4242)
  local log = {}     -- records to shard 0, in log order
  local done = 0     -- how many of them a and b have been given in order
  local t = 0
  local function call(name, ...)
    local fa, fb = a[name], b[name]
    defuse()
    arm(1 + rand(3), rand(12))
    local ok, r1, r2, r3
    repeat
      ok, r1, r2, r3 = pcall(fa, a, ...)
      local hit = bombed(ok, r1)
      if hit then inside = inside + 1 end
    until not hit
    defuse()
    local sa = ser_all(ok, r1, r2, r3)
    local okb, b1, b2, b3 = pcall(fb, b, ...)
    local sb = ser_all(okb, b1, b2, b3)
    if sa ~= sb then
      error(("call %s differs after the storm:\n bombed %s\n twin   %s"):format(name, sa, sb), 0)
    end
    return ok, r1, r2, r3
  end
  for _ = 1, CALLS do
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
      if ok then for _, rec in ipairs(to_dest(bytes, 0)) do log[#log + 1] = rec end end
    elseif op == 6 then -- shard 1 digs; its records to shard 0 join the log
      c:dig(p, 3 * (1 + rand(32)), rand(2), 0, t)
      c:set_host(1 + rand(24), rand(2))
      c:flush()
      local _, bytes = c:take_records()
      for _, rec in ipairs(to_dest(bytes, 0)) do log[#log + 1] = rec end
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
  defuse()
  local ra2, rb2 = T.restore(a:snapshot()), T.restore(b:snapshot())
  ra2:dig(1, 3, 0, 0, t + 1); rb2:dig(1, 3, 0, 0, t + 1)
  assert(ser_all(ra2:snapshot()) == ser_all(rb2:snapshot()), "the restored snapshots differ")
  assert(done > 20, "the storm applied too few records: " .. done)
end, debug.traceback)
defuse()
if not ok_all then
  print("storm FAILED on " .. backend .. ": " .. tostring(err_all))
  os.exit(1)
end
print(string.format("storm ok: fired %d, inside %d", fired, inside))
os.exit(0)
