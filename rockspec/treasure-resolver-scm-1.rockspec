-- Build from a checkout: `luarocks make rockspec/treasure-resolver-scm-1.rockspec`
-- (add `--tree DIR` for a local tree). Needs cargo; no rocks server is used:
-- the "command" build type runs cargo directly instead of fetching the
-- luarocks-build-rust-mlua backend.
rockspec_format = "3.0"
package = "treasure-resolver"
version = "scm-1"
source = {
   url = "git+file://.",
}
description = {
   summary = "Treasure-dig resolver for LuaJIT game servers: a Rust native module with a pure-Lua reference",
   detailed = [[
      require("treasure") gives a resolver that decides dig outcomes and
      fans out fixed 128-byte packets to every interested player. The native
      backend (Rust, rayon pool, lock-free queues) is byte-identical to the
      pure-Lua reference backend treasure.legacy.
   ]],
   license = "MIT",
}
dependencies = {
   "lua >= 5.1, < 5.2",
}
build = {
   type = "command",
   build_command = [[
      cargo build --release -p treasure-native --no-default-features --features luajit,module &&
      mkdir -p build/treasure &&
      cp target/release/libtreasure_native.so build/treasure/native.so.tmp &&
      mv -f build/treasure/native.so.tmp build/treasure/native.so
   ]],
   install = {
      lua = {
         ["treasure"] = "lua/treasure/init.lua",
         ["treasure.legacy"] = "lua/treasure/legacy.lua",
         ["treasure.packet"] = "lua/treasure/packet.lua",
         ["treasure.ffi_buffer"] = "lua/treasure/ffi_buffer.lua",
         ["treasure.snapshot"] = "lua/treasure/snapshot.lua",
         ["treasure.metrics"] = "lua/treasure/metrics.lua",
      },
      lib = {
         ["treasure.native"] = "build/treasure/native.so",
      },
   },
}
