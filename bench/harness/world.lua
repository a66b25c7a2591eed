-- bench/harness/world.lua: the harness's world, built from --seed with its
-- own PRNG (xoshiro128** on 32-bit bit ops, seeded by splitmix64), so that
-- every backend and every run sees the same one:
--   * W x W blocks of 32 x 32 plateaus 30..34 high;
--   * --sites dig sites on distinct columns, half of them (--hotspot-share)
--     in 256 (--hotspots) "treasure fields" of radius 160, 0..2 blocks below
--     the surface; 16 loot tables;
--   * --players players in parties of four, each starting next to a site
--     (the party's members near the leader's).
-- Movement: players at a site stay 5..30 s, shuffling to another spot next
-- to it now and then, then walk (1 block per tick) to a nearby site.
-- All state is in FFI arrays (a Lua table per player would cost heap and GC).

local ffi = require("ffi")
local bit = require("bit")
local band, bxor, lshift, rshift, rol, tobit = bit.band, bit.bxor, bit.lshift, bit.rshift, bit.rol, bit.tobit
local floor, max = math.floor, math.max

ffi.cdef[[
typedef struct { uint32_t player; int32_t x, y, z; } harness_move_rec;
]]
assert(ffi.sizeof("harness_move_rec") == 16)

local M = {}

--- The PRNG: returns rnd() in [0, 2^32), rndint(n) in [0, n), rnd01() in [0, 1).
function M.prng(seed)
  local s0, s1, s2, s3
  local z = ffi.new("uint64_t", seed)
  local function sm()
    z = z + 0x9E3779B97F4A7C15ULL
    local x = z
    x = bxor(x, rshift(x, 30)) * 0xBF58476D1CE4E5B9ULL
    x = bxor(x, rshift(x, 27)) * 0x94D049BB133111EBULL
    x = bxor(x, rshift(x, 31))
    return tobit(tonumber(band(x, 0xFFFFFFFFULL)))
  end
  s0, s1, s2, s3 = sm(), sm(), sm(), sm()
  if s0 == 0 and s1 == 0 and s2 == 0 and s3 == 0 then s0 = 1 end
  local function rnd()
    local r = tobit(rol(tobit(s1 * 5), 7) * 9)
    local t = lshift(s1, 9)
    s2 = bxor(s2, s0)
    s3 = bxor(s3, s1)
    s1 = bxor(s1, s2)
    s0 = bxor(s0, s3)
    s2 = bxor(s2, t)
    s3 = rol(s3, 11)
    return r % 4294967296
  end
  return rnd, function(n) return rnd() % n end, function() return rnd() * (1 / 4294967296) end
end

--- Build the world for `opt` (players, sites, world, hotspots, hotspot_share, seed).
function M.new(opt)
  local rnd, rndint, rnd01 = M.prng(opt.seed)
  local P, S, W = opt.players, opt.sites, opt.world
  local w = { P = P, S = S, W = W, NLOOT = 16, rndint = rndint, rnd = rnd }

  -- terrain: 32 x 32 plateaus of height 30..34; players stand on top
  local NPL = floor((W + 31) / 32)
  local plateau = ffi.new("uint8_t[?]", NPL * NPL)
  for i = 0, NPL * NPL - 1 do plateau[i] = 30 + rndint(5) end
  local function height(x, z) return plateau[rshift(x, 5) * NPL + rshift(z, 5)] end

  -- sites: distinct (x, z) columns, a share of them in treasure fields
  local sx, sy, sz = ffi.new("int32_t[?]", S), ffi.new("int32_t[?]", S), ffi.new("int32_t[?]", S)
  local CELL = 64
  local NC = floor((W + CELL - 1) / CELL)
  local cell_start = ffi.new("int32_t[?]", NC * NC + 1)
  local cell_sites = ffi.new("int32_t[?]", S)
  do
    local HS = max(1, opt.hotspots)
    local hx, hz = {}, {}
    for h = 1, HS do hx[h] = rndint(W) hz[h] = rndint(W) end
    local HR = 160
    -- taken columns: an open-addressing FFI set (a Lua table of 100,000 keys
    -- would cost more peak RSS than the whole set)
    local HSZ = 1
    while HSZ < 2 * S do HSZ = HSZ * 2 end
    local used = ffi.new("double[?]", HSZ)        -- 0 = empty, else x * W + z + 1
    local function take(key)                      -- true if key was not taken yet
      local a, b = key % 65536, floor(key / 65536)
      local h = tobit(a * 40503 + (b % 65536) * 30011 + floor(b / 65536) * 7919)
      h = bxor(h, rshift(h, 13), lshift(h, 7))
      h = band(h, HSZ - 1)
      while true do
        local v = used[h]
        if v == 0 then used[h] = key return true end
        if v == key then return false end
        h = band(h + 1, HSZ - 1)
      end
    end
    local i = 0
    while i < S do
      local x, z
      if opt.hotspots > 0 and rnd01() < opt.hotspot_share then
        local h = 1 + rndint(HS)
        local ox, oz
        repeat ox = rndint(2 * HR + 1) - HR oz = rndint(2 * HR + 1) - HR until ox * ox + oz * oz <= HR * HR
        x, z = hx[h] + ox, hz[h] + oz
      else
        x, z = rndint(W), rndint(W)
      end
      -- keep a one-block margin so every site has stand spots inside the world
      if x >= 1 and x < W - 1 and z >= 1 and z < W - 1 and take(x * W + z + 1) then
        sx[i], sz[i] = x, z
        sy[i] = height(x, z) - rndint(3)
        i = i + 1
      end
    end
    -- cell index (CSR)
    local counts = ffi.new("int32_t[?]", NC * NC)
    for k = 0, S - 1 do
      local c = floor(sx[k] / CELL) * NC + floor(sz[k] / CELL)
      counts[c] = counts[c] + 1
    end
    cell_start[0] = 0
    for c = 0, NC * NC - 1 do cell_start[c + 1] = cell_start[c] + counts[c] counts[c] = 0 end
    for k = 0, S - 1 do
      local c = floor(sx[k] / CELL) * NC + floor(sz[k] / CELL)
      cell_sites[cell_start[c] + counts[c]] = k
      counts[c] = counts[c] + 1
    end
  end

  -- players
  local px, py, pz = ffi.new("int32_t[?]", P), ffi.new("int32_t[?]", P), ffi.new("int32_t[?]", P)
  local ptarget = ffi.new("int32_t[?]", P)   -- site index
  local pgx, pgz = ffi.new("int32_t[?]", P), ffi.new("int32_t[?]", P)  -- stand spot next to the target
  local pstate = ffi.new("uint8_t[?]", P)    -- 0 walking, 1 at the site
  local pdwell = ffi.new("int32_t[?]", P)    -- ticks left at the site
  local pparty = ffi.new("uint32_t[?]", P)

  -- a stand spot next to site k: one of the 8 neighbouring columns
  local function pick_spot(i, k)
    local d = rndint(8)
    if d >= 4 then d = d + 1 end            -- skip (0, 0)
    pgx[i] = sx[k] + (d % 3) - 1
    pgz[i] = sz[k] + floor(d / 3) - 1
  end
  -- a new target near (x, z): the nearest of 4 random sites of its cell
  local function pick_target(i, x, z, not_k)
    local c = floor(x / CELL) * NC + floor(z / CELL)
    local a, b = cell_start[c], cell_start[c + 1]
    local best, bestd = -1, 1e300
    if b > a then
      for _ = 1, 4 do
        local k = cell_sites[a + rndint(b - a)]
        if k ~= not_k then
          local dx, dz = sx[k] - x, sz[k] - z
          local d = dx * dx + dz * dz
          if d < bestd then best, bestd = k, d end
        end
      end
    end
    if best < 0 then best = rndint(S) end
    ptarget[i] = best
    pick_spot(i, best)
  end

  for i = 0, P - 1 do
    pparty[i] = floor(i / 4) + 1
    if i % 4 == 0 then                -- the party leader picks any site
      local k = rndint(S)
      ptarget[i] = k
      pick_spot(i, k)
    else                              -- the others pick one near the leader
      local l = i - i % 4
      pick_target(i, sx[ptarget[l]], sz[ptarget[l]], -1)
    end
    px[i], pz[i] = pgx[i], pgz[i]
    py[i] = height(px[i], pz[i])
    pstate[i] = 1
    pdwell[i] = rndint(600)
  end

  w.sx, w.sy, w.sz, w.px, w.py, w.pz, w.pparty, w.ptarget = sx, sy, sz, px, py, pz, pparty, ptarget
  w.move_buf = ffi.new("harness_move_rec[?]", P)

  --- One tick of movement; fills w.move_buf with the players whose block
  -- changed and returns how many.
  function w.step()
    local move_buf, n = w.move_buf, 0
    for i = 0, P - 1 do
      local moved = false
      if pstate[i] == 0 then
        local x, z = px[i], pz[i]
        local gx, gz = pgx[i], pgz[i]
        if x < gx then x = x + 1 elseif x > gx then x = x - 1 end
        if z < gz then z = z + 1 elseif z > gz then z = z - 1 end
        px[i], pz[i] = x, z
        py[i] = height(x, z)
        moved = true
        if x == gx and z == gz then
          pstate[i] = 1
          pdwell[i] = 100 + rndint(500)      -- 5 .. 30 s
        end
      else
        local d = pdwell[i] - 1
        pdwell[i] = d
        if d <= 0 then
          pick_target(i, px[i], pz[i], ptarget[i])
          pstate[i] = 0
        elseif rndint(16) == 0 then          -- shuffle to another spot by the site
          pick_spot(i, ptarget[i])
          if pgx[i] ~= px[i] or pgz[i] ~= pz[i] then
            px[i], pz[i] = pgx[i], pgz[i]
            py[i] = height(px[i], pz[i])
            moved = true
          end
        end
      end
      if moved then
        local m = move_buf[n]
        m.player, m.x, m.y, m.z = i + 1, px[i], py[i], pz[i]
        n = n + 1
      end
    end
    return n
  end

  --- Load the world into resolver r: 16 loot tables, the sites (ids k + 1,
  -- --charges each), the players (ids i + 1) with their parties.
  function w.populate(r, charges)
    for id = 1, w.NLOOT do
      local entries = {}
      for e = 1, 3 + rndint(6) do
        local lo = rndint(4)
        entries[e] = { item = 1000 * id + e, weight = 1 + rndint(100), min = lo, max = lo + rndint(8), rarity = rndint(5) }
      end
      r:add_loot_table(id, entries)
    end
    for k = 0, S - 1 do r:add_site(k + 1, sx[k], sy[k], sz[k], 1 + k % w.NLOOT, charges) end
    for i = 0, P - 1 do r:join(i + 1, px[i], py[i], pz[i], pparty[i]) end
  end

  --- The recipients of a FOUND dig by player index i at block (bx, by, bz),
  -- counted by brute force (--verify): the digger, everyone within aoi, the party.
  function w.expected_recipients(i, bx, by, bz, aoi)
    local aoi2, party, n = aoi * aoi, pparty[i], 0
    for j = 0, P - 1 do
      local dx, dy, dz = px[j] - bx, py[j] - by, pz[j] - bz
      if j == i or dx * dx + dy * dy + dz * dz <= aoi2 or (party ~= 0 and pparty[j] == party) then
        n = n + 1
      end
    end
    return n
  end

  return w
end

return M
