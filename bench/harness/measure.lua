-- bench/harness/measure.lua: the harness's instruments. Clocks (wall, this
-- thread's CPU, the whole process's CPU), the latency histogram, the memory
-- floor of a burst, and readings of /proc. Everything a hot path calls
-- allocates nothing: the clocks read into preallocated FFI structs through
-- 32-bit halves (a 64-bit field would box a cdata per read).

local ffi = require("ffi")
local floor = math.floor
local bxor = require("bit").bxor

ffi.cdef[[
typedef struct { uint32_t sec_lo, sec_hi, nsec_lo, nsec_hi; } harness_timespec;
int harness_clock_gettime(int clk, harness_timespec *ts) __asm__("clock_gettime");
int harness_nanosleep(const harness_timespec *req, harness_timespec *rem) __asm__("nanosleep");
/* struct rusage on 64-bit Linux: two struct timeval (long, long), then 14 longs */
typedef struct {
  uint32_t ut_sec_lo, ut_sec_hi, ut_usec_lo, ut_usec_hi;
  uint32_t st_sec_lo, st_sec_hi, st_usec_lo, st_usec_hi;
  uint32_t rest[28];
} harness_rusage;
int harness_getrusage(int who, harness_rusage *usage) __asm__("getrusage");
]]
assert(ffi.sizeof("harness_rusage") == 144 and ffi.abi("64bit") and ffi.abi("le"),
  "harness: the rusage layout assumes 64-bit little-endian Linux")

local C = ffi.C
local M = {}

local CLOCK_MONOTONIC, CLOCK_THREAD_CPUTIME_ID, RUSAGE_SELF = 1, 3, 0
local ts_now, ts_cpu, ts_sleep = ffi.new("harness_timespec"), ffi.new("harness_timespec"), ffi.new("harness_timespec")
local ru = ffi.new("harness_rusage")

--- Seconds, CLOCK_MONOTONIC (a vDSO read, no system call: cheap enough per call).
function M.now()
  C.harness_clock_gettime(CLOCK_MONOTONIC, ts_now)
  return (ts_now.sec_hi * 4294967296 + ts_now.sec_lo) + ts_now.nsec_lo * 1e-9
end

--- Seconds of this thread's CPU time (immune to preemption; a real system call,
-- so the hot loop reads it sparingly).
function M.cpu_now()
  C.harness_clock_gettime(CLOCK_THREAD_CPUTIME_ID, ts_cpu)
  return (ts_cpu.sec_hi * 4294967296 + ts_cpu.sec_lo) + ts_cpu.nsec_lo * 1e-9
end

--- Seconds of CPU of every thread of the process (user + system), getrusage(RUSAGE_SELF).
function M.process_cpu()
  C.harness_getrusage(RUSAGE_SELF, ru)
  return (ru.ut_sec_hi * 4294967296 + ru.ut_sec_lo) + ru.ut_usec_lo * 1e-6
       + (ru.st_sec_hi * 4294967296 + ru.st_sec_lo) + ru.st_usec_lo * 1e-6
end

function M.sleep(sec)
  if sec <= 0 then return end
  local s = floor(sec)
  ts_sleep.sec_lo, ts_sleep.sec_hi = s, 0
  ts_sleep.nsec_lo, ts_sleep.nsec_hi = floor((sec - s) * 1e9), 0
  C.harness_nanosleep(ts_sleep, nil)
end

---------------------------------------------------------------------------
-- latency histogram in microseconds: 1 us buckets below 1024 us, then 256
-- log-linear buckets per octave (<= 0.4 % error); the exact min and max are
-- kept by the caller and clamp the percentiles.
---------------------------------------------------------------------------
local HLIN, HSUB, HOCT = 1024, 256, 24
local HN = HLIN + HSUB * HOCT
local LN2 = math.log(2)

function M.histogram()
  local hist = ffi.new("uint32_t[?]", HN)
  local function index(us)                           -- (math.frexp is not compiled)
    if us < HLIN then return floor(us) end
    local e = floor(math.log(us) / LN2)              -- 2^e <= us < 2^(e+1)
    local p2 = 2 ^ e
    if p2 > us then e = e - 1 p2 = p2 / 2 elseif p2 * 2 <= us then e = e + 1 p2 = p2 * 2 end
    local idx = HLIN + (e - 10) * HSUB + floor((us / p2 - 1) * HSUB)
    if idx >= HN then idx = HN - 1 end
    return idx
  end
  local function value(idx)                          -- bucket midpoint, us
    if idx < HLIN then return idx + 0.5 end
    local o = floor((idx - HLIN) / HSUB)
    local sub = (idx - HLIN) % HSUB
    return 2 ^ (o + 10) * (1 + (sub + 0.5) / HSUB)
  end
  local h = {}
  --- Count one latency in seconds.
  function h.add(sec)
    local idx = index(sec * 1e6)
    hist[idx] = hist[idx] + 1
  end
  --- The q-quantile in ms of `total` counted latencies, clamped to [lo, hi] seconds.
  function h.percentile(q, total, lo, hi)
    if total == 0 then return 0 end
    local rank = math.ceil(q * total)
    if rank < 1 then rank = 1 end
    local acc, idx = 0, HN - 1
    for i = 0, HN - 1 do
      acc = acc + hist[i]
      if acc >= rank then idx = i break end
    end
    local v = value(idx) / 1e6
    if v > hi then v = hi end
    if v < lo then v = lo end
    return v * 1000
  end
  return h
end

---------------------------------------------------------------------------
-- the physical floor of a burst: the time to write `bytes` bytes once
-- (ffi.fill, i.e. memset) and read them once (one 32-bit load from every
-- 64-byte cache line, so that every line comes back from memory), on one
-- thread: bound by whichever level of the memory hierarchy holds that many
-- bytes (RAM, or a large last-level cache), the levels the burst's packets
-- pass through (sizes for the 12,000-dig burst: docs/BENCHMARKS.md). The buffer is touched once before the timed passes (no page
-- faults timed); the fastest of `passes` passes is the floor. Returns ms (0
-- when passes or bytes is 0).
---------------------------------------------------------------------------
function M.floor_ms(bytes, passes)
  if passes <= 0 or bytes < 64 then return 0 end
  local lines = floor(bytes / 64)
  local buf = ffi.new("uint8_t[?]", lines * 64)
  local q = ffi.cast("const int32_t *", buf)
  ffi.fill(buf, lines * 64, 1)
  local best, sink = 1e300, 0
  for pass = 1, passes do
    local t0 = M.now()
    ffi.fill(buf, lines * 64, pass)
    local acc = 0
    for l = 0, lines - 1 do acc = bxor(acc, q[l * 16]) end
    local d = M.now() - t0
    sink = bxor(sink, acc)
    if d < best then best = d end
  end
  M.floor_sink = sink   -- keeps the read pass observable
  return best * 1000
end

---------------------------------------------------------------------------
-- /proc readings (once per run, outside the timing)
---------------------------------------------------------------------------

--- A kB field of /proc/self/status (e.g. VmHWM, the peak RSS).
function M.status_kb(field)
  local f = io.open("/proc/self/status")
  if not f then return 0 end
  local s = f:read("*a")
  f:close()
  return tonumber(s:match(field .. ":%s*(%d+)")) or 0
end

--- The 1-minute load average, -1 when unknown.
function M.loadavg()
  local f = io.open("/proc/loadavg")
  if not f then return -1 end
  local v = tonumber((f:read("*l") or ""):match("^(%S+)")) or -1
  f:close()
  return v
end

return M
