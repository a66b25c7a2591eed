#!/bin/sh
# The release version is defined once: `version` in Cargo.toml's
# [workspace.package] (both crates inherit it; native.so reports it through
# CARGO_PKG_VERSION). Everything else is generated from it (release rockspecs,
# tarball and tag names: tools/rock.sh) or checked against it here.
#
#   tools/version.sh          print the version, e.g. 1.0.0
#   tools/version.sh check    check every other place; exit 1 naming each mismatch
#
# `check` also asks a built native.so (NATIVE_SO, default build/treasure/native.so,
# skipped when absent) which release it is.
set -eu
cd "$(dirname "$0")/.."

version=$(sed -n '/^\[workspace\.package\]/,/^\[/s/^version *= *"\([^"]*\)".*/\1/p' Cargo.toml)
case "$version" in
  [0-9]*.[0-9]*.[0-9]*) ;;
  *) echo "tools/version.sh: no MAJOR.MINOR.PATCH version in Cargo.toml's [workspace.package], got '$version'" >&2; exit 1 ;;
esac
[ "${1:-}" = check ] || { echo "$version"; exit 0; }

bad=0
fail() { echo "version check: $*" >&2; bad=1; }

for crate in treasure-native treasure-core; do
  locked=$(sed -n "/^name = \"$crate\"\$/{n;s/^version = \"\(.*\)\"/\1/p;}" Cargo.lock)
  [ "$locked" = "$version" ] || fail "Cargo.lock has $crate $locked, Cargo.toml says $version (run cargo build)"
done

lua=$(sed -n 's/^local RELEASE = "treasure \(.*\)"$/\1/p' lua/treasure/packet.lua)
[ "$lua" = "$version" ] || fail "lua/treasure/packet.lua says treasure $lua, Cargo.toml says $version"

grep -q "^## \[$version\]" CHANGELOG.md || fail "CHANGELOG.md has no '## [$version]' section"

if grep -q '^version = "scm-1"$' rockspec/treasure-resolver-scm-1.rockspec; then :; else
  fail "rockspec/treasure-resolver-scm-1.rockspec must say version = \"scm-1\" (release rockspecs are generated)"
fi

so=${NATIVE_SO:-build/treasure/native.so}
also=""
if [ -f "$so" ]; then
  also=" and $so"
  dir=$(mktemp -d); mkdir -p "$dir/treasure"; cp "$so" "$dir/treasure/native.so"
  got=$(LUA_CPATH="$dir/?.so" ${LUAJIT:-luajit} -e 'io.write(require("treasure.native")._VERSION)' 2>&1 || true)
  rm -rf "$dir"
  [ "$got" = "treasure $version" ] || fail "$so says '$got', Cargo.toml says $version (rebuild: make build)"
fi

[ $bad = 0 ] || exit 1
echo "version $version: Cargo.lock, packet.lua, CHANGELOG.md$also agree"
