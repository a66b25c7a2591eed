#!/bin/sh
# The build command of every treasure-resolver rockspec (build.type =
# "command"): LuaRocks runs it in the source directory, an unpacked source
# rock or a checkout (`luarocks make`). It needs cargo and crates.io only,
# never a rocks server.
#
# * cargo gets its own --target-dir (target/ under this directory), so a
#   CARGO_TARGET_DIR in the environment can neither break the copy below nor
#   make it install a stale library from an old target/.
# * The installed library is stripped (the release profile keeps debug info
#   for benchmarks and profiling; an installed module does not need it).
# * doc/ collects what LuaRocks installs as the rock's documentation
#   (`luarocks doc treasure-resolver`): README, CHANGELOG, LICENSE and the
#   API and packet references.
set -eu
CARGO=${CARGO:-cargo}
if ! command -v "$CARGO" >/dev/null 2>&1; then
  echo "treasure-resolver is written in Rust; cargo was not found on PATH" \
    "(install Rust from https://rustup.rs, put ~/.cargo/bin on PATH or set CARGO=/path/to/cargo)" >&2
  exit 1
fi
TARGET_DIR=$(pwd)/target
"$CARGO" build --release --locked --target-dir "$TARGET_DIR" \
  -p treasure-native --no-default-features --features luajit,module
mkdir -p build/treasure
# copy then rename: never rewrite a .so in place under a running process
strip -o build/treasure/native.so.tmp "$TARGET_DIR/release/libtreasure_native.so"
mv -f build/treasure/native.so.tmp build/treasure/native.so
mkdir -p doc
cp README.md CHANGELOG.md LICENSE docs/API.md docs/PACKET.md doc/
