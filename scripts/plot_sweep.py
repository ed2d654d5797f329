#!/usr/bin/env python3
"""Plots a ringattn sweep CSV (output.csv of a deck with a `sweep:` section).

    /usr/bin/python3 scripts/plot_sweep.py inputs/results/strong_scaling.csv [-o OUT.png]

Writes one PNG (default: the CSV's name with .png) with time, throughput and
memory per member against the sequence length (a line per ring size) and
against the ring size (a line per sequence length). Needs matplotlib only
(Debian: python3-matplotlib).
"""
import argparse
import csv
import os
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

METRICS = [
    ("median_s", "median time [s]", 1.0),
    ("gflops", "throughput [GFLOP/s]", 1.0),
    ("above_baseline", "peak memory per member above the\nprocess baseline [MiB]", 1.0 / 2**20),
]


def load(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        sys.exit(f"{path}: no rows")
    for r in rows:
        for k in ("seq_len", "ring_size"):
            r[k] = int(r[k])
        r["above_baseline"] = int(r["peak_bytes_max"]) - int(r["baseline_bytes"])
    return rows


def series(rows, x_key, group_key, metric, scale):
    groups = defaultdict(list)
    for r in rows:
        groups[r[group_key]].append((r[x_key], float(r[metric]) * scale))
    return {g: sorted(v) for g, v in sorted(groups.items())}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("csv")
    ap.add_argument("-o", "--output")
    args = ap.parse_args()
    rows = load(args.csv)
    out = args.output or os.path.splitext(args.csv)[0] + ".png"

    fig, axes = plt.subplots(2, len(METRICS), figsize=(5 * len(METRICS), 8), squeeze=False)
    for col, (metric, label, scale) in enumerate(METRICS):
        for row, (x_key, group_key, x_label) in enumerate(
            [("seq_len", "ring_size", "sequence length N"), ("ring_size", "seq_len", "ring size")]
        ):
            ax = axes[row][col]
            for group, points in series(rows, x_key, group_key, metric, scale).items():
                xs, ys = zip(*points)
                name = "R" if group_key == "ring_size" else "N"
                ax.plot(xs, ys, marker="o", label=f"{name}={group}")
            if metric == "above_baseline":
                model = series(rows, x_key, group_key, "model_bytes_per_member", scale)
                for group, points in model.items():
                    xs, ys = zip(*points)
                    ax.plot(xs, ys, linestyle="--", color="gray", linewidth=0.8)
            ax.set_xscale("log", base=2)
            ax.set_xlabel(x_label)
            ax.set_ylabel(label)
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=7)
    fig.suptitle(f"{os.path.basename(args.csv)} (dashed: the memory model)")
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    print(out)


if __name__ == "__main__":
    main()
