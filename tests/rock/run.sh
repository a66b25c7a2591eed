#!/usr/bin/env bash
# LuaRocks as a user meets it (issue 14), with Debian's luarocks, everything
# in a temporary directory outside the checkout:
#
# 1. `luarocks make` of the scm rockspec in the checkout (the developer path)
#    into tree T0, with a CARGO_TARGET_DIR in the environment that the build
#    must ignore, and `luarocks test` against T0.
# 2. The release artifacts (tools/rock.sh, what `make rock` runs, without the
#    tag) with a download address that does not resolve, so the source rock
#    must carry everything: from outside the checkout, the source rock is
#    installed into the fresh tree T1 (that install is the one the binary
#    rock is packed from) and the binary rock into the fresh tree T2.
# 3. For T1 and T2: the installed copy loads native, `luarocks test` passes
#    (run from the unpacked source rock, modules from the tree: the test
#    script asserts it), and `luarocks remove` leaves no module behind.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
WORK=$(mktemp -d "${TMPDIR:-/tmp}/treasure-rock.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
V=$(tools/version.sh)
NAME=treasure-resolver-$V

log() { echo "tests/rock: $*"; }
quiet() { # run quietly, show the log on failure
  local out=$WORK/cmd.log
  "$@" >"$out" 2>&1 || { cat "$out"; echo "tests/rock: failed: $*" >&2; return 1; }
}
with_tree() { # run "$@" with Lua pointed at tree $1 only (plus the system's busted)
  local tree=$1; shift
  (eval "$(luarocks path --tree "$tree")"; "$@")
}
check_removed() {
  local tree=$1
  quiet luarocks remove treasure-resolver --tree "$tree"
  if luarocks list --tree "$tree" --porcelain | grep -q '^treasure-resolver'; then
    echo "tests/rock: still listed in $tree after luarocks remove"; exit 1
  fi
  local left
  left=$(find "$tree/share/lua" "$tree/lib/lua" -name '*treasure*' 2>/dev/null || true)
  [ -z "$left" ] || { echo "tests/rock: luarocks remove left: $left"; exit 1; }
  log "luarocks remove cleaned $tree"
}

# 1. scm rockspec, luarocks make in the checkout
T0=$WORK/T0
CARGO_TARGET_DIR=$WORK/not-this-target-dir quiet luarocks make rockspec/treasure-resolver-scm-1.rockspec --tree "$T0"
[ ! -e "$WORK/not-this-target-dir" ] || { echo "tests/rock: the build used CARGO_TARGET_DIR"; exit 1; }
so=$T0/lib/lua/5.1/treasure/native.so
if readelf -S "$so" | grep -q '\.debug_info'; then echo "tests/rock: $so is not stripped"; exit 1; fi
for d in API.md PACKET.md README.md LICENSE CHANGELOG.md; do
  [ -f "$T0/lib/luarocks/rocks-5.1/treasure-resolver/scm-1/doc/$d" ] || { echo "tests/rock: doc $d not installed"; exit 1; }
done
log "luarocks make: T0 has a stripped native.so ($(stat -c %s "$so") bytes) and the docs; CARGO_TARGET_DIR ignored"
with_tree "$T0" luarocks test rockspec/treasure-resolver-scm-1.rockspec >"$WORK/test0.log" 2>&1 ||
  { cat "$WORK/test0.log"; exit 1; }
grep '^luarocks test:' "$WORK/test0.log"
check_removed "$T0"

# 2. release artifacts; T1 is the tree the source rock is installed into
DIST=$WORK/dist T1=$WORK/T1 T2=$WORK/T2
TREASURE_ROCK_TREE=$T1 quiet bash tools/rock.sh "$DIST" "file:///nonexistent/treasure-releases" "file:///nonexistent/treasure-releases"
log "made $(cd "$DIST" && ls | tr '\n' ' ')"
grep -q "url = \"file:///nonexistent/treasure-releases/$NAME.tar.gz\"" "$DIST/$NAME-1.rockspec"
grep -q "md5 = \"$(md5sum "$DIST/$NAME.tar.gz" | cut -d' ' -f1)\"" "$DIST/$NAME-1.rockspec"
mkdir -p "$WORK/outside"
cd "$WORK/outside"   # nothing below runs in the checkout
quiet luarocks install "$DIST/$NAME-1.linux-x86_64.rock" --tree "$T2"
luarocks unpack "$DIST/$NAME-1.src.rock" >/dev/null   # the sources, for the specs luarocks test runs
SRC=$WORK/outside/$NAME-1/$NAME
[ -d "$SRC/tests/lua" ] || { echo "tests/rock: no tests in the unpacked source rock"; exit 1; }

# 3. each tree: loads native, luarocks test, luarocks remove
for T in "$T1" "$T2"; do
  luarocks list --tree "$T" --porcelain | grep -q "^treasure-resolver	$V-1" || { echo "tests/rock: not installed in $T"; exit 1; }
  (cd "$SRC" && with_tree "$T" luarocks test "../$NAME-1.rockspec") >"$WORK/test.log" 2>&1 ||
    { cat "$WORK/test.log"; exit 1; }
  grep '^luarocks test:' "$WORK/test.log"
  grep -E '^[0-9]+ successes' "$WORK/test.log" | sed 's/^/  /'
  check_removed "$T"
done
log "ok: scm make, source rock and binary rock install, luarocks test, remove"
