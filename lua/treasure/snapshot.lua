--- treasure.snapshot: the one definition of what a valid snapshot is
-- (docs/API.md, "Snapshot, restore and swap").
--
-- Both backends validate with this file before they build anything:
-- treasure.legacy requires it, and treasure.native compiles the same file
-- into native.so (include_str!, like ffi_buffer.lua) and runs it from
-- native.lua, handing it the packet and contract modules. So every backend
-- rejects the same snapshots with the same message, in the contract's style
-- (limits, ranges, the loot entry rule and the texts come from
-- treasure/contract.lua; packet bytes are read through treasure/packet.lua):
--
--   treasure: restore: snapshot.players[3].x must be an integer in [-1048576, 1048575], got 1.5
--
-- Checks run in this order and the first failure is raised: the snapshot's
-- type and unknown keys; version; options (the five, then shard and shards);
-- loot_tables; sites; players; counters; pending; next_seq; cluster. Within
-- a list, elements first to last, each completely (its type, unknown keys,
-- fields in the documented order, then the rules against earlier elements).
-- Fields are read raw (rawget/next).
--
-- Cluster mode (issue 17) is options.shard given (with options.shards): then
-- each player has a `host`, pending packets carry host seqs (bounded by
-- cluster.next_host_seq instead of next_seq) and `cluster` is required;
-- without it, `host` and `cluster` are unknown keys (docs/API.md, "Cluster
-- mode", lists every rule).

-- treasure.native passes the packet and contract modules in, and may pass
-- treasure.record (a require passes its name instead). Without it, record.lua
-- is required on the first cluster snapshot only, so a plain restore never
-- needs package.path.
local packet, contract, record = ...
if type(packet) ~= "table" then packet = require("treasure.packet") end
if type(contract) ~= "table" then contract = require("treasure.contract") end
if type(record) ~= "table" then record = nil end
local ffi = require("ffi")

local cast = ffi.cast
local format = string.format
local type, rawget = type, rawget

local VERSION = 1
local PACKET_SIZE = contract.PACKET_SIZE
local ID, U32, COORD, COUNT, NEXT_SEQ = contract.ID, contract.U32, contract.COORD, contract.COUNT, contract.NEXT_SEQ
local I = contract.int_text -- numbers in messages (docs/API.md)
local show, is_int, element = contract.show, contract.is_int, contract.element
local u8p = ffi.typeof("const uint8_t *")

--- Every message of this file names restore (treasure.swap renames it).
local function fail(text) contract.fail("restore", text) end
local function keys(path, t, known, i) return contract.check_keys("restore", path, t, known, i) end
local function array(path, v) return contract.check_array("restore", path, v, false) end

local function int(path, v, r)
  return contract.check_int("restore", path, v, r)
end

local function set(list)
  local s = {}
  for i = 1, #list do s[list[i]] = true end
  return s
end

local TOP = set({ "version", "options", "loot_tables", "sites", "players", "next_seq", "counters", "pending",
  "cluster" }) -- cluster: only in cluster mode, judged once the options are known
local LOOT_KEYS = set({ "id", "entries" })
-- A site's and a player's fields in the order they are checked (the order
-- of add_site's and join's arguments).
local SITE = {
  { "id", ID }, { "x", COORD }, { "y", COORD }, { "z", COORD }, { "loot_table_id", ID }, { "charges", U32 },
}
local SITE_KEYS = set({ "id", "x", "y", "z", "loot_table_id", "charges" })
local PLAYER = { { "id", ID }, { "x", COORD }, { "y", COORD }, { "z", COORD }, { "party", U32 } }
local PLAYER_KEYS = set({ "id", "x", "y", "z", "party" })
local CLUSTER_PLAYER_KEYS = set({ "id", "x", "y", "z", "party", "host" })
local CLUSTER_KEYS = set({ "next_host_seq", "log_position", "applied", "sent", "outgoing", "counters" })
local SHARD_SEQ_KEYS = set({ "shard", "seq" })
local CLUSTER_COUNTERS = { "applied_digs", "duplicate_digs", "records_out", "records_in" }
local CLUSTER_COUNTER_KEYS = set(CLUSTER_COUNTERS)
local COUNTERS = { "digs", "packets", "found", "empty", "nothing", "rejected", "busy" }
local COUNTER_KEYS = set(COUNTERS)

--- The integer fields of element i of a list, in `spec` order.
local function fields(list_path, i, t, spec)
  for k = 1, #spec do
    local name, r = spec[k][1], spec[k][2]
    local v = rawget(t, name)
    if not is_int(v, r.lo, r.hi) then
      fail(contract.not_in_range(element(list_path, i) .. "." .. name, r, show(v)))
    end
  end
end

--- Fails if an earlier element had the same id, else records it.
local function unique(list_path, i, seen, id)
  local first = seen[id]
  if first then
    fail(format("%s.id must not repeat %s.id, got %s", element(list_path, i), element(list_path, first), I(id)))
  end
  seen[id] = i
end

--- A cluster list of { shard =, seq = } (applied, sent): an array, each
-- element a table with just those keys, shard in `hosts`, seq in [1, 2^53-1],
-- shards strictly ascending. Returns shard -> seq.
local function shard_seqs(path, list, hosts)
  local by = {}
  local last
  for i = 1, array(path, list) do
    local e = keys(path, rawget(list, i), SHARD_SEQ_KEYS, i)
    local sh = int(element(path, i) .. ".shard", rawget(e, "shard"), hosts)
    local seq = int(element(path, i) .. ".seq", rawget(e, "seq"), contract.COUNT_1)
    if last and sh <= last then
      fail(format("%s.shard must be above the previous element's shard %s, got %s", element(path, i), I(last), I(sh)))
    end
    last = sh
    by[sh + 0] = seq + 0
  end
  return by
end

--- The `cluster` table of a cluster-mode snapshot, in this order: its type
-- and unknown keys; counters; next_host_seq (range, above the last pending
-- packet's seq, counters.applied_digs + 1); log_position; applied; sent
-- (each seq below next_seq); outgoing (a string of records from this shard,
-- each valid as apply_records would judge it for its destination; per
-- destination chained, each prev the to of the previous outgoing record to
-- it; each to below next_seq; the last one's to is what sent holds for it).
local function check_cluster(cl, shard, shards, hosts, next_seq, last_seq)
  local CP = "snapshot.cluster"
  keys(CP, cl, CLUSTER_KEYS)
  local c = keys(CP .. ".counters", rawget(cl, "counters"), CLUSTER_COUNTER_KEYS)
  for i = 1, #CLUSTER_COUNTERS do
    int(CP .. ".counters." .. CLUSTER_COUNTERS[i], rawget(c, CLUSTER_COUNTERS[i]), COUNT)
  end
  local next_host_seq = int(CP .. ".next_host_seq", rawget(cl, "next_host_seq"), NEXT_SEQ)
  if last_seq and next_host_seq <= last_seq then
    fail(format("%s.next_host_seq must be above the last pending packet's seq %s, got %s", CP, I(last_seq),
      I(next_host_seq)))
  end
  local applied_digs = rawget(c, "applied_digs")
  if next_host_seq ~= applied_digs + 1 then
    fail(format("%s.next_host_seq must be cluster.counters.applied_digs + 1 (%s), got %s", CP, I(applied_digs + 1),
      I(next_host_seq)))
  end
  int(CP .. ".log_position", rawget(cl, "log_position"), COUNT)
  shard_seqs(CP .. ".applied", rawget(cl, "applied"), hosts)
  local SENT = CP .. ".sent"
  local sent_list = rawget(cl, "sent")
  local sent = shard_seqs(SENT, sent_list, hosts)
  for i = 1, #sent_list do
    local seq = rawget(rawget(sent_list, i), "seq")
    if seq >= next_seq then
      fail(format("%s.seq must be below next_seq (%s), got %s", element(SENT, i), I(next_seq), I(seq)))
    end
  end

  local outgoing = rawget(cl, "outgoing")
  local OP = CP .. ".outgoing"
  if type(outgoing) ~= "string" then fail(OP .. " must be a string, got " .. type(outgoing)) end
  record = record or require("treasure.record")
  local recs, bad, why = record.scan(outgoing, shard, shards, true)
  if recs == nil then fail(contract.bad_record(element(OP, bad), shard, why)) end
  local last_to, dests = {}, {} -- dest -> to of its last outgoing record so far
  for i = 1, #recs do
    local rec = recs[i]
    local d, before = rec.dest, last_to[rec.dest]
    if before and rec.prev ~= before then
      fail(format("%s.prev must be the to of the previous outgoing record for shard %s (%s), got %s",
        element(OP, i), I(d), I(before), I(rec.prev)))
    end
    if rec.to >= next_seq then
      fail(format("%s.to must be below next_seq (%s), got %s", element(OP, i), I(next_seq), I(rec.to)))
    end
    if not before then dests[#dests + 1] = d end
    last_to[d] = rec.to
  end
  table.sort(dests)
  for i = 1, #dests do
    local d = dests[i]
    if sent[d] ~= last_to[d] then
      fail(format("%s must give shard %s the to of its last outgoing record (%s), got %s", SENT, I(d),
        I(last_to[d]), sent[d] and I(sent[d]) or "nil"))
    end
  end
end

local M = { VERSION = VERSION, _VERSION = packet._VERSION, _VERSION_NUM = packet._VERSION_NUM }

--- Raises `treasure: restore: ...` unless `s` is a valid snapshot.
-- Returns the number of pending packets.
function M.check(s)
  if type(s) ~= "table" then fail("snapshot must be a table, got " .. type(s)) end
  keys("snapshot", s, TOP)
  local version = rawget(s, "version")
  if version ~= VERSION then fail("snapshot.version must be 1, got " .. show(version)) end

  local o = keys("snapshot.options", rawget(s, "options"), contract.OPTION_KEYS)
  for i = 1, #contract.OPTIONS do
    local name, r = contract.OPTIONS[i][1], contract.OPTIONS[i][2]
    int("snapshot.options." .. name, rawget(o, name), r)
  end
  local shard, shards = contract.check_cluster_options("restore", "snapshot.options.",
    rawget(o, "shard"), rawget(o, "shards"))
  local hosts = shards and contract.host_range(shards)

  local lts = rawget(s, "loot_tables")
  local tables = {}
  for i = 1, array("snapshot.loot_tables", lts) do
    local path = "snapshot.loot_tables[" .. i .. "]"
    local lt = keys(path, rawget(lts, i), LOOT_KEYS)
    local id = int(path .. ".id", rawget(lt, "id"), ID)
    unique("snapshot.loot_tables", i, tables, id)
    contract.check_loot_entries("restore", path .. ".entries", rawget(lt, "entries"))
  end

  local sites = rawget(s, "sites")
  local site_ids, blocks = {}, {} -- blocks[x, y packed][z] = site id
  local SP = "snapshot.sites"
  for i = 1, array(SP, sites) do
    local site = keys(SP, rawget(sites, i), SITE_KEYS, i)
    fields(SP, i, site, SITE)
    local id = rawget(site, "id")
    unique(SP, i, site_ids, id)
    local x, y, z = rawget(site, "x") + 0, rawget(site, "y") + 0, rawget(site, "z") + 0
    local xy = contract.column_key(x, y)
    local col = blocks[xy]
    if col == nil then col = {}; blocks[xy] = col end
    local other = col[z]
    if other then
      fail(element(SP, i) .. " " .. contract.block_taken(x, y, z, other))
    end
    col[z] = id
    local lt = rawget(site, "loot_table_id")
    if not tables[lt] then
      fail(element(SP, i) .. "." .. contract.unknown_loot_table(lt))
    end
  end

  local players = rawget(s, "players")
  local player_ids = {}
  local PP = "snapshot.players"
  for i = 1, array(PP, players) do
    local p = keys(PP, rawget(players, i), hosts and CLUSTER_PLAYER_KEYS or PLAYER_KEYS, i)
    fields(PP, i, p, PLAYER)
    if hosts then int(element(PP, i) .. ".host", rawget(p, "host"), hosts) end
    unique(PP, i, player_ids, rawget(p, "id"))
  end

  local c = keys("snapshot.counters", rawget(s, "counters"), COUNTER_KEYS)
  for i = 1, #COUNTERS do
    int("snapshot.counters." .. COUNTERS[i], rawget(c, COUNTERS[i]), COUNT)
  end
  local digs = rawget(c, "digs")
  local kinds = rawget(c, "found") + rawget(c, "empty") + rawget(c, "nothing") + rawget(c, "rejected")
  if digs ~= kinds then
    fail(format("snapshot.counters.digs must be found + empty + nothing + rejected (%s), got %s", I(kinds), I(digs)))
  end

  local pending = rawget(s, "pending")
  if type(pending) ~= "string" then fail("snapshot.pending must be a string, got " .. type(pending)) end
  local len = #pending
  if len % PACKET_SIZE ~= 0 then
    fail("snapshot.pending length must be a multiple of " .. PACKET_SIZE .. ", got " .. len)
  end
  local n = len / PACKET_SIZE
  local base = cast(u8p, pending)
  local last_seq, last_rcpt
  for i = 1, n do
    local path = "snapshot.pending[" .. i .. "]"
    local p = base + (i - 1) * PACKET_SIZE
    local why = packet.fault_at(p)
    if why then fail(path .. " must be a valid packet (magic, version 1, CRC-32C), got " .. why) end
    local seq, rcpt = packet.seq_at(p), packet.recipient_at(p)
    if seq < 1 then fail(format("%s.seq must be at least 1, got %s", path, I(seq))) end
    if last_seq then
      if seq < last_seq then
        fail(format("%s.seq must not be below the previous packet's seq %s, got %s", path, I(last_seq), I(seq)))
      end
      if seq == last_seq and rcpt <= last_rcpt then
        fail(format("%s.recipient must be above the previous packet's recipient %s (same seq %s), got %s",
          path, I(last_rcpt), I(seq), I(rcpt)))
      end
    end
    last_seq, last_rcpt = seq, rcpt
  end
  if rawget(c, "packets") < n then
    fail(format("snapshot.counters.packets must be at least the pending packets (%s), got %s", I(n), I(rawget(c, "packets"))))
  end

  local next_seq = int("snapshot.next_seq", rawget(s, "next_seq"), NEXT_SEQ)
  if last_seq and not hosts and next_seq <= last_seq then
    fail(format("snapshot.next_seq must be above the last pending packet's seq %s, got %s", I(last_seq), I(next_seq)))
  end
  if next_seq ~= digs + 1 then
    fail(format("snapshot.next_seq must be counters.digs + 1 (%s), got %s", I(digs + 1), I(next_seq)))
  end

  local cl = rawget(s, "cluster")
  if not hosts then
    if cl ~= nil then fail(contract.unknown_key("snapshot", "cluster")) end
  else
    check_cluster(cl, shard, shards, hosts, next_seq, last_seq)
  end
  return n
end

return M
