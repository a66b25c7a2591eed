#!/usr/bin/env python3
"""Soak (issue 7, part 4): the game-server harness at steady load on the
native backend for a bounded time, watched from outside.

    python3 tests/soak/soak.py [--seconds S] [--json-out FILE] [-- harness flags]

(from the repo root after `make build`; `make soak` runs it, SOAK_SECONDS=
sets S, default 120). It runs

    luajit bench/harness.lua --backend native --seconds S --json --quiet
        --heap-checkpoint C --burst 200 --burst-every 20 [harness flags]

i.e. the 12,000-player, 100,000-site world at 20 Hz in real time, 20 random
digs a tick plus a burst of 200 digs every second, the send loop draining
with poll_into. C = max(30, S/4) simulated seconds: the warm-up after which
growth is judged. Meanwhile this script reads the harness's VmRSS from
/proc/<pid>/status every second.

Reported and checked (exit 1 on any failure):
* RSS slope: least-squares fit of VmRSS over the samples after the warm-up,
  in MB per minute: must be <= --max-rss-slope (2.0 MB/min); and the warm
  RSS may not grow by more than --max-rss-growth (16 MB) from the first
  warm sample to the highest later one;
* Lua heap slope: the harness's full-GC heap readings at C and at the end
  (lua_heap_kb_checkpoint, lua_heap_kb_end), in kB per minute; the growth
  must be <= --max-heap-growth (256 kB) in all;
* packet accounting: the harness counts every packet it polls and, at the
  end, compares its counts with the resolver's stats(): packets produced ==
  packets polled, digs accepted == digs completed, kinds, busy, and
  pending_packets == 0 (stats_mismatches); plus its stream checks (order,
  gaps, digger, kind, sampled decode with CRC). All must be 0, and packets
  and digs must be > 0.
The harness is killed if it runs past S + 600 s (bounded). It runs from a
snapshot of lua/, bench/harness.lua (with bench/harness/) and build/treasure/native.so in a
temporary directory, so rebuilding during a long soak cannot disturb it.
Prints "soak: 1 passed, 0 failed" (or 0/1) last.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def slope(points):
    """Least-squares slope of (t, v) points, v per t unit."""
    n = len(points)
    if n < 2:
        return 0.0
    mt = sum(t for t, _ in points) / n
    mv = sum(v for _, v in points) / n
    den = sum((t - mt) ** 2 for t, _ in points)
    return sum((t - mt) * (v - mv) for t, v in points) / den if den else 0.0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=float(os.environ.get("SOAK_SECONDS", 120)))
    ap.add_argument("--max-rss-slope", type=float, default=2.0, help="MB per minute")
    ap.add_argument("--max-rss-growth", type=float, default=16.0, help="MB")
    ap.add_argument("--max-heap-growth", type=float, default=256.0, help="kB")
    ap.add_argument("--json-out", help="write the result (with the RSS samples) here")
    ap.add_argument("harness_args", nargs="*")
    a = ap.parse_args()
    secs = a.seconds
    ck = max(30.0, round(secs / 4))
    if secs < ck + 30:
        sys.exit("soak: --seconds must be >= 60")
    # Run from a snapshot of lua/, the harness and native.so: a `make build`
    # elsewhere during a long soak must not rewrite the mapped module.
    snap = tempfile.mkdtemp(prefix="treasure-soak-")
    shutil.copytree(os.path.join(ROOT, "lua"), os.path.join(snap, "lua"))
    os.makedirs(os.path.join(snap, "build", "treasure"))
    shutil.copy(os.path.join(ROOT, "build", "treasure", "native.so"), os.path.join(snap, "build", "treasure"))
    os.makedirs(os.path.join(snap, "bench"))
    shutil.copy(os.path.join(ROOT, "bench", "harness.lua"), os.path.join(snap, "bench"))
    shutil.copytree(os.path.join(ROOT, "bench", "harness"), os.path.join(snap, "bench", "harness"))
    env = dict(os.environ)
    env["LUA_PATH"] = f"{snap}/lua/?.lua;{snap}/lua/?/init.lua;;"
    env["LUA_CPATH"] = f"{snap}/build/?.so;;"
    cmd = ["luajit", "bench/harness.lua", "--backend", "native", "--seconds", f"{secs:g}",
           "--json", "--quiet", "--heap-checkpoint", f"{ck:g}", "--burst", "200",
           "--burst-every", "20"] + a.harness_args
    print("soak: " + " ".join(cmd), flush=True)
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, cwd=snap, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    samples = []  # (seconds since start, kB)
    deadline = t0 + secs + 600
    next_print = t0 + 60
    while p.poll() is None:
        now = time.monotonic()
        if now > deadline:
            p.kill()
            break
        v = rss_kb(p.pid)
        if v:
            samples.append((now - t0, v))
        if now >= next_print:
            print(f"soak: {now - t0:6.0f} s, RSS {v / 1024 if v else 0:.1f} MB", flush=True)
            next_print += 60
        time.sleep(1.0)
    out, err = p.communicate()
    shutil.rmtree(snap, ignore_errors=True)
    wall = time.monotonic() - t0
    failures = []
    res = None
    for line in reversed(out.splitlines()):
        if line.startswith("{"):
            res = json.loads(line)
            break
    if p.returncode != 0 or res is None:
        failures.append(f"harness exit status {p.returncode}")
        sys.stdout.write(out[-4000:])
        sys.stderr.write(err[-4000:])
    # The warm part: setup (world building) comes first, then the run; the
    # checkpoint is in simulated seconds from the loop start, so judge RSS
    # from setup_s + C on.
    setup = res.get("setup_s", 0) if res else 0
    warm = [(t, v) for t, v in samples if t >= setup + ck]
    rss_slope = slope([(t / 60, v / 1024) for t, v in warm])  # MB/min
    rss_growth = (max(v for _, v in warm) - warm[0][1]) / 1024 if warm else 0.0
    if len(warm) < 10:
        failures.append(f"only {len(warm)} warm RSS samples")
    if rss_slope > a.max_rss_slope:
        failures.append(f"RSS slope {rss_slope:.3f} MB/min > {a.max_rss_slope}")
    if rss_growth > a.max_rss_growth:
        failures.append(f"warm RSS grew {rss_growth:.1f} MB > {a.max_rss_growth}")
    summary = {"seconds": secs, "checkpoint_s": ck, "wall_s": round(wall, 1),
               "rss_slope_mb_per_min": round(rss_slope, 4), "rss_warm_growth_mb": round(rss_growth, 2),
               "rss_first_warm_mb": round(warm[0][1] / 1024, 1) if warm else None,
               "rss_last_mb": round(samples[-1][1] / 1024, 1) if samples else None,
               "rss_samples": len(samples)}
    if res:
        heap_growth = res["lua_heap_kb_end"] - res["lua_heap_kb_checkpoint"]
        heap_slope = heap_growth / ((secs - ck) / 60)
        if res["lua_heap_kb_checkpoint"] < 0:
            failures.append("no heap checkpoint reading")
        if heap_growth > a.max_heap_growth:
            failures.append(f"Lua heap grew {heap_growth:.1f} kB after the warm-up > {a.max_heap_growth}")
        for k in ("errors", "stats_mismatches", "order_errors", "gap_errors", "digger_errors",
                  "kind_errors", "decode_errors"):
            if res.get(k, 1) != 0:
                failures.append(f"{k} = {res.get(k)}")
        if res["packets"] <= 0 or res["digs"] <= 0:
            failures.append("no packets or no digs")
        summary.update({
            "lua_heap_kb_checkpoint": res["lua_heap_kb_checkpoint"], "lua_heap_kb_end": res["lua_heap_kb_end"],
            "lua_heap_growth_kb": round(heap_growth, 3), "lua_heap_slope_kb_per_min": round(heap_slope, 3),
            "digs": res["digs"], "packets_polled": res["packets"], "stats_mismatches": res["stats_mismatches"],
            "errors": res["errors"], "busy": res["busy"], "decoded": res["decoded"],
            "peak_rss_mb": res["peak_rss_mb"], "p99_ms": res["p99_ms"], "max_ms": res["max_ms"],
            "misses_20ms": res["misses_20ms"], "tick_overruns": res["tick_overruns"],
            "cpu_s": res["cpu_s"], "loadavg_1m": res["loadavg_1m"], "setup_s": res["setup_s"]})
        print(f"soak: {res['digs']} digs, {res['packets']} packets polled = stats().packets "
              f"({res['stats_mismatches']} stats() mismatches, {res['errors']} check errors, "
              f"{res['decoded']} packets decoded with CRC), busy {res['busy']}")
        print(f"soak: Lua heap {res['lua_heap_kb_checkpoint']:.1f} kB at {ck:g} s -> "
              f"{res['lua_heap_kb_end']:.1f} kB at the end (full GC): {heap_growth:+.1f} kB, "
              f"{heap_slope:+.3f} kB/min (bound {a.max_heap_growth:g} kB)")
    print(f"soak: RSS {summary['rss_first_warm_mb']} MB at warm-up -> {summary['rss_last_mb']} MB, "
          f"slope {rss_slope:+.4f} MB/min over {len(warm)} samples (bound {a.max_rss_slope:g}), "
          f"warm growth {rss_growth:.1f} MB (bound {a.max_rss_growth:g})")
    summary["failures"] = failures
    if a.json_out:
        summary["samples"] = samples
        with open(a.json_out, "w") as f:
            json.dump(summary, f)
    for m in failures:
        print("soak: FAIL " + m)
    print(f"soak: {0 if failures else 1} passed, {1 if failures else 0} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
