# treasure-resolver: every target installs what it needs first (Debian 12).
#   make demo   - install, build, run the game-server harness ~10 s on the best backend
#   make test   - install, build, run every test (cargo, busted on both backends, differential, vectors)
#   make bench  - criterion benches + harness legacy vs native, rewrites docs/BENCHMARKS.md and the plot
SHELL := /bin/bash
APT_PKGS := luajit libluajit-5.1-dev luarocks lua-busted valgrind
CARGO ?= cargo
LUAJIT ?= luajit
export LUA_PATH := $(CURDIR)/lua/?.lua;$(CURDIR)/lua/?/init.lua;$(CURDIR)/tests/lua/?.lua;;
export LUA_CPATH := $(CURDIR)/build/?.so;;
NATIVE_SO := build/treasure/native.so

.PHONY: deps build test test-rust test-lua test-diff test-swap test-model test-vectors test-lifecycle test-memcheck test-rock demo bench clean

# Install Debian packages only when one is missing (idempotent, no apt-get otherwise).
deps:
	@missing=""; for p in $(APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

build: deps
	$(CARGO) build --release -p treasure-native --no-default-features --features luajit,module
	@mkdir -p build/treasure
	@# copy then rename: never rewrite a .so in place under a running process
	cp target/release/libtreasure_native.so $(NATIVE_SO).tmp && mv -f $(NATIVE_SO).tmp $(NATIVE_SO)

test: build test-rust test-lua test-diff test-swap test-model test-vectors test-lifecycle test-overload test-memcheck test-rock test-runtimes fuzz-smoke

test-rust:
	$(CARGO) test --workspace

# Every spec runs against both backends; the second run takes native's
# mlua path only (the FFI fast path off), so both call paths are covered.
test-lua: deps build
	TREASURE_TEST_BACKENDS=lua,native $(LUAJIT) /usr/bin/busted --lpath='$(CURDIR)/tests/lua/?.lua' tests/lua
	TREASURE_NATIVE_FFI=0 TREASURE_TEST_BACKENDS=native $(LUAJIT) /usr/bin/busted --lpath='$(CURDIR)/tests/lua/?.lua' tests/lua

# Differential: legacy vs native, worker counts cycling 1,2,4,8; then again
# with tiny internal queues (chunks of 1-3 digs, 1-4 chunks in flight).
test-diff: build
	timeout 900 $(LUAJIT) tests/diff/run.lua --backends lua,native --sequences 200 --calls 2000 --workers 1,2,4,8
	timeout 900 $(LUAJIT) tests/diff/run.lua --backends lua,native --sequences 100 --calls 2000 --workers 1,2,4,8 --tiny --seed 100001
	TREASURE_NATIVE_FFI=0 timeout 900 $(LUAJIT) tests/diff/run.lua --backends lua,native --sequences 50 --calls 2000 --seed 200001

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

# LuaRocks: install into a temporary tree, run the suite against the installed copy.
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
.PHONY: fuzz-smoke fuzz-long soak test-overload test-runtimes
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
# micro-benchmarks of the core, per-call costs from LuaJIT, then the harness,
# legacy and native back to back. Rewrites docs/BENCHMARKS.md and docs/latency.svg.
bench: build
	$(CARGO) bench -p treasure-core --bench core
	$(LUAJIT) bench/call_cost.lua --md > build/call_cost.md
	python3 bench/micro.py build/call_cost.md
	bash bench/run.sh

demo: build
	$(LUAJIT) examples/harness.lua --seconds 10

clean:
	rm -rf build target

# Issue 15: the example servers (OpenResty from Debian's packages, unpacked
# into build/runtimes, never installed; luv) on 127.0.0.1, driven by real
# clients in another process that check every packet (tests/runtimes/run.sh).
test-runtimes: build
	timeout 300 bash tests/runtimes/run.sh
