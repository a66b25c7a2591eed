--- How many 128-byte packets a caller's FFI buffer holds, for poll_into.
-- (A refusal comes back as a code and a detail; each backend raises the
-- contract's message for it: treasure.contract.buffer_refusal in Lua,
-- treasure_core::contract in Rust.)
--
-- One definition for both backends: treasure.legacy requires this module,
-- and treasure.native compiles the same file into native.so (include_str!),
-- so the two cannot disagree about which buffers are acceptable or how a
-- refused one is described.
--
-- Accepted: an *instance* of exactly `uint8_t[?]` or `uint8_t[N]` (typedefs
-- of those included). The type is checked by identity (`ffi.typeof(buf) ==`
-- the uint8_t array ctype of that size), never by its printed name, so
-- const/volatile arrays, references (struct fields), pointers, int8_t/char
-- arrays and multi-dimensional arrays are all different types and refused.
--
-- A ctype object (`ffi.typeof("uint8_t[256]")`, an easy slip for ffi.new)
-- is itself a cdata, and ffi.typeof, ffi.istype and ffi.sizeof all read it
-- as the type it stands for, so the type check alone would accept it (and a
-- write through its address corrupts LuaJIT's heap). What tells it apart:
-- it is stored as a 4-byte type id that tonumber() converts to a number,
-- while tonumber() of an array instance is always nil (checked on Debian's
-- LuaJIT 2.1.0-beta3 and OpenResty's luajit2 2.1-20230119).
--
-- The verdict is cached per buffer object (weak keys): a cdata's type and
-- size never change, so the cache is exact and a steady send loop that polls
-- many times a tick creates no garbage and calls no FFI library function.
local ffi = require("ffi")
-- treasure.native passes the contract module in (a require passes its name).
local contract = ...
if type(contract) ~= "table" then contract = require("treasure.contract") end

local typeof, sizeof, floor, format, type, tostring, tonumber =
  ffi.typeof, ffi.sizeof, math.floor, string.format, type, tostring, tonumber
local PACKET_SIZE = contract.PACKET_SIZE

local u8_vla_t = typeof("uint8_t[?]")
local u8_fixed_t = {} -- byte size -> ctype uint8_t[size] (interned by LuaJIT anyway)

--- What was passed, for the message: `table`, `ctype<unsigned char [256]>`
-- (a ctype object prints without an address), `cdata<char *>` (an
-- instance: its type's name, no address, so both backends print the same).
local function describe(buf)
  if type(buf) ~= "cdata" then return type(buf) end
  local name = tostring(typeof(buf)) -- "ctype<T>"
  if tonumber(buf) ~= nil and tostring(buf) == name then return name end -- the ctype object itself
  return "cdata" .. name:sub(6)
end

local function is_u8_array_instance(buf)
  if tonumber(buf) ~= nil then return false end -- a ctype object or a number cdata
  local t = typeof(buf)
  if t == u8_vla_t then return true end
  local size = sizeof(buf)
  if size == nil then return false end
  local fixed = u8_fixed_t[size]
  if fixed == nil then
    -- Not typeof("uint8_t[$]", size): LuaJIT 2.1.0-beta3's trace recorder
    -- specializes typeof to the type of the first size it saw.
    fixed = typeof("uint8_t[" .. format("%d", size) .. "]")
    u8_fixed_t[size] = fixed
  end
  return t == fixed
end

-- Issue 15: a caller's own memory (a C host's, a socket library's) as a
-- `uint8_t *` or `void *` pointer cdata (not const, not NULL) with an
-- explicit `capacity` in bytes. The pointer types are checked by identity
-- too, so `const uint8_t *`, `char *`, `int8_t *` are refused.
local u8_ptr_t, void_ptr_t = typeof("uint8_t *"), typeof("void *")
local COUNT = contract.COUNT

--- What a buffer object is: "array" with its byte size, "pointer" with its
-- address, "null", or false.
local function classify(buf)
  if tonumber(buf) ~= nil then return false end -- a ctype object or a number cdata
  local t = typeof(buf)
  if t == u8_ptr_t or t == void_ptr_t then
    if buf == nil then return "null" end
    return "pointer", tonumber(ffi.cast("uintptr_t", buf))
  end
  if is_u8_array_instance(buf) then return "array", sizeof(buf) end
  return false
end

-- Cached per buffer object (weak keys: a cdata's type, size and pointer
-- value never change).
local kinds = setmetatable({}, { __mode = "k" }) -- buffer -> kind (see classify)
local sizes = setmetatable({}, { __mode = "k" }) -- buffer -> array bytes or pointer address

--- Judges poll_into's `buf` and `capacity` (docs/API.md, "poll_into"), for
-- both backends, before anything leaves the queue. Returns
--   holds, nil, nil, addr   accepted: the whole packets the buffer holds,
--                           and for a pointer its address (a number);
--   nil, refused, detail    refused, with a code for the message
--                           (treasure.contract.buffer_refusal):
--     "buf"  / "null"        detail = what buf is (checked before `max`);
--     "capacity"             detail = how capacity shows (after `max`);
--     "capacity_missing"     a pointer without capacity (after `max`);
--     "capacity_exceeds"     detail = the array's bytes (after `max`).
-- Allocates nothing once a buffer object has been seen.
return function(buf, capacity)
  if type(buf) ~= "cdata" then return nil, "buf", type(buf) end
  local kind = kinds[buf]
  if kind == nil then
    local size
    kind, size = classify(buf)
    kinds[buf], sizes[buf] = kind, size
  end
  if kind == "array" then
    local size = sizes[buf]
    if capacity == nil then return floor(size / PACKET_SIZE) end
    if not contract.is_int(capacity, COUNT.lo, COUNT.hi) then
      return nil, "capacity", contract.show(capacity)
    end
    if capacity > size then return nil, "capacity_exceeds", size end
    return floor(capacity / PACKET_SIZE)
  elseif kind == "pointer" then
    if capacity == nil then return nil, "capacity_missing" end
    if not contract.is_int(capacity, COUNT.lo, COUNT.hi) then
      return nil, "capacity", contract.show(capacity)
    end
    return floor(capacity / PACKET_SIZE), nil, nil, sizes[buf]
  elseif kind == "null" then
    return nil, "null", describe(buf)
  end
  return nil, "buf", describe(buf)
end
