#!/usr/bin/env python3
"""Rewrites the micro-benchmark sections of docs/BENCHMARKS.md (issue 3 and 4):

* between <!-- criterion:begin --> and <!-- criterion:end -->: the median of
  every criterion benchmark of treasure-core, read from
  target/criterion/*/*/new/estimates.json (run `cargo bench -p treasure-core` first);
* between <!-- calls:begin --> and <!-- calls:end -->: the per-call cost
  table printed by `luajit bench/call_cost.lua --md` (given on stdin or as a file).

Everything outside the markers is kept. A missing section is appended.
Usage: python3 bench/micro.py CALLS_MD_FILE
"""
import glob
import json
import os
import re
import subprocess
import sys
from datetime import datetime, timezone

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC = os.path.join(ROOT, "docs", "BENCHMARKS.md")


def fmt_ns(ns):
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.2f} µs"
    return f"{ns:.1f} ns"


def machine():
    """This machine as bench/report.py describes it (one reader of /proc)."""
    out = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "report.py"), "meta"],
                         capture_output=True, text=True, check=True).stdout
    m = json.loads(out.strip().splitlines()[-1])
    load = os.getloadavg()[0]
    return f"{m['cpu']}, nproc = {m['nproc']}, kernel {m['kernel']}, load average {load:.2f} at the end"


def criterion_section():
    rows = []
    for est in sorted(glob.glob(os.path.join(ROOT, "target", "criterion", "*", "*", "new", "estimates.json"))):
        parts = est.split(os.sep)
        group, name = parts[-4], parts[-3]
        with open(est) as f:
            e = json.load(f)
        med = e["median"]["point_estimate"]
        lo = e["median"]["confidence_interval"]["lower_bound"]
        hi = e["median"]["confidence_interval"]["upper_bound"]
        rows.append(f"| `{group}/{name}` | {fmt_ns(med)} | {fmt_ns(lo)} – {fmt_ns(hi)} |")
    if not rows:
        raise SystemExit("bench/micro.py: no criterion results under target/criterion (run cargo bench first)")
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return "\n".join([
        "## Core hot paths (criterion)",
        "",
        f"Measured {when} on {machine()}. Reproduce: `make bench` "
        "(or `cargo bench -p treasure-core --bench core`). Medians with criterion's 95% interval.",
        "",
        "| benchmark | median | 95% CI of the median |",
        "|---|---:|---:|",
        *rows,
    ])


def calls_section(table):
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return "\n".join([
        "## Crossing cost: one call from LuaJIT",
        "",
        f"Measured {when} on {machine()}, both backends in one run: "
        "`luajit bench/call_cost.lua --md` (with the LUA_PATH/LUA_CPATH of the README). "
        "Each figure is the median of 7 timed loops from a LuaJIT loop; digs are to a "
        "block with no site (one packet), drained outside the timed loops. The native "
        "`move`/`dig`/batches go through the FFI fast path (docs/API.md); with "
        "`TREASURE_NATIVE_FFI=0` they take the classic Lua C API (mlua) path.",
        "",
        table.strip(),
    ])


def replace(doc, name, body):
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    block = f"{begin}\n{body}\n{end}"
    pat = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.S)
    if pat.search(doc):
        return pat.sub(lambda _: block, doc)
    return doc.rstrip("\n") + "\n\n" + block + "\n"


def main():
    calls = open(sys.argv[1]).read() if len(sys.argv) > 1 else sys.stdin.read()
    with open(DOC) as f:
        doc = f.read()
    doc = replace(doc, "criterion", criterion_section())
    doc = replace(doc, "calls", calls_section(calls))
    with open(DOC, "w") as f:
        f.write(doc)
    print(f"bench/micro.py: rewrote the criterion and calls sections of {os.path.relpath(DOC, ROOT)}")


if __name__ == "__main__":
    main()
