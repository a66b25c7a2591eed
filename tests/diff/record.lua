-- tests/diff/record.lua: a small encoder/decoder of the cluster outcome
-- record format v1 (CLUSTER_SPEC.md / docs/API.md), for the differential test
-- bed: run.lua synthesizes records from other source shards with it, splits
-- taken record strings, and builds corrupted records. CRC-32C is the packet
-- module's (one CRC in the repository); everything else is written here from
-- the byte table, so a layout slip in a backend shows up as a mismatch.
--
-- An entry is a table { seq, t_us, kind, flags, rarity, quantity, site_id,
-- finder, party, x, y, z, item, charges_left, roll_hi, roll_lo,
-- recipients = { { id, dist2, flags }, ... }, pad = { [offset] = byte }? }
-- (seq and t_us are integers below 2^53; roll is two 32-bit halves).
local crc32c = require("treasure.packet").crc32c

local M = {}

M.HEADER, M.ENTRY, M.SLOT, M.MAX_BYTES = 40, 72, 12, 65536

local schar, floor = string.char, math.floor
local function le(v, n) -- unsigned little-endian, v an integer in [0, 2^(8n)) (n <= 4), or n = 8 with v < 2^53
  local t = {}
  for i = 1, n do t[i] = v % 256; v = floor(v / 256) end
  return schar(unpack(t))
end
local function i32(v) if v < 0 then v = v + 4294967296 end; return le(v, 4) end
M.le = le

local function rd(s, off, n) -- off 0-based
  local v = 0
  for i = n, 1, -1 do v = v * 256 + s:byte(off + i) end
  return v
end
M.rd = rd

function M.entry_bytes(e)
  local rs = e.recipients
  local nrec = e.nrecipients or #rs
  local parts = {
    le(e.seq, 8), le(e.t_us, 8), le(e.kind, 1), le(e.flags, 1), le(e.rarity, 1), "\0",
    le(e.quantity, 2), "\0\0", le(e.site_id, 4), le(e.finder, 4), le(e.party, 4),
    i32(e.x), i32(e.y), i32(e.z), le(e.item, 4), le(e.charges_left, 4), le(nrec, 4), "\0\0\0\0",
    le(e.roll_lo, 4), le(e.roll_hi, 4),
  }
  for _, r in ipairs(rs) do
    parts[#parts + 1] = le(r[1], 4) .. le(r[2], 4) .. le(r[3], 1) .. "\0\0\0"
  end
  local s = table.concat(parts)
  if e.pad then -- a nonzero padding byte (corruption)
    for off, b in pairs(e.pad) do s = s:sub(1, off) .. schar(b) .. s:sub(off + 2) end
  end
  return s
end

--- header fields: src, dest, prev, to; optional overrides: magic, version,
-- pad10, digs, length, crc (a number, or true for a wrong one)
function M.encode(h, entries)
  local body = {}
  for i, e in ipairs(entries) do body[i] = M.entry_bytes(e) end
  body = table.concat(body) .. (h.extra or "")
  local length = h.length or (40 + #body)
  local head = (h.magic or "TRSC") .. le(h.version or 1, 2) .. le(h.src, 2) .. le(h.dest, 2) .. le(h.pad10 or 0, 2) ..
    le(h.digs or #entries, 4) .. le(h.prev, 8) .. le(h.to, 8) .. le(length, 4)
  local crc = crc32c(head .. body)
  if h.crc == true then crc = (crc + 1) % 4294967296 elseif h.crc then crc = h.crc end
  return head .. le(crc, 4) .. body
end

--- the length of the entry records `entries` would make (no header)
function M.entry_size(e) return 72 + 12 * #e.recipients end

--- split a concatenation of (valid) records into a list of
-- { bytes =, src =, dest =, digs =, prev =, to = }
function M.split(s)
  local out, off = {}, 0
  while off + 40 <= #s do
    local len = rd(s, off + 32, 4)
    if len < 40 or off + len > #s then break end
    out[#out + 1] = { bytes = s:sub(off + 1, off + len), src = rd(s, off + 6, 2), dest = rd(s, off + 8, 2),
      digs = rd(s, off + 12, 4), prev = rd(s, off + 16, 8), to = rd(s, off + 24, 8), length = len }
    off = off + len
  end
  return out, off
end

--- a human-readable summary of a record string (for mismatch reports)
function M.describe(s)
  local recs, used = M.split(s)
  local t = {}
  for i, r in ipairs(recs) do
    t[i] = string.format("#%d src=%d dest=%d digs=%d prev=%.0f to=%.0f len=%d", i, r.src, r.dest, r.digs, r.prev, r.to, r.length)
  end
  if used < #s then t[#t + 1] = string.format("(+%d unparsed bytes)", #s - used) end
  return table.concat(t, "; ")
end

return M
