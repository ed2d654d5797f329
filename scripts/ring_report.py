#!/usr/bin/env python3
"""Prints the ring's measured numbers from ringattn results files as tables:
peak memory against the model, bytes sent against the analytic minimum, and
per-member compute balance. Used by scripts/ring_report.sh.

    /usr/bin/python3 scripts/ring_report.py results1.yaml [results2.yaml ...]
"""
import sys

import yaml


def mib(x):
    return f"{x / 2**20:.1f}"


def main(paths):
    print("| run | N | ring | partition | median s | peak MiB | baseline MiB | model MiB |"
          " (peak-baseline)/model | sent MiB (max) | minimum MiB (max) | hops made/skipped |"
          " compute max/mean |")
    print("| --- " * 13 + "|")
    for path in paths:
        with open(path) as f:
            r = yaml.safe_load(f)
        c, m, comm, bal = r["config"], r["memory"], r["communication"], r["balance"]
        peak = max(m["peak_bytes_per_member"])
        print(f"| {path.split('/')[-1].replace('_results.yaml', '')} | {c['problem']['seq_len']} "
              f"| {r['ring']['mode']} x{r['ring']['size']} | {r['ring']['partition']} "
              f"| {r['timing']['median_s']:.3f} | {mib(peak)} | {mib(m['baseline_bytes'])} "
              f"| {mib(m['model_bytes_per_member'])} | {m['peak_over_baseline_to_model']:.2f} "
              f"| {mib(max(comm['bytes_sent_per_member']))} | {mib(comm['model_bytes_per_member'])} "
              f"| {comm['hops_made']}/{comm['hops_skipped']} | {bal['max_over_mean']:.2f} |")


if __name__ == "__main__":
    main(sys.argv[1:])
