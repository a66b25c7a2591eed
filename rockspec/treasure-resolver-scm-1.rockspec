-- Build from a checkout: `luarocks make rockspec/treasure-resolver-scm-1.rockspec`
-- (add `--tree DIR` for a local tree). Needs cargo; no rocks server is used:
-- the "command" build type runs cargo directly (rockspec/build.sh) instead of
-- fetching the luarocks-build-rust-mlua backend.
--
-- This file is also the template of every release rockspec: `make rock`
-- (tools/rock.sh) writes dist/treasure-resolver-<version>-1.rockspec from it,
-- replacing the version and the source block (the release tarball's URL and
-- md5) and adding the homepage. A checkout has no public homepage; the
-- release's is set where its download address is (the Makefile).
rockspec_format = "3.0"
package = "treasure-resolver"
version = "scm-1"
-- source: begin
source = {
   url = "git+file://.",
}
-- source: end
description = {
   summary = "Treasure-dig resolver for LuaJIT game servers: a Rust native module with a pure-Lua reference",
   detailed = [[
      require("treasure") gives a resolver that decides dig outcomes and
      fans out fixed 128-byte packets to every interested player. The native
      backend (Rust, rayon pool, lock-free queues) is byte-identical to the
      pure-Lua reference backend treasure.legacy. Needs LuaJIT 2.1 (Debian's
      luajit or OpenResty's) and, to build, cargo.
   ]],
   license = "MIT",
   labels = { "luajit", "ffi", "gameserver", "rust" },
}
-- LuaJIT reports itself to LuaRocks as Lua 5.1; PUC Lua 5.1 passes this too
-- and gets `treasure: needs LuaJIT 2.1 (FFI); this is Lua 5.1` at require.
dependencies = {
   "lua >= 5.1, < 5.2",
}
build = {
   type = "command",
   build_command = "sh rockspec/build.sh",
   install = {
      lua = {
         ["treasure"] = "lua/treasure/init.lua",
         ["treasure.legacy"] = "lua/treasure/legacy.lua",
         ["treasure.contract"] = "lua/treasure/contract.lua",
         ["treasure.packet"] = "lua/treasure/packet.lua",
         ["treasure.ffi_buffer"] = "lua/treasure/ffi_buffer.lua",
         ["treasure.snapshot"] = "lua/treasure/snapshot.lua",
         ["treasure.record"] = "lua/treasure/record.lua",
         ["treasure.metrics"] = "lua/treasure/metrics.lua",
         ["treasure.eventfd"] = "lua/treasure/eventfd.lua",
         ["treasure.cluster"] = "lua/treasure/cluster.lua",
      },
      lib = {
         ["treasure.native"] = "build/treasure/native.so",
      },
   },
   copy_directories = { "doc" }, -- made by rockspec/build.sh
}
-- `luarocks test`: the busted suite on LuaJIT against the INSTALLED copy
-- (see the script for how to point it at a tree).
test = {
   type = "command",
   command = "sh tests/rock/luarocks_test.sh",
}
