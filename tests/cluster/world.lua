-- tests/cluster/world.lua: the seeded world and script of the cluster test.
--
-- Every process of a run (the single-server reference and each shard) builds
-- the same world from the same options and replays the same script: which
-- players move where on each tick and which digs happen on it, in one global
-- order. That shared script is also how each shard knows its ghosts (no ghost
-- transport is involved): ghosts follow exactly, so the owner of a block
-- computes the recipients one big server would.
--
--   * zones are x stripes of `stripe` blocks: owner(block) = stripe of x;
--   * a player's host is the stripe it starts in, fixed for the run; it
--     wanders across borders (its host does not change);
--   * players start by a site and stay `dwell` ticks or so, then walk to
--     another (mostly by a border, on either side);
--   * parties of `party_size`; in a `party_spread` share of them each member
--     goes its own way (so they spread across shards), in the others the
--     members follow the leader's site;
--   * `border_share` of the sites lie within `aoi` of a border, and players
--     walk mostly to those: busy borders, many cross-shard recipients.
--
-- The PRNG is the harness's (bench/harness/world.lua: xoshiro128**, seeded by
-- splitmix64). The digs of tick t come from a generator seeded by (seed, t),
-- so a restored shard only re-walks the movement up to its snapshot's tick.

local ffi = require("ffi")
local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
package.path = here .. "/../../bench/?.lua;" .. package.path
local prng = require("harness.world").prng

local floor, max, min, abs = math.floor, math.max, math.min, math.abs

local M = {}

M.DEFAULTS = {
  seed = 17, shards = 3, stripe = 128, depth = 160, players = 900, party_size = 3, party_spread = 0.35,
  sites = 1500, border_share = 0.6, charges = 6, aoi = 16, reach = 6,
  digs_per_tick = 24, dwell = 160, burst_tick = 0, burst_digs = 0, border_dig_share = 0.7,
}

--- Microseconds per tick in t_us (a dig's t_us = tick * TICK_US + index).
M.TICK_US = 50000

function M.new(o)
  local w = {}
  for k, v in pairs(M.DEFAULTS) do w[k] = o[k] == nil and v or o[k] end
  local N, SW, D, P, S = w.shards, w.stripe, w.depth, w.players, w.sites
  local W = N * SW
  w.width = W
  assert(w.aoi >= w.reach + 2, "aoi must be at least reach + 2 (a digger is then always held by the owner)")
  assert(SW > 2 * w.aoi, "stripe must be wider than 2 * aoi")
  local rnd, rndint, rnd01 = prng(w.seed)

  local function owner(x)
    local s = floor(x / SW)
    return s < 0 and 0 or (s >= N and N - 1 or s)
  end
  w.owner = owner

  -- sites: distinct blocks on y = -1 .. -3 below the ground (y = 0)
  local sx, sy, sz = ffi.new("int32_t[?]", S), ffi.new("int32_t[?]", S), ffi.new("int32_t[?]", S)
  local taken = {}
  local nborder = 0
  do
    local i = 0
    while i < S do
      local x, z
      if N > 1 and rnd01() < w.border_share then
        local b = 1 + rndint(N - 1)                 -- border between stripes b-1 and b
        x = b * SW + rndint(2 * w.aoi) - w.aoi
      else
        x = rndint(W)
      end
      z = rndint(D)
      local key = x * D + z
      if x >= 0 and x < W and not taken[key] then
        taken[key] = true
        sx[i], sy[i], sz[i] = x, -1 - rndint(3), z
        i = i + 1
      end
    end
    for k = 0, S - 1 do
      local x = sx[k]
      local d = min(x % SW, SW - 1 - x % SW)
      if d < w.aoi then nborder = nborder + 1 end
    end
  end
  w.sx, w.sy, w.sz, w.border_sites = sx, sy, sz, nborder
  -- sites near the borders, to walk to
  local bsites = {}
  for k = 0, S - 1 do
    local x = sx[k]
    local d = min(x % SW, SW - 1 - x % SW)
    if owner(x) > 0 and x % SW < w.aoi or owner(x) < N - 1 and SW - 1 - x % SW < w.aoi then
      bsites[#bsites + 1] = k
    end
  end
  if #bsites == 0 then for k = 0, S - 1 do bsites[k + 1] = k end end

  -- players: ids i + 1; host = starting stripe; parties of party_size
  local px, pz = ffi.new("int32_t[?]", P), ffi.new("int32_t[?]", P)
  local host = ffi.new("uint16_t[?]", P)
  local pparty = ffi.new("uint32_t[?]", P)
  local ptarget = ffi.new("int32_t[?]", P)
  local gx, gz = ffi.new("int32_t[?]", P), ffi.new("int32_t[?]", P)
  local dwell = ffi.new("int32_t[?]", P)
  local spread = ffi.new("uint8_t[?]", P)     -- the party's members walk on their own
  local function pick_target(i)
    local k
    if rnd01() < 0.8 then k = bsites[1 + rndint(#bsites)] else k = rndint(S) end
    -- a member of a party that keeps together follows the leader's target
    local l = i - i % w.party_size
    if l ~= i and spread[l] == 0 then k = ptarget[l] end
    ptarget[i] = k
    local d = rndint(8)
    if d >= 4 then d = d + 1 end
    gx[i] = max(0, min(W - 1, sx[k] + d % 3 - 1))
    gz[i] = max(0, min(D - 1, sz[k] + floor(d / 3) - 1))
  end
  -- every player starts by its first target's site, staying a while; its
  -- host is the stripe it starts in
  for i = 0, P - 1 do
    pparty[i] = floor(i / w.party_size) + 1
    if i % w.party_size == 0 then spread[i] = rnd01() < w.party_spread and 1 or 0 end
    pick_target(i)
    px[i], pz[i] = gx[i], gz[i]
    host[i] = owner(px[i])
    dwell[i] = 1 + rndint(w.dwell)
  end
  w.px, w.pz, w.host, w.pparty = px, pz, host, pparty
  w.PY = 0
  w.tick = 0

  --- One tick of movement (tick w.tick + 1). Returns the number of moved
  -- players and fills w.moved[0 .. n-1] with their indices.
  w.moved = ffi.new("int32_t[?]", P)
  function w.step()
    local n = 0
    for i = 0, P - 1 do
      local x, z = px[i], pz[i]
      if x == gx[i] and z == gz[i] then
        dwell[i] = dwell[i] - 1
        if dwell[i] <= 0 then pick_target(i) dwell[i] = floor(w.dwell / 4) + rndint(w.dwell) end
      else
        if x < gx[i] then x = x + 1 elseif x > gx[i] then x = x - 1 end
        if z < gz[i] then z = z + 1 elseif z > gz[i] then z = z - 1 end
        px[i], pz[i] = x, z
        w.moved[n] = i
        n = n + 1
      end
    end
    w.tick = w.tick + 1
    return n
  end

  --- The digs of the current tick (after its step), in global order: arrays
  -- of player index, block and t_us; `n` of them.
  local cap = max(w.digs_per_tick, w.burst_digs) + 1
  local dp, dx, dy, dz = ffi.new("int32_t[?]", cap), ffi.new("int32_t[?]", cap), ffi.new("int32_t[?]", cap), ffi.new("int32_t[?]", cap)
  w.dig_player, w.dig_x, w.dig_y, w.dig_z = dp, dx, dy, dz
  local function near_border(i)
    local x = px[i] % SW
    return (owner(px[i]) > 0 and x < w.aoi) or (owner(px[i]) < N - 1 and SW - 1 - x < w.aoi)
  end
  function w.digs()
    local t = w.tick
    local _, rint, r01 = prng(w.seed * 1000003 + t)
    local n = w.digs_per_tick
    if w.burst_digs > 0 and t == w.burst_tick then n = w.burst_digs end
    local reach = w.reach
    for j = 0, n - 1 do
      local i = rint(P)
      -- prefer a player standing by its site near a border (up to 8 tries)
      if r01() < w.border_dig_share then
        for _ = 1, 8 do
          if near_border(i) and px[i] == gx[i] and pz[i] == gz[i] then break end
          i = rint(P)
        end
      end
      local k = ptarget[i]
      local ax, az = abs(sx[k] - px[i]), abs(sz[k] - pz[i])
      dp[j] = i
      if ax <= reach + 1 and az <= reach + 1 and r01() < 0.85 then
        dx[j], dy[j], dz[j] = sx[k], sy[k], sz[k]         -- the site it stands by (FOUND/EMPTY, or REJECTED)
      else
        -- a block within reach + 2 of the player (NOTHING or REJECTED mostly)
        dx[j] = max(0, min(W - 1, px[i] + rint(2 * reach + 5) - reach - 2))
        dy[j] = -rint(3)
        dz[j] = max(0, min(D - 1, pz[i] + rint(2 * reach + 5) - reach - 2))
      end
    end
    w.ndigs = n
    return n
  end

  --- t_us of dig j of the current tick.
  function w.t_us(j) return w.tick * M.TICK_US + j end

  --- The players shard s holds now: its hosted players, every player within
  -- aoi of its stripe in x (a superset of the 3-D AOI of its blocks), and the
  -- party members of any of those. Fills `set` (a uint8_t[P]) with 1/0.
  function w.held(s, set)
    local lo, hi = s * SW - w.aoi, (s + 1) * SW - 1 + w.aoi
    local party_in = {}
    for i = 0, P - 1 do
      local x = px[i]
      local h = host[i] == s or (x >= lo and x <= hi)
      set[i] = h and 1 or 0
      if h then party_in[pparty[i]] = true end
    end
    for i = 0, P - 1 do
      if set[i] == 0 and party_in[pparty[i]] then set[i] = 1 end
    end
  end

  --- Loot tables (8) and sites, ids k + 1; only the owner's when `s` is given.
  function w.populate_sites(r, s)
    local lrnd = select(2, prng(w.seed + 7))
    for id = 1, 8 do
      local entries = {}
      for e = 1, 2 + lrnd(5) do
        local lo = lrnd(4)
        entries[e] = { item = 100 * id + e, weight = 1 + lrnd(50), min = lo, max = lo + lrnd(6), rarity = lrnd(5) }
      end
      r:add_loot_table(id, entries)
    end
    local n = 0
    for k = 0, S - 1 do
      if s == nil or owner(sx[k]) == s then
        r:add_site(k + 1, sx[k], sy[k], sz[k], 1 + k % 8, w.charges)
        n = n + 1
      end
    end
    return n
  end

  return w
end

return M
