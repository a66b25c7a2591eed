--- How many 128-byte packets a caller's FFI buffer holds, for poll_into.
--
-- One definition for both backends: treasure.legacy requires this module,
-- and treasure.native compiles the same file into native.so (include_str!),
-- so the two cannot disagree about which buffers are acceptable.
--
-- Accepted: exactly `uint8_t[?]` and `uint8_t[N]` cdata. Rejected: pointers
-- (their size says nothing about the memory behind them), const/volatile
-- arrays, references (struct fields), and int8_t/char arrays, which
-- ffi.istype would let through. The verdict is cached per ctype name, an
-- interned string, so a steady poll loop creates no garbage here.
local ffi = require("ffi")
local typeof, sizeof, floor, type, tostring = ffi.typeof, ffi.sizeof, math.floor, type, tostring

local verdicts = {}
-- The answer per buffer object, for buffers seen before: a cdata's type and
-- size never change, so this is exact, and it spares a send loop that polls
-- many times a tick the tostring() of the ctype (~120 ns a call, and not
-- compiled by the JIT). Weak keys: a dropped buffer is not kept alive.
local known = setmetatable({}, { __mode = "k" })

--- Returns the number of whole packets `buf` holds, or nil when `buf` is not
-- a uint8_t array cdata.
return function(buf)
  if type(buf) ~= "cdata" then return nil end
  local held = known[buf]
  if held ~= nil then return held or nil end
  local name = tostring(typeof(buf))
  local ok = verdicts[name]
  if ok == nil then
    ok = name == "ctype<unsigned char [?]>"
      or name:match("^ctype<unsigned char %[%d+%]>$") ~= nil
    verdicts[name] = ok
  end
  if not ok then
    known[buf] = false
    return nil
  end
  held = floor(sizeof(buf) / 128)
  known[buf] = held
  return held
end
