--- examples/demo.lua: a few digs on the best backend, packets printed decoded.
--
--   LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='build/?.so;;' luajit examples/demo.lua
--
-- TREASURE_BACKEND=legacy (or lua) or =native picks a backend explicitly.

local bit = require("bit")
local treasure = require("treasure")
local packet = treasure.packet

local KIND_NAME = {}
for name, v in pairs(packet.KIND) do KIND_NAME[v] = name end

local function flag_text(f)
  local t = {}
  if bit.band(f, packet.FLAG.DIGGER) ~= 0 then t[#t + 1] = "digger" end
  if bit.band(f, packet.FLAG.PARTY) ~= 0 then t[#t + 1] = "party" end
  if bit.band(f, packet.FLAG.LAST_CHARGE) ~= 0 then t[#t + 1] = "last-charge" end
  return #t > 0 and table.concat(t, "+") or "-"
end

local function show(r, what)
  r:flush()
  local n, bytes = r:poll()
  print(("-- %s: %d packet(s)"):format(what, n))
  for i = 0, n - 1 do
    local p = packet.decode(bytes, i * packet.SIZE + 1)
    local line = ("   seq %d  %-8s to %-3d flags %-18s finder %d party %d block (%d,%d,%d) dist2 %d")
      :format(p.seq, KIND_NAME[p.kind], p.recipient, flag_text(p.flags), p.finder, p.party,
              p.x, p.y, p.z, p.dist2)
    if p.kind == packet.KIND.FOUND then
      line = line .. ("\n        site %d: %d x item %d (rarity %d), %d charge(s) left, roll %s")
        :format(p.site_id, p.quantity, p.item, p.rarity, p.charges_left, p.roll_hex)
    elseif p.kind == packet.KIND.EMPTY then
      line = line .. ("\n        site %d is exhausted"):format(p.site_id)
    end
    print(line)
  end
end

print(("backend %s, %s"):format(treasure.backend, treasure._VERSION))

local r = treasure.new({ seed = 7, aoi_radius = 16, reach = 4 })
r:add_loot_table(1, {
  { item = 100, weight = 3, min = 1, max = 5, rarity = 0 },  -- common ore
  { item = 200, weight = 1, min = 1, max = 1, rarity = 3 },  -- rare gem
})
r:add_site(10, 0, 0, 0, 1, 2)
r:join(1, 1, 0, 0, 5)      -- digger, party 5
r:join(2, 3, 0, 0)         -- bystander within the area of interest
r:join(3, 900, 0, 900, 5)  -- party member far away

r:dig(1, 0, 0, 0, 1000)
show(r, "player 1 digs site 10")
r:dig(1, 0, 0, 0, 2000)
show(r, "again: the last charge")
r:dig(1, 0, 0, 0, 3000)
show(r, "again: the site is empty")
r:dig(1, 2, 0, 0, 4000)
show(r, "a block without a site")
r:dig(2, 0, 0, 100, 5000)
show(r, "player 2 digs out of reach")

local s = r:stats()
print(("stats: %d digs (%d found, %d empty, %d nothing, %d rejected), %d packets")
  :format(s.digs, s.found, s.empty, s.nothing, s.rejected, s.packets))
r:close()
