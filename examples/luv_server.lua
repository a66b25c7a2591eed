-- luv example: a treasure game server on libuv (lua-luv), TCP on 127.0.0.1.
--   luajit examples/luv_server.lua --port P [--players N] [--send ffi|string] [--stats FILE]
-- Clients join, move and dig with the protocol described in
-- examples/openresty/treasure_game.lua (tests/runtimes/clients.py speaks it).
--
-- The send path: luv's write() takes Lua strings, so sending a packet that way
-- makes one 128-byte string per packet (garbage). The default `--send ffi`
-- hands each packet straight from the poll_into buffer to send(2) on the
-- socket's fd (uv.fileno), no Lua string at all. If the kernel takes less than
-- the whole packet (socket buffer full) the rest goes through luv's write
-- queue, and so does everything after it until that queue is empty, so the
-- byte order on the connection never changes. On SIGINT the server writes to
-- --stats how many bytes the Lua heap grew per packet sent (the GC is stopped
-- after setup, so the growth is every allocation made while serving).
--
-- The drain is a 1 ms luv timer calling poll_into (issue 15's r:fd() readiness
-- is not there yet; with it, uv.new_poll(r:fd()) replaces the timer).
local ffi = require("ffi")
local uv = require("luv")
local treasure = require("treasure")

local opts = { port = nil, players = 10000, send = "ffi", stats = nil }
do
  local i = 1
  while arg[i] do
    local k, v = arg[i]:match("^%-%-(%w+)$"), arg[i + 1]
    if not k or opts[k] == nil and k ~= "port" and k ~= "stats" or v == nil then
      error("usage: luajit examples/luv_server.lua --port P [--players N] [--send ffi|string] [--stats FILE]")
    end
    opts[k] = (k == "port" or k == "players") and assert(tonumber(v), k) or v
    i = i + 2
  end
  assert(opts.port, "--port is required")
  assert(opts.send == "ffi" or opts.send == "string", "--send must be ffi or string")
end

ffi.cdef[[
  typedef long ssize_t;
  ssize_t send(int fd, const void *buf, size_t len, int flags);
]]
local MSG_DONTWAIT, MSG_NOSIGNAL = 0x40, 0x4000
local EAGAIN = 11

local COLUMNS, SPACING, PACKET, MAX = 100, 8, 128, 1024
local function home(p) return ((p - 1) % COLUMNS) * SPACING, math.floor((p - 1) / COLUMNS) * SPACING end

local r = treasure.new({ seed = 42, aoi_radius = 12, reach = 4, workers = 1 })
r:add_loot_table(1, {
  { item = 100, weight = 3, min = 1, max = 5, rarity = 0 },
  { item = 200, weight = 1, min = 1, max = 1, rarity = 3 },
})
for p = 1, opts.players do
  local x, z = home(p)
  r:add_site(p, x, 0, z, 1, 4294967295)
end

local buf = ffi.new("uint8_t[?]", MAX * PACKET)
local u32p = ffi.typeof("const uint32_t *")
local frame_t = ffi.typeof([[const struct __attribute__((packed)) {
  uint32_t op; int32_t x, y, z; uint64_t t_us; } *]])
local trailer = ffi.new("uint8_t[16]")
local conns = {}          -- player -> connection
local byes = {}           -- connections waiting for their last packets
local last_seq, drained_seq = 0, 0
local sent, undeliverable = 0, 0

local function queued_done(c) c.backlog = c.backlog - 1 end

-- Send len bytes at p to connection c, keeping the connection's byte order.
local function send_bytes(c, p, len)
  if opts.send == "string" or c.backlog > 0 then
    c.backlog = c.backlog + 1
    c.tcp:write(ffi.string(p, len), function() queued_done(c) end)
    return
  end
  local k = tonumber(ffi.C.send(c.fd, p, len, MSG_DONTWAIT + MSG_NOSIGNAL))
  if k == len then return end
  if k < 0 then
    local errno = ffi.errno()
    if errno ~= EAGAIN then c.dead = true return end
    k = 0
  end
  c.backlog = c.backlog + 1
  c.tcp:write(ffi.string(p + k, len - k), function() queued_done(c) end)
end

local function finish_byes()
  for c in pairs(byes) do
    if drained_seq >= c.bye_seq then
      byes[c] = nil
      ffi.copy(trailer, "BYE!", 4)
      ffi.cast("uint32_t *", trailer + 4)[0] = 0
      ffi.cast("uint64_t *", trailer + 8)[0] = c.count
      send_bytes(c, trailer, 16)
      conns[c.player] = nil
      c.tcp:shutdown(function() c.tcp:close() end)
    end
  end
end

local function drain()
  while true do
    local n = r:poll_into(buf, MAX)
    if n == 0 then break end
    for i = 0, n - 1 do
      local p = buf + i * PACKET
      local c = conns[ffi.cast(u32p, p + 32)[0]]
      if c and not c.dead then
        c.count = c.count + 1
        send_bytes(c, p, PACKET)
        sent = sent + 1
      else
        undeliverable = undeliverable + 1 -- its client dropped (not a bye): counted
      end
    end
    local last = buf + (n - 1) * PACKET
    drained_seq = ffi.cast(u32p, last + 12)[0] * 4294967296 + ffi.cast(u32p, last + 8)[0]
  end
  finish_byes()
end

local function on_frame(c, s, off)
  local f = ffi.cast(frame_t, ffi.cast("const char *", s) + off)
  if f.op == 1 then
    local seq = r:dig(c.player, f.x, f.y, f.z, tonumber(f.t_us))
    if not seq then -- busy: never dropped; drain, then the dig is taken
      drain()
      seq = assert(r:dig(c.player, f.x, f.y, f.z, tonumber(f.t_us)))
    end
    last_seq = seq
  elseif f.op == 2 then
    r:move(c.player, f.x, f.y, f.z)
  elseif f.op == 3 then
    r:leave(c.player)
    c.left = true
    c.bye_seq = last_seq
    byes[c] = true
  end
end

local function on_data(c, data)
  c.inbuf = c.inbuf .. data
  if not c.player then
    local head_end = c.inbuf:find("\r\n\r\n", 1, true)
    if not head_end then return end
    local player = tonumber(c.inbuf:match("^GET /play%?player=(%d+) HTTP/1%.1\r\n"))
    if not player or player < 1 or player > opts.players or conns[player] then
      c.tcp:write("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
      c.tcp:shutdown(function() c.tcp:close() end)
      return
    end
    c.player = player
    c.inbuf = c.inbuf:sub(head_end + 4)
    c.tcp:write("HTTP/1.1 101 Switching Protocols\r\nUpgrade: treasure\r\nConnection: Upgrade\r\n\r\n")
    local x, z = home(player)
    conns[player] = c
    r:join(player, x, 0, z)
  end
  local off = 0
  while #c.inbuf - off >= 24 and not c.left do
    on_frame(c, c.inbuf, off)
    off = off + 24
  end
  c.inbuf = c.inbuf:sub(off + 1)
end

local server = uv.new_tcp()
assert(server:bind("127.0.0.1", opts.port))
assert(server:listen(4096, function(err)
  assert(not err, err)
  local tcp = uv.new_tcp()
  server:accept(tcp)
  tcp:nodelay(true)
  local c = { tcp = tcp, fd = tcp:fileno(), inbuf = "", count = 0, backlog = 0 }
  tcp:read_start(function(rerr, data)
    if data then return on_data(c, data) end
    -- EOF or error: a client that said bye is finished by finish_byes
    if c.player and not c.left then c.left = true pcall(r.leave, r, c.player) conns[c.player] = nil end
    if not c.bye_seq and not tcp:is_closing() then tcp:close() end
  end)
end))

local timer = uv.new_timer()
timer:start(1, 1, drain)

collectgarbage("collect")
collectgarbage("stop")
local heap0 = collectgarbage("count")
local sig = uv.new_signal()
sig:start("sigint", function()
  local grown = (collectgarbage("count") - heap0) * 1024
  local line = string.format("luv/%s send=%s: packets sent %d, undeliverable %d, Lua heap grew %.0f bytes per packet sent\n",
    treasure.backend, opts.send, sent, undeliverable, sent > 0 and grown / sent or 0)
  if opts.stats then local f = assert(io.open(opts.stats, "w")) f:write(line) f:close() else io.write(line) end
  uv.stop()
end)
io.stdout:setvbuf("line")
uv.run()
r:close()
