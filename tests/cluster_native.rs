//! The native binding's cluster methods (issue 17) end to end in a LuaJIT
//! state: messages, check order, a dig shipped shard to shard, and the
//! host packets equal to one resolver's except seq and CRC. The contract
//! itself is tested on every backend by tests/lua; this holds the binding
//! to the core's behaviour.

use mlua::Lua;

#[test]
fn cluster_methods_from_lua() {
    // SAFETY-free: unsafe_new only because the module needs LuaJIT's `ffi`
    // library, which mlua treats as unsafe (as in tests/binding.rs).
    let lua = unsafe { Lua::unsafe_new() };
    let native = treasure_native::open(&lua).unwrap();
    lua.globals().set("native", native).unwrap();
    lua.load(
        r#"
local n = native
local function err(f, ...)
  local ok, m = pcall(f, ...)
  assert(not ok, "expected an error")
  return m
end
local function eq(a, b) assert(a == b, tostring(a) .. " ~= " .. tostring(b)) end

eq(err(n.new, { shard = 1 }), "treasure: new: opts.shards must be given with opts.shard, got nil")
eq(err(n.new, { shards = 2 }), "treasure: new: opts.shard must be given with opts.shards, got nil")
eq(err(n.new, { shard = 3, shards = 3 }), "treasure: new: opts.shard must be below opts.shards (3), got 3")
eq(err(n.new, { shard = -1, shards = 3 }), "treasure: new: opts.shard must be an integer in [0, 65534], got -1")
eq(err(n.new, { shard = 0, shards = 1.5 }), "treasure: new: opts.shards must be an integer in [1, 65535], got 1.5")
eq(err(n.new, { seed = -1, shard = 9 }), "treasure: new: opts.seed must be an integer in [0, 9007199254740991], got -1")

local no = "resolver has no shard (create it with opts.shard and opts.shards)"
local plain = n.new({ aoi_radius = 16, reach = 8 })
plain:join(5, 0, 0, 0)
eq(err(plain.set_host, plain, 5, 0), "treasure: set_host: " .. no)
eq(err(plain.set_host, plain, "x", 0), "treasure: set_host: " .. no)
eq(err(plain.take_records, plain), "treasure: take_records: " .. no)
eq(err(plain.apply_records, plain, {}), "treasure: apply_records: " .. no)
assert(plain:stats().shard == nil and plain:stats().next_host_seq == nil)
plain:leave(5)

local function world(r)
  r:add_loot_table(1, { { item = 100, weight = 1, min = 1, max = 2, rarity = 0 } })
  r:add_site(10, 0, 0, 0, 1, 2)
  r:join(1, 1, 0, 0, 5); r:join(2, 3, 0, 0); r:join(3, 900, 0, 900, 5)
end
world(plain)
local rs = {}
for s = 0, 2 do
  rs[s] = n.new({ shard = s, shards = 3, aoi_radius = 16, reach = 8 })
  world(rs[s])
  rs[s]:set_host(2, 2); rs[s]:set_host(3, 1)
end
local r0 = rs[0]
eq(err(r0.set_host, r0, 0, 0), "treasure: set_host: player must be an integer in [1, 4294967295], got 0")
eq(err(r0.set_host, r0, 9, "x"), "treasure: set_host: player must have joined, got 9")
eq(err(r0.set_host, r0, 1, 3), "treasure: set_host: host must be an integer in [0, 2], got 3")
eq(err(r0.set_host, r0, 1, nil), "treasure: set_host: host must be an integer in [0, 2], got nil")
eq(err(r0.apply_records, r0, 5), "treasure: apply_records: records must be a string, got number")
eq(err(r0.apply_records, r0, "xx", -1), "treasure: apply_records: log_position must be an integer in [0, 9007199254740991], got -1")
eq(err(r0.apply_records, r0, "xx"), "treasure: apply_records: records[1] must be a valid record for shard 0, got truncated header (2 bytes)")
local k, none = r0:take_records()
eq(k, 0); eq(none, "")

eq(plain:dig(1, 0, 0, 0, 123), 1)
eq(r0:dig(1, 0, 0, 0, 123), 1)
r0:flush()
local st = r0:stats()
eq(st.shard, 0); eq(st.shards, 3); eq(st.pending_records, 3); eq(st.next_host_seq, 1)
eq(st.packets, 0); eq(st.digs, 1)
local count, bytes = r0:take_records()
eq(count, 3)
eq(r0:stats().records_out, 3); eq(r0:stats().pending_records, 0)
-- Split by destination (header: dest at offset 8, length at 32).
local per = { [0] = "", "", "" }
local i = 1
while i <= #bytes do
  local d = bytes:byte(i + 8) + 256 * bytes:byte(i + 9)
  local len = bytes:byte(i + 32) + 256 * bytes:byte(i + 33) + 65536 * bytes:byte(i + 34)
  per[d] = per[d] .. bytes:sub(i, i + len - 1)
  i = i + len
end
local got = {}
for s = 0, 2 do
  eq(rs[s]:apply_records(per[s], 40 + s), 1)
  eq(rs[s]:apply_records(per[s]), 0) -- a duplicate
  local st = rs[s]:stats()
  eq(st.applied_digs, 1); eq(st.duplicate_digs, 1); eq(st.records_in, 2)
  eq(st.log_position, 40 + s); eq(st.next_host_seq, 2); eq(st.pending_packets, 1)
  local m, p = rs[s]:poll()
  eq(m, 1)
  local rcp = p:byte(33)
  got[rcp] = p
end
plain:flush()
local m, want = plain:poll()
eq(m, 3)
for j = 0, 2 do
  local p = want:sub(j * 128 + 1, j * 128 + 128)
  local g = got[p:byte(33)]
  -- Equal but for seq (8..16) and CRC (124..128).
  eq(g:sub(1, 8) .. g:sub(17, 124), p:sub(1, 8) .. p:sub(17, 124))
end
-- A record for a later dig before the missing one: gap; busy when full.
local h = n.new({ shard = 1, shards = 3, max_pending_packets = 1 })
eq(h:apply_records(per[1]), 1)
-- One host packet pending = max_pending_packets: busy, even for a duplicate.
local a, why = h:apply_records(per[1])
eq(a, nil); eq(why, "busy")
eq(rs[0]:dig(1, 0, 0, 0, 124), 2)
rs[0]:flush()
local _, more = rs[0]:take_records()
local tail = ""
i = 1
while i <= #more do
  local d = more:byte(i + 8) + 256 * more:byte(i + 9)
  local len = more:byte(i + 32) + 256 * more:byte(i + 33) + 65536 * more:byte(i + 34)
  if d == 1 then tail = tail .. more:sub(i, i + len - 1) end
  i = i + len
end
local busy_before = h:stats().busy
a, why = h:apply_records(tail)
eq(a, nil); eq(why, "busy"); eq(h:stats().busy, busy_before + 1)
eq(h:poll(), 1)
eq(h:apply_records(tail), 1)
local h2 = n.new({ shard = 1, shards = 3 })
a, why = h2:apply_records(tail)
eq(a, nil); eq(why, "gap")
-- Snapshots carry the cluster fields.
local snap = rs[2]:snapshot()
eq(snap.options.shard, 2); eq(snap.options.shards, 3)
eq(snap.players[2].host, 2); eq(snap.players[1].host, 2); eq(snap.players[3].host, 1)
eq(snap.cluster.next_host_seq, 2); eq(snap.cluster.log_position, 42)
eq(#snap.cluster.applied, 1); eq(snap.cluster.applied[1].shard, 0); eq(snap.cluster.applied[1].seq, 1)
eq(snap.cluster.outgoing, ""); eq(snap.cluster.counters.records_in, 2)
assert(plain:snapshot().cluster == nil and plain:snapshot().players[1].host == nil)
"#,
    )
    .exec()
    .unwrap();
}
