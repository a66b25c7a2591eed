-- Behaviour of a resolver (docs/API.md "Resolving a dig", methods, stats),
-- run against every backend in backends.lua through the public API only.

local backends = require("backends")
local S = require("support")
local packet = require("treasure.packet")

local KIND, FLAG = packet.KIND, packet.FLAG

-- The docs/API.md worked example world.
local function worked_example(T)
  local r = T.new({ seed = 7, aoi_radius = 16, reach = 4 })
  r:add_loot_table(1, {
    { item = 100, weight = 3, min = 1, max = 5, rarity = 0 },
    { item = 200, weight = 1, min = 1, max = 1, rarity = 3 },
  })
  r:add_site(10, 0, 0, 0, 1, 2)
  r:join(1, 1, 0, 0, 5)
  r:join(2, 3, 0, 0)
  r:join(3, 900, 0, 900, 5)
  return r
end

-- One-entry table so every FOUND is item 1.
local function simple(T, opts)
  local r = T.new(opts or { aoi_radius = 10, reach = 3 })
  r:add_loot_table(1, { { item = 1, weight = 1, min = 1, max = 1, rarity = 0 } })
  return r
end

for _, B in ipairs(backends) do
  local T = B.module
  describe(B.name .. " resolver", function()

    it("module exposes new, _VERSION and backend", function()
      assert.is_function(T.new)
      assert.equals(require("treasure.packet")._VERSION, T._VERSION)
      assert.equals(B.name, T.backend)
    end)

    describe("worked example of docs/API.md", function()
      it("sends one FOUND packet to digger, bystander and far party member", function()
        local r = worked_example(T)
        assert.equals(1, r:dig(1, 0, 0, 0, 123456))
        local pkts, bytes = S.drain(r)
        assert.equals(3, #pkts)
        assert.equals(384, #bytes)
        assert.same({ 1, 2, 3 }, S.recipients(pkts))
        assert.same({ 1, 0, 2 }, { pkts[1].flags, pkts[2].flags, pkts[3].flags })
        assert.same({ 1, 9, 1620000 }, { pkts[1].dist2, pkts[2].dist2, pkts[3].dist2 })
        for _, p in ipairs(pkts) do
          assert.equals(KIND.FOUND, p.kind)
          assert.equals(1, p.seq)
          assert.equals(123456, p.t_us)
          assert.equals(10, p.site_id)
          assert.equals(1, p.finder)
          assert.equals(5, p.party)
          assert.same({ 0, 0, 0 }, { p.x, p.y, p.z })
          -- hand-computed: splitmix64(7 ^ (10 << 32) ^ 2)
          assert.equals("255b949b04e8f9ee", p.roll_hex)
          assert.equals(100, p.item)            -- pick = roll mod 4 = 2 < 3
          assert.equals(2, p.quantity)          -- 1 + ((roll >> 40) mod 5)
          assert.equals(0, p.rarity)
          assert.equals(1, p.charges_left)
        end
      end)

      it("second dig takes the last charge (flag on every packet), third is EMPTY", function()
        local r = worked_example(T)
        r:dig(1, 0, 0, 0, 1)
        S.drain(r)
        assert.equals(2, r:dig(1, 0, 0, 0, 2))
        local pkts = S.drain(r)
        assert.equals(3, #pkts)
        assert.same({ 1 + 4, 0 + 4, 2 + 4 }, { pkts[1].flags, pkts[2].flags, pkts[3].flags })
        for _, p in ipairs(pkts) do assert.equals(0, p.charges_left) end
        assert.equals(3, r:dig(1, 0, 0, 0, 3))
        pkts = S.drain(r)
        assert.equals(1, #pkts)
        local p = pkts[1]
        assert.equals(KIND.EMPTY, p.kind)
        assert.equals(FLAG.DIGGER, p.flags)
        assert.equals(10, p.site_id)
        assert.same({ 0, 0, 0, 0, "0000000000000000" },
          { p.item, p.quantity, p.rarity, p.charges_left, p.roll_hex })
        assert.equals(1, p.dist2)
      end)
    end)

    describe("outcome kinds", function()
      it("REJECTED when dist2 > reach^2 (reach^2 itself is allowed)", function()
        local r = simple(T, { reach = 3, aoi_radius = 100 })
        r:add_site(1, 3, 0, 0, 1, 5)
        r:add_site(2, 3, 1, 0, 1, 5)
        r:join(7, 0, 0, 0, 9)
        r:join(8, 1, 0, 0, 9)                 -- would be a recipient if FOUND
        r:dig(7, 3, 0, 0, 10)                 -- d2 = 9 = reach^2: FOUND
        r:dig(7, 3, 1, 0, 11)                 -- d2 = 10: REJECTED
        local pkts = S.drain(r)
        assert.equals(3, #pkts)
        assert.equals(KIND.FOUND, pkts[1].kind)
        local p = pkts[3]
        assert.equals(KIND.REJECTED, p.kind)
        assert.same({ 2, 11, 7, 7, 9, 3, 1, 0, 10, 1 },
          { p.seq, p.t_us, p.finder, p.recipient, p.party, p.x, p.y, p.z, p.dist2, p.flags })
        assert.same({ 0, 0, 0, 0, 0, "0000000000000000" },
          { p.site_id, p.item, p.quantity, p.rarity, p.charges_left, p.roll_hex })
        assert.equals(2, S.counters(r).sites)
        -- the rejected dig did not consume a charge of site 2
        r:move(7, 3, 1, 0)
        r:dig(7, 3, 1, 0, 12)
        assert.equals(4, S.drain(r)[1].charges_left)
      end)

      it("reach 0 allows only the player's own block", function()
        local r = simple(T, { reach = 0 })
        r:add_site(1, 0, 0, 0, 1, 1)
        r:join(1, 0, 0, 1)
        r:dig(1, 0, 0, 0, 0)
        assert.equals(KIND.REJECTED, S.drain(r)[1].kind)
        r:move(1, 0, 0, 0)
        r:dig(1, 0, 0, 0, 0)
        assert.equals(KIND.FOUND, S.drain(r)[1].kind)
      end)

      it("NOTHING when no site is on the block, one packet to the digger only", function()
        local r = simple(T)
        r:join(1, -5, -6, -7, 3)
        r:join(2, -5, -6, -6, 3)
        r:dig(1, -5, -6, -8, 99)
        local pkts = S.drain(r)
        assert.equals(1, #pkts)
        local p = pkts[1]
        assert.equals(KIND.NOTHING, p.kind)
        assert.same({ 1, 1, 3, -5, -6, -8, 1, 1 },
          { p.recipient, p.finder, p.party, p.x, p.y, p.z, p.dist2, p.flags })
        assert.same({ 0, 0, 0, 0, 0 }, { p.site_id, p.item, p.quantity, p.rarity, p.charges_left })
      end)

      it("a site added with 0 charges is EMPTY and stays until remove_site", function()
        local r = simple(T)
        r:add_site(4, 1, 1, 1, 1, 0)
        r:join(1, 1, 1, 2)
        r:dig(1, 1, 1, 1, 0)
        r:dig(1, 1, 1, 1, 0)
        local pkts = S.drain(r)
        assert.same({ KIND.EMPTY, KIND.EMPTY }, { pkts[1].kind, pkts[2].kind })
        assert.equals(4, pkts[1].site_id)
        r:remove_site(4)
        r:dig(1, 1, 1, 1, 0)
        assert.equals(KIND.NOTHING, S.drain(r)[1].kind)
        -- the block is free again
        r:add_site(5, 1, 1, 1, 1, 1)
        r:dig(1, 1, 1, 1, 0)
        local p = S.drain(r)[1]
        assert.same({ KIND.FOUND, 5 }, { p.kind, p.site_id })
      end)

      it("charges count down, each packet carries charges_left, then EMPTY", function()
        local r = simple(T)
        r:add_site(1, 0, 0, 0, 1, 3)
        r:join(1, 0, 0, 0)
        for _ = 1, 4 do r:dig(1, 0, 0, 0, 0) end
        local pkts = S.drain(r)
        assert.same({ 2, 1, 0, 0 }, { pkts[1].charges_left, pkts[2].charges_left,
                                      pkts[3].charges_left, pkts[4].charges_left })
        assert.same({ 1, 1, 1 + 4, 1 }, { pkts[1].flags, pkts[2].flags, pkts[3].flags, pkts[4].flags })
        assert.same({ KIND.FOUND, KIND.FOUND, KIND.FOUND, KIND.EMPTY },
          { pkts[1].kind, pkts[2].kind, pkts[3].kind, pkts[4].kind })
        local s = S.counters(r)
        assert.same({ 4, 3, 1, 0, 0 }, { s.digs, s.found, s.empty, s.nothing, s.rejected })
      end)
    end)

    describe("recipients", function()
      it("AOI edge: dist2 == aoi_radius^2 is inside, +1 is outside", function()
        local r = simple(T, { aoi_radius = 5, reach = 1 })
        r:add_site(1, 0, 0, 0, 1, 1)
        r:join(1, 0, 0, 0)
        r:join(2, 5, 0, 0)      -- 25: inside
        r:join(3, 3, 4, 0)      -- 25: inside
        r:join(4, 5, 1, 0)      -- 26: outside
        r:join(5, -3, 0, -4)    -- 25: inside
        r:join(6, 0, -5, 1)     -- 26: outside
        r:dig(1, 0, 0, 0, 0)
        local pkts = S.drain(r)
        assert.same({ 1, 2, 3, 5 }, S.recipients(pkts))
        assert.same({ 0, 25, 25, 25 }, { pkts[1].dist2, pkts[2].dist2, pkts[3].dist2, pkts[4].dist2 })
      end)

      it("aoi_radius 0: only players standing on the block (plus party)", function()
        local r = simple(T, { aoi_radius = 0, reach = 2 })
        r:add_site(1, 0, 0, 0, 1, 1)
        r:join(1, 1, 0, 0)
        r:join(2, 0, 0, 0)
        r:join(3, 0, 0, 1)
        r:dig(1, 0, 0, 0, 0)
        assert.same({ 1, 2 }, S.recipients(S.drain(r)))
      end)

      it("far-away party members get flags PARTY, other parties do not", function()
        local r = simple(T, { aoi_radius = 4, reach = 2 })
        r:add_site(1, 0, 0, 0, 1, 2)
        r:join(10, 0, 0, 0, 77)
        r:join(20, 1000000, -1000000, 1000000, 77)
        r:join(30, -1048576, -1048576, -1048576, 78)
        r:join(40, 1048575, 1048575, 1048575, 77)
        r:dig(10, 0, 0, 0, 0)
        local pkts = S.drain(r)
        assert.same({ 10, 20, 40 }, S.recipients(pkts))
        assert.same({ 1, 2, 2 }, { pkts[1].flags, pkts[2].flags, pkts[3].flags })
        -- dist2 of a far member saturates at 2^32-1
        assert.equals(4294967295, pkts[2].dist2)
        assert.equals(4294967295, pkts[3].dist2)
      end)

      it("a party member inside the AOI is counted once; the digger in a party gets flags 1", function()
        local r = simple(T, { aoi_radius = 10, reach = 2 })
        r:add_site(1, 0, 0, 0, 1, 2)
        r:join(5, 0, 1, 0, 3)
        r:join(2, 0, 2, 0, 3)
        r:join(9, 0, 3, 0, 0)
        r:dig(5, 0, 0, 0, 0)
        local pkts = S.drain(r)
        assert.same({ 2, 5, 9 }, S.recipients(pkts))
        assert.same({ 2, 1, 0 }, { pkts[1].flags, pkts[2].flags, pkts[3].flags })
        assert.equals(3, S.counters(r).packets)
      end)

      it("party 0 is no party: a party-0 bystander next to a party-0 digger gets flags 0", function()
        local r = simple(T, { aoi_radius = 3, reach = 1 })
        r:add_site(1, 0, 0, 0, 1, 2)
        r:join(1, 0, 0, 0)
        r:join(2, 1, 0, 0)
        r:join(3, 0, 1, 0, 4)
        r:dig(1, 0, 0, 0, 0)
        local pkts = S.drain(r)
        assert.same({ 1, 2, 3 }, S.recipients(pkts))
        assert.same({ 1, 0, 0 }, { pkts[1].flags, pkts[2].flags, pkts[3].flags })
      end)

      it("party 0 is no party: other party-0 players far away get nothing", function()
        local r = simple(T, { aoi_radius = 3, reach = 1 })
        r:add_site(1, 0, 0, 0, 1, 2)
        r:join(1, 0, 0, 0)
        r:join(2, 500, 0, 0)
        r:dig(1, 0, 0, 0, 0)
        local pkts = S.drain(r)
        assert.same({ 1 }, S.recipients(pkts))
        assert.equals(0, pkts[1].party)
      end)

      it("recipients ascend by id whatever the join order and position", function()
        local r = simple(T, { aoi_radius = 50, reach = 1 })
        r:add_site(1, 0, 0, 0, 1, 1)
        local ids = { 4000000000, 17, 3, 999, 1, 250, 4294967295, 64 }
        for i, id in ipairs(ids) do r:join(id, (i * 7) % 30 - 15, i - 4, -i, (id % 2 == 0) and 0 or 1) end
        r:join(5, 0, 0, 1, 1)
        r:dig(5, 0, 0, 0, 0)
        local got = S.recipients(S.drain(r))
        local want = { 5 }
        for _, id in ipairs(ids) do want[#want + 1] = id end
        table.sort(want)
        assert.same(want, got)
      end)

      it("huge aoi_radius reaches every player", function()
        local r = simple(T, { aoi_radius = 1048576, reach = 1 })
        r:add_site(1, 0, 0, 0, 1, 1)
        r:join(1, 0, 0, 0)
        r:join(2, 1048575, 0, 0)
        r:join(3, -1048576, 0, 0)
        r:join(4, 1048575, 1048575, 1048575)  -- 3 * ~2^40 > 2^40: outside
        r:dig(1, 0, 0, 0, 0)
        local pkts = S.drain(r)
        assert.same({ 1, 2, 3 }, S.recipients(pkts))
        assert.equals(4294967295, pkts[3].dist2)     -- 2^40 saturates at 2^32-1
      end)

      it("moves, party changes and leaves are seen by later digs", function()
        local r = simple(T, { aoi_radius = 4, reach = 1 })
        r:add_site(1, 0, 0, 0, 1, 10)
        r:join(1, 0, 0, 0, 0)
        r:join(2, 100, 0, 0, 0)
        r:join(3, 2, 0, 0, 0)
        r:dig(1, 0, 0, 0, 0)
        assert.same({ 1, 3 }, S.recipients(S.drain(r)))
        r:move(2, 0, 4, 0)         -- into AOI (edge)
        r:move(3, 0, 300, 0)       -- out of AOI, to another grid cell
        r:dig(1, 0, 0, 0, 0)
        assert.same({ 1, 2 }, S.recipients(S.drain(r)))
        r:set_party(1, 8)
        r:set_party(3, 8)
        r:dig(1, 0, 0, 0, 0)
        local pkts = S.drain(r)
        assert.same({ 1, 2, 3 }, S.recipients(pkts))
        assert.same({ 8, 8, 8 }, { pkts[1].party, pkts[2].party, pkts[3].party })
        assert.same({ 1, 0, 2 }, { pkts[1].flags, pkts[2].flags, pkts[3].flags })
        r:set_party(3, 0)
        r:leave(2)
        r:dig(1, 0, 0, 0, 0)
        assert.same({ 1 }, S.recipients(S.drain(r)))
        r:join(2, 1, 1, 1)         -- rejoin after leave is allowed
        r:dig(1, 0, 0, 0, 0)
        assert.same({ 1, 2 }, S.recipients(S.drain(r)))
        assert.equals(3, S.counters(r).players)
      end)

      it("a digger may dig from outside the AOI of its own block (reach > aoi_radius)", function()
        local r = simple(T, { aoi_radius = 1, reach = 5 })
        r:add_site(1, 0, 0, 0, 1, 1)
        r:join(1, 4, 0, 0)
        r:dig(1, 0, 0, 0, 0)
        local pkts = S.drain(r)
        assert.same({ 1 }, S.recipients(pkts))
        assert.equals(16, pkts[1].dist2)
      end)
    end)

    describe("loot picks", function()
      it("min == max gives exactly that quantity", function()
        local r = T.new({ reach = 1 })
        r:add_loot_table(1, { { item = 9, weight = 1, min = 65535, max = 65535, rarity = 255 } })
        r:join(1, 0, 0, 0)
        for i = 1, 20 do r:add_site(i, i, 0, 0, 1, 1); r:move(1, i, 0, 0); r:dig(1, i, 0, 0, 0) end
        for _, p in ipairs(S.drain(r)) do
          assert.same({ 9, 65535, 255 }, { p.item, p.quantity, p.rarity })
        end
      end)

      it("weighted picks and quantities follow the table over many sites", function()
        local r = T.new({ seed = 12345, reach = 1, aoi_radius = 0 })
        r:add_loot_table(1, {
          { item = 11, weight = 1, min = 0, max = 3, rarity = 1 },
          { item = 22, weight = 2, min = 10, max = 12, rarity = 2 },
          { item = 33, weight = 7, min = 5, max = 5, rarity = 3 },
        })
        r:join(1, 0, 0, 0)
        local N = 4000
        for i = 1, N do r:add_site(i, 0, 0, i, 1, 1) end
        for i = 1, N do
          r:move(1, 0, 0, i)
          r:dig(1, 0, 0, i, i)
        end
        local count, qseen = { [11] = 0, [22] = 0, [33] = 0 }, { [11] = {}, [22] = {}, [33] = {} }
        local rarity = { [11] = 1, [22] = 2, [33] = 3 }
        local range = { [11] = { 0, 3 }, [22] = { 10, 12 }, [33] = { 5, 5 } }
        for _, p in ipairs(S.drain(r)) do
          assert.is_not_nil(count[p.item])
          count[p.item] = count[p.item] + 1
          qseen[p.item][p.quantity] = true
          assert.equals(rarity[p.item], p.rarity)
          assert.is_true(p.quantity >= range[p.item][1] and p.quantity <= range[p.item][2])
        end
        -- expected 400 / 800 / 2800; allow ~5 standard deviations
        assert.is_true(math.abs(count[11] - 400) < 100, "item 11: " .. count[11])
        assert.is_true(math.abs(count[22] - 800) < 130, "item 22: " .. count[22])
        assert.is_true(math.abs(count[33] - 2800) < 150, "item 33: " .. count[33])
        for q = 0, 3 do assert.is_true(qseen[11][q], "quantity " .. q) end
        for q = 10, 12 do assert.is_true(qseen[22][q], "quantity " .. q) end
      end)

      it("the roll depends on seed, site id and charges before, not on time or digger", function()
        local function first_roll(seed, site, charges, player, t)
          local r = T.new({ seed = seed, reach = 1 })
          r:add_loot_table(1, { { item = 1, weight = 5, min = 0, max = 0, rarity = 0 },
                                { item = 2, weight = 5, min = 0, max = 0, rarity = 0 } })
          r:add_site(site, 0, 0, 0, 1, charges)
          r:join(player, 0, 0, 0)
          r:dig(player, 0, 0, 0, t)
          return S.drain(r)[1].roll_hex
        end
        local base = first_roll(1, 2, 3, 4, 5)
        assert.equals(base, first_roll(1, 2, 3, 99, 123456789))
        assert.are_not.equal(base, first_roll(2, 2, 3, 4, 5))
        assert.are_not.equal(base, first_roll(1, 3, 3, 4, 5))
        assert.are_not.equal(base, first_roll(1, 2, 4, 4, 5))
      end)

      it("entries are copied: changing the Lua table later changes nothing", function()
        local r = T.new({ seed = 7, reach = 4 })
        local entries = { { item = 100, weight = 3, min = 1, max = 5, rarity = 0 },
                          { item = 200, weight = 1, min = 1, max = 1, rarity = 3 } }
        r:add_loot_table(1, entries)
        entries[1].item = 555
        entries[2] = nil
        r:add_site(10, 0, 0, 0, 1, 2)
        r:join(1, 1, 0, 0, 5)
        r:dig(1, 0, 0, 0, 1)
        local p = S.drain(r)[1]
        assert.same({ 100, 2 }, { p.item, p.quantity })
      end)
    end)

    describe("batches", function()
      local function world()
        local r = T.new({ seed = 3, aoi_radius = 6, reach = 3 })
        r:add_loot_table(1, { { item = 1, weight = 2, min = 0, max = 9, rarity = 1 },
                              { item = 2, weight = 1, min = 3, max = 4, rarity = 2 } })
        r:add_site(1, 0, 0, 0, 1, 2)
        r:add_site(2, 5, 0, 0, 1, 1)
        r:join(1, 0, 0, 1, 4)
        r:join(2, 4, 0, 0, 4)
        r:join(3, -3, 0, 0)
        return r
      end
      local digs = {
        { 1, 0, 0, 0, 10 }, { 2, 5, 0, 0, 11 }, { 1, 0, 0, 0, 12 }, { 1, 0, 0, 0, 13 },
        { 3, 9, 9, 9, 14 }, { 3, -3, 0, 0, 9007199254740991 }, { 2, 5, 0, 0, 0 },
      }

      it("dig_batch equals the same digs one by one, byte for byte", function()
        local a, b = world(), world()
        for _, d in ipairs(digs) do a:dig(d[1], d[2], d[3], d[4], d[5]) end
        local first, count = b:dig_batch(S.dig_records(digs))
        assert.same({ 1, #digs }, { first, count })
        local _, ba = S.drain(a)
        local _, bb = S.drain(b)
        assert.equals(ba, bb)
        assert.same(S.counters(a), S.counters(b))
        -- seq continues after a batch
        assert.equals(#digs + 1, b:dig(1, 0, 0, 0, 0))
        assert.same({ #digs + 2, 2 }, { b:dig_batch(S.dig_records({ digs[1], digs[2] })) })
      end)

      it("an empty dig_batch returns the next seq and 0", function()
        local r = world()
        assert.same({ 1, 0 }, { r:dig_batch("") })
        r:dig(1, 0, 0, 0, 0)
        assert.same({ 2, 0 }, { r:dig_batch("") })
        assert.equals(1, S.counters(r).digs)
      end)

      it("move_batch equals the same moves one by one", function()
        local a, b = world(), world()
        local moves = { { 1, 100, 0, 0 }, { 3, 0, 0, 2 }, { 1, 1, 0, 0 }, { 2, -1048576, 1048575, 0 } }
        for _, m in ipairs(moves) do a:move(m[1], m[2], m[3], m[4]) end
        assert.is_nil((b:move_batch(S.move_records(moves))))
        b:move_batch("")
        for _, d in ipairs(digs) do a:dig(d[1], d[2], d[3], d[4], d[5]); b:dig(d[1], d[2], d[3], d[4], d[5]) end
        local _, ba = S.drain(a)
        local _, bb = S.drain(b)
        assert.equals(ba, bb)
      end)

      it("a dig_batch t_us of 2^53-1 is carried exactly", function()
        local r = world()
        r:dig_batch(S.dig_record(3, 0, 0, 0, 9007199254740991))
        assert.equals(9007199254740991, S.drain(r)[1].t_us)
      end)
    end)

    describe("poll", function()
      local function busy_world(opts)
        local r = T.new(opts or {})
        r:join(1, 0, 0, 0)
        return r
      end

      it("returns 0 and an empty string when nothing is pending", function()
        local r = busy_world()
        assert.same({ 0, "" }, { r:poll() })
        assert.same({ 0, "" }, { r:poll(10) })
      end)

      it("max limits the count; partial polls concatenate to the full stream", function()
        local a, b = busy_world(), busy_world()
        for i = 1, 10 do a:dig(1, 0, 0, i % 3, i); b:dig(1, 0, 0, i % 3, i) end
        a:flush(); b:flush()
        local _, all = a:poll()
        local parts = {}
        for _, m in ipairs({ 0, 1, 3, 2, 100 }) do
          local n, s = b:poll(m)
          assert.equals(n * 128, #s)
          assert.is_true(n <= m)
          parts[#parts + 1] = s
        end
        assert.equals(all, table.concat(parts))
        assert.same({ 0, "" }, { b:poll() })
        local pk = S.decode_all(all)
        for i, p in ipairs(pk) do assert.equals(i, p.seq) end
      end)

      it("poll_into copies the same bytes as poll", function()
        local ffi = require("ffi")
        local a, b = busy_world(), busy_world()
        for i = 1, 7 do a:dig(1, i % 2, 0, 0, i); b:dig(1, i % 2, 0, 0, i) end
        a:flush(); b:flush()
        local _, want = a:poll()
        local buf = ffi.new("uint8_t[?]", 4 * 128)
        local got = {}
        while true do
          local n = b:poll_into(buf, 4)
          if n == 0 then break end
          got[#got + 1] = ffi.string(buf, n * 128)
        end
        assert.equals(want, table.concat(got))
        -- fixed-size arrays and sizes not a multiple of 128 are accepted
        b:dig(1, 0, 0, 0, 0); b:dig(1, 0, 0, 0, 0); b:flush()
        local fixed = ffi.new("uint8_t[300]")
        assert.equals(2, b:poll_into(fixed, 2))
        assert.equals(0, b:poll_into(fixed, 0))
      end)

      it("poll_into with max 0 copies nothing and leaves the stream", function()
        local ffi = require("ffi")
        local r = busy_world()
        r:dig(1, 0, 0, 0, 0); r:flush()
        local buf = ffi.new("uint8_t[?]", 128)
        assert.equals(0, r:poll_into(buf, 0))
        assert.equals(1, S.counters(r).pending_packets)
        assert.equals(1, r:poll_into(buf, 1))
        assert.equals(0, S.counters(r).pending_packets)
      end)

      it("poll_into does not grow the Lua heap per call", function()
        local ffi = require("ffi")
        local r = busy_world()
        local buf = ffi.new("uint8_t[?]", 8 * 128)
        for _ = 1, 200 do r:poll_into(buf, 8) end  -- warm up (JIT, caches)
        collectgarbage("collect")
        collectgarbage("stop")
        local before = collectgarbage("count")
        for _ = 1, 20000 do r:poll_into(buf, 8) end
        local grew = collectgarbage("count") - before
        collectgarbage("restart")
        assert.is_true(grew < 64, "heap grew by " .. grew .. " KiB over 20000 calls")
      end)
    end)

    describe("busy", function()
      it("refuses digs once pending > max_pending_packets, consuming no seq", function()
        local r = T.new({ max_pending_packets = 2, reach = 1 })
        r:join(1, 0, 0, 0)
        assert.equals(1, r:dig(1, 0, 0, 0, 0))  -- pending 1
        assert.equals(2, r:dig(1, 0, 0, 0, 0))  -- pending 2 (not > 2)
        assert.equals(3, r:dig(1, 0, 0, 0, 0))  -- pending 3
        r:flush()
        assert.same({ nil, "busy" }, { r:dig(1, 0, 0, 0, 0) })
        assert.same({ nil, "busy" }, { r:dig_batch(S.dig_record(1, 0, 0, 0, 0)) })
        assert.same({ nil, "busy" }, { r:dig_batch("") })
        local s = S.counters(r)
        assert.same({ 3, 3, 3, 3 }, { s.busy, s.digs, s.packets, s.pending_packets })
        assert.equals(1, r:poll(1))
        assert.equals(4, r:dig(1, 0, 0, 0, 0))  -- pending was 2: accepted
        local pkts = S.drain(r)
        assert.same({ 2, 3, 4 }, { pkts[1].seq, pkts[2].seq, pkts[3].seq })
        assert.same({ 5, 1 }, { r:dig_batch(S.dig_record(1, 0, 0, 0, 0)) })
      end)

      it("a batch is checked once: an accepted batch may exceed the limit", function()
        local r = T.new({ max_pending_packets = 1, reach = 1 })
        r:join(1, 0, 0, 0)
        local recs = S.dig_records({ { 1, 0, 0, 0, 0 }, { 1, 0, 0, 0, 0 }, { 1, 0, 0, 0, 0 } })
        assert.same({ 1, 3 }, { r:dig_batch(recs) })
        assert.equals(3, S.counters(r).pending_packets)
        assert.same({ nil, "busy" }, { r:dig_batch(recs) })
        assert.equals(1, S.counters(r).busy)
      end)

      it("argument errors are raised before the busy check", function()
        local r = T.new({ max_pending_packets = 1 })
        r:join(1, 0, 0, 0)
        r:dig(1, 0, 0, 0, 0); r:dig(1, 0, 0, 0, 0)
        assert.has_error(function() r:dig(2, 0, 0, 0, 0) end, "treasure: dig: player must have joined, got 2")
        assert.equals(0, S.counters(r).busy)
      end)
    end)

    describe("stats", function()
      it("counts every kind, packets, players, sites and pending", function()
        local r = worked_example(T)
        local s0 = r:stats()
        assert.same({ 0, 0, 0, 0, 0, 0, 0, 3, 1, 0 },
          { s0.digs, s0.packets, s0.found, s0.empty, s0.nothing, s0.rejected, s0.busy,
            s0.players, s0.sites, s0.pending_packets })
        for _, k in ipairs({ "resolve_p50_us", "resolve_p99_us", "resolve_p999_us", "resolve_max_us" }) do
          assert.is_number(s0[k])
          assert.is_true(s0[k] >= 0)
        end
        r:dig(1, 0, 0, 0, 0)  -- FOUND x3
        r:dig(1, 0, 0, 0, 0)  -- FOUND x3 (last)
        r:dig(1, 0, 0, 0, 0)  -- EMPTY
        r:dig(1, 1, 0, 0, 0)  -- NOTHING
        r:dig(2, 900, 0, 0, 0) -- REJECTED
        r:flush()
        local s = r:stats()
        assert.same({ 5, 9, 2, 1, 1, 1, 0, 3, 1, 9 },
          { s.digs, s.packets, s.found, s.empty, s.nothing, s.rejected, s.busy,
            s.players, s.sites, s.pending_packets })
        assert.equals(s.digs, s.found + s.empty + s.nothing + s.rejected)
        r:poll(4)
        assert.equals(5, r:stats().pending_packets)
        assert.equals(9, r:stats().packets)
        r:leave(3); r:remove_site(10)
        local s2 = r:stats()
        assert.same({ 2, 0 }, { s2.players, s2.sites })
      end)

      it("returns a fresh table each call", function()
        local r = worked_example(T)
        local a = r:stats()
        a.digs = 99
        assert.are_not.equal(a, r:stats())
        assert.equals(0, r:stats().digs)
      end)
    end)

    describe("lifecycle", function()
      it("close makes every method raise 'resolver is closed'; close twice is fine", function()
        local r = worked_example(T)
        r:dig(1, 0, 0, 0, 0)
        r:close()
        r:close()
        assert.has_error(function() r:dig(1, 0, 0, 0, 0) end, "treasure: dig: resolver is closed")
        assert.has_error(function() r:poll() end, "treasure: poll: resolver is closed")
        assert.has_error(function() r:stats() end, "treasure: stats: resolver is closed")
        assert.has_error(function() r:flush() end, "treasure: flush: resolver is closed")
        assert.has_error(function() r:wait(0) end, "treasure: wait: resolver is closed")
      end)

      it("wait returns how many packets are pollable, once there are any", function()
        local r = worked_example(T)
        assert.equals(0, r:wait())            -- nothing in flight: at once
        assert.equals(0, r:wait(3600e6))
        local seen = 0
        for i = 1, 200 do r:dig(2, 3, 0, 0, i) end
        while seen < 200 do
          local n = r:wait()                  -- no timeout: blocks until one is ready
          assert.is_true(n > 0, "wait returned 0 with digs in flight")
          assert.is_true(n <= r:stats().pending_packets)
          local got = r:poll(1)               -- one at a time: later waits find some ready
          assert.equals(1, got)
          seen = seen + got
        end
        assert.equals(0, r:wait(nil))
        assert.equals(0, r:wait(0))
        r:dig(2, 3, 0, 0, 1)
        r:flush()
        assert.equals(1, r:wait(0))
        assert.equals(1, r:wait(0))           -- waiting takes nothing
        assert.equals(1, (r:poll()))
      end)

      it("instances are independent (seq, world, stream, counters)", function()
        local a, b = worked_example(T), worked_example(T)
        a:dig(1, 0, 0, 0, 0); a:dig(1, 0, 0, 0, 0)
        b:join(9, 0, 0, 1)
        assert.equals(1, b:dig(9, 0, 0, 0, 0))
        local pb = S.drain(b)
        assert.same({ 1, 2, 9 }, S.recipients(pb)) -- 3 is far, 9 has no party
        assert.equals(1, pb[1].charges_left)      -- a's digs did not touch b's site
        a:close()
        assert.equals(2, b:dig(1, 0, 0, 0, 0))
        assert.equals(4, S.counters(b).players)
      end)

      it("flush returns with every accepted dig pollable", function()
        local r = worked_example(T)
        for i = 1, 50 do r:dig(2, 3, 0, 0, i) end
        r:flush()
        assert.equals(50, r:stats().pending_packets)
        assert.equals(50, (r:poll()))
      end)
    end)
  end)
end
