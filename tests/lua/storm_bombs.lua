--- tests/lua/storm_bombs.lua: the allocation storm's machinery, shared by
-- tests/lua/storm.lua and tests/lua/cluster_storm.lua (each runs in a
-- process of its own, the JIT off; see storm.lua's header for why).
--
-- A "bomb" is a newproxy whose __gc raises. Armed before a call, with the
-- GC at pause 0 / stepmul 10000, bombs go off in the GC steps of the call's
-- own allocations, so a call raises from inside wherever it allocates. A
-- bomb may leave `chain` more behind it, one per GC cycle, so that bombs
-- also go off deep inside a call (past its first allocations). The twin
-- runner retries a call that a bomb hit and compares its results with a
-- twin resolver that never saw a bomb.
local S = require("support")

local M = {}

M.PAUSE = tonumber(os.getenv("STORM_PAUSE") or 0)
M.STEPMUL = tonumber(os.getenv("STORM_STEPMUL") or 10000)
M.CALLS = tonumber(os.getenv("STORM_CALLS") or 1200)

--- A small LCG: the same sequence every run. rand(n) is in [0, n - 1].
function M.rng(seed)
  local s = seed
  return function(n)
    s = (s * 1103515245 + 12345) % 2147483648
    return s % n
  end
end

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

--- Arms `n` bombs that leave `more` (default 0) behind them. (A bomb may
-- already go off here: not counted as inside.)
function M.arm(n, more)
  chain = more or 0
  for _ = 1, n do pcall(arm_one) end
end

--- Runs every pending finalizer outside the calls.
function M.defuse()
  chain = 0
  while not pcall(collectgarbage) do end
end

--- Did a failed call fail because of a bomb? Legacy re-raises the bomb's
-- own string; native's mlua path may wrap it (a userdata error, or a
-- message naming the function). Compared without allocating first.
function M.bombed(ok, e)
  if ok then return false end
  if e == BOMB then return true end
  M.defuse()
  local seen, text = pcall(tostring, e)
  return seen and text:find(BOMB, 1, true) ~= nil
end

--- Calls `f(...)` with bombs armed (`n` of them, leaving `more` behind),
-- again until no bomb hit it; returns its pcall results. Counts the calls
-- a bomb hit.
function M.until_unbombed(n, more, f, ...)
  M.defuse()
  M.arm(n, more)
  -- results into locals: no allocation between the call and the check
  local ok, r1, r2, r3
  repeat
    ok, r1, r2, r3 = pcall(f, ...)
    local hit = M.bombed(ok, r1)
    if hit then inside = inside + 1 end
  until not hit
  M.defuse()
  return ok, r1, r2, r3
end

--- A runner of method `name` on `a` (bombed) and `b` (its twin): raises on
-- the first difference, else returns a's pcall results. `bombs()` gives the
-- arm counts for each call (it draws from the sequence's rng).
function M.twin(a, b, bombs)
  return function(name, ...)
    local n, more = bombs()
    local ok, r1, r2, r3 = M.until_unbombed(n, more, a[name], a, ...)
    local sa = S.ser_all(ok, r1, r2, r3)
    local okb, b1, b2, b3 = pcall(b[name], b, ...)
    local sb = S.ser_all(okb, b1, b2, b3)
    if sa ~= sb then
      error(("call %s differs after the storm:\n bombed %s\n twin   %s"):format(name, sa, sb), 0)
    end
    return ok, r1, r2, r3
  end
end

--- Runs `storm()` with the storm's GC settings; prints "storm ok: fired N,
-- inside M" and exits 0, or prints the failure and exits 1.
function M.run(backend, storm)
  collectgarbage("setpause", M.PAUSE)
  collectgarbage("setstepmul", M.STEPMUL)
  local ok, err = xpcall(storm, debug.traceback)
  M.defuse()
  if not ok then
    print("storm FAILED on " .. backend .. ": " .. tostring(err))
    os.exit(1)
  end
  print(string.format("storm ok: fired %d, inside %d", fired, inside))
  os.exit(0)
end

return M
