-- bench/harness/report.lua: the harness's summary. summarize() turns the
-- run's counters into one flat table (the JSON object bench/run.sh collects
-- and bench/report.py renders); print_text() writes the human summary;
-- json() the same table as one line in a fixed key order.

local bit = require("bit")
local floor, abs = math.floor, math.abs

local M = {}

local function r3(x) return floor(x * 1000 + 0.5) / 1000 end

-- JSON key order (the summary's keys; a key added here must be set in summarize)
M.ORDER = {
  "label", "backend", "version", "players", "sites", "world", "aoi", "reach", "seed", "workers", "seconds", "wait", "poll_us", "poll_max",
  "drain", "flush_burst", "ticks", "fast", "digs_per_tick", "burst", "burst_every", "charges", "wall_s", "setup_s",
  "cpu_s", "loadavg_1m",
  "digs", "packets", "packets_per_s", "found", "empty", "nothing", "rejected",
  "recipients_per_found", "warmup_s", "digs_measured", "p50_ms", "p99_ms", "p999_ms", "max_ms", "mean_ms", "min_ms",
  "misses_20ms", "bursts", "burst_digs", "burst_found", "burst_packets", "burst_ms_mean",
  "burst_ms_max", "burst_ms", "burst_dig_batch_cpu_ms", "burst_dig_batch_wall_ms",
  "burst_packets_per_s",
  "burst_windows", "burst_lua_ms", "burst_cpu_ms", "send_loop_ms", "floor_bytes", "floor_ms", "burst_floor_x", "p99_floor_x",
  "moves", "poll_ns_per_packet", "harness_ns_per_packet", "account_ns_per_dig", "busy", "held_back", "peak_rss_mb",
  "lua_heap_kb_start", "lua_heap_kb_end", "lua_heap_kb_end_raw", "lua_heap_kb_peak",
  "heap_checkpoint_s", "lua_heap_kb_checkpoint",
  "tick_overruns", "tick_max_ms", "order_errors", "gap_errors", "digger_errors",
  "kind_errors", "count_errors", "decoded", "decode_errors", "stats_mismatches", "verify", "errors",
  "digest",
}

--- The resolver's own counters against the harness's: a list of mismatch lines.
function M.cross_check(st, stats)
  local mismatch = {}
  local function cmp(name, mine, theirs)
    if theirs ~= nil and mine ~= theirs then
      mismatch[#mismatch + 1] = string.format("%s: harness %d, stats() %s", name, mine, tostring(theirs))
    end
  end
  cmp("digs", st.digs_sub, stats.digs)
  cmp("digs polled", st.digs_done, stats.digs)
  cmp("packets", st.packets, stats.packets)
  cmp("found", st.found, stats.found)
  cmp("empty", st.empty, stats.empty)
  cmp("nothing", st.nothing, stats.nothing)
  cmp("rejected", st.rejected, stats.rejected)
  cmp("busy", st.busy, stats.busy)
  cmp("pending_packets", 0, stats.pending_packets)
  return mismatch
end

--- run: opt, backend, version, st, bursts (stream.bursts()), nbursts (filed),
-- hist, wall, setup_s, cpu_s, loadavg, peak_rss_kb, heap {start, end_, end_raw,
-- peak, checkpoint}, floor_bytes, floor_ms, mismatch.
function M.summarize(run)
  local opt, st, B, heap = run.opt, run.st, run.bursts, run.heap
  local measured = st.digs_measured
  local function pct(q) return r3(run.hist.percentile(q, measured, st.lat_min, st.lat_max)) end
  local nb, win = run.nbursts, st.win_n
  local burst_mean = B.done > 0 and B.sum_s / B.done * 1000 or 0
  local p99 = pct(0.99)
  local errors = st.order_err + st.gap_err + st.digger_err + st.kind_err + st.count_err + st.decode_err + #run.mismatch
  return {
    label = opt.label or "", backend = run.backend, version = run.version,
    players = opt.players, sites = opt.sites, world = opt.world, aoi = opt.aoi, reach = opt.reach, seed = opt.seed,
    workers = opt.workers, seconds = opt.seconds, poll_us = opt.poll_us, wait = not opt.no_wait, poll_max = opt.poll_max,
    drain = opt.drain, flush_burst = opt.flush_burst, ticks = st.ticks, fast = opt.fast,
    digs_per_tick = opt.digs_per_tick, burst = opt.burst, burst_every = opt.burst_every, charges = opt.charges,
    wall_s = r3(run.wall), setup_s = r3(run.setup_s), cpu_s = r3(run.cpu_s), loadavg_1m = run.loadavg,
    digs = st.digs_done, packets = st.packets,
    packets_per_s = floor(st.packets / run.wall + 0.5),
    found = st.found, empty = st.empty, nothing = st.nothing, rejected = st.rejected,
    recipients_per_found = st.found > 0 and r3(st.found_packets / st.found) or 0,
    warmup_s = opt.warmup, digs_measured = measured,
    p50_ms = pct(0.50), p99_ms = p99, p999_ms = pct(0.999), max_ms = r3(st.lat_max * 1000),
    mean_ms = measured > 0 and r3(st.lat_sum / measured * 1000) or 0,
    min_ms = measured > 0 and r3(st.lat_min * 1000) or 0,
    misses_20ms = st.misses,
    bursts = B.done, burst_digs = B.digs, burst_found = B.found, burst_packets = B.packets,
    burst_ms_mean = r3(burst_mean), burst_ms_max = r3(B.max_s * 1000), burst_ms = B.each_ms,
    burst_dig_batch_cpu_ms = nb > 0 and r3(st.burst_call_cpu / nb * 1000) or 0,
    burst_dig_batch_wall_ms = nb > 0 and r3(st.burst_call_wall / nb * 1000) or 0,
    burst_packets_per_s = B.sum_s > 0 and floor(B.packets / B.sum_s + 0.5) or 0,
    burst_windows = win,
    burst_lua_ms = win > 0 and r3(st.win_lua / win * 1000) or 0,
    burst_cpu_ms = win > 0 and r3(st.win_cpu / win * 1000) or 0,
    send_loop_ms = win > 0 and r3(st.win_send / win * 1000) or 0,
    floor_bytes = run.floor_bytes, floor_ms = r3(run.floor_ms),
    burst_floor_x = run.floor_ms > 0 and r3(burst_mean / run.floor_ms) or 0,
    p99_floor_x = run.floor_ms > 0 and r3(p99 / run.floor_ms) or 0,
    moves = st.moves,
    poll_ns_per_packet = st.timed_packets > 0 and r3(st.poll_time / st.timed_packets * 1e9) or 0,
    harness_ns_per_packet = st.timed_packets > 0 and r3(st.proc_time / st.timed_packets * 1e9) or 0,
    account_ns_per_dig = st.accounted > 0 and r3(st.acct_time / st.digs_done * 1e9) or 0,
    busy = st.busy, held_back = st.ring_full,
    peak_rss_mb = r3(run.peak_rss_kb / 1024),
    lua_heap_kb_start = r3(heap.start), lua_heap_kb_end = r3(heap.end_),
    lua_heap_kb_end_raw = r3(heap.end_raw), lua_heap_kb_peak = r3(heap.peak),
    lua_heap_kb_checkpoint = r3(heap.checkpoint), heap_checkpoint_s = opt.heap_checkpoint,
    tick_overruns = st.overruns, tick_max_ms = r3(st.tick_max * 1000),
    order_errors = st.order_err, gap_errors = st.gap_err, digger_errors = st.digger_err,
    kind_errors = st.kind_err, count_errors = st.count_err,
    decoded = st.decoded, decode_errors = st.decode_err, stats_mismatches = #run.mismatch,
    verify = opt.verify, errors = errors,
    digest = opt.digest and bit.tohex(st.digest) or "",
  }
end

function M.print_text(out, S_, run)
  local opt, st, heap = run.opt, run.st, run.heap
  local f = string.format
  out:write(f("== treasure harness: backend %s (%s), %s ==\n", S_.backend, S_.version,
    opt.fast and "fast" or "real time 20 Hz"))
  out:write(f("scenario   players %d, sites %d, world %d^2, aoi %d, reach %d, seed %d, %d ticks, %d digs/tick, burst %d every %d ticks\n",
    S_.players, S_.sites, S_.world, S_.aoi, S_.reach, S_.seed, S_.ticks, S_.digs_per_tick, S_.burst, S_.burst_every))
  out:write(f("run        %.2f s wall (setup %.2f s), %d digs (%d found, %d empty, %d nothing, %d rejected), %d packets, %.0f packets/s\n",
    run.wall, run.setup_s, S_.digs, S_.found, S_.empty, S_.nothing, S_.rejected, S_.packets, S_.packets / run.wall))
  out:write(f("fan-out    %.2f recipients per found dig\n", S_.recipients_per_found))
  out:write(f("latency    p50 %.3f ms, p99 %.3f ms, p99.9 %.3f ms, max %.3f ms, mean %.3f ms; %d over 20 ms%s\n",
    S_.p50_ms, S_.p99_ms, S_.p999_ms, S_.max_ms, S_.mean_ms, S_.misses_20ms,
    opt.warmup > 0 and f(" (the %d digs submitted after a %g s warm-up)", S_.digs_measured, opt.warmup) or ""))
  if S_.bursts > 0 then
    out:write(f("bursts     %d bursts of %d digs (%d found): %.3f ms mean, %.3f ms max to the last packet, %.0f packets/s\n",
      S_.bursts, S_.burst, S_.burst_found, S_.burst_ms_mean, S_.burst_ms_max, S_.burst_packets_per_s))
    out:write("           each burst (ms): ", table.concat(S_.burst_ms, " "), "\n")
    out:write(f("           the burst's dig_batch call: %.3f ms CPU, %.3f ms wall (mean)\n",
      S_.burst_dig_batch_cpu_ms, S_.burst_dig_batch_wall_ms))
    out:write(f("           per burst (mean of %d windows): %.3f ms in resolver calls on the Lua thread, %.3f ms in the send loop, %.3f ms CPU (all threads)\n",
      S_.burst_windows, S_.burst_lua_ms, S_.send_loop_ms, S_.burst_cpu_ms))
    out:write(f("floor      %.3f ms to write and read the burst's %d bytes once; the burst takes %.2fx that, p99 %.2fx\n",
      S_.floor_ms, S_.floor_bytes, S_.burst_floor_x, S_.p99_floor_x))
  end
  out:write(f("send loop  CPU per packet: poll_into %.1f ns (backend), harness checks %.1f ns (counted in the latency); bookkeeping %.0f ns per dig (when idle, not counted)\n",
    S_.poll_ns_per_packet, S_.harness_ns_per_packet, S_.account_ns_per_dig))
  out:write(f("memory     peak RSS %.1f MB; Lua heap %.0f kB at start, %.0f kB at end (%.0f kB before the final GC, %.0f kB peak sampled)\n",
    S_.peak_rss_mb, heap.start, heap.end_, heap.end_raw, heap.peak))
  if heap.checkpoint >= 0 then
    out:write(f("           Lua heap %.0f kB after %g s (full GC): %+.0f kB from there to the end\n",
      heap.checkpoint, opt.heap_checkpoint, heap.end_ - heap.checkpoint))
  end
  out:write(f("ticks      %d overruns (> 50 ms), longest %.1f ms; busy %d, held back %d; CPU %.2f s (all threads); load average %.2f\n",
    S_.tick_overruns, S_.tick_max_ms, S_.busy, S_.held_back, S_.cpu_s, S_.loadavg_1m))
  out:write(f("checks     order %d, gaps %d, digger %d, kind %d, recipients %d, decoded %d (%d bad), stats() mismatches %d%s\n",
    st.order_err, st.gap_err, st.digger_err, st.kind_err, st.count_err, st.decoded, st.decode_err,
    #run.mismatch, opt.verify and " [--verify: every packet decoded, every dig's recipients counted]" or ""))
  if opt.digest then
    out:write(f("digest     %s over %d packets (all bytes but t_us and crc)\n", S_.digest, S_.packets))
  end
  for _, m in ipairs(run.mismatch) do out:write("  stats() mismatch: ", m, "\n") end
end

local function json_string(v)
  return '"' .. v:gsub('[%c"\\]', function(c) return string.format("\\u%04x", c:byte()) end) .. '"'
end
local function fmtnum(v)
  if v == floor(v) and abs(v) < 2^53 then return string.format("%d", v) end
  return string.format("%.6g", v)
end

--- The summary as one JSON object (no newline), keys in M.ORDER.
function M.json(S_)
  local parts = {}
  for _, k in ipairs(M.ORDER) do
    local v = S_[k]
    assert(v ~= nil, "harness: summary key " .. k .. " not set")
    local s
    if type(v) == "number" then s = fmtnum(v)
    elseif type(v) == "boolean" then s = tostring(v)
    elseif type(v) == "table" then     -- a list of numbers
      local items = {}
      for i = 1, #v do items[i] = fmtnum(v[i]) end
      s = "[" .. table.concat(items, ",") .. "]"
    else s = json_string(tostring(v)) end
    parts[#parts + 1] = json_string(k) .. ":" .. s
  end
  return "{" .. table.concat(parts, ",") .. "}"
end

--- Write the measured digs' latencies (ms), one per line.
function M.write_latencies(path, lat_out, n)
  local f, err = io.open(path, "w")
  if not f then return nil, err end
  local parts = {}
  for j = 0, n - 1 do
    parts[#parts + 1] = string.format("%.4f", lat_out[j])
    if #parts == 4096 then f:write(table.concat(parts, "\n"), "\n") parts = {} end
  end
  if #parts > 0 then f:write(table.concat(parts, "\n"), "\n") end
  f:close()
  return true
end

return M
