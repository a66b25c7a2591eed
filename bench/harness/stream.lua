-- bench/harness/stream.lua: what the harness knows about the packet stream.
-- It files every accepted dig (submit time, digger, within reach or not, the
-- expected recipient count under --verify) in a ring by seq, reads each
-- polled packet's seq, recipient and kind, checks the stream's order, and
-- keeps the latency histogram, the counters and the bursts.
--
-- Checks on every packet: seq never decreases and has no gaps, recipients
-- strictly ascend within a seq, the digger gets one, all of a dig's packets
-- share its kind, REJECTED exactly when the harness's model says out of
-- reach. 1 packet in --sample is copied aside and decoded with
-- treasure.packet (CRC) after the run; --verify decodes every packet inline
-- and checks every FOUND dig's recipient count against a brute-force count.
--
-- The per-packet loop (process) touches only locals and the packet: it is
-- the send loop's cost, counted in every dig's latency. The bookkeeping of a
-- completed dig (account) runs later, when the send loop is idle or the tick
-- ends, so that it is not counted in the latency of digs still being polled.

local ffi = require("ffi")
local bit = require("bit")
local band, rol, bxor, tobit = bit.band, bit.rol, bit.bxor, bit.tobit
local floor = math.floor

local M = {}

M.RING = 131072                                 -- in-flight digs tracked
M.SAMPLES = 4096                                -- sampled packets kept for decoding

-- counters (one FFI struct: numbers without table lookups)
local ST = [[struct {
  double digs_sub, digs_done, packets, found, empty, nothing, rejected, found_packets;
  double digs_measured, misses, lat_max, lat_min, lat_sum, order_err, gap_err, digger_err, kind_err, count_err;
  double decoded, decode_err, busy, ring_full, ticks, overruns, tick_max, moves, lat_dropped;
  double cur, cur_n, cur_last_rcp, cur_t, cur_kind, cur_digger_seen, sample_ctr, last_sub;
  double poll_time, proc_time, acct_time, burst_call_cpu, burst_call_wall, timed_packets, polls, samples, digest, completed, accounted;
  double win_n, win_lua, win_send, win_cpu, open_lua, open_send, open_cpu0, open_last;
}]]

-- --digest: fold one packet's u32 words into h, skipping t_us (words 4, 5)
-- and crc (31); unrolled (generated once) so that it compiles to straight
-- code: two lanes (a rotate-xor chain and a sum) mixed into h once per packet
local digest_packet
do
  local src = { "local tobit, rol, bxor = ...\nreturn function(h, q)\n  local a, b = 0, 0\n" }
  for w = 0, 30 do
    if w ~= 4 and w ~= 5 then
      src[#src + 1] = ("  a = bxor(rol(a, 5), q[%d]) b = b + q[%d]\n"):format(w, w)
    end
  end
  src[#src + 1] = "  return tobit(rol(bxor(h, a), 13) * 5 + tobit(b))\nend\n"
  digest_packet = assert(loadstring(table.concat(src), "=digest"))(tobit, rol, bxor)
end

--- A stream tracker. ctx: opt, packet (treasure.packet or nil), hist
-- (measure.histogram()), nbursts_max (bursts that can be filed).
function M.new(ctx)
  local opt, packet, hist = ctx.opt, ctx.packet, ctx.hist
  local RING, RMASK, SAMPLES = M.RING, M.RING - 1, M.SAMPLES
  local ring_t = ffi.new("double[?]", RING)            -- submit time by seq
  local ring_digger = ffi.new("uint32_t[?]", RING)     -- digger id by seq
  local ring_expect = ffi.new("int32_t[?]", RING)      -- expected packets (--verify)
  local ring_reach = ffi.new("uint8_t[?]", RING)       -- digger within reach at submit
  local ring_measured = ffi.new("uint8_t[?]", RING)    -- submitted after the warm-up
  local ring_done = ffi.new("double[?]", RING)         -- time its last packet was polled
  local ring_n = ffi.new("int32_t[?]", RING)           -- packets received
  local ring_kind = ffi.new("uint8_t[?]", RING)        -- kind of its packets
  local ring_seen = ffi.new("uint8_t[?]", RING)        -- 1 if the digger got one

  local st = ffi.new(ST)
  st.lat_min = 1e300
  st.cur_last_rcp = -1

  -- bursts: seq range, submit time, end (time of its last packet), packets
  local NB = math.max(1, ctx.nbursts_max)
  local b_first, b_last = ffi.new("double[?]", NB), ffi.new("double[?]", NB)
  local b_t0, b_t1 = ffi.new("double[?]", NB), ffi.new("double[?]", NB)
  local b_pk, b_found = ffi.new("double[?]", NB), ffi.new("double[?]", NB)
  local s = { st = st, RING = RING, nbursts = 0, b_cur = 0,   -- b_cur: oldest burst not yet complete
    b_first = b_first, b_last = b_last, b_t0 = b_t0, b_t1 = b_t1, b_pk = b_pk, b_found = b_found }

  -- per-dig latencies for --latency-out
  local lat_cap, lat_out = 0, nil
  if opt.latency_out then
    lat_cap = ctx.digs_max + 16
    lat_out = ffi.new("float[?]", lat_cap)
  end
  s.lat_cap, s.lat_out = lat_cap, lat_out

  local sample_buf = ffi.new("uint8_t[?]", opt.sample > 0 and not opt.verify and SAMPLES * 128 or 1)
  local u32p = ffi.typeof("const uint32_t *")

  local function decode_check(p, seq, rcp, kind)
    local ok, d = pcall(packet.decode, ffi.string(p, 128), 1)
    st.decoded = st.decoded + 1
    if not ok or type(d) ~= "table" or tonumber(d.seq) ~= seq or d.recipient ~= rcp or d.kind ~= kind then
      st.decode_err = st.decode_err + 1
      if st.decode_err <= 5 then
        io.stderr:write(string.format("harness: decode mismatch seq %d recipient %d kind %d: %s\n",
          seq, rcp, kind, ok and (type(d) == "table" and ("decoded seq " .. tostring(d.seq) ..
          " recipient " .. tostring(d.recipient) .. " kind " .. tostring(d.kind)) or tostring(d)) or tostring(d)))
      end
    end
  end

  --- File an accepted dig: seq, first-attempt time, digger id, within reach
  -- (1/0), expected packets (--verify), counted in the latency figures (1/0).
  function s.track(seq, t, digger, reach, expect, measured)
    local slot = band(seq, RMASK)
    ring_t[slot], ring_digger[slot], ring_reach[slot] = t, digger, reach
    ring_expect[slot], ring_measured[slot] = expect, measured
  end
  function s.submit_time(seq) return ring_t[band(seq, RMASK)] end
  --- A burst was accepted: its digs are seqs [first, last].
  function s.burst_begin(first, last)
    local b = s.nbursts
    if b < NB then
      b_first[b], b_last[b], b_t0[b] = first, last, ring_t[band(first, RMASK)]
      s.nbursts = b + 1
    end
  end

  -- the bookkeeping of one completed dig
  local function account_one(seq)
    local slot = band(seq, RMASK)
    local n, kind, digger_seen = ring_n[slot], ring_kind[slot], ring_seen[slot]
    local t = ring_done[slot]
    local lat = t - ring_t[slot]
    st.digs_done = st.digs_done + 1
    if ring_measured[slot] == 1 then
      st.digs_measured = st.digs_measured + 1
      if lat > st.lat_max then st.lat_max = lat end
      if lat < st.lat_min then st.lat_min = lat end
      st.lat_sum = st.lat_sum + lat
      if lat > 0.020 then st.misses = st.misses + 1 end
      hist.add(lat)
      if lat_out then
        local j = st.digs_measured - 1
        if j < lat_cap then lat_out[j] = lat * 1000 else st.lat_dropped = st.lat_dropped + 1 end
      end
    end
    if kind == 1 then
      st.found = st.found + 1
      st.found_packets = st.found_packets + n
    elseif kind == 2 then st.empty = st.empty + 1
    elseif kind == 3 then st.nothing = st.nothing + 1
    elseif kind == 4 then st.rejected = st.rejected + 1
    else st.kind_err = st.kind_err + 1 end
    -- the digger gets a packet; REJECTED exactly when out of reach at submit
    if digger_seen == 0 then st.digger_err = st.digger_err + 1 end
    if (kind == 4) ~= (ring_reach[slot] == 0) then st.kind_err = st.kind_err + 1 end
    if opt.verify then
      local e = ring_expect[slot]
      if kind == 1 and e ~= n then
        st.count_err = st.count_err + 1
        if st.count_err <= 5 then
          io.stderr:write(string.format("harness: seq %d: %d recipients, expected %d\n", seq, n, e))
        end
      elseif kind ~= 1 and n ~= 1 then
        st.count_err = st.count_err + 1
      end
    end
    -- burst bookkeeping (bursts are disjoint, ascending seq ranges)
    local b = s.b_cur
    if b < s.nbursts and seq >= b_first[b] then
      b_pk[b] = b_pk[b] + n
      if kind == 1 then b_found[b] = b_found[b] + 1 end
      if seq == b_last[b] then
        b_t1[b] = t
        s.b_cur = b + 1
      end
    end
  end

  -- a dig is complete: its last packet (of n, the first of kind `kind`) was
  -- polled at time t. Digs complete in seq order; this only files the facts.
  local function complete(seq, n, kind, digger_seen, t)
    local slot = band(seq, RMASK)
    ring_done[slot], ring_n[slot], ring_kind[slot], ring_seen[slot] = t, n, kind, digger_seen
    st.completed = seq
  end

  --- Account for every completed dig not yet accounted for.
  function s.account()
    for seq = st.accounted + 1, st.completed do account_one(seq) end
    st.accounted = st.completed
  end
  --- The same, its CPU time added to acct_time (called when the send loop is idle).
  function s.timed_account(cpu_now)
    if st.completed == st.accounted then return end
    local c0 = cpu_now()
    s.account()
    st.acct_time = st.acct_time + (cpu_now() - c0)
  end
  --- The end of the stream: the last dig is complete too.
  function s.finish()
    if st.cur > 0 then
      complete(st.cur, st.cur_n, st.cur_kind, st.cur_digger_seen, st.cur_t)
      st.cur = 0
    end
    s.account()
  end

  --- Handle n packets at buf, polled at time t. The current dig's state
  -- lives in locals here and in st between calls.
  local cast = ffi.cast
  function s.process(buf, n, t)
    local verify, sample, digest = opt.verify, opt.sample, opt.digest
    local cur, cur_n, last_rcp, cur_kind, seen = st.cur, st.cur_n, st.cur_last_rcp, st.cur_kind, st.cur_digger_seen
    local cur_t = st.cur_t
    local last_sub = st.last_sub
    local u32 = u32p
    local digger = cur > 0 and ring_digger[band(cur, RMASK)] or -1
    for i = 0, n - 1 do
      local p = buf + i * 128
      local q = cast(u32, p)
      local seq = q[3] * 4294967296 + q[2]       -- u64 seq at 8, two u32 reads
      local rcp = q[8]                             -- u32 recipient at 32
      local kind = p[6]
      if seq ~= cur then
        if seq < cur or seq > last_sub then
          st.order_err = st.order_err + 1
        else
          if cur > 0 then complete(cur, cur_n, cur_kind, seen, cur_t) end
          if seq ~= cur + 1 then st.gap_err = st.gap_err + (seq - cur - 1) end
          cur, cur_n, last_rcp, cur_kind, seen = seq, 0, -1, kind, 0
          digger = ring_digger[band(seq, RMASK)]
        end
      end
      if rcp <= last_rcp then st.order_err = st.order_err + 1 end
      if kind ~= cur_kind then st.kind_err = st.kind_err + 1 end
      if rcp == digger then seen = 1 end
      last_rcp = rcp
      cur_n = cur_n + 1
      cur_t = t
      if digest then st.digest = digest_packet(st.digest, q) end
      if verify then decode_check(p, seq, rcp, kind) end
    end
    if sample > 0 and not verify then
      -- keep a copy of every sample-th packet of the stream (decoded after
      -- the run): sample_ctr packets have passed since the last one kept
      local i = sample - 1 - st.sample_ctr
      while i < n do
        local k = st.samples
        if k < SAMPLES then
          ffi.copy(sample_buf + k * 128, buf + i * 128, 128)
          st.samples = k + 1
        end
        i = i + sample
      end
      st.sample_ctr = (st.sample_ctr + n) % sample
    end
    st.cur, st.cur_n, st.cur_last_rcp, st.cur_kind, st.cur_digger_seen = cur, cur_n, last_rcp, cur_kind, seen
    st.cur_t = cur_t
    st.packets = st.packets + n
  end

  --- Decode the sampled packets (the client's job: CRC and fields), after the run.
  function s.decode_samples()
    for k = 0, st.samples - 1 do
      local p = sample_buf + k * 128
      local q = ffi.cast(u32p, p)
      decode_check(p, q[3] * 4294967296 + q[2], q[8], p[6])
    end
  end

  --- The measured bursts that completed: count, and sums (packets, found,
  -- digs, time) plus the longest and each one's time (ms, in order).
  function s.bursts()
    local done = math.min(s.nbursts, s.b_cur)
    local r = { done = done, packets = 0, found = 0, digs = 0, sum_s = 0, max_s = 0, each_ms = {} }
    for b = 0, done - 1 do
      local d = b_t1[b] - b_t0[b]
      r.each_ms[#r.each_ms + 1] = floor(d * 1e5 + 0.5) / 100
      r.packets = r.packets + b_pk[b]
      r.found = r.found + b_found[b]
      r.digs = r.digs + (b_last[b] - b_first[b] + 1)
      r.sum_s = r.sum_s + d
      if d > r.max_s then r.max_s = d end
    end
    return r
  end

  return s
end

return M
