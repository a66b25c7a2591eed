-- Issue 15: treasure.packet.view(ptr) reads a packet in place (fields as
-- numbers, unsigned CRC, check) and makes no garbage under the JIT;
-- packet.crc32c_ptr is unsigned. Runs on the packets of every backend.

local backends = require("backends")
local S = require("support")
local packet = require("treasure.packet")
local ffi = require("ffi")

local function world(T)
  local r = T.new({ seed = 9, aoi_radius = 16, reach = 4 })
  r:add_loot_table(1, { { item = 7, weight = 1, min = 1, max = 3, rarity = 2 } })
  r:add_site(1, 1, 0, 0, 1, 1000000)
  for p = 1, 20 do r:join(p, p % 3, 0, 0, p % 2 + 1) end
  return r
end

for _, B in ipairs(backends) do
  local T = B.module
  describe(B.name .. " packet.view", function()
    it("gives every field decode gives, in place, with an unsigned CRC", function()
      local r = world(T)
      for i = 1, 10 do r:dig(i, 1, 0, 0, 1e12 + i) end
      r:dig(1, 500, 500, 500, 3) -- a REJECTED one too
      r:flush()
      local buf = ffi.new("uint8_t[?]", 512 * 128)
      local n = r:poll_into(buf, 512)
      assert.is_true(n > 10)
      local bytes = ffi.string(buf, n * 128)
      for i = 0, n - 1 do
        local v = packet.view(buf + i * 128)
        local d = packet.decode(bytes, i * 128 + 1)
        for _, k in ipairs({ "kind", "flags", "site_id", "finder", "recipient", "party", "x", "y", "z",
                             "item", "quantity", "rarity", "charges_left", "dist2", "crc" }) do
          assert.equals(d[k], v[k], k)
        end
        assert.equals(d.seq, v:seq())
        assert.equals(d.t_us, v:t_us())
        assert.equals(d.roll_hex, string.format("%08x%08x", v.roll_hi, v.roll_lo))
        assert.is_true(v:magic_ok() and v:crc_ok() and v:check())
        assert.equals(v.crc, packet.crc32c_ptr(buf + i * 128, 124))
        assert.is_true(v.crc >= 0 and v.crc < 2 ^ 32)
      end
      -- a flipped byte fails the CRC check; a bad magic fails magic_ok
      buf[40] = bit.bxor(buf[40], 1)
      assert.is_false(packet.view(buf):crc_ok())
      assert.is_false(packet.view(buf):check())
      buf[0] = 0
      assert.is_false(packet.view(buf):magic_ok())
      r:close()
    end)

    it("crc32c_ptr is unsigned (a CRC with the top bit set stays positive)", function()
      -- CRC-32C("123456789") = 0xE3069283, top bit set
      assert.equals(0xE3069283, packet.crc32c_ptr(ffi.cast("const uint8_t *", "123456789"), 9))
      assert.equals(0xE3069283, packet.crc32c("123456789"))
    end)

    it("reading 100,000 packets through view keeps the Lua heap flat under the JIT", function()
      assert.is_true(jit.status(), "the JIT is on")
      local r = world(T)
      for i = 1, 200 do r:dig((i % 20) + 1, 1, 0, 0, i) end
      r:flush()
      local buf = ffi.new("uint8_t[?]", 4096 * 128)
      local n = r:poll_into(buf, 4096)
      assert.is_true(n >= 1000)
      local view = packet.view
      local function read_all(rounds)
        local sum, bad = 0, 0
        for _ = 1, rounds do
          for i = 0, n - 1 do
            local v = view(buf + i * 128)
            sum = sum + v.recipient + v.kind + v.seq_lo
            if not v:check() then bad = bad + 1 end
          end
        end
        return sum, bad
      end
      read_all(20) -- warm up: compile the traces and their side traces
      local rounds = math.ceil(100000 / n)
      -- A trace compiled while measuring is itself a GC object (a few kB), so
      -- one measurement may grow by it; a view that is really allocated grows
      -- every time (>= 16 B a packet, 1.6 MB here). Take the least of three.
      local grown, sum, bad = math.huge, 0, 0
      for _ = 1, 3 do
        collectgarbage("collect")
        collectgarbage("stop")
        local before = collectgarbage("count")
        sum, bad = read_all(rounds)
        grown = math.min(grown, (collectgarbage("count") - before) * 1024)
        collectgarbage("restart")
      end
      print(string.format("\n  [%s] packet.view: %d packets read, Lua heap grew %.0f bytes", B.name, rounds * n, grown))
      assert.equals(0, bad)
      assert.is_true(sum > 0)
      -- flat: well under one byte per packet (a boxed view would be >= 16 B each)
      assert.is_true(grown < 16384, "heap grew " .. grown .. " bytes over " .. rounds * n .. " packets")
      r:close()
    end)
  end)
end
