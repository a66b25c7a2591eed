--- treasure.packet: the 128-byte dig packet (layout owner), CRC-32C, encode/decode.
--
-- This is the single owner of the wire layout described in docs/PACKET.md.
-- `treasure.legacy` builds its packets in place through `ctype`/`init`/`seal`
-- so that the layout is written down exactly once; clients and tests use
-- `decode`/`encode`, which work on Lua strings.
--
-- All multi-byte fields are little-endian. The FFI struct below is read and
-- written in host byte order, so the module refuses to load on a big-endian
-- host rather than silently producing wrong bytes.

local ffi = require("ffi")
local bit = require("bit")
-- treasure.native compiles this file into native.so and passes the contract
-- module in (a require receives its name instead).
local contract = ...
if type(contract) ~= "table" then contract = require("treasure.contract") end

local band, bxor, bnot, rshift = bit.band, bit.bxor, bit.bnot, bit.rshift
local tohex = bit.tohex
local cast, copy, fill, sizeof, offsetof = ffi.cast, ffi.copy, ffi.fill, ffi.sizeof, ffi.offsetof
local floor = math.floor
local format = string.format
local type, tostring, tonumber, error = type, tostring, tonumber, error

if not ffi.abi("le") then
  error("treasure.packet: this module writes packets through a host-order FFI struct and needs a little-endian host", 0)
end

-- The release this Lua half belongs to. The version is defined once, in
-- Cargo.toml's [workspace.package]; this line is checked against it by
-- tools/version.sh (run by `make test` and `make rock`), and every other Lua
-- module takes its _VERSION from here. _VERSION_NUM is the same version as one
-- number, major * 1000000 + minor * 1000 + patch (1.2.3 -> 1002003), for `>=`.
local RELEASE = "treasure 1.1.0"
local major, minor, patch = RELEASE:match("^treasure (%d+)%.(%d+)%.(%d+)$")

local SIZE = contract.PACKET_SIZE
local SAFE_INT_MAX = contract.SAFE_INT_MAX

local M = {
  _VERSION = RELEASE,
  _VERSION_NUM = tonumber(major) * 1000000 + tonumber(minor) * 1000 + tonumber(patch),
  SIZE = SIZE,
  MAGIC = "TRSR",
  VERSION = 1,
  KIND = { FOUND = 1, EMPTY = 2, NOTHING = 3, REJECTED = 4 },
  FLAG = { DIGGER = 1, PARTY = 2, LAST_CHARGE = 4 },
}

--- The packet as an FFI struct, under a versioned name. Declared only if no
-- earlier load (busted re-requires modules per file) declared it already.
-- Anonymous structs are avoided on purpose: LuaJIT 2.1.0-beta3 can resolve
-- "$ *" of a re-created anonymous struct to an older struct of the same
-- shape, and a named type has a single identity for the whole process.
-- (ffi.sizeof raises for a tag never declared.)
if not pcall(ffi.sizeof, "struct treasure_packet_v1") then
  ffi.cdef([[
struct treasure_packet_v1 {
  uint8_t  magic[4];     /*   0 "TRSR"                                  */
  uint16_t version;      /*   4 = 1                                     */
  uint8_t  kind;         /*   6 1 FOUND 2 EMPTY 3 NOTHING 4 REJECTED    */
  uint8_t  flags;        /*   7 bit0 digger, bit1 party, bit2 last charge */
  uint64_t seq;          /*   8                                         */
  uint64_t t_us;         /*  16                                         */
  uint32_t site_id;      /*  24                                         */
  uint32_t finder;       /*  28                                         */
  uint32_t recipient;    /*  32                                         */
  uint32_t party;        /*  36 finder's party at dig time              */
  int32_t  x, y, z;      /*  40 44 48 the dug block                     */
  uint32_t item;         /*  52                                         */
  uint16_t quantity;     /*  56                                         */
  uint8_t  rarity;       /*  58                                         */
  uint8_t  pad0;         /*  59 always 0                                */
  uint32_t charges_left; /*  60                                         */
  uint64_t roll;         /*  64                                         */
  uint32_t dist2;        /*  72 saturating at 2^32-1                    */
  uint8_t  reserved[48]; /*  76 always 0                                */
  uint32_t crc;          /* 124 CRC-32C of bytes 0..123                 */
};
]])
end
local packet_t = ffi.typeof("struct treasure_packet_v1")
local packet_ptr_t = ffi.typeof("struct treasure_packet_v1 *")
local const_packet_ptr_t = ffi.typeof("const struct treasure_packet_v1 *")
local u8p_t = ffi.typeof("const uint8_t *")
local u32p_t = ffi.typeof("const uint32_t *")

-- The layout is the contract: fail loudly at load time if the C compiler
-- model ever disagrees with docs/PACKET.md.
do
  local want = { version = 4, kind = 6, flags = 7, seq = 8, t_us = 16, site_id = 24,
    finder = 28, recipient = 32, party = 36, x = 40, y = 44, z = 48, item = 52,
    quantity = 56, rarity = 58, pad0 = 59, charges_left = 60, roll = 64,
    dist2 = 72, reserved = 76, crc = 124 }
  for k, off in pairs(want) do
    assert(offsetof(packet_t, k) == off, "treasure.packet: bad offset for " .. k)
  end
  assert(sizeof(packet_t) == SIZE, "treasure.packet: struct is not " .. SIZE .. " bytes")
end

M.ctype = packet_t
M.ptr_t = packet_ptr_t

---------------------------------------------------------------------------
-- CRC-32C (Castagnoli), reflected polynomial 0x82F63B78, slicing-by-4.
---------------------------------------------------------------------------

-- T[k*256 + i]: table k of the slicing-by-4 scheme (k = 0 is the classic
-- byte-at-a-time table). Stored as int32 because `bit` works on int32.
local T = ffi.new("int32_t[1024]")
for i = 0, 255 do
  local c = i
  for _ = 1, 8 do
    if band(c, 1) ~= 0 then c = bxor(rshift(c, 1), 0x82F63B78) else c = rshift(c, 1) end
  end
  T[i] = c
end
for i = 0, 255 do
  for k = 1, 3 do
    local prev = T[(k - 1) * 256 + i]
    T[k * 256 + i] = bxor(rshift(prev, 8), T[band(prev, 255)])
  end
end

--- Feed `len` bytes at `p` into a running (pre-inverted) CRC register.
-- Four bytes per step: little-endian word xor register, then four lookups.
local function crc_update(crc, p, len)
  local words = rshift(len, 2)
  local w = cast(u32p_t, p)
  for k = 0, words - 1 do
    crc = bxor(crc, w[k])
    crc = bxor(T[768 + band(crc, 255)], T[512 + band(rshift(crc, 8), 255)],
               T[256 + band(rshift(crc, 16), 255)], T[rshift(crc, 24)])
  end
  local b = cast(u8p_t, p)
  for i = words * 4, len - 1 do
    crc = bxor(rshift(crc, 8), T[band(bxor(crc, b[i]), 255)])
  end
  return crc
end

--- CRC-32C of `len` bytes at pointer `p`, as an unsigned number in
-- [0, 2^32) (issue 15; it was an int32 bit pattern before 1.2).
local function crc32c_ptr(p, len)
  return bnot(crc_update(-1, p, len)) % 4294967296
end
M.crc32c_ptr = crc32c_ptr

--- crc32c(s [, i, j]) -> number in [0, 2^32): CRC-32C of s:sub(i, j).
-- i and j follow string.sub's rules (negative counts from the end).
function M.crc32c(s, i, j)
  if type(s) ~= "string" then
    error("treasure.packet: crc32c: s must be a string, got " .. type(s), 0)
  end
  local n = #s
  i = i or 1
  j = j or n
  if type(i) ~= "number" or type(j) ~= "number" or i ~= floor(i) or j ~= floor(j) then
    error("treasure.packet: crc32c: i and j must be integers", 0)
  end
  if i < 0 then i = n + i + 1 end
  if j < 0 then j = n + j + 1 end
  if i < 1 then i = 1 end
  if j > n then j = n end
  local len = j - i + 1
  if len <= 0 then return 0 end
  return crc32c_ptr(cast(u8p_t, s) + (i - 1), len) % 4294967296
end

---------------------------------------------------------------------------
-- Writing a packet in place (treasure.legacy builds its packets without strings)
---------------------------------------------------------------------------

--- Zero a packet in memory and stamp magic and version.
function M.init(p)
  fill(p, SIZE)
  copy(p.magic, "TRSR", 4)
  p.version = 1
  return p
end

--- Compute the CRC of bytes 0..123 of the packet at `p` and store it at 124.
function M.seal(p)
  cast(packet_ptr_t, p).crc = crc32c_ptr(p, 124)
end

---------------------------------------------------------------------------
-- view(ptr): read one packet in place, without garbage (issue 15)
---------------------------------------------------------------------------

local MAGIC_U32 = 0x52535254 -- "TRSR" read as a little-endian u32

-- The packet layout with each 64-bit field as two 32-bit words, so reading
-- any field gives a plain Lua number (a uint64_t field would give a boxed
-- cdata: garbage). Declared and given its methods once per Lua state (this
-- file may be loaded twice: native.so compiles it in, legacy requires it).
-- CRC-32C of a packet's bytes 0..123 with the word loop unrolled (built
-- once from source): a call with no loop stays inside the caller's trace,
-- so a view that is only read there is never allocated (allocation sinking
-- cannot reach across the trace boundary an inner loop makes).
local crc124
do
  local src = { "local T, cast, u32p_t, bxor, band, rshift, bnot = ...\n",
                "return function(p)\n local w = cast(u32p_t, p)\n local c = -1\n" }
  for k = 0, 30 do
    src[#src + 1] = " c = bxor(c, w[" .. k .. "])\n c = bxor(T[768 + band(c, 255)], T[512 + band(rshift(c, 8), 255)]," ..
      " T[256 + band(rshift(c, 16), 255)], T[rshift(c, 24)])\n"
  end
  src[#src + 1] = " return bnot(c) % 4294967296\nend\n"
  crc124 = assert(loadstring(table.concat(src), "=treasure.packet.crc124"))(T, cast, u32p_t, bxor, band, rshift, bnot)
end

if not pcall(ffi.sizeof, "struct treasure_packet_view_v1") then
  ffi.cdef([[
struct treasure_packet_view_v1 {
  uint8_t  magic[4]; uint16_t version; uint8_t kind, flags;
  uint32_t seq_lo, seq_hi, t_us_lo, t_us_hi;
  uint32_t site_id, finder, recipient, party;
  int32_t  x, y, z;
  uint32_t item; uint16_t quantity; uint8_t rarity, pad0;
  uint32_t charges_left, roll_lo, roll_hi, dist2;
  uint8_t  reserved[48];
  uint32_t crc;
};
]])
  local u32 = ffi.typeof("const uint32_t *")
  ffi.metatype("struct treasure_packet_view_v1", { __index = {
    --- seq and t_us as numbers (exact: both are < 2^53 by the contract)
    seq = function(v) return v.seq_hi * 4294967296 + v.seq_lo end,
    t_us = function(v) return v.t_us_hi * 4294967296 + v.t_us_lo end,
    --- magic "TRSR" and version 1 (no string is made)
    magic_ok = function(v)
      return cast(u32, v)[0] == MAGIC_U32 and v.version == 1
    end,
    --- the stored CRC matches bytes 0..123 (both unsigned numbers)
    crc_ok = function(v) return v.crc == crc124(v) end,
    --- magic, version and CRC all good
    check = function(v)
      return cast(u32, v)[0] == MAGIC_U32 and v.version == 1 and v.crc == crc124(v)
    end,
  } })
end
assert(sizeof("struct treasure_packet_view_v1") == 128, "treasure.packet: view struct is not 128 bytes")
local view_ptr_t = ffi.typeof("const struct treasure_packet_view_v1 *")

--- view(ptr) -> the 128-byte packet at `ptr` (any pointer or array cdata,
-- e.g. `buf + i * 128` of a poll_into buffer), read in place. Fields are
-- plain numbers: kind, flags, site_id, finder, recipient, party, x, y, z,
-- item, quantity, rarity, charges_left, dist2, crc (unsigned), seq_lo/hi,
-- t_us_lo/hi, roll_lo/hi; methods v:seq(), v:t_us(), v:magic_ok(),
-- v:crc_ok(), v:check(). Nothing is copied or checked on the way in: `ptr`
-- must point at 128 readable bytes while the view is used (the caller's
-- promise, as in C). Zero garbage in compiled code: the view is a pointer
-- cdata that LuaJIT's allocation sinking removes when it does not escape
-- the loop (tests/lua/packet_spec.lua reads 100,000 packets with a flat heap).
function M.view(ptr)
  return cast(view_ptr_t, ptr)
end
M.view_t = view_ptr_t

---------------------------------------------------------------------------
-- Reading a packet in place: `p` points at a packet's first byte (any
-- pointer cdata, e.g. a string cast to `const uint8_t *`), 128 bytes
-- readable. No strings and no boxed 64-bit values are made, so a snapshot's
-- thousands of pending packets are checked without garbage.
---------------------------------------------------------------------------

--- A u64 field given as its two little-endian u32 halves, as a number
-- (exact below 2^53, the bound of every u64 field but roll).
local function u64_number(lo, hi) return hi * 4294967296 + lo end

--- Why the bytes at `p` are not a valid packet: "bad magic", "bad version
-- <n>", "bad CRC" (checked in that order), or nil when they are one.
function M.fault_at(p)
  local w = cast(u32p_t, p)
  if w[0] ~= MAGIC_U32 then return "bad magic" end
  local version = cast(const_packet_ptr_t, p).version
  if version ~= 1 then return "bad version " .. contract.int_text(version) end
  if w[31] ~= crc32c_ptr(p, 124) % 4294967296 then return "bad CRC" end
  return nil
end

--- The seq of the packet at `p`, as a number.
function M.seq_at(p)
  local w = cast(u32p_t, p)
  return u64_number(w[2], w[3])
end

--- The recipient of the packet at `p`.
function M.recipient_at(p)
  return cast(const_packet_ptr_t, p).recipient
end

---------------------------------------------------------------------------
-- decode / encode (strings)
---------------------------------------------------------------------------

--- decode(s [, offset]) -> table of fields. `offset` is the 1-based index of
-- the packet's first byte in `s`. Checks length, magic, version and CRC.
function M.decode(s, offset)
  if type(s) ~= "string" then
    error("treasure.packet: decode: s must be a string, got " .. type(s), 0)
  end
  offset = offset or 1
  -- bounded, so the messages below can print it as the integer it is
  if not contract.is_int(offset, 1, SAFE_INT_MAX) then
    error("treasure.packet: decode: offset must be an integer in " .. contract.COUNT_1.text .. ", got " ..
      contract.show(offset), 0)
  end
  local avail = #s - offset + 1
  if avail < SIZE then
    error(format("treasure.packet: decode: need %d bytes at offset %d, got %d",
      SIZE, offset, avail < 0 and 0 or avail), 0)
  end
  local base = cast(u8p_t, s) + (offset - 1)
  local p = cast(const_packet_ptr_t, base)
  if s:sub(offset, offset + 3) ~= "TRSR" then
    error(format("treasure.packet: decode: bad magic %s at offset %d (want 54525352 'TRSR')",
      tohex(bit.bswap(cast(u32p_t, base)[0])), offset), 0)
  end
  if p.version ~= 1 then
    error(format("treasure.packet: decode: unsupported version %d at offset %d (want 1)",
      p.version, offset), 0)
  end
  local want = crc32c_ptr(base, 124) % 4294967296
  if p.crc ~= want then
    error(format("treasure.packet: decode: bad CRC at offset %d: stored 0x%s, computed 0x%s",
      offset, tohex(p.crc), tohex(want)), 0)
  end
  local w = cast(u32p_t, base)
  return {
    magic = "TRSR", version = 1, kind = p.kind, flags = p.flags,
    seq = u64_number(w[2], w[3]), t_us = u64_number(w[4], w[5]),
    site_id = p.site_id, finder = p.finder, recipient = p.recipient, party = p.party,
    x = p.x, y = p.y, z = p.z, item = p.item, quantity = p.quantity, rarity = p.rarity,
    charges_left = p.charges_left,
    roll = p.roll + 0ULL, roll_hex = tohex(p.roll),
    dist2 = p.dist2, crc = p.crc,
  }
end

-- encode's field list: name, low, high (inclusive).
local FIELDS = {
  { "kind", 0, 255 }, { "flags", 0, 255 },
  { "seq", 0, SAFE_INT_MAX }, { "t_us", 0, SAFE_INT_MAX },
  { "site_id", 0, 4294967295 }, { "finder", 0, 4294967295 },
  { "recipient", 0, 4294967295 }, { "party", 0, 4294967295 },
  { "x", -2147483648, 2147483647 }, { "y", -2147483648, 2147483647 },
  { "z", -2147483648, 2147483647 },
  { "item", 0, 4294967295 }, { "quantity", 0, 65535 }, { "rarity", 0, 255 },
  { "charges_left", 0, 4294967295 }, { "dist2", 0, 4294967295 },
}

--- Parse a roll given as a number (< 2^53), a 64-bit cdata or roll_hex.
local function to_u64(v, hex)
  if v == nil and hex ~= nil then
    if type(hex) ~= "string" or not hex:match("^%x+$") or #hex > 16 then
      error("treasure.packet: encode: roll_hex must be up to 16 hex digits", 0)
    end
    hex = ("0"):rep(16 - #hex) .. hex
    return ffi.cast("uint64_t", tonumber(hex:sub(1, 8), 16)) * 4294967296ULL
      + tonumber(hex:sub(9, 16), 16)
  end
  if v == nil then return 0ULL end
  if type(v) == "number" then
    if not contract.is_int(v, 0, SAFE_INT_MAX) then
      error("treasure.packet: encode: roll as a number must be an integer in [0, 2^53-1], got " .. tostring(v), 0)
    end
    return ffi.cast("uint64_t", v)
  end
  if type(v) == "cdata" then return ffi.cast("uint64_t", v) end
  error("treasure.packet: encode: roll must be a number, uint64 cdata or nil, got " .. type(v), 0)
end

--- encode(fields) -> 128-byte string. Missing fields are 0; magic, version
-- and CRC are always written by the encoder.
function M.encode(f)
  if type(f) ~= "table" then
    error("treasure.packet: encode: fields must be a table, got " .. type(f), 0)
  end
  local p = M.init(packet_t())
  for i = 1, #FIELDS do
    local name, lo, hi = FIELDS[i][1], FIELDS[i][2], FIELDS[i][3]
    local v = f[name]
    if v == nil then v = 0 end
    if not contract.is_int(v, lo, hi) then
      error(format("treasure.packet: encode: %s must be an integer in [%.0f, %.0f], got %s",
        name, lo, hi, contract.show(v)), 0)
    end
    p[name] = v
  end
  p.roll = to_u64(f.roll, f.roll_hex)
  M.seal(p)
  return ffi.string(p, SIZE)
end

return M
