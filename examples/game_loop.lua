-- examples/game_loop.lua: the shape of a game server's tick with treasure.
--
--   LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='build/?.so;;' \
--     luajit examples/game_loop.lua [ticks]        (40 ticks at 20 Hz by default)
--
-- Each tick: players move (one move_batch), some dig (one dig_batch), then the
-- send loop drains the resolver into ONE buffer allocated at start-up (poll_into:
-- no Lua garbage per packet), reading each packet through treasure.packet's
-- struct (the layout's owner), never at raw offsets; idle, it blocks in r:wait.
-- It checks every packet's CRC, that its recipient is online and that seqs
-- never go back; its counts must equal stats(). A failed check raises (exit
-- status 1): `make demo` runs this file on both backends so it cannot rot.
local ffi = require("ffi")
local bit = require("bit")
local treasure = require("treasure")
local packet = require("treasure.packet")

local TICKS = tonumber(arg and arg[1]) or 40
local PLAYERS, SITES, TICK_US = 400, 2000, 50000
local DIGS_PER_TICK, BURST_EVERY = 20, 20          -- and every player digs once a second

ffi.cdef [[
typedef struct { uint32_t player; int32_t x, y, z; } game_move_rec;
typedef struct { uint32_t player; int32_t x, y, z; uint64_t t_us; } game_dig_rec;
typedef struct { long tv_sec; long tv_nsec; } game_timespec;
int game_clock_gettime(int clk, game_timespec *ts) __asm__("clock_gettime");
int game_nanosleep(const game_timespec *req, game_timespec *rem) __asm__("nanosleep");
]]
local ts, nap = ffi.new("game_timespec"), ffi.new("game_timespec")
local function now_us()
  ffi.C.game_clock_gettime(1, ts)   -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) * 1e6 + tonumber(ts.tv_nsec) / 1000
end
local function sleep_us(us)
  if us <= 0 then return end
  nap.tv_sec, nap.tv_nsec = math.floor(us / 1e6), math.floor(us % 1e6) * 1000
  ffi.C.game_nanosleep(nap, nil)
end

-- the world: sites on a grid, each player standing next to one
local r = treasure.new({ seed = 42, aoi_radius = 32, reach = 4 })
r:add_loot_table(1, {
  { item = 100, weight = 5, min = 1, max = 3, rarity = 0 },
  { item = 200, weight = 1, min = 1, max = 1, rarity = 4 },
})
for s = 1, SITES do r:add_site(s, (s % 50) * 8, 10, math.floor(s / 50) * 8, 1, 1000) end
local px, pz, psite = {}, {}, {}
for p = 1, PLAYERS do
  local s = (p * 7) % SITES + 1
  psite[p], px[p], pz[p] = s, (s % 50) * 8 + 1, math.floor(s / 50) * 8
  r:join(p, px[p], 10, pz[p], math.floor((p - 1) / 4) + 1)   -- parties of four
end

-- allocated once: the send buffer, move records, packets sent per player
local MAX = 1024
local sendbuf = ffi.new("uint8_t[?]", MAX * packet.SIZE)
local moves = ffi.new("game_move_rec[?]", PLAYERS)
local sent_to = ffi.new("uint32_t[?]", PLAYERS + 1)
local view = packet.view   -- reads a packet in place: plain numbers, no garbage

local last_seq, total = 0, 0
-- the zero-garbage drain: poll_into one buffer until empty; returns the count
local function drain()
  local sent = 0
  while true do
    local n = r:poll_into(sendbuf, MAX)
    for i = 0, n - 1 do
      local p = view(sendbuf + i * packet.SIZE)
      if not p:check() then error("bad magic, version or CRC in a packet") end
      local to, seq = p.recipient, p:seq()
      if to < 1 or to > PLAYERS then error("packet for unknown player " .. to) end
      if seq < last_seq then error("seq went back: " .. seq .. " after " .. last_seq) end
      last_seq = seq
      sent_to[to] = sent_to[to] + 1     -- a real server writes p (128 bytes) to to's socket
    end
    total, sent = total + n, sent + n
    if n < MAX then return sent end
  end
end

-- dig records waiting to be sent; a busy refusal takes none of them, so
-- they stay and go again next tick with that tick's digs (nothing is lost)
local nd, DIGCAP = 0, 2 * (PLAYERS + DIGS_PER_TICK)
local digs = ffi.new("game_dig_rec[?]", DIGCAP)
local function dig(p, t_us)
  if nd == DIGCAP then return end   -- two ticks refused in a row: this player digs later
  local s, d = psite[p], digs[nd]
  d.player, d.x, d.y, d.z, d.t_us = p, (s % 50) * 8, 10, math.floor(s / 50) * 8, t_us
  nd = nd + 1
end

local submitted, busy, heap_before = 0, 0, nil
local next_tick = now_us()
for tick = 1, TICKS do
  -- 1. movement: a few players shuffle one block along x, back and forth
  local nm = 0
  for p = tick % 10 + 1, PLAYERS, 10 do
    px[p] = px[p] + ((tick % 20 < 10) and 1 or -1)
    local m = moves[nm]
    m.player, m.x, m.y, m.z = p, px[p], 10, pz[p]
    nm = nm + 1
  end
  r:move_batch(ffi.string(moves, nm * ffi.sizeof("game_move_rec")))
  -- 2. digs: a few players each tick, everyone on a burst tick; one dig_batch
  local t_us = now_us()
  if tick % BURST_EVERY == 0 then
    for p = 1, PLAYERS do dig(p, t_us) end
  else
    for k = 1, DIGS_PER_TICK do dig((tick * 31 + k * 17) % PLAYERS + 1, t_us) end
  end
  local first, count = r:dig_batch(ffi.string(digs, nd * ffi.sizeof("game_dig_rec")))
  if first == nil then
    busy = busy + 1                  -- back-pressure: the records stay for next tick
  else
    submitted, nd = submitted + count, 0
  end
  -- 3. the send loop until the next tick is due, blocking while idle
  next_tick = next_tick + TICK_US
  while true do
    local n = drain()
    local left = math.floor(next_tick - now_us())
    if left <= 0 then break end
    -- idle: block until packets are ready or the tick is due; 0 means nothing
    -- is in flight (legacy: always), so nothing can arrive before next tick
    if n == 0 and r:wait(left) == 0 then sleep_us(next_tick - now_us()) break end
  end
  if tick == math.min(TICKS, BURST_EVERY + 1) then   -- the queues have grown by then
    collectgarbage("collect") heap_before = collectgarbage("count")
  end
end
while nd > 0 do                     -- the last refused records, if any
  local first, count = r:dig_batch(ffi.string(digs, nd * ffi.sizeof("game_dig_rec")))
  if first then submitted, nd = submitted + count, 0 else drain() end
end
r:flush()
drain()

local st = r:stats()
assert(st.digs == submitted, ("stats().digs %d, submitted %d"):format(st.digs, submitted))
assert(st.packets == total, ("stats().packets %d, received %d"):format(st.packets, total))
local sum = 0
for p = 1, PLAYERS do sum = sum + sent_to[p] end
assert(sum == total and total > 0, "every packet went to one player")
collectgarbage("collect")
print(("%s: %d ticks, %d digs (%d found), %d packets, every CRC and recipient checked; " ..
  "%d busy refusals; Lua heap %+.0f kB after the first burst"):format(treasure.backend, TICKS,
  st.digs, st.found, total, busy, collectgarbage("count") - heap_before))
r:close()
