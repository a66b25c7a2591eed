-- bench/harness/loop.lua: the game loop the harness drives. Every tick (20 Hz
-- in real time, back to back with --fast) does what a server does:
--   1. movement: one move_batch with the players whose block changed;
--   2. digs: --digs-per-tick random players dig their site (REJECTED if still
--      walking), and every --burst-every ticks --burst players dig theirs at
--      once; one dig_batch (records built in an FFI array, one ffi.string);
--      a busy refusal is counted and the same records are retried next tick;
--   3. the send loop: poll_into one preallocated buffer (--drain view:
--      r:poll_view, packets read in place, issue 16) until the next tick
--      is due (when nothing is there, blocking in r:wait until a packet is
--      ready or the tick is due; --poll-us with --no-wait), each packet
--      handed to the stream tracker (bench/harness/stream.lua).
--
-- Latency of a dig = CLOCK_MONOTONIC from just before the dig_batch that
-- carried it (its first attempt, if refused as busy) to the poll_into call
-- that returned its last packet. Legacy resolves inside dig_batch, so its
-- latency includes that; native returns at once and resolves on worker
-- threads: same clock, same two points for both.
--
-- A burst's window (issue 16) opens just before the dig_batch that carries
-- it is accepted and closes after the first poll_into that returns the
-- burst's last dig and leaves the buffer not full (nothing more was ready).
-- Within it the loop sums: the wall time inside dig_batch and poll_into
-- (burst_lua_ms: the game loop's thread inside the resolver; r:wait, which
-- only blocks, is left out), the wall time in the tracker's per-packet loop
-- (send_loop_ms) and the CPU of the whole process from getrusage
-- (burst_cpu_ms: every thread, the send loop included; the harness's
-- per-dig bookkeeping is held back while a window is open).

local ffi = require("ffi")
local band = require("bit").band
local floor, min = math.floor, math.min

ffi.cdef[[
typedef struct { uint32_t player; int32_t x, y, z; uint64_t t_us; } harness_dig_rec;
]]
assert(ffi.sizeof("harness_dig_rec") == 24)

local M = {}

--- Run the loop. ctx: opt, r (the resolver), world, stream, clock (measure),
-- heap (a table the loop fills: start, peak, checkpoint), progress(t_el).
-- Returns the wall seconds from the first tick to the end of the drain.
function M.run(ctx)
  local opt, r, w, s, clock = ctx.opt, ctx.r, ctx.world, ctx.stream, ctx.clock
  local now, cpu_now, process_cpu, sleep = clock.now, clock.cpu_now, clock.process_cpu, clock.sleep
  local st, process, track = s.st, s.process, s.track
  local P, rndint, px, py, pz = w.P, w.rndint, w.px, w.py, w.pz
  local sx, sy, sz, ptarget = w.sx, w.sy, w.sz, w.ptarget
  local TICKS, TICK = floor(opt.seconds * 20 + 0.5), 0.05
  local MAXP = opt.poll_max
  local pbuf = ffi.new("uint8_t[?]", MAXP * 128)

  local DIGCAP = 2 * (opt.digs_per_tick + opt.burst) + 64
  local dig_buf = ffi.new("harness_dig_rec[?]", DIGCAP)
  local dig_t = ffi.new("double[?]", DIGCAP)       -- first-attempt time per record
  local dig_reach = ffi.new("uint8_t[?]", DIGCAP)  -- digger within reach at the call
  local dig_expect = ffi.new("int32_t[?]", DIGCAP) -- --verify: expected packets
  local dig_n = 0                                  -- records waiting (busy retries)
  local reach2 = opt.reach * opt.reach
  local burst_off = 0
  local measuring = opt.warmup == 0   -- digs submitted from now on count (--warmup)

  local function add_dig(i)
    if dig_n >= DIGCAP then st.ring_full = st.ring_full + 1 return end
    local k = ptarget[i]
    local d = dig_buf[dig_n]
    d.player, d.x, d.y, d.z = i + 1, sx[k], sy[k], sz[k]
    dig_t[dig_n] = 0                               -- set at the first dig_batch attempt
    dig_n = dig_n + 1
  end

  -- the burst window (see the header); open_last < 0: no window open
  st.open_last = -1
  local function window_close()
    st.win_n = st.win_n + 1
    st.win_lua = st.win_lua + st.open_lua
    st.win_send = st.win_send + st.open_send
    st.win_cpu = st.win_cpu + (process_cpu() - st.open_cpu0)
    st.open_last = -1
  end

  -- submit the waiting records; returns true if accepted (or nothing to do)
  local burst_lo, burst_hi = -1, -1   -- record indexes [lo, hi) of a burst not yet accepted
  local function submit()
    if dig_n == 0 then return true end
    -- never track more in-flight digs than the ring holds
    if st.last_sub + dig_n - st.digs_done >= s.RING then
      st.ring_full = st.ring_full + 1
      return false
    end
    -- within reach now? (positions are current: this tick's move_batch is applied)
    local verify = opt.verify
    for j = 0, dig_n - 1 do
      local d = dig_buf[j]
      local i = d.player - 1
      local dx, dy, dz = px[i] - d.x, py[i] - d.y, pz[i] - d.z
      local inreach = dx * dx + dy * dy + dz * dz <= reach2
      dig_reach[j] = inreach and 1 or 0
      if verify then   -- the model's recipient count, computed outside the timing
        dig_expect[j] = inreach and w.expected_recipients(i, d.x, d.y, d.z, opt.aoi) or 1
      end
    end
    local t_us = floor(now() * 1e6)
    for j = 0, dig_n - 1 do dig_buf[j].t_us = t_us end
    local records = ffi.string(dig_buf, dig_n * 24)
    local is_burst = burst_lo >= 0 and burst_hi > burst_lo and measuring
    local cpu0 = is_burst and process_cpu() or 0
    local t_call = now()
    for j = 0, dig_n - 1 do
      if dig_t[j] == 0 then dig_t[j] = t_call end     -- first attempt
    end
    local c_call = is_burst and cpu_now() or 0
    local first, count = r:dig_batch(records)
    if first == nil then
      st.busy = st.busy + 1
      return false
    end
    if is_burst then   -- the game loop's CPU and wall time in a burst's dig_batch
      local t_ret = now()
      st.burst_call_cpu = st.burst_call_cpu + (cpu_now() - c_call)
      st.burst_call_wall = st.burst_call_wall + (t_ret - t_call)
      if st.open_last >= 0 then window_close() end
      st.open_lua, st.open_send, st.open_cpu0 = t_ret - t_call, 0, cpu0
      st.open_last = first + burst_hi - 1
    end
    local m = measuring and 1 or 0
    for j = 0, count - 1 do
      track(first + j, dig_t[j], dig_buf[j].player, dig_reach[j], dig_expect[j], m)
    end
    st.digs_sub = st.digs_sub + count
    st.last_sub = first + count - 1
    if is_burst then s.burst_begin(first + burst_lo, first + burst_hi - 1) end
    -- --flush-burst: the burst is resolved before the send loop sees it
    -- (inside its window: burst_cpu_ms counts the workers as before; the
    -- wait, like r:wait's, is not in burst_lua_ms)
    if is_burst and opt.flush_burst then r:flush() end
    burst_lo, burst_hi = -1, -1
    dig_n = 0
    return true
  end

  -- --drain view (issue 16): r:poll_view instead of poll_into; the packets
  -- are read where the workers wrote them. poll_view(0) marks the stream
  -- as viewed before the first dig, so the workers write every chunk in full.
  local view = opt.drain == "view"
  if view then r:poll_view(0) end

  -- one poll_into (or poll_view) and the packets it returned; n
  local function poll_once(timed)
    local c0 = timed and cpu_now() or 0
    local t_pre = now()
    local n, src
    if view then
      n, src = r:poll_view(MAXP)
    else
      n, src = r:poll_into(pbuf, MAXP), pbuf
    end
    local t = now()
    if n > 0 then
      local c1 = timed and cpu_now() or 0
      process(src, n, t)
      if timed then
        st.poll_time = st.poll_time + (c1 - c0)
        st.proc_time = st.proc_time + (cpu_now() - c1)
        st.timed_packets = st.timed_packets + n
      end
    end
    if st.open_last >= 0 then
      local t_done = n > 0 and now() or t
      st.open_lua = st.open_lua + (t - t_pre)
      st.open_send = st.open_send + (t_done - t)
      -- (a view ends at its block: the window closes at the first empty view)
      if st.cur >= st.open_last and (view and n == 0 or not view and n < MAXP) then window_close() end
    end
    return n, t
  end

  local heap = ctx.heap
  local heap_ck_tick = floor(opt.heap_checkpoint * 20 + 0.5)
  local t0 = now()
  local next_tick, next_progress = t0, t0 + 1
  local fast, use_wait, poll_sleep = opt.fast, not opt.no_wait, opt.poll_us * 1e-6
  local dpt, burst, bevery = opt.digs_per_tick, opt.burst, opt.burst_every
  local warm_ticks = floor(opt.warmup * 20 + 0.5)
  for tick = 0, TICKS - 1 do
    if tick == warm_ticks then measuring = true end
    local tstart = now()
    -- 1. movement
    local nm = w.step()
    st.moves = st.moves + nm
    if nm > 0 then r:move_batch(ffi.string(w.move_buf, nm * 16)) end
    -- 2. digs: leftovers from a busy tick first, then this tick's
    for _ = 1, dpt do add_dig(rndint(P)) end
    if burst > 0 and tick % bevery == 0 then
      -- (a burst still waiting after a busy refusal merges with this one)
      if burst_lo < 0 then burst_lo = dig_n end
      for j = 0, burst - 1 do add_dig((burst_off + j) % P) end
      burst_hi = dig_n
      burst_off = (burst_off + burst) % P
    end
    submit()
    -- 3. send loop
    next_tick = next_tick + TICK
    while true do
      -- the thread CPU clock is a system call, not a vDSO read: split the
      -- send loop's CPU between poll_into and the checks on one poll in 16 only
      local timed = band(st.polls, 15) == 0
      st.polls = st.polls + 1
      local n, t = poll_once(timed)
      if n == 0 and fast then break end
      if not fast and t >= next_tick then break end
      if n == 0 then
        -- idle: nothing to send now; the bookkeeping waits while a burst's
        -- window is open, so that burst_cpu_ms holds none of it
        if st.open_last < 0 then s.timed_account(cpu_now) end
        local left = next_tick - now()
        if use_wait then
          -- Block until the next packet is ready or the tick is due. r:wait
          -- returns 0 at once when no dig is in flight (legacy: always):
          -- nothing can arrive before this loop submits again, so sleep.
          if left > 0 and r:wait(floor(left * 1e6)) == 0 then sleep(next_tick - now()) end
        else
          sleep(min(poll_sleep, left))
        end
      end
    end
    local tend = now()
    local dur = tend - tstart
    if dur > st.tick_max then st.tick_max = dur end
    if dur > TICK + 0.001 then st.overruns = st.overruns + 1 end
    s.timed_account(cpu_now)
    st.ticks = st.ticks + 1
    if tick + 1 == heap_ck_tick then
      collectgarbage("collect")
      heap.checkpoint = collectgarbage("count")
      -- the full GC is the harness's doing: restart the schedule after it
      local t = now()
      if t > next_tick then next_tick = t end
    end
    if tend >= next_progress then
      local h = collectgarbage("count")
      if h > heap.peak then heap.peak = h end
      ctx.progress(tend - t0)
      next_progress = next_progress + 1
      if next_progress < tend then next_progress = tend + 1 end
    end
  end

  -- drain: digs refused as busy are retried until accepted, then flush and poll all
  while dig_n > 0 do
    if not submit() then
      if poll_once(false) == 0 then sleep(0.0002) end
    end
  end
  r:flush()
  while poll_once(false) > 0 do end
  s.finish()
  return now() - t0
end

return M
