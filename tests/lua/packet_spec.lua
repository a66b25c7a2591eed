-- treasure.packet: constants, CRC-32C, encode/decode and their errors; and,
-- per backend, that every emitted packet is well-formed on the wire.

local backends = require("backends")
local S = require("support")
local packet = require("treasure.packet")
local ffi = require("ffi")

local SAMPLE = {
  kind = 1, flags = 5, seq = 4294967297, t_us = 9007199254740991, site_id = 4294967295,
  finder = 1, recipient = 2, party = 3, x = -1048576, y = 0, z = 1048575, item = 77,
  quantity = 65535, rarity = 255, charges_left = 0, roll_hex = "fedcba9876543210",
  dist2 = 4294967295,
}

local function patch(s, pos, bytes) -- 1-based pos
  return s:sub(1, pos - 1) .. bytes .. s:sub(pos + #bytes)
end

describe("treasure.packet", function()
  it("has the documented constants", function()
    assert.equals(128, packet.SIZE)
    assert.equals("TRSR", packet.MAGIC)
    assert.equals(1, packet.VERSION)
    assert.same({ FOUND = 1, EMPTY = 2, NOTHING = 3, REJECTED = 4 }, packet.KIND)
    assert.same({ DIGGER = 1, PARTY = 2, LAST_CHARGE = 4 }, packet.FLAG)
  end)

  it("crc32c matches the standard check value and known strings", function()
    assert.equals(0xE3069283, packet.crc32c("123456789"))
    assert.equals(0, packet.crc32c(""))
    assert.equals(0x8A9136AA, packet.crc32c(string.rep("\0", 32)))  -- RFC 3720 B.4
    assert.equals(0x62A8AB43, packet.crc32c(string.rep("\255", 32)))
    assert.equals(packet.crc32c("3456"), packet.crc32c("123456789", 3, 6))
    assert.equals(packet.crc32c("789"), packet.crc32c("123456789", -3))
    -- every tail length (slicing-by-4 remainder paths) against a byte-wise sum
    local s = "The quick brown fox jumps over the lazy dog"
    for n = 0, #s do
      local a = packet.crc32c(s:sub(1, n))
      assert.equals(a, packet.crc32c(s, 1, n))
    end
    assert.equals(0x22620404, packet.crc32c(s))
  end)

  it("encode lays the fields out as in PACKET.md", function()
    local b = packet.encode(SAMPLE)
    assert.equals(128, #b)
    assert.equals("TRSR", b:sub(1, 4))
    assert.equals("\1\0", b:sub(5, 6))
    assert.equals(1, b:byte(7))
    assert.equals(5, b:byte(8))
    assert.equals("\1\0\0\0\1\0\0\0", b:sub(9, 16))                 -- seq 2^32+1
    assert.equals("\255\255\255\255\255\255\31\0", b:sub(17, 24))  -- 2^53-1
    assert.equals("\0\0\240\255", b:sub(41, 44))                     -- x = -2^20
    assert.equals("\255\255\15\0", b:sub(49, 52))                    -- z = 2^20-1
    assert.equals("\255\255", b:sub(57, 58))
    assert.equals("\255\0", b:sub(59, 60))
    assert.equals("\16\50\84\118\152\186\220\254", b:sub(65, 72))   -- roll LE
    assert.equals(string.rep("\0", 48), b:sub(77, 124))
    local crc = packet.crc32c(b, 1, 124)
    local c = { b:byte(125, 128) }
    assert.equals(crc, c[1] + c[2] * 256 + c[3] * 65536 + c[4] * 16777216)
  end)

  it("decode(encode(f)) gives f back; roll as number, cdata or hex encodes the same", function()
    local b = packet.encode(SAMPLE)
    local p = packet.decode(b)
    for k, v in pairs(SAMPLE) do assert.equals(v, p[k], k) end
    assert.equals("cdata", type(p.roll))
    assert.is_true(p.roll == 0xFEDCBA9876543210ULL)
    assert.equals("TRSR", p.magic)
    assert.equals(1, p.version)
    local f = {}
    for k, v in pairs(SAMPLE) do f[k] = v end
    f.roll_hex = nil
    f.roll = 0xFEDCBA9876543210ULL
    assert.equals(b, packet.encode(f))
    f.roll, f.roll_hex = 12345, nil
    assert.equals("0000000000003039", packet.decode(packet.encode(f)).roll_hex)
    assert.equals(packet.encode(f), packet.encode((function() f.roll = nil; f.roll_hex = "3039"; return f end)()))
  end)

  it("decode reads at a 1-based offset", function()
    local a = packet.encode({ kind = 3, seq = 1, recipient = 1 })
    local b = packet.encode({ kind = 4, seq = 2, recipient = 9 })
    local s = "xyz" .. a .. b
    assert.equals(1, packet.decode(s, 4).seq)
    assert.equals(9, packet.decode(s, 132).recipient)
  end)

  it("decode rejects short input, bad magic, version and CRC with clear errors", function()
    local b = packet.encode(SAMPLE)
    assert.has_error(function() packet.decode(b:sub(1, 127)) end,
      "treasure.packet: decode: need 128 bytes at offset 1, got 127")
    assert.has_error(function() packet.decode(b, 2) end,
      "treasure.packet: decode: need 128 bytes at offset 2, got 127")
    assert.has_error(function() packet.decode(b, 300) end,
      "treasure.packet: decode: need 128 bytes at offset 300, got 0")
    assert.has_error(function() packet.decode(patch(b, 1, "TRSX")) end,
      "treasure.packet: decode: bad magic 54525358 at offset 1 (want 54525352 'TRSR')")
    assert.has_error(function() packet.decode(patch(b, 5, "\2")) end,
      "treasure.packet: decode: unsupported version 2 at offset 1 (want 1)")
    local ok, err = pcall(packet.decode, patch(b, 33, "\3"))
    assert.is_false(ok)
    assert.matches("^treasure.packet: decode: bad CRC at offset 1: stored 0x%x+, computed 0x%x+$", err)
    assert.has_error(function() packet.decode(nil) end, "treasure.packet: decode: s must be a string, got nil")
  end)

  it("encode rejects out-of-range fields", function()
    assert.has_error(function() packet.encode({ quantity = 65536 }) end,
      "treasure.packet: encode: quantity must be an integer in [0, 65535], got 65536")
    assert.has_error(function() packet.encode({ seq = 1.5 }) end,
      "treasure.packet: encode: seq must be an integer in [0, 9007199254740991], got 1.5")
    assert.has_error(function() packet.encode("x") end,
      "treasure.packet: encode: fields must be a table, got string")
  end)
end)

for _, B in ipairs(backends) do
  local T = B.module
  describe(B.name .. " packets on the wire", function()
    it("every packet of a mixed workload is well-formed and ordered by seq, then recipient", function()
      local r = T.new({ seed = 99, aoi_radius = 20, reach = 6 })
      r:add_loot_table(1, { { item = 5, weight = 9, min = 2, max = 4, rarity = 1 },
                            { item = 6, weight = 1, min = 0, max = 0, rarity = 9 } })
      for i = 1, 30 do r:add_site(i, i * 3, 0, 0, 1, i % 4) end
      for p = 1, 40 do r:join(p * 7919 % 100003, (p * 5) % 100, p % 3, 0, p % 4) end
      local ids = {}
      for p = 1, 40 do ids[#ids + 1] = p * 7919 % 100003 end
      local digs = 0
      for round = 1, 5 do
        for k, id in ipairs(ids) do
          local bx = ((k + round) % 33) * 3
          if (k + round) % 3 == 0 then r:move(id, bx + 1, 0, 0) end -- within reach
          r:dig(id, bx, 0, 0, round * 1000 + k)
          digs = digs + 1
        end
      end
      local pkts, bytes = S.drain(r)
      assert.equals(S.counters(r).packets, #pkts)
      local last_seq, last_rcpt = 0, -1
      local kinds = {}
      for i, p in ipairs(pkts) do
        local raw = bytes:sub((i - 1) * 128 + 1, i * 128)
        assert.equals(string.rep("\0", 48), raw:sub(77, 124))  -- reserved
        assert.equals(0, raw:byte(60))                            -- pad
        kinds[p.kind] = true
        if p.seq == last_seq then
          assert.is_true(p.recipient > last_rcpt)
        else
          assert.equals(last_seq + 1, p.seq)
        end
        last_seq, last_rcpt = p.seq, p.recipient
        if p.kind ~= packet.KIND.FOUND then
          assert.equals(0, p.item)
          assert.equals("0000000000000000", p.roll_hex)
          assert.equals(p.finder, p.recipient)
        end
        assert.equals(raw, packet.encode(p))
      end
      assert.equals(digs, last_seq)
      for k = 1, 4 do assert.is_true(kinds[k], "kind " .. k .. " never produced") end
    end)

    it("poll_into bytes decode like poll bytes", function()
      local r = T.new({ reach = 2 })
      r:join(1, 0, 0, 0)
      r:dig(1, 0, 0, 0, 5)
      r:flush()
      local buf = ffi.new("uint8_t[?]", 256)
      assert.equals(1, r:poll_into(buf, 2))
      local p = packet.decode(ffi.string(buf, 128))
      assert.same({ 3, 1, 5 }, { p.kind, p.seq, p.t_us })
    end)
  end)
end
