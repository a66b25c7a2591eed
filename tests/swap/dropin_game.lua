-- tests/swap/dropin_game.lua: a small game loop written against
-- treasure.legacy, and only against the contract (docs/API.md). It must run
-- unchanged on the native backend when the host sets
--
--   package.loaded["treasure.legacy"] = require("treasure.native")
--
-- (or `= require("treasure")`) before loading it; tests/swap/dropin.sh runs
-- it those ways and compares the outputs byte for byte.
--
--   luajit tests/swap/dropin_game.lua STREAM_FILE > TRANSCRIPT
--
-- STREAM_FILE receives every packet polled, in order; stdout a transcript of
-- everything else the game saw (seqs, busy answers, error messages, stats
-- counters). Lines starting with '#' are about the host, not the game, and
-- are not compared. Like any script written to the contract it calls
-- r:flush() before its send loop each tick (legacy resolves inside dig, so
-- there it returns at once) so that what it polls, and so every later busy
-- answer, does not depend on worker timing.
local legacy = require("treasure.legacy")
local ffi = require("ffi")

local out = assert(io.open(assert(arg[1], "usage: dropin_game.lua STREAM_FILE"), "wb"))
print("# backend " .. tostring(legacy.backend))
print("version " .. legacy._VERSION)

-- the game's own deterministic generator (LCG, exact in doubles)
local state = 12345
local function rnd(n)
  state = (state * 1103515245 + 12345) % 2147483648
  return math.floor(state / 65536) % n   -- the high bits: an LCG's low bits cycle fast
end

local r = legacy.new({ seed = 2024, aoi_radius = 32, reach = 5, max_pending_packets = 1500 })
r:add_loot_table(1, { { item = 10, weight = 5, min = 1, max = 3, rarity = 0 },
                      { item = 11, weight = 1, min = 1, max = 1, rarity = 4 } })
r:add_loot_table(2, { { item = 20, weight = 1, min = 5, max = 50, rarity = 1 } })
local sites = {}
for i = 1, 300 do
  local x, z = rnd(120) - 60, rnd(120) - 60
  if pcall(r.add_site, r, i, x, 0, z, 1 + rnd(2), 1 + rnd(30)) then sites[#sites + 1] = { x, z } end
end
local pos = {}
for p = 1, 250 do
  local s = sites[1 + rnd(#sites)]
  pos[p] = { s[1] + rnd(5) - 2, 0, s[2] + rnd(5) - 2, home = s }
  r:join(p, pos[p][1], 0, pos[p][3], rnd(40))
end

local dig_t = ffi.typeof("struct { uint32_t player; int32_t x, y, z; uint64_t t_us; }")
local move_t = ffi.typeof("struct { uint32_t player; int32_t x, y, z; }")
local function dig_records(list)
  local buf = ffi.new(ffi.typeof("$[?]", dig_t), #list)
  for i, d in ipairs(list) do buf[i - 1].player, buf[i - 1].x, buf[i - 1].y, buf[i - 1].z, buf[i - 1].t_us = d[1], d[2], d[3], d[4], d[5] end
  return ffi.string(buf, 24 * #list)
end
local function move_records(list)
  local buf = ffi.new(ffi.typeof("$[?]", move_t), #list)
  for i, m in ipairs(list) do buf[i - 1].player, buf[i - 1].x, buf[i - 1].y, buf[i - 1].z = m[1], m[2], m[3], m[4] end
  return ffi.string(buf, 16 * #list)
end

local MAXP = 200
local pbuf = ffi.new("uint8_t[?]", MAXP * 128)
local polled = 0
for tick = 1, 80 do
  -- movement: a few players step, one move_batch
  local moves = {}
  for _ = 1, 15 do
    local p = 1 + rnd(250)
    local q = pos[p]
    if q then
      q[1], q[3] = q[1] + rnd(3) - 1, q[3] + rnd(3) - 1
      moves[#moves + 1] = { p, q[1], 0, q[3] }
    end
  end
  r:move_batch(move_records(moves))
  -- digs: a batch, two single digs, a burst every 10th tick
  local digs = {}
  local n = (tick % 10 == 0) and 250 or 15
  for _ = 1, n do
    local p = 1 + rnd(250)
    local q = pos[p]
    if q then
      -- mostly the player's home site (in reach while they stay near it)
      local s = (rnd(4) > 0 and q.home) or sites[1 + rnd(#sites)]
      digs[#digs + 1] = { p, s[1], 0, s[2], tick * 50000 }
    end
  end
  local first, count = r:dig_batch(dig_records(digs))
  print(("tick %d batch %s %s"):format(tick, tostring(first), tostring(count)))
  for _ = 1, 2 do
    local p = 1 + rnd(250)
    local q = pos[p]
    if q then print("dig", r:dig(p, q[1], 0, q[3], tick * 50000 + 1)) end
  end
  -- party and membership churn, and a call the game gets wrong
  local p = 1 + rnd(250)
  if pos[p] and rnd(4) == 0 then r:leave(p); pos[p] = nil
  elseif pos[p] then r:set_party(p, rnd(40))
  else
    local s = sites[1 + rnd(#sites)]
    pos[p] = { s[1], 0, s[2] + 1, home = s }
    r:join(p, pos[p][1], 0, pos[p][3])
  end
  print("bad call:", select(2, pcall(r.move, r, 100000 + tick, 1.5, 0, 0)))
  print("bad call:", select(2, pcall(r.dig, r, p, 0, 0, 0, -1)))
  if tick % 17 == 0 then
    local id = 1 + rnd(300)
    print("remove_site", id, pcall(r.remove_site, r, id))
  end
  -- the send loop: at most two buffers a tick, so packets pile up (busy)
  r:flush()
  for _ = 1, 2 do
    local got = r:poll_into(pbuf, MAXP)
    if got == 0 then break end
    out:write(ffi.string(pbuf, got * 128))
    polled = polled + got
  end
  local st = r:stats()
  print(("stats digs=%d packets=%d found=%d empty=%d nothing=%d rejected=%d busy=%d players=%d sites=%d pending=%d")
    :format(st.digs, st.packets, st.found, st.empty, st.nothing, st.rejected, st.busy, st.players, st.sites,
      st.pending_packets))
end
r:flush()
local n, bytes = r:poll()
out:write(bytes)
polled = polled + n
print("drained", n, "total", polled)
r:close()
print("after close:", select(2, pcall(r.poll, r)))
out:close()
