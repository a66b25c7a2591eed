-- tests/diff/run.lua: differential test driver (see tests/diff/README.md).
--
--   LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='build/?.so;;' \
--   luajit tests/diff/run.lua --backends lua,native --sequences 200 --calls 2000 \
--     [--seed S] [--workers 1,2,4,8] [--tiny] [--trace FILE] [--keep-going] [--swap] [--bombs]
--
-- --bombs: every call on the legacy (lua) backend is hit by raising
-- allocations: __gc finalizers that raise (newproxy bombs) are armed before
-- the call and the GC made aggressive (pause 0, stepmul 10000), so they go off
-- in the GC steps of the call's own allocations. A call that raised a bomb is
-- retried (it must have changed nothing) until it completes; the results must
-- stay identical to the other backends'. The JIT is off (Debian's LuaJIT
-- 2.1.0-beta3 segfaults when a finalizer raises inside compiled code).
--
-- --swap: the last backend's resolver is live-swapped (r:snapshot() +
-- restore, via treasure.swap, or native._restore_with_tuning when the
-- sequence uses tiny queues) to the other backend at random call indices
-- (~1 call in 40: lua->native->lua... or native->lua->native...), with
-- whatever is in flight or undelivered at that moment. Its stream, results
-- and errors must stay identical to the first backend's, which is never
-- swapped; at every swap the two snapshots must be deep-equal too.
--
-- Every generated call is applied to one resolver per backend (pcall) and the
-- outcomes are compared: same success/failure, same error text, same results,
-- byte-identical packets. --trace writes JSON lines for tests/diff/model.py.
local ffi = require("ffi")

-- find gen.lua next to this script
local here = (arg and arg[0] or ""):match("^(.*)[/\\][^/\\]*$") or "."
package.path = here .. "/?.lua;" .. package.path
local gen = require("gen")
local record = require("record")
local transport = require("transport")

---------------------------------------------------------------- options
local O = { backends = "lua,native", sequences = 200, calls = 2000, seed = 1, workers = "1,2,4,8",
  tiny = false, trace = nil, keep_going = false }
do
  local i = 1
  while i <= #arg do
    local a = arg[i]
    local function val() i = i + 1; if arg[i] == nil then error("missing value for " .. a) end; return arg[i] end
    if a == "--backends" then O.backends = val()
    elseif a == "--sequences" then O.sequences = assert(tonumber(val()), "--sequences: number")
    elseif a == "--calls" then O.calls = assert(tonumber(val()), "--calls: number")
    elseif a == "--seed" then O.seed = assert(tonumber(val()), "--seed: number"); O.seed_given = true
    elseif a == "--workers" then O.workers = val(); O.workers_given = true
    elseif a == "--tiny" then O.tiny = true
    elseif a == "--trace" then O.trace = val()
    elseif a == "--keep-going" then O.keep_going = true
    elseif a == "--no-negzero" then O.no_negzero = true
    elseif a == "--swap" then O.swap = true
    elseif a == "--bombs" then O.bombs = true
    elseif a == "--cluster" then O.cluster = true
    elseif a == "-h" or a == "--help" then
      print("usage: luajit tests/diff/run.lua [--backends lua,native] [--sequences N] [--calls N] [--seed S]")
      print("       [--workers 1,2,4,8] [--tiny] [--trace FILE] [--keep-going] [--no-negzero] [--swap] [--bombs] [--cluster]")
      os.exit(0)
    else
      io.stderr:write("run.lua: unknown option " .. tostring(a) .. "\n"); os.exit(2)
    end
    i = i + 1
  end
end

local function split(s)
  local t = {}
  for w in s:gmatch("[^,%s]+") do t[#t + 1] = w end
  return t
end

local BACKENDS = {}
-- a backend is `lua`, `native`, or `KIND=MODULE` (e.g. `native=fake_native` to
-- exercise the driver's native paths with a stand-in module)
for _, spec in ipairs(split(O.backends)) do
  local name, modname = spec:match("^([^=]+)=(.+)$")
  if not name then
    name = spec
    modname = (name == "lua" or name == "legacy") and "treasure.legacy" or (name == "native" and "treasure.native") or name
  end
  local ok, mod = pcall(require, modname)
  if not ok then
    io.stderr:write("run.lua: cannot load backend '" .. name .. "' (" .. modname .. "): " .. tostring(mod) .. "\n")
    print("differential: 0 passed, 1 failed")
    os.exit(1)
  end
  local kind = name == "legacy" and "lua" or name
  BACKENDS[#BACKENDS + 1] = { name = kind, spec = spec, mod = mod, native = (kind == "native") }
  if kind == "native" and type(mod._new_with_tuning) ~= "function" then
    io.stderr:write("run.lua: " .. modname .. " has no _new_with_tuning(opts, tuning) test hook: cannot test tiny queues\n")
    print("differential: 0 passed, 1 failed")
    os.exit(1)
  end
end
for _, b in ipairs(BACKENDS) do
  if b.native then io.stderr:write(string.format("  %s: _ffi = %s\n", b.spec, tostring(b.mod._ffi))) end
end
if #BACKENDS == 0 then io.stderr:write("run.lua: no backends\n"); os.exit(2) end
-- --swap: the last backend is the one swapped back and forth
local SWAPPED
if O.swap then
  if #BACKENDS < 2 then io.stderr:write("run.lua: --swap needs two backends\n"); os.exit(2) end
  SWAPPED = BACKENDS[#BACKENDS]
  SWAPPED.swapping = true -- it may be native at any time, so it may lag on poll
  io.stderr:write("  --swap: " .. SWAPPED.spec .. " is swapped between backends at random calls\n")
end
local total_swaps = 0

---------------------------------------------------------------- bombs (--bombs)
local BOMB = "treasure-diff-bomb"
local bombs_fired, bombs_inside = 0, 0
local function bomb_gc() bombs_fired = bombs_fired + 1; error(BOMB, 0) end
local function arm_one()
  local p = newproxy(true)
  getmetatable(p).__gc = bomb_gc
end
local function defuse() -- run every pending finalizer outside the calls
  while not pcall(collectgarbage) do end
end
local bomb_rng
if O.bombs then
  jit.off()
  collectgarbage("setpause", 0)
  collectgarbage("setstepmul", 10000)
  bomb_rng = gen.rng(O.seed * 7 + 3)
  for _, b in ipairs(BACKENDS) do b.bombs = (b.name == "lua") end
end

--- pcall(f, self, args[1..n]) with bombs armed; a call that raised a bomb is
-- retried until it completes. Results come back in locals: no allocation
-- between the call and the check (the bombs would go off there instead).
local function bombed_pcall(f, self, n, args)
  defuse()
  for _ = 1, 1 + bomb_rng:below(3) do pcall(arm_one) end
  local ok, r1, r2, r3
  while true do
    ok, r1, r2, r3 = pcall(f, self, unpack(args, 1, n))
    if ok or r1 ~= BOMB then break end
    bombs_inside = bombs_inside + 1
  end
  defuse()
  return ok, r1, r2, r3
end

local WORKERS = {}
for _, w in ipairs(split(O.workers)) do WORKERS[#WORKERS + 1] = assert(tonumber(w), "--workers: numbers") end

-- compared after a flush (stats() never waits, issue 15): inflight_digs is then 0 on every backend
local STATS_KEYS = { "digs", "packets", "found", "empty", "nothing", "rejected", "busy", "players", "sites", "pending_packets",
  "inflight_digs",
  -- cluster mode (issue 17): present only on a resolver made with opts.shard/shards
  "shard", "shards", "next_host_seq", "applied_digs", "duplicate_digs", "records_out", "records_in", "pending_records",
  "log_position" }

---------------------------------------------------------------- formatting
local function numstr(v)
  if v ~= v then return "nan" end
  if v == math.huge then return "inf" end
  if v == -math.huge then return "-inf" end
  return string.format("%.17g", v)
end

local HEX = {}
for b = 0, 255 do HEX[string.char(b)] = string.format("%02x", b) end
local function hex(s)
  return (s:gsub(".", HEX))
end

-- human-readable rendering of a generated argument / result value
local function show(v, depth)
  depth = depth or 0
  local t = type(v)
  if t == "nil" then return "nil" end
  if t == "number" then return numstr(v) end
  if t == "string" then
    if #v <= 40 and not v:find("[^%g ]") then return string.format("%q", v) end
    return string.format("<%d bytes: %s%s>", #v, hex(v:sub(1, 48)), #v > 48 and "..." or "")
  end
  if t == "boolean" then return tostring(v) end
  if t == "table" then
    if v.__tbl then
      if depth > 3 then return "{...}" end
      local parts = {}
      for _, kv in ipairs(v.__tbl) do parts[#parts + 1] = "[" .. show(kv[1]) .. "]=" .. show(kv[2], depth + 1) end
      return "{" .. table.concat(parts, ", ") .. "}" .. (v.__meta and (" with __index " .. show({ __tbl = v.__meta }, depth + 1)) or "")
    end
    if v.__buf then return string.format("<%s buffer %d bytes>", v.__buf, v.size) end
    if v.__fn then return "<function>" end
    if v.__i64 then return "<int64_t cdata " .. v.__i64 .. "LL>" end
    local parts = {}
    for k, x in pairs(v) do parts[#parts + 1] = tostring(k) .. "=" .. show(x, depth + 1) end
    table.sort(parts)
    return "{" .. table.concat(parts, ", ") .. "}"
  end
  return "<" .. t .. ">"
end

local function show_call(c)
  local parts = {}
  for i = 1, c.n do parts[i] = show(c[i]) end
  if c.ops then
    for j = math.max(1, #c.ops - 3), #c.ops do
      local o = c.ops[j]
      parts[#parts + 1] = (o[1] == 1 and "dig(" or "move(") .. table.concat(o, ", ", 2) .. ")"
    end
    return string.format("burst of %d dig/move calls in one loop (..., %s)", #c.ops, table.concat(parts, ", "))
  end
  local s = c.m .. "(" .. table.concat(parts, ", ") .. ")"
  if c.self then s = s .. "  [self = " .. c.self .. "]" end
  return s
end

---------------------------------------------------------------- JSON (trace)
local function jstr(s)
  return '"' .. s:gsub('[%c"\\\128-\255]', function(c)
    local b = c:byte()
    if c == '"' then return '\\"' elseif c == "\\" then return "\\\\" end
    return string.format("\\u%04x", b)
  end) .. '"'
end

local function jval(v)
  local t = type(v)
  if t == "nil" then return "null" end
  if t == "number" then return '["n","' .. numstr(v) .. '"]' end
  if t == "string" then return '["s","' .. hex(v) .. '"]' end
  if t == "boolean" then return '["b",' .. tostring(v) .. "]" end
  if t == "table" then
    if v.__tbl then
      local parts = {}
      for _, kv in ipairs(v.__tbl) do parts[#parts + 1] = "[" .. jval(kv[1]) .. "," .. jval(kv[2]) .. "]" end
      local meta = v.__meta and ("," .. jval({ __tbl = v.__meta })) or ""
      return '["t",[' .. table.concat(parts, ",") .. "]" .. meta .. "]"
    end
    if v.__buf then return '["buf","' .. v.__buf .. '",' .. v.size .. "]" end
    if v.__fn then return '["fn"]' end
    if v.__i64 then return '["i64",' .. v.__i64 .. "]" end
    return '["other","table"]'
  end
  return '["other","' .. t .. '"]'
end

local function jres(res, name)
  if not res.ok then return "{" .. jstr("ok") .. ":false," .. jstr("err") .. ":" .. jstr(res.err) .. "}" end
  local parts = {}
  if res.kind == "stats" then
    local sp = {}
    if type(res[1]) == "table" then
      for _, k in ipairs(STATS_KEYS) do
        local v = res[1][k]
        sp[#sp + 1] = jstr(k) .. ":" .. (type(v) == "number" and numstr(v) or "null")
      end
    end
    return '{"ok":true,"stats":{' .. table.concat(sp, ",") .. "}}"
  end
  if res.kind == "resnap" then
    -- the cluster parts of the snapshot, for the model (numbers as exact decimals)
    local sn = res.snap
    local function seqs(list)
      local t = {}
      for j, e in ipairs(list or {}) do t[j] = "[" .. numstr(e.shard) .. "," .. numstr(e.seq) .. "]" end
      return "[" .. table.concat(t, ",") .. "]"
    end
    local hosts = {}
    for _, p in ipairs(sn.players or {}) do
      if p.host ~= nil then hosts[#hosts + 1] = "[" .. numstr(p.id) .. "," .. numstr(p.host) .. "]" end
    end
    local cl = "null"
    local c = sn.cluster
    if type(c) == "table" then
      local k = c.counters or {}
      cl = string.format('{"next_host_seq":%s,"log_position":%s,"applied":%s,"sent":%s,"outgoing":"%s",' ..
        '"counters":[%s,%s,%s,%s]}', numstr(c.next_host_seq), numstr(c.log_position), seqs(c.applied), seqs(c.sent),
        hex(type(c.outgoing) == "string" and c.outgoing or ""), numstr(k.applied_digs or -1), numstr(k.duplicate_digs or -1),
        numstr(k.records_out or -1), numstr(k.records_in or -1))
    end
    local o = sn.options or {}
    return string.format('{"ok":true,"r":[],"cluster":%s,"hosts":[%s],"opt_shard":%s,"opt_shards":%s,"pending":"%s"}', cl,
      table.concat(hosts, ","), o.shard and numstr(o.shard) or "null", o.shards and numstr(o.shards) or "null",
      hex(type(sn.pending) == "string" and sn.pending or ""))
  end
  if res.kind == "burst" then
    local o = {}
    for j = 1, #res.out do o[j] = numstr(res.out[j]) end
    return '{"ok":true,"burst":[' .. table.concat(o, ",") .. '],"err":' .. (res.err and jstr(res.err) or "null") .. "}"
  end
  if res.kind == "packets" or res.kind == "records" then
    return '{"ok":true,"n":' .. jval(res[1]) .. ',"bytes":"' .. hex(res.bytes or "") .. '"' ..
      (res.lag and (',"lag":' .. res.lag) or "") .. "}"
  end
  for i = 1, res.n do
    local v = res[i]
    if type(v) == "number" or type(v) == "string" or type(v) == "boolean" or v == nil then parts[i] = jval(v)
    else parts[i] = '["other","' .. type(v) .. '"]' end
  end
  return '{"ok":true,"r":[' .. table.concat(parts, ",") .. "]}"
end

---------------------------------------------------------------- packets
local function rd(s, off, n) -- little-endian unsigned, off 0-based
  local v = 0
  for i = n, 1, -1 do v = v * 256 + s:byte(off + i) end
  return v
end
local function rdi32(s, off) local v = rd(s, off, 4); if v >= 2147483648 then v = v - 4294967296 end; return v end
local function rd64(s, off) -- exact decimal string via two halves
  local lo, hi = rd(s, off, 4), rd(s, off + 4, 4)
  if hi < 2097152 then return string.format("%.0f", hi * 4294967296 + lo) end
  return string.format("0x%08x%08x", hi, lo)
end

local function decode(s, off)
  if #s < off + 128 then return "<truncated: " .. (#s - off) .. " bytes>" end
  return string.format(
    "magic=%q ver=%d kind=%d flags=%d seq=%s t_us=%s site=%d finder=%d recipient=%d party=%d xyz=(%d,%d,%d) " ..
    "item=%d qty=%d rarity=%d pad59=%d charges_left=%d roll=%s dist2=%d tail_nonzero=%s crc=0x%08x",
    s:sub(off + 1, off + 4), rd(s, off + 4, 2), rd(s, off + 6, 1), rd(s, off + 7, 1), rd64(s, off + 8), rd64(s, off + 16),
    rd(s, off + 24, 4), rd(s, off + 28, 4), rd(s, off + 32, 4), rd(s, off + 36, 4),
    rdi32(s, off + 40), rdi32(s, off + 44), rdi32(s, off + 48), rd(s, off + 52, 4), rd(s, off + 56, 2), rd(s, off + 58, 1),
    rd(s, off + 59, 1), rd(s, off + 60, 4), rd64(s, off + 64), rd(s, off + 72, 4),
    tostring(s:sub(off + 77, off + 124):find("[^%z]") ~= nil), rd(s, off + 124, 4))
end

local function first_diff(a, b)
  local n = math.min(#a, #b)
  -- coarse then fine
  local i = 1
  while i <= n do
    local j = math.min(n, i + 127)
    if a:sub(i, j) ~= b:sub(i, j) then
      for k = i, j do if a:byte(k) ~= b:byte(k) then return k - 1 end end
    end
    i = j + 1
  end
  if #a ~= #b then return n end
  return nil
end

---------------------------------------------------------------- materialize
local function materialize(v, bufs)
  if type(v) ~= "table" then return v end
  if v.__tbl then
    local t = {}
    for _, kv in ipairs(v.__tbl) do t[materialize(kv[1], bufs)] = materialize(kv[2], bufs) end
    if v.__meta then setmetatable(t, { __index = materialize({ __tbl = v.__meta }, bufs) }) end
    return t
  end
  if v.__buf then
    local b
    if v.__buf == "vla" then b = ffi.new("uint8_t[?]", v.size)
    elseif v.__buf == "fixed" then b = ffi.new("uint8_t[" .. v.size .. "]")
    elseif v.__buf == "int32" then b = ffi.new("int32_t[?]", v.size / 4)
    elseif v.__buf == "ctype" then b = ffi.typeof("uint8_t[" .. v.size .. "]") -- the ctype object, not an instance
    elseif v.__buf == "ctype_vla" then b = ffi.typeof("uint8_t[?]")
    elseif v.__buf == "const" then b = ffi.new("const uint8_t[" .. v.size .. "]")
    else b = ffi.cast("uint8_t *", ffi.new("uint8_t[?]", v.size)) end
    if v.__buf == "vla" or v.__buf == "fixed" then
      ffi.fill(b, v.size, 0xA5)
      bufs[#bufs + 1] = { b = b, size = v.size }
    else
      bufs.keep = b -- keep the pointer's target alive? (ptr case: target may be collected; never written)
    end
    return b
  end
  if v.__fn then return function() end end
  if v.__i64 then return ffi.new("int64_t", v.__i64) end
  error("materialize: unknown descriptor")
end

---------------------------------------------------------------- apply
local function pack_res(ok, ...)
  if not ok then
    local e = ...
    if type(e) ~= "string" then e = "<non-string error: " .. type(e) .. " " .. tostring(e) .. ">" end
    return { ok = false, err = e }
  end
  local r = { ok = true, n = select("#", ...), ... }
  while r.n > 0 and r[r.n] == nil do r.n = r.n - 1 end
  return r
end

local SELF_VALS = { ["nil"] = function() return nil end, table = function() return {} end, number = function() return 1 end }

local function new_resolver(b, optsdesc, tuning)
  local opts = materialize(optsdesc, {})
  if b.native and tuning then
    return pcall(b.mod._new_with_tuning, opts, tuning)
  end
  return pcall(b.mod.new, opts)
end

-- finalize (issue 12): a side resolver restored from the snapshot of the
-- resolver under test (so it has its world and its undelivered packets), with
-- digs in flight, is dropped together with a guard made just before it, so
-- the GC finalizes the resolver first; the guard's __gc then calls methods
-- fetched before the drop and resurrects it, and the resurrected resolver is
-- called again. Every backend must log the same answers ("resolver is
-- closed" for all but close). The finalizers run with the JIT off (a
-- LuaJIT 2.1.0-beta3 bug, docs/API.md "Supported runtimes").
local FINALIZE_CALLS
local function finalize_calls()
  if not FINALIZE_CALLS then
    FINALIZE_CALLS = { { "dig", 1, 0, 0, 0, 1 }, { "move", 1, 0, 0, 0 }, { "flush" }, { "poll" },
      { "poll_into", ffi.new("uint8_t[?]", 256), 2 }, { "wait", 0 }, { "stats" }, { "snapshot" },
      { "dig_batch", "" }, { "close" } }
  end
  return FINALIZE_CALLS
end

local function finalize_probe(b)
  local calls = finalize_calls()
  local log = {}
  local function call_all(tag, x, fns)
    for _, c in ipairs(calls) do
      local ok, e = pcall(fns and fns[c[1]] or x[c[1]], x, unpack(c, 2))
      log[#log + 1] = tag .. c[1] .. "=" .. (ok and "ok" or tostring(e))
    end
  end
  local function drop() -- in its own frame: nothing on the caller's stack keeps them
    local box = {}
    local guard = newproxy(true)
    getmetatable(guard).__gc = function()
      if box.r == nil then return end -- no side resolver was made
      call_all("in_gc.", box.r, box.fetched)
      log.resurrected = box.r
    end
    box.guard = guard
    local ok, x = pcall(function() return b.mod.restore(b.r:snapshot()) end)
    if not ok then log[1] = "no side resolver: " .. tostring(x); return end
    local snap_players = x:snapshot().players
    local p = snap_players[1]
    if p then
      for t = 1, 40 do x:dig(p.id, p.x, p.y, p.z, t) end -- in flight at the drop
    end
    box.fetched = {}
    for _, c in ipairs(calls) do box.fetched[c[1]] = x[c[1]] end
    box.r = x
  end
  drop()
  local was_on = jit.status()
  jit.off(); jit.flush() -- flushed too: compiled traces would still run
  collectgarbage(); collectgarbage()
  if was_on then jit.on() end
  local x = log.resurrected
  log.resurrected = nil
  if x ~= nil then
    call_all("resurrected.", x)
    -- the backends name themselves differently; both must say closed
    log[#log + 1] = "tostring=" .. (tostring(x):find("closed", 1, true) and "closed" or "open")
  elseif log[1] == nil then
    log[1] = "the side resolver was not finalized"
  end
  return { ok = true, n = 1, table.concat(log, "\n") }
end

-- apply one call to one backend; returns a result record
-- issue 16: r:poll_view, driven to the poll it stands for. One op takes up
-- to max packets (all when max is absent) in as many views as it needs; each
-- call must return 1..min(left, VIEW_RUN_PACKETS) packets and a pointer, or
-- 0 and nil when nothing is left; the result is the packets concatenated,
-- compared like poll's. The last view is kept (b.view) and must read the
-- same bytes before every later call up to the next poll of any kind.
local VIEW_RUN = require("treasure.contract").VIEW_RUN_PACKETS
local POLLS = { poll = true, poll_into = true, poll_view = true, release_view = true, close = true, new = true }

local function view_broken(b, c)
  local v = b.view
  if v == nil then return nil end
  if POLLS[c.m] then b.view = nil return nil end
  if ffi.string(v[1], v[2] * 128) ~= v[3] then
    b.view = nil
    return { ok = false, n = 0, violation = true,
      err = "<a view changed before the next poll (" .. v[2] .. " packets)>" }
  end
  return nil
end

local function apply_poll_view(b, c)
  local r = b.r
  local mx = nil
  if c.n >= 1 then mx = materialize(c[1], {}) end
  local function call(max)
    if b.bombs then return bombed_pcall(r.poll_view, r, c.n, { max }) end
    if c.n == 0 then return pcall(r.poll_view, r) end
    return pcall(r.poll_view, r, max)
  end
  local parts, total, calls = {}, 0, 0
  local max = mx
  while true do
    local ok, n, p = call(max)
    calls = calls + 1
    if not ok then
      if calls == 1 then return pack_res(false, n) end
      return { ok = false, n = 0, violation = true, err = "<poll_view raised after a good call: " .. tostring(n) .. ">" }
    end
    local left = mx == nil and math.huge or (mx - total)
    if type(n) ~= "number" or n < 0 or n > left or n > VIEW_RUN or (n == 0) ~= (p == nil)
        or (n > 0 and not ffi.istype("const uint8_t *", p)) then
      return { ok = false, n = 0, violation = true,
        err = string.format("<poll_view broke its contract: n=%s, p=%s, left=%s>", tostring(n), tostring(p), tostring(left)) }
    end
    if n == 0 then
      b.view = nil -- that call ended the previous view
      break
    end
    local bytes = ffi.string(p, n * 128)
    parts[#parts + 1] = bytes
    b.view = { p, n, bytes }
    total = total + n
    if mx ~= nil then
      max = mx - total
      if max <= 0 then break end
    end
  end
  return { ok = true, n = 2, total, kind = "packets", bytes = table.concat(parts) }
end

local function apply(b, c)
  local m = c.m
  local broken = view_broken(b, c)
  if broken then return broken end
  if m == "poll_view" and not c.self then return apply_poll_view(b, c) end
  if m == "new_check" then
    local bufs = {}
    local args = {}
    for i = 1, c.n do args[i] = materialize(c[i], bufs) end
    local res = pack_res(pcall(b.mod.new, unpack(args, 1, c.n)))
    if res.ok then
      local r = res[1]
      if r ~= nil and (type(r) == "table" or type(r) == "userdata") and r.close then pcall(r.close, r) end
      res.n = 0 -- only success/failure is compared
    end
    return res
  end
  if m == "finalize" then return finalize_probe(b) end
  local r = b.r
  if m == "burst" then
    local ops, out = c.ops, {}
    local ok, err = pcall(function()
      for j = 1, #ops do
        local o = ops[j]
        if o[1] == 1 then
          local s = r:dig(o[2], o[3], o[4], o[5], o[6])
          out[j] = s or -1
        else
          r:move(o[2], o[3], o[4], o[5])
          out[j] = 0
        end
      end
    end)
    local res = { ok = true, n = 0, kind = "burst", out = out }
    if not ok then res.err = type(err) == "string" and err or ("<non-string error: " .. tostring(err) .. ">") end
    return res
  end
  local f = r[m]
  if f == nil then return { ok = false, err = "<backend has no method " .. m .. ">" } end
  local self = r
  if c.self then self = SELF_VALS[c.self]() end
  local bufs = {}
  local args = {}
  for i = 1, c.n do args[i] = materialize(c[i], bufs) end
  if m == "stats" and not c.self then pcall(r.flush, r) end
  -- explicit arity instead of unpack(): keeps the call JIT-compilable, so a
  -- backend's FFI fast path also runs from traces
  local n = c.n
  local res
  if b.bombs then res = pack_res(bombed_pcall(f, self, n, args))
  elseif n == 0 then res = pack_res(pcall(f, self))
  elseif n == 1 then res = pack_res(pcall(f, self, args[1]))
  elseif n == 2 then res = pack_res(pcall(f, self, args[1], args[2]))
  elseif n == 4 then res = pack_res(pcall(f, self, args[1], args[2], args[3], args[4]))
  elseif n == 5 then res = pack_res(pcall(f, self, args[1], args[2], args[3], args[4], args[5]))
  else res = pack_res(pcall(f, self, unpack(args, 1, n))) end
  if m == "add_loot_table" and type(args[2]) == "table" then
    -- "the entries are copied": scribble over the caller's tables afterwards
    for _, e in pairs(args[2]) do
      if type(e) == "table" then e.item, e.weight, e.min, e.max, e.rarity, e.extra = 7, 0, 9, 1, -1, true end
    end
    args[2][1], args[2].n = nil, 1
  end
  if m == "stats" then res.kind = "stats"
  elseif res.ok and m == "take_records" then
    res.kind = "records"
    res.bytes = type(res[2]) == "string" and res[2] or ""
  elseif res.ok and m == "poll" then
    res.kind = "packets"
    res.bytes = type(res[2]) == "string" and res[2] or ""
  elseif res.ok and m == "poll_into" then
    res.kind = "packets"
    local n = tonumber(res[1]) or 0
    local bb = bufs[1]
    if bb then
      local whole = ffi.string(bb.b, bb.size)
      local used = math.max(0, math.min(bb.size, n * 128))
      res.bytes = whole:sub(1, used)
      if whole:sub(used + 1) ~= string.rep("\165", bb.size - used) then
        res.tail_dirty = true
      end
    else
      res.bytes = ""
    end
  end
  return res
end

-- a lagging native poll: flush it, then take the missing packets
local function catch_up(b, res, want)
  local have = tonumber(res[1]) or 0
  if have >= want or not (b.native or b.swapping) then return end
  pcall(b.r.flush, b.r)
  if res.kind == "records" then -- take_records has no max: after the flush, all the rest
    local ok, n, s = pcall(b.r.take_records, b.r)
    if ok and type(n) == "number" and type(s) == "string" then
      res.lag = n
      res[1] = have + n
      res.bytes = res.bytes .. s
    end
    return
  end
  b.view = nil -- this poll ends the last view
  local ok, n, s = pcall(b.r.poll, b.r, want - have)
  if ok and type(n) == "number" and type(s) == "string" then
    res.lag = want - have
    res[1] = have + n
    res.bytes = res.bytes .. s
  end
end

---------------------------------------------------------------- compare
local function eqv(a, b)
  if type(a) ~= type(b) then return false end
  if type(a) == "number" then return a == b or (a ~= a and b ~= b) end
  if type(a) == "table" or type(a) == "userdata" or type(a) == "cdata" then return true end -- identity not comparable
  return a == b
end

local function show_res(res)
  if not res.ok then return "error: " .. res.err end
  if res.kind == "stats" then
    local s = res[1]
    if type(s) ~= "table" then return "ok: stats returned " .. type(s) end
    local parts = {}
    for _, k in ipairs(STATS_KEYS) do parts[#parts + 1] = k .. "=" .. show(s[k]) end
    return "ok: {" .. table.concat(parts, ", ") .. "}"
  end
  if res.kind == "burst" then
    local o = res.out
    local parts = {}
    for j = math.max(1, #o - 5), #o do parts[#parts + 1] = j .. ":" .. show(o[j]) end
    return string.format("burst: %d ops done (last: %s)%s", #o, table.concat(parts, " "), res.err and (", then error: " .. res.err) or "")
  end
  if res.kind == "records" then
    return string.format("ok: n=%s, %d bytes%s: %s", show(res[1]), #res.bytes, res.lag and (" (lagged " .. res.lag .. ", caught up)") or "",
      record.describe(res.bytes))
  end
  if res.kind == "packets" then
    return string.format("ok: n=%s, %d bytes%s%s", show(res[1]), #res.bytes, res.lag and (" (lagged " .. res.lag .. ", caught up)") or "",
      res.tail_dirty and " (WROTE PAST n PACKETS in buf)" or "")
  end
  local parts = {}
  for i = 1, res.n do parts[i] = show(res[i]) end
  return "ok: " .. (res.n == 0 and "(no values)" or table.concat(parts, ", "))
end

-- returns nil if equal, else a description
local function compare(c, ra, rb)
  if ra.violation or rb.violation then return "a view broke its contract" end
  if ra.ok ~= rb.ok then return "success/failure differs" end
  if not ra.ok then
    if ra.err ~= rb.err then return "error messages differ" end
    return nil
  end
  if ra.kind == "burst" then
    if ra.err ~= rb.err then return "burst: error differs" end
    if #ra.out ~= #rb.out then return "burst: stopped at a different op" end
    for j = 1, #ra.out do
      if ra.out[j] ~= rb.out[j] then return "burst: op " .. j .. " result differs (" .. show(ra.out[j]) .. " vs " .. show(rb.out[j]) .. ")" end
    end
    return nil
  end
  if ra.kind == "stats" then
    if type(ra[1]) ~= "table" or type(rb[1]) ~= "table" then return "stats not a table" end
    for _, k in ipairs(STATS_KEYS) do
      if not eqv(ra[1][k], rb[1][k]) then return "stats." .. k .. " differs" end
    end
    return nil
  end
  if ra.kind == "records" then
    if not eqv(ra[1], rb[1]) then return "record counts differ" end
    if ra.bytes ~= rb.bytes then return "record bytes differ at offset " .. tostring(first_diff(ra.bytes, rb.bytes)) end
    return nil
  end
  if ra.kind == "packets" then
    if ra.tail_dirty or rb.tail_dirty then return "poll_into wrote past the packets it reported" end
    if not eqv(ra[1], rb[1]) then return "packet counts differ" end
    if ra.bytes ~= rb.bytes then return "packet bytes differ", first_diff(ra.bytes, rb.bytes) end
    if c.m == "poll" and ra.n ~= rb.n then return "number of results differs" end
    return nil
  end
  if ra.n ~= rb.n then return "number of results differs" end
  for i = 1, ra.n do
    if not eqv(ra[i], rb[i]) then return "result " .. i .. " differs" end
  end
  return nil
end

---------------------------------------------------------------- one sequence
local trace_f
if O.trace then trace_f = assert(io.open(O.trace, "w")) end

local function replay_cmd(seed, ncalls, gopts)
  local names = {}
  for _, b in ipairs(BACKENDS) do names[#names + 1] = b.spec end
  local s = string.format("luajit tests/diff/run.lua --backends %s --seed %s --sequences 1 --calls %d",
    table.concat(names, ","), string.format("%.0f", seed), ncalls)
  if O.workers_given then s = s .. " --workers " .. O.workers end
  if O.tiny then s = s .. " --tiny" end
  if O.no_negzero then s = s .. " --no-negzero" end
  if O.cluster then s = s .. " --cluster" end

  return s
end

local function report(seed, idx, c, desc, off, results, gopts)
  local out = {}
  local function p(s) out[#out + 1] = s end
  p("")
  p(string.format("MISMATCH: seed %.0f, call %d: %s", seed, idx, desc))
  p("  call: " .. (c and show_call(c) or "<final drain>"))
  for i, b in ipairs(BACKENDS) do p(string.format("  %-7s %s", b.name .. ":", show_res(results[i]))) end
  if off then
    local pi = math.floor(off / 128)
    p(string.format("  first differing byte: offset %d (packet %d, byte %d in packet)", off, pi, off % 128))
    for i, b in ipairs(BACKENDS) do
      p(string.format("  %-7s packet %d: %s", b.name .. ":", pi, decode(results[i].bytes, pi * 128)))
    end
  end
  p("  replay: " .. replay_cmd(seed, idx or O.calls, gopts))
  io.stdout:write(table.concat(out, "\n"), "\n")
  io.stdout:flush()
end

-- first differing path of two plain-data values (nil when deep-equal)
local function deep_diff(a, b, path)
  if type(a) ~= type(b) then return path .. " (" .. type(a) .. " vs " .. type(b) .. ")" end
  if type(a) ~= "table" then
    if a ~= b then return path .. " (" .. show(a) .. " vs " .. show(b) .. ")" end
    return nil
  end
  for k, v in pairs(a) do
    local d = deep_diff(v, b[k], path .. "." .. tostring(k))
    if d then return d end
  end
  for k in pairs(b) do
    if a[k] == nil then return path .. "." .. tostring(k) .. " (missing vs present)" end
  end
  return nil
end

-- --swap: replace the swapped backend's resolver by one on the other
-- backend, restored from its snapshot; returns nil or an error description.
local function swap_backend(b, ref, tuning)
  local treasure = require("treasure")
  local r = b.r
  local to = type(r) == "userdata" and "lua" or "native"
  local ok, err = pcall(function()
    local mine, theirs = r:snapshot(), ref.r:snapshot()
    local d = deep_diff(theirs, mine, "snapshot")
    if d then error("snapshots differ at " .. d, 0) end
    if to == "native" and tuning then
      b.r = require("treasure.native")._restore_with_tuning(mine, tuning)
      r:close()
    else
      b.r = treasure.swap(r, to)
    end
    b.view = nil -- the old resolver is closed: its view ended
    -- the old resolver is closed, also on the FFI fast path
    local ok2, e2 = pcall(r.dig, r, 1, 0, 0, 0, 0)
    if ok2 or e2 ~= "treasure: dig: resolver is closed" then
      error("the swapped-out resolver is not closed: " .. tostring(e2), 0)
    end
  end)
  if not ok then return "swap to " .. to .. " failed: " .. tostring(err) end
  return nil
end

-- issue 17 "resnap": every backend's resolver is replaced by one restored
-- from its own snapshot; the snapshots must be deep-equal across backends
local function resnap(results, tuning)
  local snaps = {}
  for i, b in ipairs(BACKENDS) do
    local ok, s = pcall(b.r.snapshot, b.r)
    if ok then snaps[i] = s; results[i] = { ok = true, n = 0, kind = "resnap", snap = s }
    else results[i] = { ok = false, err = tostring(s) } end
  end
  for i = 2, #BACKENDS do
    if snaps[1] and snaps[i] then
      local d = deep_diff(snaps[1], snaps[i], "snapshot")
      if d then results[i] = { ok = false, err = "<snapshot differs from " .. BACKENDS[1].name .. "'s at " .. d .. ">" } end
    end
  end
  for i, b in ipairs(BACKENDS) do
    if snaps[i] then
      local native_now = b.native
      if b.swapping then native_now = type(b.r) == "userdata" end
      local ok, r2
      if native_now and tuning and not b.swapping and b.mod._restore_with_tuning then
        ok, r2 = pcall(b.mod._restore_with_tuning, snaps[i], tuning)
      elseif native_now and tuning and b.swapping then
        ok, r2 = pcall(require("treasure.native")._restore_with_tuning, snaps[i], tuning)
      elseif b.swapping then ok, r2 = pcall(require("treasure").restore, snaps[i], native_now and "native" or "lua")
      else ok, r2 = pcall(b.mod.restore, snaps[i]) end
      if ok then pcall(b.r.close, b.r); b.r = r2
      else results[i] = { ok = false, err = "<restore of its own snapshot failed: " .. tostring(r2) .. ">" } end
    end
  end
end

local function run_sequence(seed)
  local workers = WORKERS[(seed % #WORKERS) + 1]
  local gopts = { workers = workers, negzero = not O.no_negzero, cluster = O.cluster }
  local g = gen.new(seed, gopts)
  -- tiny native queues (test hook): with --tiny always, else in about a third
  -- of the sequences; decided from the seed, never from the sequence index
  local tuning
  local tr = gen.rng(seed * 7 + 3)
  if O.tiny or tr:chance(0.35) then
    tuning = { chunk_digs = tr:int(1, 4), max_inflight_chunks = tr:int(1, 3) }
    -- sometimes resolve small chunks on the caller's thread (opt-in mode)
    if tr:chance(0.3) then tuning.inline_max_digs = tr:int(1, 4) end
  end
  -- in half the sequences every chunk with a FOUND dig resolves against the
  -- snapshot's frozen grid (by default only chunks of 64+ FOUND digs do)
  if tr:chance(0.5) then
    tuning = tuning or {}
    tuning.freeze_min_found = 1
  end
  if trace_f then
    trace_f:write(string.format('{"begin":%.0f,"backends":[%s],"tiny_pending":%s,"tiny_queues":%s,"workers":%d,"cluster":%s}\n', seed,
      (function() local t = {}; for i, b in ipairs(BACKENDS) do t[i] = jstr(b.name) end; return table.concat(t, ",") end)(),
      tostring(g.tiny), tuning and (function()
        local t = {}
        for _, k in ipairs({ "chunk_digs", "max_inflight_chunks", "inline_max_digs", "freeze_min_found" }) do
          if tuning[k] then t[#t + 1] = string.format('"%s":%d', k, tuning[k]) end
        end
        return "{" .. table.concat(t, ",") .. "}"
      end)() or "null", workers,
      g.cluster and string.format('{"shard":%d,"shards":%d}', g.shard, g.shards) or "null"))
  end
  -- issue 17: the records taken, the other shards' streams (one transport for all backends)
  local tp = (g.cluster or g.probe_cluster) and transport.new(g.shard, g.shards) or nil
  local streams = {}
  for i = 1, #BACKENDS do streams[i] = {} end
  local closed = false
  local npackets = 0
  local swap_rng = O.swap and gen.rng(seed * 13 + 5)
  for idx = 1, O.calls do
    local c = g:step()
    local results = {}
    local commit
    if c.m == "apply_records" and type(c[1]) == "table" and c[1].__recs then
      -- the plan becomes one record string, the same for every backend (and the trace)
      local c2 = {}
      for k, v in pairs(c) do c2[k] = v end
      c2[1], commit = tp:build(c[1].__recs)
      c = c2
    end
    if swap_rng and swap_rng:chance(1 / 40) and SWAPPED.r and not closed and c.m ~= "new" then
      local err = swap_backend(SWAPPED, BACKENDS[1], tuning)
      if err then
        report(seed, idx, c, "before this call: " .. err, nil,
          (function() local t = {}; for j = 1, #BACKENDS do t[j] = { ok = true, n = 0 } end; return t end)(), gopts)
        return false
      end
      total_swaps = total_swaps + 1
    end
    if c.m == "resnap" then
      resnap(results, tuning)
    elseif c.m == "new" then
      for i, b in ipairs(BACKENDS) do
        local ok, r = new_resolver(b, c[1], tuning)
        if not ok then
          report(seed, idx, c, "new() failed for the resolver under test", nil,
            (function() local t = {}; for j = 1, #BACKENDS do t[j] = { ok = (j ~= i), err = tostring(r), n = 0 } end; return t end)(), gopts)
          return false
        end
        b.r = r
        results[i] = { ok = true, n = 0 }
      end
    else
      for i, b in ipairs(BACKENDS) do results[i] = apply(b, c) end
      -- poll/poll_into: a native backend may lag when not flushed; resync it
      if c.m == "poll" or c.m == "poll_into" or c.m == "poll_view" or c.m == "take_records" then
        local want = 0
        for i = 1, #BACKENDS do
          local res = results[i]
          if res.ok and type(res[1]) == "number" and res[1] > want then want = res[1] end
        end
        for i, b in ipairs(BACKENDS) do if results[i].ok then catch_up(b, results[i], want) end end
      end
      if c.m == "close" and not c.self then closed = true end
      -- issue 17: what the transport delivered / received (as the first backend saw it)
      if commit and results[1].ok and type(results[1][1]) == "number" then commit() end
      if c.m == "take_records" and results[1].ok and tp then tp:taken(results[1].bytes) end
    end
    if trace_f then
      local parts = {}
      for i, b in ipairs(BACKENDS) do parts[i] = jstr(b.name) .. ":" .. jres(results[i], b.name) end
      local args = {}
      for i = 1, c.n do args[i] = jval(c[i]) end
      if c.ops then
        local o = {}
        for j, op in ipairs(c.ops) do
          local f = {}
          for k = 1, #op do f[k] = numstr(op[k]) end
          o[j] = "[" .. table.concat(f, ",") .. "]"
        end
        args[1] = "[" .. table.concat(o, ",") .. "]"
      end
      trace_f:write(string.format('{"i":%d,"m":"%s","self":%s,"args":[%s],"out":{%s}}\n', idx, c.m,
        c.self and jstr(c.self) or "null", table.concat(args, ","), table.concat(parts, ",")))
    end
    for i = 2, #BACKENDS do
      local desc, off = compare(c, results[1], results[i])
      if desc then
        report(seed, idx, c, desc, off, results, gopts)
        if trace_f then trace_f:flush() end
        return false
      end
    end
    if results[1].kind == "packets" and results[1].ok then
      for i = 1, #BACKENDS do
        local s = streams[i]
        s[#s + 1] = results[i].bytes
      end
      npackets = npackets + #results[1].bytes / 128
    end
  end
  -- final drain: flush + poll everything, compare the whole streams
  local results = {}
  local stats_res = {}
  local rec_res = {}
  for i, b in ipairs(BACKENDS) do
    if g.cluster and not closed then
      pcall(b.r.flush, b.r)
      rec_res[i] = pack_res(pcall(b.r.take_records, b.r))
      rec_res[i].kind = "records"
      rec_res[i].bytes = rec_res[i].ok and type(rec_res[i][2]) == "string" and rec_res[i][2] or ""
    end
    if closed then
      results[i] = { ok = true, n = 1, 0, bytes = "", kind = "packets" }
    else
      pcall(b.r.flush, b.r)
      results[i] = pack_res(pcall(b.r.poll, b.r))
      results[i].kind = "packets"
      results[i].bytes = results[i].ok and type(results[i][2]) == "string" and results[i][2] or ""
      stats_res[i] = pack_res(pcall(b.r.stats, b.r))
      stats_res[i].kind = "stats"
    end
    streams[i][#streams[i] + 1] = results[i].bytes
  end
  if trace_f then
    local parts, sparts = {}, {}
    for i, b in ipairs(BACKENDS) do
      parts[i] = jstr(b.name) .. ":" .. jres(results[i], b.name)
      if stats_res[i] then sparts[#sparts + 1] = jstr(b.name) .. ":" .. jres(stats_res[i], b.name) end
    end
    local rparts = {}
    for i, b in ipairs(BACKENDS) do
      if rec_res[i] then rparts[#rparts + 1] = jstr(b.name) .. ":" .. jres(rec_res[i], b.name) end
    end
    trace_f:write(string.format('{"end":%.0f,"closed":%s,"drain":{%s},"stats":{%s},"drain_records":{%s}}\n', seed,
      tostring(closed), table.concat(parts, ","), table.concat(sparts, ","), table.concat(rparts, ",")))
  end
  for i = 2, #BACKENDS do
    if rec_res[1] then
      local desc = compare({ m = "take_records" }, rec_res[1], rec_res[i])
      if desc then report(seed, nil, nil, "final take_records: " .. desc, nil, rec_res, gopts); return false end
    end
    local desc, off = compare({ m = "poll" }, results[1], results[i])
    if desc then report(seed, nil, nil, "final drain: " .. desc, off, results, gopts); return false end
    if stats_res[1] then
      desc = compare({ m = "stats" }, stats_res[1], stats_res[i])
      if desc then report(seed, nil, nil, "final stats: " .. desc, nil, stats_res, gopts); return false end
    end
    local a, bb = table.concat(streams[1]), table.concat(streams[i])
    if a ~= bb then
      local off = first_diff(a, bb)
      report(seed, nil, nil, "full streams differ", off, { { ok = true, n = 0, bytes = a, kind = "packets" }, { ok = true, n = 0, bytes = bb, kind = "packets" } }, gopts)
      return false
    end
  end
  for _, b in ipairs(BACKENDS) do
    if b.r and b.r.close then pcall(b.r.close, b.r) end
    b.r = nil
  end
  return true, npackets + #results[1].bytes / 128
end

---------------------------------------------------------------- main
local t0 = os.clock()
local wall0 = os.time()
local passed, failed = 0, 0
local total_packets = 0
local step = math.max(1, math.floor(O.sequences / 10))
for s = 0, O.sequences - 1 do
  local seed = O.seed + s
  local ok, res, np = pcall(run_sequence, seed)
  if not ok then
    io.stdout:write(string.format("\nINTERNAL ERROR in seed %.0f: %s\n  replay: %s\n", seed, tostring(res), replay_cmd(seed, O.calls)))
    res = false
  end
  if res then
    passed = passed + 1
    total_packets = total_packets + (np or 0)
  else
    failed = failed + 1
    if not O.keep_going then break end
  end
  if (s + 1) % step == 0 and s + 1 < O.sequences then
    io.stderr:write(string.format("  ... %d/%d sequences, %d packets, %.1fs cpu\n", s + 1, O.sequences, total_packets, os.clock() - t0))
  end
  collectgarbage()
end
if trace_f then trace_f:close() end
io.stderr:write(string.format("  %d packets compared, %.1fs cpu, %ds wall\n", total_packets, os.clock() - t0, os.time() - wall0))
if O.bombs then
  io.stderr:write(string.format("  --bombs: %d bombs went off, %d inside legacy calls (each retried)\n",
    bombs_fired, bombs_inside))
  if bombs_inside == 0 and failed == 0 and O.calls >= 200 then
    print("run.lua: --bombs: no bomb went off inside a call")
    failed = failed + 1
  end
end
if O.swap then
  io.stderr:write(string.format("  %d live swaps of %s\n", total_swaps, SWAPPED.spec))
  if total_swaps == 0 and failed == 0 and O.calls >= 200 then
    print("run.lua: --swap made no swap at all")
    failed = failed + 1
  end
end
print(string.format("differential: %d passed, %d failed", passed, failed))
os.exit(failed == 0 and 0 or 1)
