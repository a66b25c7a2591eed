-- Golden vectors (tests/vectors/*.txt, also checked by check.py in Python):
-- packets through treasure.packet, rolls through a real resolver.

local backends = require("backends")
local S = require("support")
local packet = require("treasure.packet")
local bit = require("bit")

local function read_blocks(path)
  local fh = assert(io.open(path, "r"))
  local list, cur = {}, {}
  for line in fh:lines() do
    line = line:match("^%s*(.-)%s*$")
    if line:sub(1, 1) == "#" then
      -- comment
    elseif line == "" then
      if next(cur) then list[#list + 1] = cur end
      cur = {}
    else
      local k, v = line:match("^([%w_]+)=(.*)$")
      assert(k, path .. ": bad line " .. line)
      cur[k] = v
    end
  end
  if next(cur) then list[#list + 1] = cur end
  fh:close()
  return list
end

--- Decimal string -> 16-digit lowercase hex (exact, through uint64 math).
local function dec_to_hex(s)
  local v = 0ULL
  for d in s:gmatch("%d") do v = v * 10ULL + (d:byte() - 48) end
  return bit.tohex(v)
end

local function unhex(h)
  return (h:gsub("%x%x", function(b) return string.char(tonumber(b, 16)) end))
end

local PACKETS = read_blocks("tests/vectors/packets.txt")
local ROLLS = read_blocks("tests/vectors/rolls.txt")
local NUM = { "kind", "flags", "seq", "t_us", "site_id", "finder", "recipient", "party",
              "x", "y", "z", "item", "quantity", "rarity", "charges_left", "dist2" }

describe("golden vectors", function()
  it("there are enough of them", function()
    assert.is_true(#PACKETS >= 8, "packets: " .. #PACKETS)
    assert.is_true(#ROLLS >= 10, "rolls: " .. #ROLLS)
  end)

  for _, v in ipairs(PACKETS) do
    it("packet " .. v.name .. ": decode gives the fields, encode gives the bytes", function()
      local bytes = unhex(v.hex)
      assert.equals(128, #bytes)
      local p = packet.decode(bytes)
      local fields = { roll_hex = dec_to_hex(v.roll) }
      for _, k in ipairs(NUM) do
        fields[k] = tonumber(v[k])
        assert.equals(fields[k], p[k], k)
      end
      assert.equals(fields.roll_hex, p.roll_hex)
      assert.equals(packet.encode(fields), bytes)
      -- roll as uint64 cdata too
      fields.roll_hex = nil
      fields.roll = p.roll
      assert.equals(packet.encode(fields), bytes)
    end)
  end
end)

for _, B in ipairs(backends) do
  local T = B.module
  describe(B.name .. " golden rolls", function()
    for _, v in ipairs(ROLLS) do
      it(v.name, function()
        local r = T.new({ seed = tonumber(v.seed), reach = 0, aoi_radius = 0 })
        local entries = {}
        for w in v.weights:gmatch("%d+") do
          entries[#entries + 1] = { item = 1000 + #entries + 1, weight = tonumber(w),
            min = tonumber(v.min), max = tonumber(v.max), rarity = #entries + 1 }
        end
        r:add_loot_table(1, entries)
        r:add_site(tonumber(v.site_id), 0, 0, 0, 1, tonumber(v.before))
        r:join(1, 0, 0, 0)
        r:dig(1, 0, 0, 0, 0)
        local p = S.drain(r)[1]
        assert.equals(packet.KIND.FOUND, p.kind)
        assert.equals(dec_to_hex(v.roll), p.roll_hex)
        assert.equals(1000 + tonumber(v.entry), p.item)
        assert.equals(tonumber(v.entry), p.rarity)
        assert.equals(tonumber(v.quantity), p.quantity)
        assert.equals(tonumber(v.before) - 1, p.charges_left)
        assert.equals(tonumber(v.site_id), p.site_id)
      end)
    end
  end)
end
