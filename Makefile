# treasure-resolver: every target installs what it needs first (Debian 12).
#   make demo   - install, build, run examples/game_loop.lua, then the game-server harness ~10 s on the best backend
#   make test   - install, build, run every test (cargo, busted on both backends, differential, vectors)
#   make bench  - criterion benches + harness legacy vs native, rewrites docs/BENCHMARKS.md and the plot
SHELL := /bin/bash
# LuaJIT 2.1 with its headers: Debian's luajit + libluajit-5.1-dev or
# OpenResty's luajit2 + libluajit2-5.1-dev, whichever is there (they conflict;
# installing one removes the other and what needs it, e.g. nginx's Lua module).
LUAJIT_PKGS := luajit libluajit-5.1-dev
LUAJIT_INCDIR ?= /usr/include/luajit-2.1
APT_PKGS := luarocks lua-busted valgrind lua-luv
# PUC Lua, only to test that it is refused clearly (test-puc)
TEST_APT_PKGS := lua5.1 lua5.4
# The NATS JetStream server the cluster transport's tests start (crates/treasure-cluster)
CLUSTER_APT_PKGS := nats-server
CARGO ?= cargo
LUAJIT ?= luajit
export LUA_PATH := $(CURDIR)/lua/?.lua;$(CURDIR)/lua/?/init.lua;$(CURDIR)/tests/lua/?.lua;;
export LUA_CPATH := $(CURDIR)/build/?.so;;
NATIVE_SO := build/treasure/native.so
# Release artifacts (make rock). RELEASE_BASE_URL is the one place the
# download address is set: the release rockspec's source.url is
# $(RELEASE_BASE_URL)/treasure-resolver-<version>.tar.gz. The project has no
# public address yet, so the default is this checkout's dist/ (honest, and
# installable here); publish elsewhere with `make rock RELEASE_BASE_URL=https://...`.
DIST ?= $(CURDIR)/dist
RELEASE_BASE_URL ?= file://$(DIST)
HOMEPAGE ?= $(RELEASE_BASE_URL)

.PHONY: deps deps-test deps-cluster build test test-rust test-lua test-other-luajit test-puc test-version test-diff test-swap test-model test-vectors test-lifecycle test-memcheck test-rock rock demo bench clean

# Install Debian packages only when one is missing (idempotent, no apt-get
# otherwise). Any LuaJIT 2.1 already on PATH with its headers is accepted;
# Debian's is installed only when there is none. apt-get runs with
# --no-remove: it fails rather than remove a package (DEPS_DRY_RUN=1: apt-get -s).
define apt_install
  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
  if [ -n "$(DEPS_DRY_RUN)" ]; then echo "would install:$$missing"; apt-get install -s --no-remove $$missing; \
  else echo "installing:$$missing"; \
    $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-remove $$missing; fi
endef
deps:
	@missing=""; for p in $(APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if $(LUAJIT) -e 'assert(jit.version_num >= 20100)' >/dev/null 2>&1 && [ -f $(LUAJIT_INCDIR)/luajit.h ]; then :; \
	else for p in $(LUAJIT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; fi; \
	if [ -n "$$missing" ]; then $(apt_install); fi

deps-test: deps
	@missing=""; for p in $(TEST_APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then $(apt_install); fi

deps-cluster: deps
	@missing=""; for p in $(CLUSTER_APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then $(apt_install); fi

build: deps
	$(CARGO) build --release -p treasure-native --no-default-features --features luajit,module
	@mkdir -p build/treasure
	@# copy then rename: never rewrite a .so in place under a running process
	cp target/release/libtreasure_native.so $(NATIVE_SO).tmp && mv -f $(NATIVE_SO).tmp $(NATIVE_SO)

test: build test-version test-rust test-lua test-other-luajit test-puc test-diff test-swap test-model test-vectors test-lifecycle test-overload test-memcheck test-rock test-runtimes test-cluster fuzz-smoke

test-rust: deps-cluster
	$(CARGO) test --workspace

# Every spec runs against both backends; the second run takes native's
# mlua path only (the FFI fast path off), so both call paths are covered.
test-lua: deps build
	TREASURE_TEST_BACKENDS=lua,native $(LUAJIT) /usr/bin/busted --lpath='$(CURDIR)/tests/lua/?.lua' tests/lua
	TREASURE_NATIVE_FFI=0 TREASURE_TEST_BACKENDS=native $(LUAJIT) /usr/bin/busted --lpath='$(CURDIR)/tests/lua/?.lua' tests/lua

# The busted specs again on the other LuaJIT 2.1 (OpenResty's when Debian's is
# installed, else Debian's), unpacked under build/ without touching the system.
test-other-luajit: deps build
	bash tools/other-luajit.sh -e 'print(jit.version .. (pcall(require, "table.isempty") and " (OpenResty)" or " (Debian)"))'
	TREASURE_TEST_BACKENDS=lua,native bash tools/other-luajit.sh /usr/bin/busted --lpath='$(CURDIR)/tests/lua/?.lua' tests/lua
	TREASURE_NATIVE_FFI=0 TREASURE_TEST_BACKENDS=native bash tools/other-luajit.sh /usr/bin/busted --lpath='$(CURDIR)/tests/lua/?.lua' tests/lua

# PUC Lua 5.1 and 5.4 are refused in one line (require("treasure") and native.so).
test-puc: deps-test build
	bash tests/puc/run.sh

# The version is defined once (Cargo.toml); every other place agrees with it.
test-version: build
	bash tools/version.sh check

# Release artifacts under $(DIST) and the tag v<version> (tools/rock.sh).
rock: deps
	bash tools/rock.sh --tag "$(DIST)" "$(RELEASE_BASE_URL)" "$(HOMEPAGE)"

# Differential: legacy vs native, worker counts cycling 1,2,4,8; then again
# with tiny internal queues (chunks of 1-3 digs, 1-4 chunks in flight).
test-diff: build
	timeout 900 $(LUAJIT) tests/diff/run.lua --backends lua,native --sequences 200 --calls 2000 --workers 1,2,4,8
	timeout 900 $(LUAJIT) tests/diff/run.lua --backends lua,native --sequences 100 --calls 2000 --workers 1,2,4,8 --tiny --seed 100001
	TREASURE_NATIVE_FFI=0 timeout 900 $(LUAJIT) tests/diff/run.lua --backends lua,native --sequences 50 --calls 2000 --seed 200001
	@# issue 12: raising allocations (__gc bombs) inside every legacy call, each retried
	timeout 900 $(LUAJIT) tests/diff/run.lua --backends lua,native --sequences 16 --calls 2000 --bombs --seed 400001

# Issue 6: drop-in at require time (one unchanged legacy script on legacy and
# native, same bytes), then live swaps: the last backend's resolver is swapped
# lua<->native at random calls and must stay identical to the unswapped one;
# then the hot_swap example both ways (it exits 1 if the seq order breaks).
test-swap: build
	bash tests/swap/dropin.sh
	timeout 900 $(LUAJIT) tests/diff/run.lua --backends lua,native --sequences 100 --calls 2000 --swap --seed 300001
	timeout 900 $(LUAJIT) tests/diff/run.lua --backends lua,lua --sequences 40 --calls 2000 --swap --tiny --seed 310001
	$(LUAJIT) examples/hot_swap.lua --fast --seconds 2 --players 2000 --sites 10000
	$(LUAJIT) examples/hot_swap.lua --fast --seconds 2 --players 2000 --sites 10000 --from native --to lua

# The legacy backend against an independent Python reading of the contract.
test-model: deps
	bash tests/diff/model_check.sh 40 2000

# LuaRocks: luarocks make, then both release rocks into fresh trees from
# outside the checkout; luarocks test and remove for each (tests/rock/run.sh).
test-rock: deps
	bash tests/rock/run.sh

test-lifecycle: build
	bash tests/lifecycle/run.sh

# Memory errors (issue 12): native specs and a short differential run under
# valgrind memcheck; any invalid access fails (tests/memcheck/run.sh).
test-memcheck: build
	bash tests/memcheck/run.sh

test-vectors:
	python3 tests/vectors/check.py

# Overload (issue 7): digs faster than polls, both backends; see the script's header.
test-overload: build
	$(LUAJIT) tests/overload/overload.lua lua,native

# Fuzzing (issue 7): libFuzzer targets in fuzz/, built with stable cargo (no
# cargo-fuzz, no nightly; see fuzz/run.sh). fuzz-smoke runs each target
# FUZZ_SECONDS (3 targets); fuzz-long FUZZ_LONG_SECONDS each.
FUZZ_SECONDS ?= 25
FUZZ_LONG_SECONDS ?= 600
.PHONY: fuzz-smoke fuzz-long soak test-overload test-runtimes test-cluster bench-cluster deps-cluster
fuzz-smoke:
	bash fuzz/run.sh run $(FUZZ_SECONDS)
fuzz-long:
	bash fuzz/run.sh run $(FUZZ_LONG_SECONDS)

# Soak (issue 7): the harness at steady load on native for SOAK_SECONDS;
# fails on RSS/Lua heap growth past the script's bounds or any packet mismatch.
SOAK_SECONDS ?= 120
soak: build
	python3 tests/soak/soak.py --seconds $(SOAK_SECONDS)

# Benchmarks (speed and memory targets live here, not in tests): criterion
# micro-benchmarks of the core, per-call costs from LuaJIT, the game loop's
# floor per burst (bench/lua_floor.lua), then the harness,
# legacy and native back to back (bench/run.sh: 5 burst runs per backend judged
# on the worst, one beside a competing CPU load, a --workers sweep). Rewrites
# docs/BENCHMARKS.md and docs/latency.svg. BENCH_FLAGS="--small --quick" for a
# short validation run (with BENCH_DOC=... elsewhere, to keep the recorded doc).
BENCH_FLAGS ?=
bench: build
	$(CARGO) bench -p treasure-core --bench core
	$(LUAJIT) bench/call_cost.lua --md > build/call_cost.md
	python3 bench/micro.py build/call_cost.md
	$(LUAJIT) bench/lua_floor.lua | tee build/lua_floor.txt
	bash bench/run.sh $(BENCH_FLAGS)

# The user's example first (it exits 1 on a bad CRC, recipient or count),
# on both backends; then the harness (bench/harness.lua) on the best one.
demo: build
	TREASURE_BACKEND=legacy $(LUAJIT) examples/game_loop.lua
	TREASURE_BACKEND=native $(LUAJIT) examples/game_loop.lua
	$(LUAJIT) bench/harness.lua --seconds 10

clean:
	rm -rf build target dist doc

# Issue 15: the example servers (OpenResty from Debian's packages, unpacked
# into build/runtimes, never installed; luv) on 127.0.0.1, driven by real
# clients in another process that check every packet (tests/runtimes/run.sh).
test-runtimes: build
	timeout 300 bash tests/runtimes/run.sh

# Issue 17: cluster mode end to end. Debian's nats-server (JetStream) on a free
# 127.0.0.1 port, the single-server reference and 3 shard processes over the
# same seeded world (tests/cluster/world.lua), a kill -9 of a shard with its
# restore, a broker restart and duplicate publishes; every client's packets
# must equal the reference's (tests/cluster/run.py, check.py). First the
# checker's self-test (it must catch a lost, a duplicated, a reordered packet)
# and the world script against plain resolvers (no broker). Last line: JSON.
# (deps-cluster, above, installs nats-server when it is missing.)
test-cluster: deps-cluster build
	python3 tests/cluster/check.py --self-test
	timeout 120 python3 tests/cluster/run.py --emulate --ticks 400
	@# legacy's cluster mode through the same kill -9 + restore, over the
	@# test's file log (fake_cluster.lua's link; the native transport is native only)
	TREASURE_BACKEND=legacy timeout 120 python3 tests/cluster/run.py --fake-link --ticks 300
	timeout 180 python3 tests/cluster/run.py

# The latency figures of issue 17 (dig -> remote packet pollable, loopback):
# 12,000 players, steady 20 Hz, one 12,000-dig burst with cross-shard recipients.
bench-cluster: deps-cluster build
	timeout 400 python3 tests/cluster/run.py --latency
