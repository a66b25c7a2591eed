--- treasure.record: the cluster outcome record, format v1 (layout owner).
--
-- A cluster-mode dig call leaves its outcome as records, one or more per
-- destination host shard (docs/API.md, "Cluster mode"); the destination
-- applies them in log order and encodes the packets itself. This file is
-- Lua's one copy of the record layout (named FFI structs whose offsets are
-- checked at load time), of its encoder and of its checked decoder, whose
-- refusals are exactly the contract's reasons. treasure.legacy encodes and
-- applies records with it; treasure.snapshot checks a snapshot's outgoing
-- records with it. The CRC is treasure.packet's CRC-32C.
--
-- All fields are little-endian; 64-bit fields are read and written as two
-- 32-bit words, so nothing here makes a boxed 64-bit value. Numbers in
-- reasons are exact decimal integers (64-bit ones too).

local ffi = require("ffi")
-- treasure.native may pass the packet and contract modules in (a require
-- passes its name instead).
local packet, contract = ...
if type(packet) ~= "table" then packet = require("treasure.packet") end
if type(contract) ~= "table" then contract = require("treasure.contract") end

local cast, copy, fill, sizeof, offsetof, typeof = ffi.cast, ffi.copy, ffi.fill, ffi.sizeof, ffi.offsetof, ffi.typeof
local type, tostring = type, tostring
local I = contract.int_text

if not ffi.abi("le") then
  error("treasure.record: records are read and written through host-order FFI structs; a little-endian host is required", 0)
end

-- Named structs, declared once per Lua state (legacy and native.so may both
-- load this file; see treasure.packet on anonymous structs).
if not pcall(sizeof, "struct treasure_record_header_v1") then
  ffi.cdef([[
struct treasure_record_header_v1 {
  uint8_t  magic[4];          /*  0 "TRSC"                                   */
  uint16_t version;           /*  4 = 1                                      */
  uint16_t src, dest;         /*  6  8 shards                                */
  uint16_t pad0;              /* 10 0                                        */
  uint32_t digs;              /* 12 entries                                  */
  uint32_t prev_lo, prev_hi;  /* 16 `to` of the previous record src -> dest  */
  uint32_t to_lo, to_hi;      /* 24 the owner seq this record covers up to   */
  uint32_t length;            /* 32 bytes, header included                   */
  uint32_t crc;               /* 36 CRC-32C of bytes 0..36 and 40..length    */
};
struct treasure_record_entry_v1 {
  uint32_t seq_lo, seq_hi;    /*  0 owner seq                                */
  uint32_t t_us_lo, t_us_hi;  /*  8                                          */
  uint8_t  kind, flags;       /* 16 17 flags: only LAST_CHARGE               */
  uint8_t  rarity, pad0;      /* 18 19                                       */
  uint16_t quantity, pad1;    /* 20 22                                       */
  uint32_t site_id, finder, party; /* 24 28 32                               */
  int32_t  x, y, z;           /* 36 40 44                                    */
  uint32_t item, charges_left;/* 48 52                                       */
  uint32_t recipients, pad2;  /* 56 60 slots that follow (>= 1)              */
  uint32_t roll_lo, roll_hi;  /* 64                                          */
};
struct treasure_record_slot_v1 {
  uint32_t recipient, dist2;  /*  0  4                                       */
  uint8_t  flags;             /*  8 DIGGER | PARTY only                      */
  uint8_t  pad[3];            /*  9                                          */
};
]])
end
local header_t = typeof("struct treasure_record_header_v1")
local entry_t = typeof("struct treasure_record_entry_v1")
local slot_t = typeof("struct treasure_record_slot_v1")
local header_ptr_t = typeof("struct treasure_record_header_v1 *")
local entry_ptr_t = typeof("struct treasure_record_entry_v1 *")
local slot_ptr_t = typeof("struct treasure_record_slot_v1 *")
local u8p_t = typeof("const uint8_t *")
local u32p_t = typeof("const uint32_t *")
local buf_t = typeof("uint8_t[?]")
-- the packet with its 64-bit fields as word pairs (declared by treasure.packet)
local pkt_words_t = typeof("struct treasure_packet_view_v1 *")

local HEADER_SIZE, ENTRY_SIZE, SLOT_SIZE = 40, 72, 12
local CRC_AT = 36

-- The layout is the contract (docs/API.md, "Record format v1").
do
  local function at(t, want)
    for k, off in pairs(want) do
      assert(offsetof(t, k) == off, "treasure.record: bad offset for " .. k)
    end
  end
  at(header_t, { version = 4, src = 6, dest = 8, pad0 = 10, digs = 12, prev_lo = 16, prev_hi = 20,
    to_lo = 24, to_hi = 28, length = 32, crc = 36 })
  at(entry_t, { seq_lo = 0, t_us_lo = 8, kind = 16, flags = 17, rarity = 18, pad0 = 19, quantity = 20,
    pad1 = 22, site_id = 24, finder = 28, party = 32, x = 36, y = 40, z = 44, item = 48,
    charges_left = 52, recipients = 56, pad2 = 60, roll_lo = 64 })
  at(slot_t, { recipient = 0, dist2 = 4, flags = 8, pad = 9 })
  assert(sizeof(header_t) == HEADER_SIZE and sizeof(entry_t) == ENTRY_SIZE and sizeof(slot_t) == SLOT_SIZE,
    "treasure.record: the structs are not 40, 72 and 12 bytes")
end

local FLAG = packet.FLAG
local LAST_CHARGE = FLAG.LAST_CHARGE
local RECIPIENT_FLAGS = FLAG.DIGGER + FLAG.PARTY -- the bits a slot may set
local KIND_MAX = packet.KIND.REJECTED
local MAGIC_U32 = 0x43535254 -- "TRSC" read as a little-endian u32

local M = {
  MAGIC = "TRSC",
  VERSION = 1,
  HEADER_SIZE = HEADER_SIZE,
  ENTRY_SIZE = ENTRY_SIZE,
  SLOT_SIZE = SLOT_SIZE,
  entry_ptr_t = entry_ptr_t,
  slot_ptr_t = slot_ptr_t,
}

--- Bytes of an entry with `n` recipients.
function M.entry_size(n)
  return ENTRY_SIZE + n * SLOT_SIZE
end

---------------------------------------------------------------------------
-- 64-bit values as (hi, lo) word pairs: exact comparison and text
---------------------------------------------------------------------------

local TWO32 = 4294967296

--- a < b for 64-bit values given as word pairs.
local function lt(ahi, alo, bhi, blo)
  return ahi < bhi or (ahi == bhi and alo < blo)
end

--- Exact decimal text of the 64-bit value hi:lo (only built for a reason).
local function text64(hi, lo)
  return (tostring(cast("uint64_t", hi) * 4294967296ULL + lo):gsub("ULL$", ""))
end

---------------------------------------------------------------------------
-- The record's CRC: bytes 0..36 followed by bytes 40..length
---------------------------------------------------------------------------

-- Scratch for the CRC's input: the two ranges made contiguous. Grown as
-- needed, before any state is changed by a caller (whole-or-nothing holds).
local scratch, scratch_size = buf_t(4096), 4096

--- CRC-32C of the record of `len` bytes at `p`, as the header stores it.
local function record_crc(p, len)
  local n = len - 4
  if n > scratch_size then
    local size = scratch_size
    while size < n do size = size * 2 end
    scratch, scratch_size = buf_t(size), size
  end
  copy(scratch, p, CRC_AT)
  copy(scratch + CRC_AT, p + HEADER_SIZE, len - HEADER_SIZE)
  return packet.crc32c_ptr(scratch, n)
end

---------------------------------------------------------------------------
-- Encoding (treasure.legacy's cluster-mode dig)
---------------------------------------------------------------------------

--- Write the entry at `e` (an entry_ptr_t) from the template packet at `tpl`
-- (a treasure.packet ctype: every field a dig decides, as the packets of a
-- plain resolver would carry it), with entry flags `flags` (0 or
-- LAST_CHARGE) and `n` recipient slots to follow. The padding is zeroed.
function M.write_entry(e, tpl, flags, n)
  local v = cast(pkt_words_t, tpl)
  fill(e, ENTRY_SIZE)
  e.seq_lo, e.seq_hi = v.seq_lo, v.seq_hi
  e.t_us_lo, e.t_us_hi = v.t_us_lo, v.t_us_hi
  e.kind, e.flags, e.rarity, e.quantity = v.kind, flags, v.rarity, v.quantity
  e.site_id, e.finder, e.party = v.site_id, v.finder, v.party
  e.x, e.y, e.z = v.x, v.y, v.z
  e.item, e.charges_left = v.item, v.charges_left
  e.recipients = n
  e.roll_lo, e.roll_hi = v.roll_lo, v.roll_hi
end

--- Write recipient slot `j` (0-based) of the entry at `e`.
function M.write_slot(e, j, recipient, dist2, flags)
  local s = cast(slot_ptr_t, cast("uint8_t *", e) + ENTRY_SIZE + j * SLOT_SIZE)
  s.recipient, s.dist2, s.flags = recipient, dist2, flags
  s.pad[0], s.pad[1], s.pad[2] = 0, 0, 0
end

--- One record string: `src` -> `dest`, covering (prev, to], holding
-- entries[first..last] (entry strings, in seq order) whose total with the
-- header is `len` bytes. prev and to are owner seqs (numbers < 2^53).
function M.encode(src, dest, prev, to, entries, first, last, len)
  local b = buf_t(len)
  local h = cast(header_ptr_t, b)
  copy(h.magic, "TRSC", 4)
  h.version = 1
  h.src, h.dest = src, dest
  h.digs = last - first + 1
  h.prev_lo, h.prev_hi = prev % TWO32, (prev - prev % TWO32) / TWO32
  h.to_lo, h.to_hi = to % TWO32, (to - to % TWO32) / TWO32
  h.length = len
  local at = HEADER_SIZE
  for k = first, last do
    local s = entries[k]
    copy(b + at, s, #s)
    at = at + #s
  end
  assert(at == len, "treasure.record: encode: entry bytes do not add up to the record length")
  h.crc = record_crc(b, len)
  return ffi.string(b, len)
end

---------------------------------------------------------------------------
-- Applying (treasure.legacy's apply_records)
---------------------------------------------------------------------------

--- Set every template field of the packet at `p` (a treasure.packet
-- ctype pointer, initialised) from the entry at `e`; the caller sets seq,
-- recipient, flags and dist2 per recipient and seals the CRC.
function M.template(p, e)
  local v = cast(pkt_words_t, p)
  v.kind = e.kind
  v.t_us_lo, v.t_us_hi = e.t_us_lo, e.t_us_hi
  v.site_id, v.finder, v.party = e.site_id, e.finder, e.party
  v.x, v.y, v.z = e.x, e.y, e.z
  v.item, v.quantity, v.rarity, v.charges_left = e.item, e.quantity, e.rarity, e.charges_left
  v.roll_lo, v.roll_hi = e.roll_lo, e.roll_hi
end

--- The entry at byte `off` (0-based) of string `s`, and its slot j (0-based).
function M.entry_at(s, off)
  return cast(entry_ptr_t, cast(u8p_t, s) + off)
end
function M.slot_at(e, j)
  return cast(slot_ptr_t, cast(u8p_t, e) + ENTRY_SIZE + j * SLOT_SIZE)
end

---------------------------------------------------------------------------
-- The checked decoder
---------------------------------------------------------------------------

--- Why the entry k at `e` (its header and slots inside the record) breaks a
-- rule, given the seq bound below it (lo) and the record's `to`; nil if
-- none. Rules in the contract's order: seq, kind, flags, recipients, each
-- recipient's id then flags, padding.
local function entry_fault(k, e, n, lohi, lolo, tohi, tolo)
  local shi, slo = e.seq_hi, e.seq_lo
  if not lt(lohi, lolo, shi, slo) or lt(tohi, tolo, shi, slo) then
    return "entry " .. k .. " seq " .. text64(shi, slo) .. " not in (" .. text64(lohi, lolo) .. ", "
      .. text64(tohi, tolo) .. "]"
  end
  local kind = e.kind
  if kind < 1 or kind > KIND_MAX then return "entry " .. k .. " kind " .. I(kind) end
  local flags = e.flags
  if flags ~= 0 and flags ~= LAST_CHARGE then return "entry " .. k .. " flags " .. I(flags) end
  if n == 0 then return "entry " .. k .. " has no recipients" end
  local prev_id = 0
  local pad = e.pad0 + e.pad1 + e.pad2
  for j = 0, n - 1 do
    local s = M.slot_at(e, j)
    local id = s.recipient
    if id <= prev_id then
      return "entry " .. k .. " recipient " .. (j + 1) .. " id " .. I(id) .. " not above " .. I(prev_id)
    end
    if s.flags > RECIPIENT_FLAGS then
      return "entry " .. k .. " recipient " .. (j + 1) .. " flags " .. I(s.flags)
    end
    prev_id = id
    pad = pad + s.pad[0] + s.pad[1] + s.pad[2]
  end
  if pad ~= 0 then return "entry " .. k .. " nonzero padding" end
  return nil
end

--- scan(s, shard, shards [, outgoing]) -> records | nil, i, reason.
--
-- Checks every record of the string `s` (zero or more records, end to end)
-- for a resolver that is shard `shard` of `shards`, first to last, and
-- each in the contract's order; the first failing rule is returned as the
-- record's 1-based index and the reason text. Addressed to it (apply_records,
-- the default): dest must be `shard`, src below `shards`. `outgoing` (a
-- snapshot's records not yet taken): dest below `shards`, src `shard`.
--
-- On success, a list of { off, length, src, dest, prev, to, n, eoff = {},
-- eseq = {}, ercpt = {}, recipients } per record: byte offset (0-based) and
-- length, the header's values (prev and to as numbers), and per entry its
-- offset, seq and recipient count; `recipients` totals them.
function M.scan(s, shard, shards, outgoing)
  local total = #s
  local base = cast(u8p_t, s)
  local out = {}
  local pos, i = 0, 0
  while pos < total do
    i = i + 1
    local left = total - pos
    if left < HEADER_SIZE then return nil, i, "truncated header (" .. I(left) .. " bytes)" end
    local p = base + pos
    local h = cast(header_ptr_t, p)
    if cast(u32p_t, p)[0] ~= MAGIC_U32 then return nil, i, "bad magic" end
    if h.version ~= 1 then return nil, i, "bad version " .. I(h.version) end
    local len = h.length
    if len < HEADER_SIZE or len > left then return nil, i, "bad length " .. I(len) end
    if h.crc ~= record_crc(p, len) then return nil, i, "bad CRC" end
    local src, dest = h.src, h.dest
    if outgoing then
      if dest >= shards then return nil, i, "dest shard " .. I(dest) end
      if src ~= shard then return nil, i, "src shard " .. I(src) .. " is not this shard " .. I(shard) end
    else
      if dest ~= shard then return nil, i, "dest shard " .. I(dest) end
      if src >= shards then return nil, i, "src shard " .. I(src) end
    end
    local phi, plo, thi, tlo = h.prev_hi, h.prev_lo, h.to_hi, h.to_lo
    if not lt(phi, plo, thi, tlo) then
      return nil, i, "prev " .. text64(phi, plo) .. " not below to " .. text64(thi, tlo)
    end
    local rec = { off = pos, length = len, src = src, dest = dest,
      prev = phi * TWO32 + plo, to = thi * TWO32 + tlo, n = h.digs,
      eoff = {}, eseq = {}, ercpt = {}, recipients = 0 }
    local at, lohi, lolo = HEADER_SIZE, phi, plo
    for k = 1, h.digs do
      if at + ENTRY_SIZE > len then return nil, i, "entry " .. k .. " truncated" end
      local e = cast(entry_ptr_t, p + at)
      local n = e.recipients
      if at + ENTRY_SIZE + n * SLOT_SIZE > len then return nil, i, "entry " .. k .. " truncated" end
      local why = entry_fault(k, e, n, lohi, lolo, thi, tlo)
      if why then return nil, i, why end
      lohi, lolo = e.seq_hi, e.seq_lo
      rec.eoff[k], rec.eseq[k], rec.ercpt[k] = pos + at, lohi * TWO32 + lolo, n
      rec.recipients = rec.recipients + n
      at = at + ENTRY_SIZE + n * SLOT_SIZE
    end
    if at < len then return nil, i, "trailing " .. I(len - at) .. " bytes" end
    out[i] = rec
    pos = pos + len
  end
  return out
end

return M
