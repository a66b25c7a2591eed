-- Table-driven error spec: every error rule of docs/API.md, with the exact
-- message, and proof that the failing call changed nothing at all.
--
-- Each case runs its call on a resolver built by `world()`; a twin built the
-- same way gets no call. Then both go through the same `probe`, which
-- records counters, the pending packet stream, which ids exist (by trying to
-- re-add them) and the packets of a set of digs. Any difference means the
-- failing call mutated something.

local backends = require("backends")
local S = require("support")
local ffi = require("ffi")

local NAN, INF = 0 / 0, 1 / 0
local T53 = 9007199254740992 -- 2^53

local GOOD = { { item = 1, weight = 1, min = 0, max = 0, rarity = 0 } }
local function E(t) -- a valid entry with overrides (use false to drop a field)
  local e = { item = 1, weight = 1, min = 0, max = 0, rarity = 0 }
  for k, v in pairs(t or {}) do if v == false then e[k] = nil else e[k] = v end end
  return e
end

local function world(T)
  local r = T.new({ seed = 5, aoi_radius = 8, reach = 4, max_pending_packets = 1000 })
  r:add_loot_table(7, { { item = 70, weight = 2, min = 1, max = 9, rarity = 1 },
                        { item = 71, weight = 1, min = 0, max = 0, rarity = 2 } })
  r:add_site(9, 1, 2, 3, 7, 5)
  r:add_site(3, 4, 0, 0, 7, 2)
  r:join(5, 0, 0, 0, 2)
  r:join(6, 2, 0, 0)
  r:join(8, 500, 500, 500, 2)
  r:dig(5, 4, 0, 0, 1) -- leaves packets pending for the poll cases
  return r
end

local function probe(r)
  local out = {}
  local function note(...) out[#out + 1] = table.concat({ ... }, " ") end
  local function try(f, ...)
    local ok, err = pcall(f, r, ...)
    note(tostring(ok), ok and "" or tostring(err))
  end
  local c = S.counters(r)
  note("counters", c.digs, c.packets, c.found, c.empty, c.nothing, c.rejected, c.busy,
       c.players, c.sites, c.pending_packets)
  r:flush()
  local _, bytes = r:poll()
  note("stream", bytes)
  for _, id in ipairs({ 1, 4, 7, 4294967295 }) do try(r.add_loot_table, id, GOOD) end
  for _, id in ipairs({ 1, 3, 9, 12 }) do try(r.add_site, id, 100 + id, 0, 0, 7, 1) end
  try(r.add_site, 40, 1, 2, 3, 7, 1)
  try(r.add_site, 41, 8, 8, 8, 7, 1)
  try(r.add_site, 42, 1048575, 0, 0, 7, 1)
  for _, id in ipairs({ 1, 5, 6, 8, 77, 4294967295 }) do try(r.join, id, 0, 0, 1) end
  -- digs from every joined player at every site block and its own block
  for _, p in ipairs({ 5, 6, 8 }) do
    for _, b in ipairs({ { 1, 2, 3 }, { 4, 0, 0 }, { 8, 8, 8 }, { 0, 0, 0 } }) do
      try(r.dig, p, b[1], b[2], b[3], 7)
    end
  end
  r:flush()
  local _, bytes2 = r:poll()
  note("digs", bytes2)
  c = S.counters(r)
  note("counters", c.digs, c.packets, c.found, c.empty, c.nothing, c.rejected, c.busy,
       c.players, c.sites, c.pending_packets)
  return out
end

local function rec(...) return S.dig_record(...) end
local function mrec(...) return S.move_record(...) end
local big_t = ffi.cast("uint64_t", T53)               -- 2^53
local max_t = 18446744073709551615ULL                  -- 2^64-1

-- { description, function(r, T) ... end, exact message }
local CASES = {
  -- add_loot_table -------------------------------------------------------
  { "alt id 0", function(r) r:add_loot_table(0, GOOD) end,
    "treasure: add_loot_table: id must be an integer in [1, 4294967295], got 0" },
  { "alt id 2^32", function(r) r:add_loot_table(4294967296, GOOD) end,
    "treasure: add_loot_table: id must be an integer in [1, 4294967295], got 4294967296" },
  { "alt id nil before entries", function(r) r:add_loot_table(nil, "x") end,
    "treasure: add_loot_table: id must be an integer in [1, 4294967295], got nil" },
  { "alt id string", function(r) r:add_loot_table("1", GOOD) end,
    "treasure: add_loot_table: id must be an integer in [1, 4294967295], got string" },
  { "alt entries string", function(r) r:add_loot_table(1, "x") end,
    "treasure: add_loot_table: entries must be a non-empty array of tables, got string" },
  { "alt entries number (type rules show the type)", function(r) r:add_loot_table(1, 5) end,
    "treasure: add_loot_table: entries must be a non-empty array of tables, got number" },
  { "alt entries nil", function(r) r:add_loot_table(1) end,
    "treasure: add_loot_table: entries must be a non-empty array of tables, got nil" },
  { "alt entries empty", function(r) r:add_loot_table(1, {}) end,
    "treasure: add_loot_table: entries must be a non-empty array of tables, got table" },
  { "alt entries hole", function(r) r:add_loot_table(1, { [1] = E(), [3] = E() }) end,
    "treasure: add_loot_table: entries must be a non-empty array of tables, got table" },
  { "alt entries start at 2", function(r) r:add_loot_table(1, { [2] = E() }) end,
    "treasure: add_loot_table: entries must be a non-empty array of tables, got table" },
  { "alt entries extra key", function(r) r:add_loot_table(1, { E(), n = 1 }) end,
    "treasure: add_loot_table: entries must be a non-empty array of tables, got table" },
  { "alt entry not a table", function(r) r:add_loot_table(1, { E(), 5 }) end,
    "treasure: add_loot_table: entries[2] must be a table, got number" },
  { "alt entry unknown key", function(r) r:add_loot_table(1, { E({ wieght = 1 }) }) end,
    "treasure: add_loot_table: entries[1] has unknown key 'wieght'" },
  { "alt entry unknown key before bad field", function(r) r:add_loot_table(1, { E({ item = 0, colour = 1 }) }) end,
    "treasure: add_loot_table: entries[1] has unknown key 'colour'" },
  { "alt missing weight", function(r) r:add_loot_table(1, { E({ weight = false }) }) end,
    "treasure: add_loot_table: entries[1].weight must be an integer in [1, 4294967295], got nil" },
  { "alt item 0", function(r) r:add_loot_table(1, { E({ item = 0 }) }) end,
    "treasure: add_loot_table: entries[1].item must be an integer in [1, 4294967295], got 0" },
  { "alt item before weight", function(r) r:add_loot_table(1, { E({ item = 2 ^ 32, weight = 0 }) }) end,
    "treasure: add_loot_table: entries[1].item must be an integer in [1, 4294967295], got 4294967296" },
  { "alt weight 0", function(r) r:add_loot_table(1, { E({ weight = 0 }) }) end,
    "treasure: add_loot_table: entries[1].weight must be an integer in [1, 4294967295], got 0" },
  { "alt min -1", function(r) r:add_loot_table(1, { E({ min = -1 }) }) end,
    "treasure: add_loot_table: entries[1].min must be an integer in [0, 65535], got -1" },
  { "alt max 65536", function(r) r:add_loot_table(1, { E(), E({ max = 65536 }) }) end,
    "treasure: add_loot_table: entries[2].max must be an integer in [0, 65535], got 65536" },
  { "alt rarity 256", function(r) r:add_loot_table(1, { E({ rarity = 256 }) }) end,
    "treasure: add_loot_table: entries[1].rarity must be an integer in [0, 255], got 256" },
  { "alt rarity fraction", function(r) r:add_loot_table(1, { E({ rarity = 1.5 }) }) end,
    "treasure: add_loot_table: entries[1].rarity must be an integer in [0, 255], got 1.5" },
  { "alt weight nan", function(r) r:add_loot_table(1, { E({ weight = NAN }) }) end,
    "treasure: add_loot_table: entries[1].weight must be an integer in [1, 4294967295], got " .. tostring(NAN) },
  { "alt min > max", function(r) r:add_loot_table(1, { E({ min = 5, max = 3 }) }) end,
    "treasure: add_loot_table: entries[1].min must be <= max, got 5 > 3" },
  { "alt min > max before later entry", function(r) r:add_loot_table(1, { E({ min = 5, max = 3 }), E({ item = false }) }) end,
    "treasure: add_loot_table: entries[1].min must be <= max, got 5 > 3" },
  { "alt rarity before min > max", function(r) r:add_loot_table(1, { E({ min = 5, max = 3, rarity = -1 }) }) end,
    "treasure: add_loot_table: entries[1].rarity must be an integer in [0, 255], got -1" },
  { "alt total weight", function(r) r:add_loot_table(1, { E({ weight = 4294967295 }), E({ weight = 1 }) }) end,
    "treasure: add_loot_table: entries total weight must be <= 4294967295, got 4294967296" },
  { "alt field before total", function(r) r:add_loot_table(1, { E({ weight = 4294967295 }), E({ weight = 1, rarity = 300 }) }) end,
    "treasure: add_loot_table: entries[2].rarity must be an integer in [0, 255], got 300" },
  { "alt duplicate id", function(r) r:add_loot_table(7, GOOD) end,
    "treasure: add_loot_table: id must not be an existing loot table, got 7" },
  { "alt entries checked before duplicate id", function(r) r:add_loot_table(7, {}) end,
    "treasure: add_loot_table: entries must be a non-empty array of tables, got table" },
  -- add_site --------------------------------------------------------------
  { "site id 0", function(r) r:add_site(0, 8, 8, 8, 7, 1) end,
    "treasure: add_site: id must be an integer in [1, 4294967295], got 0" },
  { "site x too big", function(r) r:add_site(12, 1048576, 8, 8, 7, 1) end,
    "treasure: add_site: x must be an integer in [-1048576, 1048575], got 1048576" },
  { "site x too small", function(r) r:add_site(12, -1048577, 8, 8, 7, 1) end,
    "treasure: add_site: x must be an integer in [-1048576, 1048575], got -1048577" },
  { "site y string", function(r) r:add_site(12, 8, "8", 8, 7, 1) end,
    "treasure: add_site: y must be an integer in [-1048576, 1048575], got string" },
  { "site z nil", function(r) r:add_site(12, 8, 8, nil, 7, 1) end,
    "treasure: add_site: z must be an integer in [-1048576, 1048575], got nil" },
  { "site z -inf", function(r) r:add_site(12, 8, 8, -INF, 7, 1) end,
    "treasure: add_site: z must be an integer in [-1048576, 1048575], got -inf" },
  { "site loot_table_id 0", function(r) r:add_site(12, 8, 8, 8, 0, 1) end,
    "treasure: add_site: loot_table_id must be an integer in [1, 4294967295], got 0" },
  { "site charges -1", function(r) r:add_site(12, 8, 8, 8, 7, -1) end,
    "treasure: add_site: charges must be an integer in [0, 4294967295], got -1" },
  { "site charges 2^32", function(r) r:add_site(12, 8, 8, 8, 7, 4294967296) end,
    "treasure: add_site: charges must be an integer in [0, 4294967295], got 4294967296" },
  { "site charges boolean", function(r) r:add_site(12, 8, 8, 8, 7, true) end,
    "treasure: add_site: charges must be an integer in [0, 4294967295], got boolean" },
  { "site args before ids", function(r) r:add_site(3, 1, 2, 3, 4, 1.5) end,
    "treasure: add_site: charges must be an integer in [0, 4294967295], got 1.5" },
  { "site duplicate id (before occupied block)", function(r) r:add_site(3, 1, 2, 3, 4, 1) end,
    "treasure: add_site: id must not be an existing site, got 3" },
  { "site occupied block (before unknown table)", function(r) r:add_site(12, 1, 2, 3, 4, 1) end,
    "treasure: add_site: block must not hold a site already, got 1, 2, 3 (site 9)" },
  { "site unknown loot table", function(r) r:add_site(12, 8, 8, 8, 4, 1) end,
    "treasure: add_site: loot_table_id must be an existing loot table, got 4" },
  -- remove_site -------------------------------------------------------------
  { "remove id 0", function(r) r:remove_site(0) end,
    "treasure: remove_site: id must be an integer in [1, 4294967295], got 0" },
  { "remove unknown", function(r) r:remove_site(12) end,
    "treasure: remove_site: id must be an existing site, got 12" },
  -- join / move / set_party / leave -----------------------------------------
  { "join player 0", function(r) r:join(0, 0, 0, 0) end,
    "treasure: join: player must be an integer in [1, 4294967295], got 0" },
  { "join player 2^32", function(r) r:join(4294967296, 0, 0, 0) end,
    "treasure: join: player must be an integer in [1, 4294967295], got 4294967296" },
  { "join x 1e20", function(r) r:join(1, 1e20, 0, 0) end,
    "treasure: join: x must be an integer in [-1048576, 1048575], got 1e+20" },
  { "join party -1", function(r) r:join(1, 0, 0, 0, -1) end,
    "treasure: join: party must be an integer in [0, 4294967295], got -1" },
  { "join party 2^32", function(r) r:join(1, 0, 0, 0, 4294967296) end,
    "treasure: join: party must be an integer in [0, 4294967295], got 4294967296" },
  { "join party string", function(r) r:join(1, 0, 0, 0, "2") end,
    "treasure: join: party must be an integer in [0, 4294967295], got string" },
  { "join twice", function(r) r:join(5, 9, 9, 9, 3) end,
    "treasure: join: player must not have joined already, got 5" },
  { "join party checked before duplicate", function(r) r:join(5, 0, 0, 0, 0.5) end,
    "treasure: join: party must be an integer in [0, 4294967295], got 0.5" },
  { "move unknown", function(r) r:move(77, 0, 0, 0) end,
    "treasure: move: player must have joined, got 77" },
  { "move y nan", function(r) r:move(5, 0, NAN, 0) end,
    "treasure: move: y must be an integer in [-1048576, 1048575], got " .. tostring(NAN) },
  { "move coords before unknown", function(r) r:move(77, 0, 0, 1048576) end,
    "treasure: move: z must be an integer in [-1048576, 1048575], got 1048576" },
  { "set_party unknown", function(r) r:set_party(77, 1) end,
    "treasure: set_party: player must have joined, got 77" },
  { "set_party nil", function(r) r:set_party(5) end,
    "treasure: set_party: party must be an integer in [0, 4294967295], got nil" },
  { "set_party inf", function(r) r:set_party(5, INF) end,
    "treasure: set_party: party must be an integer in [0, 4294967295], got inf" },
  { "leave unknown", function(r) r:leave(77) end,
    "treasure: leave: player must have joined, got 77" },
  { "leave string", function(r) r:leave("5") end,
    "treasure: leave: player must be an integer in [1, 4294967295], got string" },
  -- dig --------------------------------------------------------------------
  { "dig player 0", function(r) r:dig(0, 0, 0, 0, 0) end,
    "treasure: dig: player must be an integer in [1, 4294967295], got 0" },
  { "dig x fraction", function(r) r:dig(5, 1.5, 0, 0, 0) end,
    "treasure: dig: x must be an integer in [-1048576, 1048575], got 1.5" },
  { "dig z inf", function(r) r:dig(5, 0, 0, INF, 0) end,
    "treasure: dig: z must be an integer in [-1048576, 1048575], got inf" },
  { "dig t_us -1", function(r) r:dig(5, 0, 0, 0, -1) end,
    "treasure: dig: t_us must be an integer in [0, 9007199254740991], got -1" },
  { "dig t_us 2^53", function(r) r:dig(5, 0, 0, 0, T53) end,
    "treasure: dig: t_us must be an integer in [0, 9007199254740991], got " .. tostring(T53) },
  { "dig t_us nil", function(r) r:dig(5, 0, 0, 0) end,
    "treasure: dig: t_us must be an integer in [0, 9007199254740991], got nil" },
  { "dig unknown player", function(r) r:dig(77, 0, 0, 0, 0) end,
    "treasure: dig: player must have joined, got 77" },
  { "dig args before unknown player", function(r) r:dig(77, 1.5, 0, 0, 0) end,
    "treasure: dig: x must be an integer in [-1048576, 1048575], got 1.5" },
  -- dig_batch --------------------------------------------------------------
  { "dig_batch table", function(r) r:dig_batch({}) end,
    "treasure: dig_batch: records must be a string, got table" },
  { "dig_batch number", function(r) r:dig_batch(24) end,
    "treasure: dig_batch: records must be a string, got number" },
  { "dig_batch nil", function(r) r:dig_batch() end,
    "treasure: dig_batch: records must be a string, got nil" },
  { "dig_batch length 25", function(r) r:dig_batch(rec(5, 0, 0, 0, 0) .. "x") end,
    "treasure: dig_batch: records length must be a multiple of 24, got 25" },
  { "dig_batch record 3 x", function(r) r:dig_batch(rec(5, 0, 0, 0, 0) .. rec(5, 4, 0, 0, 0) .. rec(5, 2000000, 0, 0, 0)) end,
    "treasure: dig_batch: records[3].x must be an integer in [-1048576, 1048575], got 2000000" },
  { "dig_batch player 0", function(r) r:dig_batch(rec(0, 0, 0, 0, 0)) end,
    "treasure: dig_batch: records[1].player must be an integer in [1, 4294967295], got 0" },
  { "dig_batch y -1048577", function(r) r:dig_batch(rec(5, 0, -1048577, 0, 0)) end,
    "treasure: dig_batch: records[1].y must be an integer in [-1048576, 1048575], got -1048577" },
  { "dig_batch z 1048576 before x? no: x first", function(r) r:dig_batch(rec(5, -2147483648, 0, 1048576, 0)) end,
    "treasure: dig_batch: records[1].x must be an integer in [-1048576, 1048575], got -2147483648" },
  { "dig_batch t_us 2^53", function(r) r:dig_batch(rec(5, 4, 0, 0, 0) .. rec(5, 0, 0, 0, big_t)) end,
    "treasure: dig_batch: records[2].t_us must be an integer in [0, 9007199254740991], got 9007199254740992" },
  { "dig_batch t_us 2^64-1", function(r) r:dig_batch(rec(5, 0, 0, 0, max_t)) end,
    "treasure: dig_batch: records[1].t_us must be an integer in [0, 9007199254740991], got 18446744073709551615" },
  { "dig_batch unknown player", function(r) r:dig_batch(rec(5, 4, 0, 0, 0) .. rec(77, 0, 0, 0, 0)) end,
    "treasure: dig_batch: records[2].player must have joined, got 77" },
  { "dig_batch joined checked per record", function(r) r:dig_batch(rec(77, 0, 0, 0, 0) .. rec(5, 2000000, 0, 0, 0)) end,
    "treasure: dig_batch: records[1].player must have joined, got 77" },
  -- move_batch -------------------------------------------------------------
  { "move_batch number", function(r) r:move_batch(5) end,
    "treasure: move_batch: records must be a string, got number" },
  { "move_batch length 17", function(r) r:move_batch(mrec(5, 1, 1, 1) .. "x") end,
    "treasure: move_batch: records length must be a multiple of 16, got 17" },
  { "move_batch length 24", function(r) r:move_batch(rec(5, 1, 1, 1, 0)) end,
    "treasure: move_batch: records length must be a multiple of 16, got 24" },
  { "move_batch unknown player", function(r) r:move_batch(mrec(5, 7, 7, 7) .. mrec(77, 0, 0, 0)) end,
    "treasure: move_batch: records[2].player must have joined, got 77" },
  { "move_batch z", function(r) r:move_batch(mrec(6, 7, 7, 7) .. mrec(5, 0, 0, -1048577)) end,
    "treasure: move_batch: records[2].z must be an integer in [-1048576, 1048575], got -1048577" },
  -- poll / poll_into ---------------------------------------------------------
  { "poll max -1", function(r) r:poll(-1) end,
    "treasure: poll: max must be an integer in [0, 9007199254740991], got -1" },
  { "poll max fraction", function(r) r:poll(0.5) end,
    "treasure: poll: max must be an integer in [0, 9007199254740991], got 0.5" },
  { "poll max string", function(r) r:poll("1") end,
    "treasure: poll: max must be an integer in [0, 9007199254740991], got string" },
  { "poll max 2^53", function(r) r:poll(T53) end,
    "treasure: poll: max must be an integer in [0, 9007199254740991], got " .. tostring(T53) },
  { "wait timeout -1", function(r) r:wait(-1) end,
    "treasure: wait: timeout_us must be an integer in [0, 9007199254740991], got -1" },
  { "wait timeout fraction", function(r) r:wait(0.5) end,
    "treasure: wait: timeout_us must be an integer in [0, 9007199254740991], got 0.5" },
  { "wait timeout string", function(r) r:wait("10") end,
    "treasure: wait: timeout_us must be an integer in [0, 9007199254740991], got string" },
  { "wait timeout nan", function(r) r:wait(NAN) end,
    "treasure: wait: timeout_us must be an integer in [0, 9007199254740991], got " .. tostring(NAN) },
  { "poll_into buf table", function(r) r:poll_into({}, 1) end,
    "treasure: poll_into: buf must be a uint8_t array, uint8_t * or void * cdata, got table" },
  { "poll_into buf number", function(r) r:poll_into(128, 1) end,
    "treasure: poll_into: buf must be a uint8_t array, uint8_t * or void * cdata, got number" },
  { "poll_into buf nil", function(r) r:poll_into(nil, 1) end,
    "treasure: poll_into: buf must be a uint8_t array, uint8_t * or void * cdata, got nil" },
  { "poll_into buf string", function(r) r:poll_into(string.rep("\0", 256), 1) end,
    "treasure: poll_into: buf must be a uint8_t array, uint8_t * or void * cdata, got string" },
  -- issue 15: a uint8_t * / void * pointer with an explicit capacity (bytes);
  -- checks in order buf, max, capacity, max * 128 <= capacity
  { "poll_into pointer without capacity", function(r) r:poll_into(ffi.cast("uint8_t *", ffi.new("uint8_t[256]")), 1) end,
    "treasure: poll_into: capacity must be given with a pointer buf (the bytes it points at), got nil" },
  { "poll_into void pointer without capacity", function(r) r:poll_into(ffi.cast("void *", ffi.new("uint8_t[256]")), 0) end,
    "treasure: poll_into: capacity must be given with a pointer buf (the bytes it points at), got nil" },
  { "poll_into pointer capacity -1", function(r) r:poll_into(ffi.cast("uint8_t *", ffi.new("uint8_t[256]")), 1, -1) end,
    "treasure: poll_into: capacity must be an integer in [0, 9007199254740991], got -1" },
  { "poll_into pointer capacity fraction", function(r) r:poll_into(ffi.cast("void *", ffi.new("uint8_t[256]")), 1, 128.5) end,
    "treasure: poll_into: capacity must be an integer in [0, 9007199254740991], got 128.5" },
  { "poll_into pointer capacity string", function(r) r:poll_into(ffi.cast("void *", ffi.new("uint8_t[256]")), 1, "256") end,
    "treasure: poll_into: capacity must be an integer in [0, 9007199254740991], got string" },
  { "poll_into pointer capacity 2^53", function(r) r:poll_into(ffi.cast("void *", ffi.new("uint8_t[256]")), 1, T53) end,
    "treasure: poll_into: capacity must be an integer in [0, 9007199254740991], got " .. tostring(T53) },
  { "poll_into pointer capacity nan", function(r) r:poll_into(ffi.cast("void *", ffi.new("uint8_t[256]")), 1, NAN) end,
    "treasure: poll_into: capacity must be an integer in [0, 9007199254740991], got " .. tostring(NAN) },
  { "poll_into pointer capacity below 128", function(r) r:poll_into(ffi.cast("uint8_t *", ffi.new("uint8_t[256]")), 1, 127) end,
    "treasure: poll_into: max must be at most 0 (the packets buf holds), got 1" },
  { "poll_into pointer max past capacity", function(r) r:poll_into(ffi.cast("void *", ffi.new("uint8_t[1024]")), 3, 300) end,
    "treasure: poll_into: max must be at most 2 (the packets buf holds), got 3" },
  { "poll_into pointer max before capacity", function(r) r:poll_into(ffi.cast("void *", ffi.new("uint8_t[256]")), -1, -1) end,
    "treasure: poll_into: max must be an integer in [0, 9007199254740991], got -1" },
  { "poll_into NULL uint8_t pointer", function(r) r:poll_into(ffi.cast("uint8_t *", nil), 0, 0) end,
    "treasure: poll_into: buf must not be a NULL pointer, got cdata<unsigned char *>" },
  { "poll_into NULL void pointer before max", function(r) r:poll_into(ffi.cast("void *", 0), -1, 256) end,
    "treasure: poll_into: buf must not be a NULL pointer, got cdata<void *>" },
  { "poll_into const uint8_t pointer", function(r) r:poll_into(ffi.cast("const uint8_t *", ffi.new("uint8_t[256]")), 1, 256) end,
    "treasure: poll_into: buf must be a uint8_t array, uint8_t * or void * cdata, got cdata<const unsigned char *>" },
  { "poll_into const void pointer", function(r) r:poll_into(ffi.cast("const void *", ffi.new("uint8_t[256]")), 1, 256) end,
    "treasure: poll_into: buf must be a uint8_t array, uint8_t * or void * cdata, got cdata<const void *>" },
  { "poll_into int8_t pointer", function(r) r:poll_into(ffi.cast("int8_t *", ffi.new("uint8_t[256]")), 1, 256) end,
    "treasure: poll_into: buf must be a uint8_t array, uint8_t * or void * cdata, got cdata<char *>" },
  { "poll_into void pointer ctype object", function(r) r:poll_into(ffi.typeof("void *"), 0, 0) end,
    "treasure: poll_into: buf must be a uint8_t array, uint8_t * or void * cdata, got ctype<void *>" },
  { "poll_into array capacity past its size", function(r) r:poll_into(ffi.new("uint8_t[256]"), 1, 257) end,
    "treasure: poll_into: capacity must be at most 256 (the bytes buf holds), got 257" },
  { "poll_into array capacity limits max", function(r) r:poll_into(ffi.new("uint8_t[?]", 512), 2, 255) end,
    "treasure: poll_into: max must be at most 1 (the packets buf holds), got 2" },
  { "poll_into array capacity -1", function(r) r:poll_into(ffi.new("uint8_t[?]", 512), 1, -1) end,
    "treasure: poll_into: capacity must be an integer in [0, 9007199254740991], got -1" },
  { "poll_into buf int32 array", function(r) r:poll_into(ffi.new("int32_t[?]", 64), 1) end,
    "treasure: poll_into: buf must be a uint8_t array, uint8_t * or void * cdata, got cdata<int [?]>" },
  { "poll_into buf int8_t VLA (signed bytes are not uint8_t)", function(r) r:poll_into(ffi.new("int8_t[?]", 256), 1) end,
    "treasure: poll_into: buf must be a uint8_t array, uint8_t * or void * cdata, got cdata<char [?]>" },
  { "poll_into buf char array", function(r) r:poll_into(ffi.new("char[256]"), 1) end,
    "treasure: poll_into: buf must be a uint8_t array, uint8_t * or void * cdata, got cdata<char [256]>" },
  -- issue 12: the buffer is checked by what it is (an instance of a uint8_t
  -- array ctype), before max and before anything leaves the queue (probe)
  { "poll_into buf ctype object", function(r) r:poll_into(ffi.typeof("uint8_t[256]"), 1) end,
    "treasure: poll_into: buf must be a uint8_t array, uint8_t * or void * cdata, got ctype<unsigned char [256]>" },
  { "poll_into buf ctype object, max 0", function(r) r:poll_into(ffi.typeof("uint8_t[256]"), 0) end,
    "treasure: poll_into: buf must be a uint8_t array, uint8_t * or void * cdata, got ctype<unsigned char [256]>" },
  { "poll_into buf VLA ctype object", function(r) r:poll_into(ffi.typeof("uint8_t[?]"), 1) end,
    "treasure: poll_into: buf must be a uint8_t array, uint8_t * or void * cdata, got ctype<unsigned char [?]>" },
  { "poll_into buf VLA ctype object, max 0", function(r) r:poll_into(ffi.typeof("uint8_t[?]"), 0) end,
    "treasure: poll_into: buf must be a uint8_t array, uint8_t * or void * cdata, got ctype<unsigned char [?]>" },
  { "poll_into buf char pointer, max 0", function(r) r:poll_into(ffi.cast("char *", ffi.new("uint8_t[256]")), 0) end,
    "treasure: poll_into: buf must be a uint8_t array, uint8_t * or void * cdata, got cdata<char *>" },
  { "poll_into buf const array", function(r) r:poll_into(ffi.new("const uint8_t[256]"), 1) end,
    "treasure: poll_into: buf must be a uint8_t array, uint8_t * or void * cdata, got cdata<const unsigned char [256]>" },
  { "poll_into buf reference (struct field)", function(r)
      r:poll_into(ffi.new("struct { int n; uint8_t b[256]; }").b, 1)
    end,
    "treasure: poll_into: buf must be a uint8_t array, uint8_t * or void * cdata, got cdata<unsigned char (&)[256]>" },
  { "poll_into buf pointer ctype object", function(r) r:poll_into(ffi.typeof("uint8_t *"), 0) end,
    "treasure: poll_into: buf must be a uint8_t array, uint8_t * or void * cdata, got ctype<unsigned char *>" },
  { "poll_into buf 2-d array", function(r) r:poll_into(ffi.new("uint8_t[2][128]"), 1) end,
    "treasure: poll_into: buf must be a uint8_t array, uint8_t * or void * cdata, got cdata<unsigned char [2][128]>" },
  { "poll_into buf table, max 0", function(r) r:poll_into({}, 0) end,
    "treasure: poll_into: buf must be a uint8_t array, uint8_t * or void * cdata, got table" },
  { "poll_into the same ctype object twice", function(r)
      local ct = ffi.typeof("uint8_t[512]")
      assert(not pcall(r.poll_into, r, ct, 1))
      r:poll_into(ct, 0)
    end,
    "treasure: poll_into: buf must be a uint8_t array, uint8_t * or void * cdata, got ctype<unsigned char [512]>" },
  { "poll_into max past 1e15 on a small buffer", function(r) r:poll_into(ffi.new("uint8_t[?]", 4 * 128), 1e15) end,
    "treasure: poll_into: max must be at most 4 (the packets buf holds), got 1000000000000000" },
  { "poll_into buf before max", function(r) r:poll_into({}, -1) end,
    "treasure: poll_into: buf must be a uint8_t array, uint8_t * or void * cdata, got table" },
  { "poll_into max nil", function(r) r:poll_into(ffi.new("uint8_t[?]", 128)) end,
    "treasure: poll_into: max must be an integer in [0, 9007199254740991], got nil" },
  { "poll_into max -1", function(r) r:poll_into(ffi.new("uint8_t[?]", 128), -1) end,
    "treasure: poll_into: max must be an integer in [0, 9007199254740991], got -1" },
  { "poll_into too small", function(r) r:poll_into(ffi.new("uint8_t[?]", 4 * 128), 5) end,
    "treasure: poll_into: max must be at most 4 (the packets buf holds), got 5" },
  { "poll_into size not a multiple of 128", function(r) r:poll_into(ffi.new("uint8_t[?]", 600), 5) end,
    "treasure: poll_into: max must be at most 4 (the packets buf holds), got 5" },
  { "poll_into fixed array too small", function(r) r:poll_into(ffi.new("uint8_t[127]"), 1) end,
    "treasure: poll_into: max must be at most 0 (the packets buf holds), got 1" },
  -- the buffer's verdict and size are cached per cdata object: a second call
  -- with the same buffer must answer exactly as the first
  { "poll_into the same int8_t buffer twice", function(r)
      local b = ffi.new("int8_t[?]", 256)
      assert(not pcall(r.poll_into, r, b, 1))
      r:poll_into(b, 1)
    end,
    "treasure: poll_into: buf must be a uint8_t array, uint8_t * or void * cdata, got cdata<char [?]>" },
  { "poll_into the same small buffer twice", function(r)
      local b = ffi.new("uint8_t[?]", 4 * 128)
      assert(r:poll_into(b, 0) == 0)
      r:poll_into(b, 5)
    end,
    "treasure: poll_into: max must be at most 4 (the packets buf holds), got 5" },
  -- self --------------------------------------------------------------------
  { "self nil", function(r) r.dig(nil, 5, 0, 0, 0, 0) end,
    "treasure: dig: self must be a resolver, got nil" },
  { "self plain table", function(r) r.dig({}, 5, 0, 0, 0, 0) end,
    "treasure: dig: self must be a resolver, got table" },
  { "self number", function(r) r.poll(5) end,
    "treasure: poll: self must be a resolver, got number" },
  { "self string", function(r) r.stats("r") end,
    "treasure: stats: self must be a resolver, got string" },
  { "self before args", function(r) r.join({}, "bad") end,
    "treasure: join: self must be a resolver, got table" },
  { "close self nil", function(r) r.close(nil) end,
    "treasure: close: self must be a resolver, got nil" },
}

local NEW_CASES = {
  { { "x" }, "treasure: new: opts must be a table, got string" },
  { { 5 }, "treasure: new: opts must be a table, got number" },
  { { true }, "treasure: new: opts must be a table, got boolean" },
  { { { sede = 1 } }, "treasure: new: opts has unknown key 'sede'" },
  { { { sede = 1, seed = -1 } }, "treasure: new: opts has unknown key 'sede'" },
  { { { seed = 1.5 } }, "treasure: new: opts.seed must be an integer in [0, 9007199254740991], got 1.5" },
  { { { seed = -1 } }, "treasure: new: opts.seed must be an integer in [0, 9007199254740991], got -1" },
  { { { seed = T53 } }, "treasure: new: opts.seed must be an integer in [0, 9007199254740991], got " .. tostring(T53) },
  { { { seed = "1" } }, "treasure: new: opts.seed must be an integer in [0, 9007199254740991], got string" },
  { { { aoi_radius = -1, seed = -1 } }, "treasure: new: opts.seed must be an integer in [0, 9007199254740991], got -1" },
  { { { aoi_radius = -1 } }, "treasure: new: opts.aoi_radius must be an integer in [0, 1048576], got -1" },
  { { { aoi_radius = 1048577 } }, "treasure: new: opts.aoi_radius must be an integer in [0, 1048576], got 1048577" },
  { { { aoi_radius = NAN } }, "treasure: new: opts.aoi_radius must be an integer in [0, 1048576], got " .. tostring(NAN) },
  { { { reach = -INF } }, "treasure: new: opts.reach must be an integer in [0, 1048576], got -inf" },
  { { { reach = 1048577, aoi_radius = 1 } }, "treasure: new: opts.reach must be an integer in [0, 1048576], got 1048577" },
  { { { workers = 257 } }, "treasure: new: opts.workers must be an integer in [0, 256], got 257" },
  { { { workers = -1 } }, "treasure: new: opts.workers must be an integer in [0, 256], got -1" },
  { { { max_pending_packets = 0 } }, "treasure: new: opts.max_pending_packets must be an integer in [1, 9007199254740991], got 0" },
  { { { max_pending_packets = INF } }, "treasure: new: opts.max_pending_packets must be an integer in [1, 9007199254740991], got inf" },
  { { { workers = 300, max_pending_packets = 0 } }, "treasure: new: opts.workers must be an integer in [0, 256], got 300" },
}

local METHODS = {
  add_loot_table = { 1, GOOD }, add_site = { 12, 8, 8, 8, 7, 1 }, remove_site = { 3 },
  join = { 1, 0, 0, 0 }, move = { 5, 1, 1, 1 }, set_party = { 5, 1 }, leave = { 5 },
  dig = { 5, 0, 0, 0, 0 }, dig_batch = { "" }, move_batch = { "" }, poll = {},
  poll_into = { ffi.new("uint8_t[?]", 128), 1 }, flush = {}, wait = {}, stats = {},
  fd = {}, in_flight = {}, -- issue 15: no arguments, so only the self/closed rules
}

for _, B in ipairs(backends) do
  local T = B.module
  describe(B.name .. " errors", function()
    it("the error table has a case for every method", function()
      local seen = {}
      for _, c in ipairs(CASES) do
        local m = c[3]:match("^treasure: ([%w_]+):")
        seen[m] = true
      end
      for m in pairs(METHODS) do assert.is_true(seen[m] or m == "flush" or m == "fd" or m == "in_flight", "no case for " .. m) end
    end)

    it("the probe notices every kind of change a call could make", function()
      local changes = {
        function(r) r:add_loot_table(4, GOOD) end,
        function(r) r:add_site(12, 8, 8, 8, 7, 1) end,
        function(r) r:add_site(12, 200, 0, 0, 7, 1) end, -- an unseen block still shows
        function(r) r:remove_site(3) end,
        function(r) r:join(77, 900, 900, 900) end,
        function(r) r:move(6, 3, 0, 0) end,
        function(r) r:move(8, 400, 400, 400) end,       -- a far player moving
        function(r) r:set_party(6, 2) end,
        function(r) r:set_party(8, 0) end,
        function(r) r:leave(8) end,
        function(r) r:dig(6, 9, 9, 9, 0) end,
        function(r) r:flush(); assert(r:poll(1) == 1) end,
      }
      local base = probe(world(T))
      for i, change in ipairs(changes) do
        local r = world(T)
        change(r)
        assert.are_not.same(base, probe(r), "change " .. i .. " went unnoticed")
      end
    end)

    for _, c in ipairs(CASES) do
      local name, call, msg = c[1], c[2], c[3]
      it(name .. " -> " .. msg, function()
        local r, twin = world(T), world(T)
        assert.has_error(function() call(r, T) end, msg)
        assert.same(probe(twin), probe(r))
      end)
    end

    for _, c in ipairs(NEW_CASES) do
      it("new(" .. tostring(c[1][1]) .. ") -> " .. c[2], function()
        assert.has_error(function() T.new(unpack(c[1])) end, c[2])
      end)
    end

    it("new accepts every option at both ends of its range", function()
      for _, o in ipairs({
        { seed = 0, aoi_radius = 0, reach = 0, workers = 0, max_pending_packets = 1 },
        { seed = 9007199254740991, aoi_radius = 1048576, reach = 1048576, workers = 256,
          max_pending_packets = 9007199254740991 },
      }) do
        local r = T.new(o)
        r:join(1, 0, 0, 0)
        assert.equals(1, r:dig(1, 0, 0, 0, 0))
        r:close()
      end
      T.new():close()
      T.new({}):close()
    end)

    it("every method on a closed resolver raises 'resolver is closed' (after the self check)", function()
      local r = world(T)
      r:close()
      for m, args in pairs(METHODS) do
        assert.has_error(function() r[m](r, unpack(args)) end, "treasure: " .. m .. ": resolver is closed")
        -- the closed check comes before the argument checks
        assert.has_error(function() r[m](r, "bad", "bad") end, "treasure: " .. m .. ": resolver is closed")
        assert.has_error(function() r[m](nil) end, "treasure: " .. m .. ": self must be a resolver, got nil")
      end
      r:close() -- twice is fine
    end)

    it("every method checks self", function()
      local r = world(T)
      for m in pairs(METHODS) do
        assert.has_error(function() r[m]({}) end, "treasure: " .. m .. ": self must be a resolver, got table")
        assert.has_error(function() r[m](true) end, "treasure: " .. m .. ": self must be a resolver, got boolean")
      end
    end)

    it("a busy dig_batch with a bad record raises the record error, not busy", function()
      local r = T.new({ max_pending_packets = 1 })
      r:join(1, 0, 0, 0)
      r:dig(1, 0, 0, 0, 0); r:dig(1, 0, 0, 0, 0)
      assert.has_error(function() r:dig_batch(rec(1, 0, 0, 0, 0) .. rec(2, 0, 0, 0, 0)) end,
        "treasure: dig_batch: records[2].player must have joined, got 2")
      assert.equals(0, r:stats().busy)
    end)
  end)
end
