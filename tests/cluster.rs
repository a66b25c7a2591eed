//! `require("treasure.cluster")` from Lua (vendored LuaJIT, as
//! tests/binding.rs) against a nats-server the test starts on a free
//! loopback port (crates/treasure-cluster/tests/support: stopped by pid
//! when the test ends, a missing server fails the test).

#[path = "../crates/treasure-cluster/tests/support/mod.rs"]
mod support;

use mlua::{Lua, Table};

fn lua_with_module() -> Lua {
    // unsafe_new only because the module needs LuaJIT's `ffi` library.
    let lua = unsafe { Lua::unsafe_new() };
    let open = lua
        .create_function(|lua, ()| treasure_native::open(lua))
        .expect("create loader");
    let package: Table = lua.globals().get("package").expect("package");
    let preload: Table = package.get("preload").expect("preload");
    preload.set("treasure.native", open).expect("preload");
    let path: String = package.get("path").unwrap();
    let root = env!("CARGO_MANIFEST_DIR");
    package
        .set("path", format!("{root}/lua/?.lua;{path}"))
        .unwrap();
    lua
}

#[test]
fn connect_stats_flush_close_and_errors_from_lua() {
    let server = support::Server::start();
    let lua = lua_with_module();
    lua.globals().set("URL", server.url()).unwrap();
    let script = r#"
      local cluster = require("treasure.cluster")
      assert(cluster == require("treasure.native")._cluster)
      local function err_of(f, ...)
        local ok, e = pcall(f, ...)
        assert(not ok, "expected an error")
        assert(type(e) == "string", "errors are plain strings, got " .. type(e))
        return e
      end
      local function eq(a, b) if a ~= b then error(("expected %q, got %q"):format(tostring(b), tostring(a)), 2) end end
      eq(err_of(cluster.connect, nil), "treasure: cluster.connect: opts must be a table, got nil")
      eq(err_of(cluster.connect, { url = URL, shards = 2 }), "treasure: cluster.connect: opts.shard must be given, got nil")
      eq(err_of(cluster.connect, { url = URL, shard = 2, shards = 2 }),
         "treasure: cluster.connect: opts.shard must be below opts.shards (2), got 2")
      eq(err_of(cluster.connect, { url = URL, shard = 1.5, shards = 2 }),
         "treasure: cluster.connect: opts.shard must be an integer in [0, 65534], got 1.5")
      eq(err_of(cluster.connect, { url = URL, shard = 0, shards = 2, storage = "disk" }),
         "treasure: cluster.connect: opts.storage must be 'file' or 'memory', got 'disk'")
      eq(err_of(cluster.connect, { url = URL, shard = 0, shards = 2, max_unacked = 0 }),
         "treasure: cluster.connect: opts.max_unacked must be an integer in [1, 16777216], got 0")
      assert(err_of(cluster.connect, { url = URL, shard = 0, shards = 2, sahrd = 1 })
        :find("^treasure: cluster.connect: opts: unknown field `sahrd`"))
      local link = cluster.connect{ url = URL, stream = "LUA", shard = 0, shards = 2, from = 0 }
      assert(tostring(link):find("shard 0 of 2, stream LUA", 1, true), tostring(link))
      eq(link:flush(), true)
      eq(link:flush(0), true)
      eq(err_of(link.flush, link, -1), "treasure: cluster.flush: timeout_ms must be an integer in [0, 3600000], got -1")
      local s = link:stats()
      eq(s.queued, 0); eq(s.acked, 0); eq(s.held, 0); eq(s.sent, 0); eq(s.errors, 0); eq(s.deferred, 0)
      eq(err_of(link.pump, link, {}), "treasure: cluster.pump: r must be a resolver, got table")
      eq(err_of(link.pump, nil, {}), "treasure: cluster.pump: self must be a cluster link, got nil")
      local r = require("treasure.native").new()
      r:close()
      eq(err_of(link.pump, link, r), "treasure: cluster.pump: r is closed")
      link:close()
      link:close()
      eq(tostring(link), "treasure.cluster link (closed)")
      eq(err_of(link.stats, link), "treasure: cluster.stats: link is closed")
      eq(err_of(link.pump, link, r), "treasure: cluster.pump: link is closed")
      -- GC closes a link nobody closed (its thread is joined in __gc).
      cluster.connect{ url = URL, stream = "LUA", shard = 1, shards = 2 }
      collectgarbage(); collectgarbage()
      local bad = err_of(cluster.connect, { url = "nats://127.0.0.1:1", shard = 0, shards = 1, connect_timeout_ms = 500 })
      assert(bad:find("^treasure: cluster.connect: cannot connect to nats://127.0.0.1:1: "), bad)
    "#;
    if let Err(e) = lua.load(script).exec() {
        panic!("script failed:\n{e}");
    }
}

/// Back-pressure: with the server gone, records wait for their acks; once
/// `max_unacked` of them do, pump takes no more of the resolver's records,
/// which stay with the resolver (`pending_records`), where its busy rule
/// bounds them; when the server is back the waiting records are acked and
/// the next pump takes the rest, in order.
#[test]
fn a_link_without_room_leaves_records_with_the_resolver() {
    let mut server = support::Server::start();
    let lua = lua_with_module();
    lua.globals().set("URL", server.url()).unwrap();
    let run = |chunk: &str| {
        if let Err(e) = lua.load(chunk).exec() {
            panic!("script failed:\n{e}");
        }
    };
    run(r#"
      N = require("treasure.native")
      cluster = require("treasure.cluster")
      function eq(a, b) if a ~= b then error(("expected %q, got %q"):format(tostring(b), tostring(a)), 2) end end
      -- (each dig has 2 packets, one per host: once a dig's 2 are withheld,
      -- past max_pending_packets = 1, the next dig is refused as busy)
      r0 = N.new{ seed = 7, aoi_radius = 16, reach = 4, shard = 0, shards = 2, max_pending_packets = 1 }
      r0:add_loot_table(1, { { item = 100, weight = 1, min = 1, max = 1, rarity = 0 } })
      r0:add_site(10, 0, 0, 0, 1, 5)
      r0:join(1, 1, 0, 0); r0:join(2, 2, 0, 0)
      r0:set_host(2, 1)
      l0 = cluster.connect{ url = URL, stream = "BP", shard = 0, shards = 2, max_unacked = 2,
                            ack_timeout_ms = 200 }
    "#);
    server.kill();
    run(r#"
      eq(r0:dig(1, 0, 0, 0, 1000), 1)
      r0:flush()
      eq((l0:pump(r0)), 2)   -- room: both records (host 0, host 1) queued
      eq(l0:stats().queued, 2); eq(l0:stats().acked, 0)
      eq(r0:dig(1, 0, 0, 0, 1001), 2)
      r0:flush()
      eq((l0:pump(r0)), 0)   -- 2 unacked = max_unacked: nothing taken
      eq((l0:pump(r0)), 0)
      local s = l0:stats()
      eq(s.queued, 2); eq(s.deferred, 2)
      eq(r0:stats().pending_records, 2)
      local seq, why = r0:dig(1, 0, 0, 0, 1002)
      eq(seq, nil); eq(why, "busy")
    "#);
    server.restart();
    run(r#"
      eq(l0:flush(30000), true)
      eq(l0:stats().acked, 2)
      eq((l0:pump(r0)), 2)   -- room again: the second dig's records
      eq(r0:stats().pending_records, 0)
      -- (the pumps also applied what came back for host 0: poll it, as a
      -- game would, so that only the withheld records count)
      while (r0:poll()) > 0 do end
      eq(r0:dig(1, 0, 0, 0, 1003), 3)   -- and digs are accepted again
      r0:flush()
      eq(l0:flush(30000), true)   -- (until these acks, 2 unacked: no room)
      eq((l0:pump(r0)), 2)
      eq(l0:flush(30000), true)
      local s = l0:stats()
      eq(s.queued, 6); eq(s.acked, 6); eq(s.sent, 6); eq(s.deferred, 2)
      l0:close()
    "#);
}

/// End to end: shard 0 owns
/// the site; player 1 is hosted on shard 0, player 2 on shard 1 (a ghost
/// on shard 0). One dig on shard 0 yields a record for each host; each
/// shard's link publishes and applies them, and each host polls its own
/// player's packet, numbered by its own host seq, with `log_position` the
/// record's stream sequence.
#[test]
fn two_shards_exchange_a_dig_through_jetstream() {
    let server = support::Server::start();
    let lua = lua_with_module();
    lua.globals().set("URL", server.url()).unwrap();
    let script = r#"
      local N = require("treasure.native")
      local cluster = require("treasure.cluster")
      local function eq(a, b) if a ~= b then error(("expected %q, got %q"):format(tostring(b), tostring(a)), 2) end end
      local r0 = N.new{ seed = 7, aoi_radius = 16, reach = 4, shard = 0, shards = 2 }
      local r1 = N.new{ seed = 7, aoi_radius = 16, reach = 4, shard = 1, shards = 2 }
      r0:add_loot_table(1, { { item = 100, weight = 1, min = 1, max = 1, rarity = 0 } })
      r0:add_site(10, 0, 0, 0, 1, 5)
      r0:join(1, 1, 0, 0); r0:join(2, 2, 0, 0)
      r0:set_host(2, 1)
      r1:join(2, 2, 0, 0)
      local l0 = cluster.connect{ url = URL, stream = "E2E", shard = 0, shards = 2 }
      local l1 = cluster.connect{ url = URL, stream = "E2E", shard = 1, shards = 2 }
      eq(r0:dig(1, 0, 0, 0, 1000), 1)
      r0:flush()
      -- (this pump may already apply shard 0's own record: the transport
      -- thread can publish it and take it back before the pump drains its
      -- deliveries, which happened under load; it counts as applied here)
      local sent, applied0 = l0:pump(r0)
      eq(sent, 2)   -- one record for host 0, one for host 1
      eq(l0:flush(5000), true)
      local function pump_until(link, r, want)
        local got = 0
        for _ = 1, 2000 do
          local _, applied = link:pump(r)
          got = got + applied
          if got >= want then return got end
          os.execute("sleep 0.005")
        end
        return got
      end
      eq(pump_until(l1, r1, 1), 1)
      eq(applied0 + pump_until(l0, r0, 1 - applied0), 1)
      local n1, p1 = r1:poll()
      local n0, p0 = r0:poll()
      eq(n1, 1); eq(n0, 1)
      local packet = require("treasure.packet")
      eq(packet.decode(p1).recipient, 2); eq(packet.decode(p1).seq, 1)
      eq(packet.decode(p0).recipient, 1); eq(packet.decode(p0).seq, 1)
      assert(r1:stats().log_position >= 1)
      eq(l1:stats().applied, 1); eq(l1:stats().held, 0)
      l0:close(); l1:close()
    "#;
    if let Err(e) = lua.load(script).exec() {
        panic!("script failed:\n{e}");
    }
}
