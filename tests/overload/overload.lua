--- Overload (issue 7, part 3): the caller digs faster than it polls.
--
--   luajit tests/overload/overload.lua [lua,native]     (from the repo root,
--   LUA_PATH/LUA_CPATH as in the Makefile; default: both backends)
--
-- The world is static, so every dig's packets are known in advance: NEAR
-- players stand around site 1 (0,0,0; endless charges) within reach and AOI,
-- FAR players are 3000 blocks away in the same parties (1..3; party 0 too).
-- A NEAR player digging site 1 is FOUND and reaches every NEAR player plus
-- the FAR members of its party; digging (1,0,1) is NOTHING, site 2 (2,0,2;
-- no charges) EMPTY, and a FAR player digging anything is REJECTED: one
-- packet to the digger. Diggers and blocks are drawn from a seeded PRNG.
--
-- Each case runs rounds of two phases:
--   1. overload: many dig/dig_batch calls while polling nothing (or, in the
--      "slow poller" cases, a few packets per call: less than is produced).
--      Checked on every call (or every 17th, where said): an accepted call
--      had pending_packets <= max_pending_packets before it, a refused one
--      more (the contract's rule), refusals return nil, "busy" and use no
--      seq, stats().busy counts them, and stats().pending_packets never
--      exceeds max_pending_packets + the largest packet count one call can
--      add (a dig's largest fan-out; for dig_batch the whole batch's, since
--      an accepted batch is resolved in full). The process RSS may grow by
--      at most 64 MB over the case although the calls attempted would
--      queue far more packets than that if nothing refused them (asserted:
--      at least 4x the bound, in bytes).
--   2. drain: poll until flush() leaves nothing, with poll(max) and
--      poll_into(buf, max) at varying max. Every packet decodes
--      (treasure.packet: magic, version, CRC); seqs are 1, 2, 3, ... with no
--      gap and no repeat; within a seq the recipients strictly ascend and are
--      exactly the expected set for that dig's digger and kind; no seq past
--      the last accepted one appears; stats().packets equals the packets
--      polled, stats().digs the accepted digs, pending_packets is 0.
-- The native backend resolves chunks of up to 32 digs inline (on the
-- caller's thread) and larger ones on its workers: the dig and 1-16 cases
-- take the first path, 33-64 the second, 1-48 both.
-- No timing is asserted. Prints "overload: N passed, M failed" last and
-- exits 1 if anything failed.
local ffi = require("ffi")
local bit = require("bit")
local packet = require("treasure.packet")

local backends = {}
for b in (arg[1] or "lua,native"):gmatch("[^,]+") do backends[#backends + 1] = b end

ffi.cdef [[ typedef struct { uint32_t player; int32_t x, y, z; uint64_t t_us; } overload_dig_rec; ]]
local rec_t = ffi.typeof("overload_dig_rec[?]")
local u32p = ffi.typeof("const uint32_t *")

local function rss_kb()
  local f = assert(io.open("/proc/self/status"))
  local s = f:read("*a")
  f:close()
  return tonumber(s:match("VmRSS:%s*(%d+)"))
end

local function fail(fmt, ...) error(string.format(fmt, ...), 0) end
local function check(cond, fmt, ...) if not cond then fail(fmt, ...) end end

-- a small seeded PRNG (32-bit LCG, high bits), reproducible across backends
local function prng(seed)
  local s = seed % 4294967296
  return function(n)
    s = (s * 1664525 + 1013904223) % 4294967296
    return math.floor(s / 65536) % n
  end
end

local FOUND, EMPTY, NOTHING, REJECTED = 1, 2, 3, 4
local REACH = 4

--- Builds the world and the expected recipients.
local function world(M, cfg)
  local r = M.new({ seed = 99, aoi_radius = 16, reach = REACH, workers = cfg.workers,
                    max_pending_packets = cfg.max_pending })
  r:add_loot_table(1, { { item = 7, weight = 3, min = 1, max = 4, rarity = 1 },
                        { item = 8, weight = 1, min = 0, max = 0, rarity = 9 } })
  r:add_site(1, 0, 0, 0, 1, 4294967295)
  r:add_site(2, 2, 0, 2, 1, 0)
  local W = { near = {}, far = {}, party = {}, pos = {}, found_rcpt = {} }
  for i = 1, cfg.near do
    -- a 5 x 5 x 3 block of players around the origin: all within reach of
    -- site 1 and in its AOI (some are out of reach of site 2)
    local x, z, y = i % 5 - 2, math.floor(i / 5) % 5 - 2, math.floor(i / 25) % 3 - 1
    W.party[i] = i % 4
    W.pos[i] = { x, y, z }
    r:join(i, x, y, z, W.party[i])
    W.near[#W.near + 1] = i
  end
  for k = 1, cfg.far do
    local id = 100000 + k
    W.party[id] = k % 4
    r:join(id, 3000 + k, 0, 3000, W.party[id])
    W.far[#W.far + 1] = id
  end
  W.max_fan = 1
  for _, d in ipairs(W.near) do
    local list = {}
    for _, q in ipairs(W.near) do list[#list + 1] = q end
    if W.party[d] ~= 0 then
      for _, q in ipairs(W.far) do if W.party[q] == W.party[d] then list[#list + 1] = q end end
    end
    table.sort(list)
    W.found_rcpt[d] = list
    if #list > W.max_fan then W.max_fan = #list end
  end
  return r, W
end

--- One random dig: digger, block, expected kind and packet count.
local function random_dig(W, rnd)
  local c = rnd(20)
  if c < 2 then
    return W.far[1 + rnd(#W.far)], 0, 0, 0, REJECTED, 1
  end
  local d = W.near[1 + rnd(#W.near)]
  local x, y, z, kind = 0, 0, 0, FOUND
  if c < 4 then x, z, kind = 1, 1, NOTHING elseif c < 5 then x, z, kind = 2, 2, EMPTY end
  local p = W.pos[d]
  if (p[1] - x) ^ 2 + (p[2] - y) ^ 2 + (p[3] - z) ^ 2 > REACH * REACH then kind = REJECTED end
  return d, x, y, z, kind, kind == FOUND and #W.found_rcpt[d] or 1
end

--- Checks the polled stream, one packet at a time.
local function stream_checker(W, exp)
  local S = { seq = 0, packets = 0, rcpt = nil, idx = 0 }
  local function close_group()
    if S.seq == 0 then return end
    local e = exp[S.seq]
    local want = e.kind == FOUND and #W.found_rcpt[e.digger] or 1
    check(S.idx == want, "seq %d: %d packets, expected %d", S.seq, S.idx, want)
  end
  function S.packet(s)   -- a 128-byte string
    local p = packet.decode(s, 1)     -- raises on bad magic/version/CRC
    local seq = p.seq
    if seq ~= S.seq then
      check(seq == S.seq + 1, "seq %d after seq %d (gap, repeat or reorder)", seq, S.seq)
      check(exp[seq] ~= nil, "seq %d was never accepted", seq)
      close_group()
      S.seq, S.idx = seq, 0
    end
    local e = exp[seq]
    S.idx = S.idx + 1
    check(p.kind == e.kind, "seq %d: kind %d, expected %d", seq, p.kind, e.kind)
    check(p.finder == e.digger, "seq %d: finder %d, expected %d", seq, p.finder, e.digger)
    local want
    if e.kind == FOUND then
      want = W.found_rcpt[e.digger][S.idx]
    else
      want = S.idx == 1 and e.digger or nil
    end
    check(p.recipient == want, "seq %d: packet %d to %s, expected %s", seq, S.idx,
      tostring(p.recipient), tostring(want))
    S.packets = S.packets + 1
  end
  function S.finish(last_seq)
    close_group()
    check(S.seq == last_seq, "stream ends at seq %d, last accepted %d", S.seq, last_seq)
  end
  return S
end

local function run_case(M, cfg)
  local rnd = prng(cfg.seed)
  local r, W = world(M, cfg)
  local maxb = cfg.batch or 1
  local bound = cfg.max_pending + maxb * W.max_fan
  local recs = ffi.new(rec_t, maxb)
  local exp = {}            -- seq -> { digger, kind }
  local next_seq = 1
  local busy = 0
  local attempted_packets = 0
  local peak_pending = 0
  local buf = ffi.new("uint8_t[?]", 64 * 128)
  local S = stream_checker(W, exp)
  local calls = 0
  collectgarbage("collect")
  local rss0 = rss_kb()
  local rss_peak = rss0

  local function poll_some(max, use_into)
    if use_into then
      local n = r:poll_into(buf, max)
      for i = 0, n - 1 do S.packet(ffi.string(buf + i * 128, 128)) end
      return n
    end
    local n, bytes = r:poll(max)
    check(#bytes == n * 128, "poll: %d packets in %d bytes", n, #bytes)
    for i = 0, n - 1 do S.packet(bytes:sub(i * 128 + 1, i * 128 + 128)) end
    return n
  end

  for round = 1, cfg.rounds do
    -- 1. overload
    local before
    for call = 1, cfg.calls do
      calls = calls + 1
      local checking = cfg.check_every == 1 or call % cfg.check_every == 0
      -- stats() never waits (issue 15): flush so pending_packets is the busy rule's exact count
      if checking then r:flush(); before = r:stats().pending_packets end
      local minb = cfg.min_batch or 1
      local k = cfg.batch and (minb + rnd(maxb - minb + 1)) or 1
      local kinds, diggers, pk = {}, {}, 0
      for j = 0, k - 1 do
        local d, x, y, z, kind, n = random_dig(W, rnd)
        recs[j].player, recs[j].x, recs[j].y, recs[j].z, recs[j].t_us = d, x, y, z, calls
        kinds[j], diggers[j], pk = kind, d, pk + n
      end
      attempted_packets = attempted_packets + pk
      local first, second
      if cfg.batch then
        first, second = r:dig_batch(ffi.string(recs, k * 24))
      else
        first, second = r:dig(recs[0].player, recs[0].x, recs[0].y, recs[0].z, calls)
      end
      if first == nil then
        check(second == "busy", "refused call returned %s", tostring(second))
        busy = busy + 1
      else
        check(first == next_seq, "accepted call got seq %s, expected %d", tostring(first), next_seq)
        if cfg.batch then check(second == k, "dig_batch count %s, expected %d", tostring(second), k) end
        for j = 0, k - 1 do exp[next_seq + j] = { digger = diggers[j], kind = kinds[j] } end
        next_seq = next_seq + k
      end
      if checking then
        local s = r:stats()
        if first == nil then
          check(before > cfg.max_pending, "busy with %d pending <= max %d", before, cfg.max_pending)
        else
          check(before <= cfg.max_pending, "accepted with %d pending > max %d", before, cfg.max_pending)
        end
        check(s.pending_packets <= bound, "pending_packets %d > bound %d (max %d + %d)",
          s.pending_packets, bound, cfg.max_pending, maxb * W.max_fan)
        check(s.busy == busy, "stats().busy %d, refusals seen %d", s.busy, busy)
        check(s.digs == next_seq - 1, "stats().digs %d, accepted %d", s.digs, next_seq - 1)
        if s.pending_packets > peak_pending then peak_pending = s.pending_packets end
      end
      if cfg.slow_poll then poll_some(cfg.slow_poll, call % 2 == 0) end
      if call % 256 == 0 then
        local rs = rss_kb()
        if rs > rss_peak then rss_peak = rs end
      end
    end
    local rs = rss_kb()
    if rs > rss_peak then rss_peak = rs end
    -- 2. drain: polling resumes
    local maxes = { 1, 3, 64, 17, 0, 64 }
    local i = 0
    while true do
      i = i + 1
      local n = poll_some(maxes[i % #maxes + 1], i % 3 ~= 1)   -- both poll and poll_into
      if n == 0 and maxes[i % #maxes + 1] ~= 0 then
        r:flush()
        if poll_some(64, true) == 0 then break end
      end
    end
    local s = r:stats()
    check(s.pending_packets == 0, "round %d: %d pending after the drain", round, s.pending_packets)
    check(s.packets == S.packets, "round %d: stats().packets %d, polled %d", round, s.packets, S.packets)
    check(s.digs == next_seq - 1, "round %d: stats().digs %d, accepted %d", round, s.digs, next_seq - 1)
    check(s.busy == busy, "round %d: stats().busy %d, refusals %d", round, s.busy, busy)
    -- after the drain the resolver accepts again
    local d = W.near[1]
    local seq = r:dig(d, 1, 0, 1, 0)
    check(seq == next_seq, "round %d: dig after the drain got %s, expected %d", round, tostring(seq), next_seq)
    exp[seq] = { digger = d, kind = NOTHING }
    next_seq = next_seq + 1
    r:flush()
    poll_some(64, true)
  end
  S.finish(next_seq - 1)
  check(busy > 0, "no call was ever refused: the test did not overload")
  local grown_kb = rss_peak - rss0
  check(attempted_packets * 128 >= 4 * 64 * 1024 * 1024,
    "attempted only %d packets: the RSS bound would not tell a bounded queue from an unbounded one",
    attempted_packets)
  check(grown_kb <= 64 * 1024, "RSS grew %.1f MB (bound 64 MB)", grown_kb / 1024)
  r:close()
  return string.format("%d calls, %d refused busy, %d digs accepted, %d packets polled; " ..
    "peak pending %d <= bound %d; attempted %.0f MB of packets, RSS +%.1f MB",
    calls, busy, next_seq - 1, S.packets, peak_pending, bound,
    attempted_packets * 128 / 1048576, grown_kb / 1024)
end

local CASES = {
  -- name, config
  { "dig, max_pending 1, nothing polled",
    { max_pending = 1, near = 60, far = 12, rounds = 3, calls = 30000, check_every = 1, seed = 1 } },
  { "dig_batch 1-16, max_pending 500, nothing polled",
    { max_pending = 500, near = 60, far = 12, batch = 16, rounds = 3, calls = 5000, check_every = 1, seed = 2 } },
  { "dig_batch 33-64, max_pending 5000, 200 players, checks every 17th call",
    { max_pending = 5000, near = 200, far = 40, batch = 64, min_batch = 33, rounds = 2, calls = 3000,
      check_every = 17, seed = 3 } },
  { "dig_batch 1-48, max_pending 2000, slow poller (16 packets a call)",
    { max_pending = 2000, near = 60, far = 12, batch = 48, rounds = 2, calls = 8000, check_every = 1,
      slow_poll = 16, seed = 4 } },
  { "dig, max_pending 300, slow poller (7 packets a call), checks every 17th call",
    { max_pending = 300, near = 60, far = 12, rounds = 2, calls = 40000, check_every = 17,
      slow_poll = 7, seed = 5 } },
}

local pass, failed = 0, 0
for _, b in ipairs(backends) do
  local M = require(b == "lua" and "treasure.legacy" or "treasure.native")
  for _, c in ipairs(CASES) do
    for _, workers in ipairs(b == "native" and { 1, 2 } or { 0 }) do
      local cfg = {}
      for k, v in pairs(c[2]) do cfg[k] = v end
      cfg.workers = workers
      local name = string.format("%s[%s%s]", c[1], b, b == "native" and (" workers=" .. workers) or "")
      local ok, msg = pcall(run_case, M, cfg)
      if ok then
        pass = pass + 1
        print("ok   " .. name .. ": " .. msg)
      else
        failed = failed + 1
        print("FAIL " .. name .. ": " .. tostring(msg))
      end
      collectgarbage("collect")
    end
  end
end
print(string.format("overload: %d passed, %d failed", pass, failed))
os.exit(failed == 0 and 0 or 1)
