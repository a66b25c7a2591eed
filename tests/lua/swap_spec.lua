-- Snapshot, restore and swap (docs/API.md, "Snapshot, restore and swap"),
-- run against every backend in backends.lua, and across backends when both
-- are loaded: a restored resolver continues exactly where the original was.

local backends = require("backends")
local S = require("support")
local treasure = require("treasure")

local by_name = {}
for _, B in ipairs(backends) do by_name[B.name] = B.module end

local function deep_copy(v)
  if type(v) ~= "table" then return v end
  local t = {}
  for k, x in pairs(v) do t[k] = deep_copy(x) end
  return t
end

-- A world with loot tables, sites (one depleted, one removed), players in
-- parties, some history (a busy refusal included) and undelivered packets.
-- Ids are added out of order so the snapshot's sorting is tested.
local function world(T)
  local r = T.new({ seed = 11, aoi_radius = 16, reach = 8, max_pending_packets = 100 })
  r:add_loot_table(9, { { item = 5, weight = 2, min = 1, max = 3, rarity = 1 },
                        { item = 6, weight = 1, min = 0, max = 0, rarity = 7 } })
  r:add_loot_table(2, { { item = 1, weight = 1, min = 1, max = 1, rarity = 0 } })
  r:add_site(30, 0, 0, 0, 9, 3)
  r:add_site(4, 5, 0, 0, 2, 1)
  r:add_site(17, -5, 1, 2, 9, 100)
  for p = 20, 1, -1 do r:join(p, (p % 5) - 2, 0, p % 3, p % 3) end
  r:join(99, 1000, 0, 1000, 1)
  assert(r:dig(1, 5, 0, 0, 10) == 1)   -- site 4: FOUND, its last charge
  r:dig(2, 5, 0, 0, 11)                -- EMPTY
  r:dig(3, 40, 0, 0, 12)               -- REJECTED
  r:dig(4, 1, 0, 1, 13)                -- NOTHING
  r:flush()
  assert(r:poll(3) == 3)               -- part of the stream is delivered
  for i = 1, 4 do r:dig(i, 0, 0, 0, 20 + i) end  -- site 30: 3 FOUND, 1 EMPTY
  r:dig(5, -5, 1, 2, 30)               -- FOUND: pending packets now > 100
  local seq, busy = r:dig(6, -5, 1, 2, 31)
  assert(seq == nil and busy == "busy", "the world is meant to be busy here")
  r:move(7, 2, 0, 2)
  r:set_party(8, 4)
  r:leave(9)
  r:remove_site(4)
  return r
end

-- The rest of a run: poll part, a batch, moves, more digs; `between(r, k)`
-- may replace the resolver between steps (a swap).
local function continue(r, between)
  between = between or function(x) return x end
  local out = {}
  local _, b = r:poll(60)
  out[#out + 1] = b
  r = between(r, 1)
  r:dig_batch(S.dig_records({ { 1, 0, 0, 0, 40 }, { 2, -5, 1, 2, 41 }, { 99, 0, 0, 0, 42 } }))
  r = between(r, 2)
  r:move_batch(S.move_records({ { 3, -5, 1, 3 } }))
  r:dig(3, -5, 1, 2, 43)
  local bytes
  _, bytes = S.drain(r)
  out[#out + 1] = bytes
  r = between(r, 3)
  r:dig(6, -5, 1, 2, 44)
  r:move(6, 0, 0, 0)
  _, bytes = S.drain(r)
  out[#out + 1] = bytes
  return table.concat(out), S.counters(r), r
end

local function thread_count()
  local n = 0
  local p = io.popen("ls /proc/self/task 2>/dev/null | wc -l")
  if p then n = tonumber(p:read("*a")) or 0; p:close() end
  return n
end

for _, B in ipairs(backends) do
  local T = B.module
  describe(B.name .. " snapshot/restore", function()

    it("snapshot is plain data sorted by id, with the pending packets", function()
      local r = world(T)
      local counters = S.counters(r)
      local s = r:snapshot()
      assert.same({ "counters", "loot_tables", "next_seq", "options", "pending", "players", "sites", "version" },
        (function() local k = {}; for n in pairs(s) do k[#k + 1] = n end; table.sort(k); return k end)())
      assert.equals(1, s.version)
      assert.same({ seed = 11, aoi_radius = 16, reach = 8, workers = 0, max_pending_packets = 100 }, s.options)
      assert.same({ 2, 9 }, { s.loot_tables[1].id, s.loot_tables[2].id })
      assert.same({ { item = 5, weight = 2, min = 1, max = 3, rarity = 1 },
                    { item = 6, weight = 1, min = 0, max = 0, rarity = 7 } }, s.loot_tables[2].entries)
      assert.same({ { id = 17, x = -5, y = 1, z = 2, loot_table_id = 9, charges = 99 },
                    { id = 30, x = 0, y = 0, z = 0, loot_table_id = 9, charges = 0 } }, s.sites)
      assert.equals(20, #s.players)
      for i = 2, #s.players do assert.is_true(s.players[i - 1].id < s.players[i].id) end
      assert.same({ id = 7, x = 2, y = 0, z = 2, party = 1 }, s.players[7])
      assert.same({ id = 8, x = 1, y = 0, z = 2, party = 4 }, s.players[8])
      assert.equals(10, s.players[9].id)
      assert.equals(99, s.players[20].id)
      assert.equals(10, s.next_seq)
      assert.same({ digs = 9, packets = counters.packets, found = 5, empty = 2, nothing = 1, rejected = 1, busy = 1 },
        s.counters)
      assert.equals(counters.pending_packets * 128, #s.pending)
      assert.is_true(counters.pending_packets > 3)
      -- snapshot takes nothing: the pending packets are still there
      local pkts, bytes = S.drain(r)
      assert.equals(s.pending, bytes)
      assert.same({ 1, 4 }, { pkts[1].seq, pkts[1].recipient })  -- 1..3 were polled
      assert.equals(9, pkts[#pkts].seq)
    end)

    it("restore continues exactly where the original was", function()
      local a, b = world(T), world(T)
      local c = T.restore(b:snapshot())
      b:close()
      assert.same(S.counters(a), S.counters(c))
      local sa, ca = continue(a)
      local sc, cc = continue(c)
      assert.is_true(#sa > 20 * 128)
      assert.equals(sa, sc)
      assert.same(ca, cc)
      assert.same(a:snapshot(), c:snapshot())
    end)

    it("treasure.restore defaults to the backend require('treasure') picked", function()
      local r = treasure.restore(world(T):snapshot())
      -- both backends' resolvers are userdata; tostring tells them apart
      assert.equals(treasure.backend == "native" and "treasure.native resolver" or "treasure.resolver(lua)", tostring(r))
    end)

    it("one snapshot restores into independent resolvers, and is not kept", function()
      local s = world(T):snapshot()
      local a, b = T.restore(s), T.restore(s)
      s.loot_tables[1].entries[1].item = 77 -- changing the snapshot afterwards changes nothing
      s.players[1].x = 500
      local _, bytes_a = S.drain(a)
      local _, bytes_b = S.drain(b)
      assert.equals(bytes_b, bytes_a)
      assert.is_number(a:dig(2, -5, 1, 2, 99))  -- FOUND at site 17, on a only
      local pkts = S.drain(a)
      assert.is_true(#pkts > 1)
      assert.equals(0, b:stats().pending_packets)
      assert.equals(99, b:snapshot().sites[1].charges)
      assert.equals(98, a:snapshot().sites[1].charges)
      assert.equals(-1, b:snapshot().players[1].x)
      assert.equals(1, b:snapshot().loot_tables[1].entries[1].item) -- not the 77 written after restore
    end)

    it("a restored resolver gives back the same snapshot", function()
      local s = world(T):snapshot()
      assert.same(s, T.restore(deep_copy(s)):snapshot())
    end)

    for _, B2 in ipairs(backends) do
      it("treasure.restore(snapshot, '" .. B2.name .. "') continues the stream", function()
        local a, b = world(T), world(T)
        local c = treasure.restore(b:snapshot(), B2.name)
        assert.equals(B2.name, by_name[B2.name].backend)
        local sa = continue(a)
        local sc = continue(c)
        assert.equals(sa, sc)
      end)

      it("swap to " .. B2.name .. " closes the old resolver and moves its pending packets", function()
        local a, b = world(T), world(T)
        local want = S.counters(b)
        local c = treasure.swap(b, B2.name)
        assert.has_error(function() b:dig(1, 0, 0, 0, 1) end, "treasure: dig: resolver is closed")
        assert.has_error(function() b:move(1, 0, 0, 0) end, "treasure: move: resolver is closed")
        assert.has_error(function() b:poll_into(require("ffi").new("uint8_t[?]", 128), 1) end,
          "treasure: poll_into: resolver is closed")
        assert.same(want, S.counters(c))
        -- the new one takes the fast path's calls (handle registered) and
        -- is swapped again and again mid-run
        local sa = continue(a)
        local targets = { B.name, B2.name, B.name }
        local sc, cc, last = continue(c, function(x, k)
          local y = treasure.swap(x, targets[k])
          assert.has_error(function() x:dig(1, 0, 0, 0, 1) end, "treasure: dig: resolver is closed")
          return y
        end)
        assert.equals(sa, sc)
        assert.same(S.counters(a), cc)
        -- the last swap went to B's backend
        assert.equals(B.name == "native" and "treasure.native resolver" or "treasure.resolver(lua)", tostring(last))
      end)
    end

    if by_name.lua and by_name.native then
      it("legacy and native give equal snapshots after the same calls", function()
        local a = world(by_name.lua)
        local b = world(by_name.native)
        assert.same(a:snapshot(), b:snapshot())
        continue(a); continue(b)
        assert.same(a:snapshot(), b:snapshot())
      end)
    end

    it("snapshot errors name the function and rule", function()
      local r = world(T)
      assert.has_error(function() r.snapshot(nil) end, "treasure: snapshot: self must be a resolver, got nil")
      r:close()
      assert.has_error(function() r:snapshot() end, "treasure: snapshot: resolver is closed")
    end)

    it("swap errors leave the resolver untouched", function()
      local r = world(T)
      local before = S.counters(r)
      assert.has_error(function() treasure.swap(nil, "lua") end, "treasure: swap: r must be a resolver, got nil")
      assert.has_error(function() treasure.swap({}, "lua") end, "treasure: swap: r must be a resolver, got table")
      assert.has_error(function() treasure.swap(r, "rust") end,
        "treasure: swap: backend must be 'legacy', 'lua' or 'native', got 'rust'")
      assert.has_error(function() treasure.swap(r, 1) end, "treasure: swap: backend must be 'legacy', 'lua' or 'native', got 1")
      assert.same(before, S.counters(r))
      r:close()
      assert.has_error(function() treasure.swap(r, "lua") end, "treasure: swap: resolver is closed")
    end)

    describe("restore rejects a malformed snapshot", function()
      local base = world(T):snapshot()
      assert(#base.pending >= 3 * 128 and #base.players >= 4 and #base.sites == 2)
      local cases = {
        { "not a table", function() return "x" end, "snapshot must be a table, got string" },
        { "unknown key", function(s) s.extra = 1 end, "snapshot has unknown key 'extra'" },
        { "version", function(s) s.version = 2 end, "snapshot.version must be 1, got 2" },
        { "version missing", function(s) s.version = nil end, "snapshot.version must be 1, got nil" },
        { "version via metatable only", function(s)
            s.version = nil; return setmetatable(s, { __index = { version = 1 } })
          end, "snapshot.version must be 1, got nil" },
        { "options missing", function(s) s.options = nil end, "snapshot.options must be a table, got nil" },
        { "options unknown key", function(s) s.options.sede = 1 end, "snapshot.options has unknown key 'sede'" },
        { "option range", function(s) s.options.reach = -1 end,
          "snapshot.options.reach must be an integer in [0, 1048576], got -1" },
        { "option missing", function(s) s.options.workers = nil end,
          "snapshot.options.workers must be an integer in [0, 256], got nil" },
        { "players not an array", function(s) s.players = { a = 1 } end,
          "snapshot.players must be an array of tables, got table" },
        { "player not a table", function(s) s.players[2] = 5 end, "snapshot.players[2] must be a table, got number" },
        { "player coordinate", function(s) s.players[3].x = 1.5 end,
          "snapshot.players[3].x must be an integer in [-1048576, 1048575], got 1.5" },
        { "player party missing", function(s) s.players[1].party = nil end,
          "snapshot.players[1].party must be an integer in [0, 4294967295], got nil" },
        { "player unknown key", function(s) s.players[1].name = "bob" end,
          "snapshot.players[1] has unknown key 'name'" },
        { "duplicate player", function(s) s.players[4].id = s.players[2].id end,
          "snapshot.players[4].id must not repeat snapshot.players[2].id, got 2" },
        { "site on an occupied block", function(s) s.sites[2].x, s.sites[2].y, s.sites[2].z = -5, 1, 2 end,
          "snapshot.sites[2] block must not hold a site already, got -5, 1, 2 (site 17)" },
        { "site with an unknown loot table", function(s) s.sites[1].loot_table_id = 3 end,
          "snapshot.sites[1].loot_table_id must be an existing loot table, got 3" },
        { "duplicate site", function(s) s.sites[2].id = 17 end,
          "snapshot.sites[2].id must not repeat snapshot.sites[1].id, got 17" },
        { "duplicate loot table", function(s) s.loot_tables[2].id = 2 end,
          "snapshot.loot_tables[2].id must not repeat snapshot.loot_tables[1].id, got 2" },
        { "empty entries", function(s) s.loot_tables[1].entries = {} end,
          "snapshot.loot_tables[1].entries must be a non-empty array of tables, got table" },
        { "entry weight", function(s) s.loot_tables[2].entries[2].weight = 0 end,
          "snapshot.loot_tables[2].entries[2].weight must be an integer in [1, 4294967295], got 0" },
        { "entry min > max", function(s) s.loot_tables[2].entries[1].min = 4 end,
          "snapshot.loot_tables[2].entries[1].min must be <= max, got 4 > 3" },
        { "counters missing", function(s) s.counters.busy = nil end,
          "snapshot.counters.busy must be an integer in [0, 9007199254740991], got nil" },
        { "counters do not add up", function(s) s.counters.found = s.counters.found + 1 end,
          "snapshot.counters.digs must be found + empty + nothing + rejected (10), got 9" },
        { "pending not a string", function(s) s.pending = {} end, "snapshot.pending must be a string, got table" },
        { "pending length", function(s) s.pending = s.pending .. "x" end,
          "snapshot.pending length must be a multiple of " .. 128 .. ", got " .. (#base.pending + 1) },
        { "pending packet corrupted", function(s)
            s.pending = s.pending:sub(1, 200) .. "\255" .. s.pending:sub(202)
          end, "snapshot.pending[2] must be a valid packet (magic, version 1, CRC-32C), got bad CRC" },
        { "pending packet magic", function(s) s.pending = "X" .. s.pending:sub(2) end,
          "snapshot.pending[1] must be a valid packet (magic, version 1, CRC-32C), got bad magic" },
        { "pending out of order", function(s) s.pending = s.pending:sub(-128) .. s.pending:sub(1, -129) end,
          "snapshot.pending[2].seq must not be below the previous packet's seq 9, got 1" },
        { "pending recipients out of order", function(s)
            s.pending = s.pending:sub(129, 256) .. s.pending:sub(1, 128) .. s.pending:sub(257)
          end, "snapshot.pending[2].recipient must be above the previous packet's recipient 5 (same seq 1), got 4" },
        { "counters.packets below pending", function(s) s.counters.packets = 2 end,
          "snapshot.counters.packets must be at least the pending packets" },
        { "next_seq too small", function(s) s.next_seq = 9 end,
          "snapshot.next_seq must be above the last pending packet's seq 9, got 9" },
        { "next_seq not digs + 1", function(s) s.next_seq = 12 end,
          "snapshot.next_seq must be counters.digs + 1 (10), got 12" },
        { "next_seq fraction", function(s) s.next_seq = 10.5 end,
          "snapshot.next_seq must be an integer in [1, 9007199254740992], got 10.5" },
        { "first failure in check order", function(s) s.version = 0; s.players[1].x = 0.5 end,
          "snapshot.version must be 1, got 0" },
      }
      for _, c in ipairs(cases) do
        it(c[1], function()
          local s = deep_copy(base)
          s = c[2](s) or s
          local threads = thread_count()
          local prefix = "treasure: restore: " .. c[3]
          for _, f in ipairs({ T.restore, treasure.restore }) do
            local ok, err = pcall(f, s)
            assert.is_false(ok)
            assert.equals("string", type(err))
            assert.equals(prefix, err:sub(1, #prefix))
          end
          -- nothing was built: no worker threads were started
          assert.equals(threads, thread_count())
        end)
      end

      it("treasure.restore checks the backend after the snapshot", function()
        assert.has_error(function() treasure.restore(deep_copy(base), "rust") end,
          "treasure: restore: backend must be 'legacy', 'lua' or 'native', got 'rust'")
        assert.has_error(function() treasure.restore({ version = 2 }, "rust") end,
          "treasure: restore: snapshot.version must be 1, got 2")
      end)
    end)
  end)
end
