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
-- after setup, so the growth is every allocation made while serving), how
-- many times the fd woke it, and which libuv handles exist (no timer).
--
-- The drain is driven by the resolver's readiness fd alone:
-- uv.new_poll(r:fd()) calls it when packets can be polled, and polling the
-- stream empty makes the fd unreadable again (docs/API.md, "fd"). There is
-- no timer: the loop sleeps until a dig's packets are ready.
--
-- Zero garbage per packet: the recipient is read in place with
-- treasure.packet.view, each packet goes to send(2) from a pointer into the
-- poll_into buffer made once at start (slot[i] = buf + i * 128), and send's
-- result is declared as an int (the ABI returns ssize_t in the same register;
-- a 64-bit return would be a boxed cdata). Incoming frames are parsed from
-- luv's read string by offset, copying only an incomplete tail.
local ffi = require("ffi")
local uv = require("luv")
local treasure = require("treasure")
local packet = require("treasure.packet")

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
  int treasure_example_send(int fd, const void *buf, size_t len, int flags) asm("send");
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
local slot = {} -- slot[i]: pointer to packet i of buf, made once
for i = 0, MAX - 1 do slot[i] = buf + i * PACKET end
local view = packet.view
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
  local k = ffi.C.treasure_example_send(c.fd, p, len, MSG_DONTWAIT + MSG_NOSIGNAL)
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

local wakeups, empty_wakeups = 0, 0
-- Steady state: from the last join to the first bye (setup and teardown of
-- connections excluded), to show what serving digs costs per packet.
local heap_mark, sent_mark, heap_end, sent_end = 0, 0, nil, nil

local function drain()
  local got = 0
  while true do
    local n = r:poll_into(buf, MAX)
    if n == 0 then break end
    got = got + n
    for i = 0, n - 1 do
      local p = slot[i]
      local c = conns[view(p).recipient]
      if c and not c.dead then
        c.count = c.count + 1
        send_bytes(c, p, PACKET)
        sent = sent + 1
      else
        undeliverable = undeliverable + 1 -- its client dropped (not a bye): counted
      end
    end
    drained_seq = view(slot[n - 1]):seq()
  end
  if got == 0 then empty_wakeups = empty_wakeups + 1 end
  finish_byes()
end

local byte = string.byte
local function u32(a, b, c, d) return ((d * 256 + c) * 256 + b) * 256 + a end
local function i32(a, b, c, d) local v = u32(a, b, c, d) return v >= 2147483648 and v - 4294967296 or v end

-- One 24-byte frame at s[off+1 ..], read with string.byte (plain numbers: no
-- cdata, no substring).
local function on_frame(c, s, off)
  local a1, a2, a3, a4, x1, x2, x3, x4, y1, y2, y3, y4, z1, z2, z3, z4, t1, t2, t3, t4, h1, h2, h3, h4 =
    byte(s, off + 1, off + 24)
  local op = u32(a1, a2, a3, a4)
  local f_x, f_y, f_z = i32(x1, x2, x3, x4), i32(y1, y2, y3, y4), i32(z1, z2, z3, z4)
  if op == 1 then
    local t_us = u32(h1, h2, h3, h4) * 4294967296 + u32(t1, t2, t3, t4)
    local seq = r:dig(c.player, f_x, f_y, f_z, t_us)
    if not seq then -- busy: never dropped; drain, then the dig is taken
      drain()
      seq = assert(r:dig(c.player, f_x, f_y, f_z, t_us))
    end
    last_seq = seq
  elseif op == 2 then
    r:move(c.player, f_x, f_y, f_z)
  elseif op == 3 then
    if not heap_end then heap_end, sent_end = collectgarbage("count"), sent end -- steady state ends
    r:leave(c.player)
    c.left = true
    c.bye_seq = last_seq
    byes[c] = true
    -- its last packets may all be sent already: no wakeup would come for it
    finish_byes()
  end
end

local function on_data(c, data)
  if c.player and c.inbuf == "" then return c.frames(c, data) end -- the common case: no copy
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
    -- the steady-state figure counts from the last join on (connection setup excluded)
    heap_mark, sent_mark = collectgarbage("count"), sent
  end
  c.frames(c, c.inbuf)
end

-- Frames straight from luv's read string; only an incomplete tail is kept.
local function frames(c, s)
  local off, len = 0, #s
  while len - off >= 24 and not c.left do
    on_frame(c, s, off)
    off = off + 24
  end
  c.inbuf = off == len and "" or s:sub(off + 1)
end

local server = uv.new_tcp()
assert(server:bind("127.0.0.1", opts.port))
assert(server:listen(4096, function(err)
  assert(not err, err)
  local tcp = uv.new_tcp()
  server:accept(tcp)
  tcp:nodelay(true)
  local c = { tcp = tcp, fd = tcp:fileno(), inbuf = "", count = 0, backlog = 0, frames = frames }
  tcp:read_start(function(rerr, data)
    if data then return on_data(c, data) end
    -- EOF or error: a client that said bye is finished by finish_byes
    if c.player and not c.left then c.left = true pcall(r.leave, r, c.player) conns[c.player] = nil end
    if not c.bye_seq and not tcp:is_closing() then tcp:close() end
  end)
end))

-- The drain: woken by the resolver's readiness fd, never by a timer.
local ready = uv.new_poll(r:fd())
ready:start("r", function(err)
  assert(not err, err)
  wakeups = wakeups + 1
  drain()
end)

collectgarbage("collect")
collectgarbage("stop")
local heap0 = collectgarbage("count")
local sig = uv.new_signal()
sig:start("sigint", function()
  local grown = (collectgarbage("count") - heap0) * 1024
  local handles = {}
  uv.walk(function(h) local t = uv.handle_get_type(h) handles[t] = (handles[t] or 0) + 1 end)
  local kinds = {}
  for t, n in pairs(handles) do kinds[#kinds + 1] = t .. "=" .. n end
  table.sort(kinds)
  local steady = ((heap_end or collectgarbage("count")) - heap_mark) * 1024
  local steady_n = (sent_end or sent) - sent_mark
  local line = string.format("luv/%s send=%s: packets sent %d, undeliverable %d, Lua heap grew %.1f bytes per packet sent"
    .. " (%.1f in the steady state from the last join to the first bye, over %d packets);"
    .. " drain woken by r:fd() %d times (%d found nothing); timers %d; handles %s\n",
    treasure.backend, opts.send, sent, undeliverable, sent > 0 and grown / sent or 0,
    steady_n > 0 and steady / steady_n or 0, steady_n,
    wakeups, empty_wakeups, handles.timer or 0, table.concat(kinds, " "))
  if opts.stats then local f = assert(io.open(opts.stats, "w")) f:write(line) f:close() else io.write(line) end
  uv.stop()
end)
io.stdout:setvbuf("line")
uv.run()
r:close()
