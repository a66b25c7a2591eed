#!/usr/bin/env python3
"""bench/plot.py: latency distributions of the harness runs (docs/latency.svg).

    python3 bench/plot.py --out docs/latency.svg lat-lua-steady.txt lat-native-burst.txt ...

Each input is a file written by `bench/harness.lua --latency-out FILE`
(one dig latency in ms per line), named lat-<backend>-<scenario>.txt. Draws
one panel per scenario with the CDF of every backend on a log x axis, and
marks the 2 ms / 8 ms / 20 ms limits of the targets.
"""
import argparse
import os
import re
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

COLORS = {"lua": "#d62728", "native": "#1f77b4"}
NAMES = {"lua": "legacy", "native": "native"}
TITLES = {"steady": "steady 20 Hz load", "burst": "12,000-dig burst (every run pooled)"}
LIMITS = {"steady": [(2, "p99 target 2 ms"), (20, "deadline 20 ms")],
          "burst": [(8, "p99 target 8 ms"), (20, "deadline 20 ms")]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("files", nargs="*")
    a = ap.parse_args()
    data = {}
    for f in a.files:
        m = re.match(r"lat-([a-z]+)-([\w-]+)\.txt$", os.path.basename(f))
        if not m:
            sys.exit(f"plot.py: cannot tell backend/scenario from {f}")
        v = np.loadtxt(f, ndmin=1) if os.path.getsize(f) > 0 else np.array([])
        data.setdefault(m.group(2), {})[m.group(1)] = v
    scen = [s for s in ("steady", "burst") if s in data] + sorted(s for s in data if s not in ("steady", "burst"))
    if not scen:
        sys.exit("plot.py: no latency files")
    fig, axes = plt.subplots(1, len(scen), figsize=(6.4 * len(scen), 4.6), squeeze=False)
    for ax, s in zip(axes[0], scen):
        lo, hi = np.inf, 0
        for b in ("lua", "native"):
            v = data[s].get(b)
            if v is None or v.size == 0:
                continue
            v = np.sort(np.clip(v, 1e-3, None))
            n = v.size
            # at most ~2000 points per curve: quantiles at log-spaced ranks + the tail exactly
            if n > 2000:
                idx = np.unique(np.concatenate([
                    np.linspace(0, n - 1, 1500).astype(int),
                    (n - np.geomspace(1, n, 500)).astype(int).clip(0, n - 1),
                ]))
            else:
                idx = np.arange(n)
            y = (idx + 1) / n
            ax.step(v[idx], y, where="post", color=COLORS.get(b), lw=1.6,
                    label=f"{NAMES.get(b, b)}: p50 {np.percentile(v, 50):.3g}, "
                          f"p99 {np.percentile(v, 99):.3g}, max {v[-1]:.3g} ms ({n:,} digs)")
            lo, hi = min(lo, v[0]), max(hi, v[-1])
        limits = LIMITS.get(s, [(20, "deadline 20 ms")])
        ax.set_xscale("log")
        if hi > 0:
            ax.set_xlim(max(min(lo / 1.5, limits[0][0] / 4), 1e-3), max(hi * 1.5, 40))
        for x, txt in limits:
            ax.axvline(x, color="0.4", ls="--", lw=0.9)
            ax.text(x, 0.5, txt + " ", rotation=90, va="center", ha="right", fontsize=8, color="0.3")
        ax.set_ylim(0, 1.0)
        ax.set_xlabel("dig latency: dig_batch → last packet polled (ms, log)")
        ax.set_ylabel("fraction of digs ≤ x")
        ax.set_title(TITLES.get(s, s))
        ax.grid(True, which="both", alpha=0.25)
        ax.legend(loc="lower right", fontsize=7.5, framealpha=0.9)
    fig.suptitle("treasure harness: latency CDF, 12,000 players, 100,000 sites", fontsize=11)
    fig.tight_layout()
    fig.savefig(a.out, metadata={"Date": None} if a.out.endswith(".svg") else None)
    print(f"plot.py: wrote {a.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
