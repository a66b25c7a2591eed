-- OpenResty example: the game server side of examples/openresty/nginx.conf.
--
-- Where the resolver lives: one per nginx WORKER PROCESS, created in
-- init_worker_by_lua (init_worker below). Everything here -- the resolver, the
-- players, the connections, the drain -- is per worker: a client's player
-- exists only in the worker that accepted its connection.
--
-- Wire protocol (the same one examples/luv_server.lua speaks, and the clients
-- in tests/runtimes/clients.py):
--   client: "GET /play?player=N HTTP/1.1\r\n...\r\n\r\n"; server: "HTTP/1.1 101 ..."
--   then the TCP connection is a raw stream both ways:
--   client -> server: 24-byte frames {u32 op, i32 x, i32 y, i32 z, u64 t_us}
--     op 1 = dig block (x,y,z) at client time t_us, 2 = move to (x,y,z),
--     3 = bye (leave; the server then sends what is left and a trailer)
--   server -> client: the player's 128-byte packets (docs/PACKET.md), in seq
--     order, then a 16-byte trailer {"BYE!", u32 0, u64 packets produced for
--     this player}.
-- Player p's home block is home(p) below; a site with endless charges sits on
-- every home block, so a dig at home is FOUND and reaches the neighbours.
--
-- Nothing here blocks the worker: dig queues the work (native) or resolves in
-- a few microseconds (legacy); the drain is a timer-started light thread that
-- sleeps 1 ms whenever the stream is empty; sockets are cosockets.
local ffi = require("ffi")
local semaphore = require("ngx.semaphore")
local treasure = require("treasure")

local M = { undeliverable = 0 }

local COLUMNS, SPACING = 100, 8
local PLAYERS = tonumber(os.getenv("TREASURE_EXAMPLE_PLAYERS") or "") or 10000
local MAX = 1024
local PACKET = 128

function M.home(p)
  return ((p - 1) % COLUMNS) * SPACING, math.floor((p - 1) / COLUMNS) * SPACING
end

local r                 -- this worker's resolver
local conns = {}        -- player -> connection state (this worker's clients)
local last_seq = 0      -- seq of the last dig this worker accepted
local drained_seq = 0   -- seq of the last packet the drain took off the stream
local buf = ffi.new("uint8_t[?]", MAX * PACKET)
local u32p = ffi.typeof("const uint32_t *")
local frame_t = ffi.typeof([[const struct __attribute__((packed)) {
  uint32_t op; int32_t x, y, z; uint64_t t_us; } *]])

local function drain()
  while not ngx.worker.exiting() do
    local n = r:poll_into(buf, MAX)
    if n == 0 then
      ngx.sleep(0.001)
    else
      local woken = {}
      for i = 0, n - 1 do
        local p = buf + i * PACKET
        local recipient = ffi.cast(u32p, p + 32)[0]
        local c = conns[recipient]
        if c then
          c.count = c.count + 1
          c.queue[#c.queue + 1] = ffi.string(p, PACKET)
          woken[c] = true
        else
          -- Dug before its recipient's connection dropped (not a bye):
          -- nobody to send it to. Counted, never silent.
          M.undeliverable = M.undeliverable + 1
          ngx.log(ngx.WARN, "treasure example: packet for disconnected player ", recipient)
        end
      end
      -- seq is below 2^53: the low and high words make an exact number.
      local last = buf + (n - 1) * PACKET
      drained_seq = ffi.cast(u32p, last + 12)[0] * 4294967296 + ffi.cast(u32p, last + 8)[0]
      for c in pairs(woken) do c.sema:post(1) end
    end
  end
end

function M.init_worker()
  r = treasure.new({ seed = 42, aoi_radius = 12, reach = 4, workers = 1 })
  r:add_loot_table(1, {
    { item = 100, weight = 3, min = 1, max = 5, rarity = 0 },
    { item = 200, weight = 1, min = 1, max = 1, rarity = 3 },
  })
  for p = 1, PLAYERS do
    local x, z = M.home(p)
    r:add_site(p, x, 0, z, 1, 4294967295)
  end
  local ok, err = ngx.timer.at(0, drain)
  if not ok then error("treasure example: cannot start the drain: " .. tostring(err)) end
end

local function reader(sock, player, c)
  while true do
    local data, err = sock:receive(24)
    if not data then return "closed: " .. tostring(err) end
    local f = ffi.cast(frame_t, data)
    if f.op == 1 then
      local seq, why = r:dig(player, f.x, f.y, f.z, tonumber(f.t_us))
      while not seq do -- busy: packets are never dropped; let the drain catch up
        assert(why == "busy", why)
        ngx.sleep(0.001)
        seq, why = r:dig(player, f.x, f.y, f.z, tonumber(f.t_us))
      end
      last_seq = seq
    elseif f.op == 2 then
      r:move(player, f.x, f.y, f.z)
    elseif f.op == 3 then
      r:leave(player)
      -- No dig after this one can reach the player; once the drain has
      -- taken seq bye_seq every packet for the player is in its queue.
      c.bye_seq = last_seq
      c.sema:post(1)
      return "bye"
    else
      return "bad op " .. tostring(f.op)
    end
  end
end

function M.play()
  local player = tonumber(ngx.var.arg_player)
  if not player or player < 1 or player > PLAYERS or player % 1 ~= 0 or conns[player] then
    return ngx.exit(400)
  end
  local sock, err = ngx.req.socket(true)
  if not sock then ngx.log(ngx.ERR, "raw socket: ", err) return ngx.exit(500) end
  local ok
  ok, err = sock:send("HTTP/1.1 101 Switching Protocols\r\nUpgrade: treasure\r\nConnection: Upgrade\r\n\r\n")
  if not ok then return end
  local x, z = M.home(player)
  local c = { queue = {}, count = 0, sema = semaphore.new(0), bye_seq = nil }
  conns[player] = c
  r:join(player, x, 0, z)
  local rt = ngx.thread.spawn(reader, sock, player, c)
  while true do
    c.sema:wait(c.bye_seq and 0.005 or 1)
    if #c.queue > 0 then
      local q = c.queue
      c.queue = {}
      ok, err = sock:send(q)
      if not ok then break end
    end
    if c.bye_seq and drained_seq >= c.bye_seq and #c.queue == 0 then
      local trailer = ffi.new("uint8_t[16]", "BYE!")
      ffi.cast("uint64_t *", trailer + 8)[0] = c.count
      sock:send(ffi.string(trailer, 16))
      break
    end
    if coroutine.status(rt) == "dead" and not c.bye_seq then break end -- client went away
  end
  if not c.bye_seq then pcall(r.leave, r, player) ngx.thread.kill(rt) end
  conns[player] = nil
end

function M.metrics()
  ngx.header["Content-Type"] = "text/plain; version=0.0.4"
  ngx.print(treasure.metrics(r, { worker = tostring(ngx.worker.pid()) }))
end

return M
