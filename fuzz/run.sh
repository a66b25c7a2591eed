#!/usr/bin/env bash
# Builds the fuzz targets with stable cargo and runs each for a time budget.
#
#   bash fuzz/run.sh build                       # build all targets
#   bash fuzz/run.sh run SECONDS [target...]     # build, then fuzz each target SECONDS
#
# No cargo-fuzz and no nightly needed: libfuzzer-sys compiles libFuzzer (g++)
# and provides main(); the SanitizerCoverage instrumentation libFuzzer feeds
# on comes from stable rustc flags (the same ones cargo-fuzz passes, minus
# its -Z sanitizer flag: these targets are safe Rust, so there is nothing
# for AddressSanitizer to add). `--target <host>` keeps RUSTFLAGS off build
# scripts and proc macros, as cargo-fuzz does.
#
# Corpus: fuzz/corpus/<target> (gitignored, grows across runs), seeded from
# the committed fuzz/seeds/<target>. Crashes: fuzz/artifacts/<target>/, and
# the exit status is non-zero; the last run's full log is
# fuzz/artifacts/<target>/fuzz.log. Extra libFuzzer flags: FUZZ_FLAGS="...".
# Prints "fuzz: N passed, M failed" last.
set -euo pipefail
cd "$(dirname "$0")"
TARGETS=(batch_records packet_decode call_sequence)
HOST=$(rustc -vV | sed -n 's/^host: //p')
export RUSTFLAGS="${RUSTFLAGS:-} -Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares -Cdebug-assertions -Coverflow-checks --cfg fuzzing"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
BIN="$CARGO_TARGET_DIR/$HOST/release"

build() { cargo build --release --target "$HOST" --bins; }

case "${1:-}" in
  build) build ;;
  run)
    secs=${2:?seconds}; shift 2
    [ $# -gt 0 ] || set -- "${TARGETS[@]}"
    build
    pass=0; fail=0
    for t in "$@"; do
      mkdir -p "corpus/$t" "artifacts/$t" "seeds/$t"
      echo "== fuzz $t for ${secs}s =="
      log="artifacts/$t/fuzz.log"   # the whole libFuzzer log of the last run
      # -timeout: one input taking 10 s is a hang; -rss_limit_mb: a leak.
      if "$BIN/$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
           -artifact_prefix="artifacts/$t/" ${FUZZ_FLAGS:-} "corpus/$t" "seeds/$t" >"$log" 2>&1; then
        pass=$((pass+1))
        grep -E '^#[0-9]+[[:space:]]+(INITED|DONE)|^stat::(number_of_executed_units|average_exec_per_sec|new_units_added|peak_rss_mb)' "$log" | sed 's/^/  /'
        echo "ok   $t: $(ls "corpus/$t" | wc -l) corpus files"
      else
        fail=$((fail+1))
        tail -n 60 "$log" | sed 's/^/  /'
        echo "FAIL $t: see fuzz/artifacts/$t/"
      fi
    done
    echo "fuzz: $pass passed, $fail failed"
    [ "$fail" -eq 0 ]
    ;;
  *) sed -n '2,17p' "$0"; exit 2 ;;
esac
