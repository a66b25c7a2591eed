--- How many 128-byte packets a caller's FFI buffer holds, for poll_into.
-- (The refusal's message, "buf must be a uint8_t array cdata, got <what>",
-- is raised by each backend with the `what` this module returns.)
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

local known = setmetatable({}, { __mode = "k" }) -- buffer -> packets held, or false

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

--- Returns the number of whole packets `buf` holds, or nil and the text
-- describing `buf` when it is not a uint8_t array instance.
return function(buf)
  if type(buf) ~= "cdata" then return nil, type(buf) end
  local held = known[buf]
  if held == nil then
    held = is_u8_array_instance(buf) and floor(sizeof(buf) / PACKET_SIZE)
    known[buf] = held
  end
  if held then return held end
  return nil, describe(buf)
end
