#!/usr/bin/env bash
# Builds the fuzz targets with stable cargo and runs each for a time budget.
#
#   bash fuzz/run.sh build                       # build all targets
#   bash fuzz/run.sh run SECONDS [target...]     # build, then fuzz each target SECONDS
#   bash fuzz/run.sh merge                       # set-cover seeds + corpus into fuzz/seeds
#
# No cargo-fuzz and no nightly needed: libfuzzer-sys compiles libFuzzer (g++)
# and provides main(); the SanitizerCoverage instrumentation libFuzzer feeds
# on comes from stable rustc flags (the same ones cargo-fuzz passes, minus
# its -Zsanitizer=address: treasure-core forbids unsafe code, so only its
# dependencies could have memory errors for ASan to catch, and -Zsanitizer
# needs nightly). `--target <host>` keeps RUSTFLAGS off build scripts and
# proc macros, as cargo-fuzz does. (Edit this file by replacing it, not in
# place, while a run is going: bash reads a running script as it goes.)
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
      log=$(mktemp)   # moved to artifacts/$t/fuzz.log at the end (concurrent runs don't mix)
      # -timeout: one input taking 10 s is a hang; -rss_limit_mb: a leak.
      if "$BIN/$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
           -artifact_prefix="artifacts/$t/" ${FUZZ_FLAGS:-} "corpus/$t" "seeds/$t" >"$log" 2>&1; then
        pass=$((pass+1))
        grep -aE '^#[0-9]+[[:space:]]+(INITED|DONE)|^stat::(number_of_executed_units|average_exec_per_sec|new_units_added|peak_rss_mb)' "$log" | sed 's/^/  /' || true
        echo "ok   $t: $(ls "corpus/$t" | wc -l) corpus files"
      else
        fail=$((fail+1))
        tail -n 60 "$log" | sed 's/^/  /'
        echo "FAIL $t: see fuzz/artifacts/$t/"
      fi
      mv -f "$log" "artifacts/$t/fuzz.log"
    done
    echo "fuzz: $pass passed, $fail failed"
    [ "$fail" -eq 0 ]
    ;;
  merge)
    # Refresh the committed seeds: a small set of inputs from seeds + corpus
    # that keeps the features libFuzzer saw (-set_cover_merge=1).
    build
    for t in "${TARGETS[@]}"; do
      mkdir -p "corpus/$t" "seeds/$t"
      rm -rf "seeds/$t.new" && mkdir "seeds/$t.new"
      "$BIN/$t" -set_cover_merge=1 "seeds/$t.new" "seeds/$t" "corpus/$t" 2>&1 | grep -E '^MERGE-OUTER: [0-9]+ new files' || true
      rm -rf "seeds/$t" && mv "seeds/$t.new" "seeds/$t"
      echo "seeds/$t: $(ls "seeds/$t" | wc -l) files, $(du -sk "seeds/$t" | cut -f1) kB"
    done
    ;;
  *) sed -n '2,21p' "$0"; exit 2 ;;
esac
