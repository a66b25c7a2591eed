--- Shared helpers for the specs: packet streams, batch records, snapshots.
-- Uses only the public resolver API so every backend is tested the same way.

local ffi = require("ffi")
local packet = require("treasure.packet")

local S = {}

--- Decode every packet of a poll()'s bytes into a list of tables.
function S.decode_all(bytes)
  local out = {}
  for off = 1, #bytes, 128 do out[#out + 1] = packet.decode(bytes, off) end
  return out
end

--- flush + poll everything; returns the list of decoded packets and bytes.
function S.drain(r)
  r:flush()
  local n, bytes = r:poll()
  assert(#bytes == n * 128, "poll returned n that does not match the bytes")
  return S.decode_all(bytes), bytes
end

local dig_rec = ffi.typeof("struct { uint32_t player; int32_t x, y, z; uint64_t t_us; }")
local move_rec = ffi.typeof("struct { uint32_t player; int32_t x, y, z; }")

--- 24-byte little-endian dig record; t_us may be a number or uint64 cdata.
function S.dig_record(player, x, y, z, t_us)
  local r = dig_rec()
  r.player, r.x, r.y, r.z, r.t_us = player, x, y, z, t_us
  return ffi.string(r, 24)
end

--- 16-byte little-endian move record.
function S.move_record(player, x, y, z)
  local r = move_rec()
  r.player, r.x, r.y, r.z = player, x, y, z
  return ffi.string(r, 16)
end

function S.dig_records(list)
  local t = {}
  for i, d in ipairs(list) do t[i] = S.dig_record(d[1], d[2], d[3], d[4], d[5]) end
  return table.concat(t)
end

function S.move_records(list)
  local t = {}
  for i, m in ipairs(list) do t[i] = S.move_record(m[1], m[2], m[3], m[4]) end
  return table.concat(t)
end

--- Stats without the latency keys (they are timing-dependent on native).
function S.counters(r)
  r:flush() -- stats() never waits (issue 15): compare backends once everything is resolved
  local s = r:stats()
  local c = {}
  for _, k in ipairs({ "digs", "packets", "found", "empty", "nothing", "rejected",
                       "busy", "players", "sites", "pending_packets" }) do
    c[k] = s[k]
  end
  return c
end

--- Field list of a decoded packet, for readable comparisons.
function S.fields(p)
  return {
    kind = p.kind, flags = p.flags, seq = p.seq, t_us = p.t_us, site_id = p.site_id,
    finder = p.finder, recipient = p.recipient, party = p.party, x = p.x, y = p.y,
    z = p.z, item = p.item, quantity = p.quantity, rarity = p.rarity,
    charges_left = p.charges_left, roll_hex = p.roll_hex, dist2 = p.dist2,
  }
end

--- Recipients of a list of decoded packets, in stream order.
function S.recipients(pkts)
  local t = {}
  for i, p in ipairs(pkts) do t[i] = p.recipient end
  return t
end

--- Serializes values for exact comparison: numbers with all 17 digits,
-- tables with sorted keys, stats' latency keys (resolve_*) left out since
-- they are timings. One string for all arguments.
local function ser(v, out)
  local t = type(v)
  if t == "number" then
    out[#out + 1] = string.format("%.17g", v)
  elseif t == "table" then
    local keys = {}
    for k in pairs(v) do
      if type(k) ~= "string" or not k:match("^resolve_") then keys[#keys + 1] = k end
    end
    table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
    out[#out + 1] = "{"
    for _, k in ipairs(keys) do
      out[#out + 1] = tostring(k) .. "="
      ser(v[k], out)
    end
    out[#out + 1] = "}"
  else
    out[#out + 1] = type(v) .. ":" .. tostring(v)
  end
  out[#out + 1] = ","
end

--- A small world for the hardening specs and the storm: 2 loot entries,
-- 30 sites in a row, 24 players in 5 parties, a low max_pending_packets.
function S.small_world(T, opts)
  local r = T.new(opts or { seed = 3, aoi_radius = 12, reach = 6, max_pending_packets = 400 })
  r:add_loot_table(1, { { item = 10, weight = 3, min = 1, max = 4, rarity = 1 },
                        { item = 11, weight = 1, min = 0, max = 0, rarity = 2 } })
  for i = 1, 30 do r:add_site(i, i * 3, 0, 0, 1, 1 + i % 4) end
  for p = 1, 24 do r:join(p, p * 4, 0, 0, p % 5) end
  return r
end

function S.ser_all(...)
  local out = {}
  for i = 1, select("#", ...) do ser((select(i, ...)), out) end
  return table.concat(out)
end

return S
