#!/usr/bin/env python3
"""Idle fleet, two builds in one run (issue 22): the daemon's CPU, % of one core, for fleets of
idle t3.micro cgroups with full buckets and with buckets filling from 0, for build A and
build B interleaved, so the ratio is measured under the same machine load.

sudo python3 bench/idle_ab.py --a OLD/burstd --b target/release/burstd [--sizes 1000,10000]
    [--seconds 30] [--runs 1]
Prints one JSON line per measurement and a table at the end.
"""
import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as bench  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--a", required=True)
    ap.add_argument("--b", required=True)
    ap.add_argument("--sizes", default="1000,10000")
    ap.add_argument("--seconds", type=int, default=30)
    ap.add_argument("--runs", type=int, default=1)
    a = ap.parse_args()
    rows = {}
    for n in [int(x) for x in a.sizes.split(",")]:
        for initial in (288, 0):
            for _ in range(a.runs):
                for label, binary in (("A", a.a), ("B", a.b)):
                    bench.BIN = Path(binary)
                    out = bench.bench_idle(n, 1, a.seconds, initial=initial)
                    cpu = out["cpu_pct"][0]
                    rows.setdefault((n, initial, label), []).append(cpu)
                    print(json.dumps({"n": n, "initial_credits": initial, "build": label, "cpu_pct": cpu}), flush=True)
    print("\n| N | buckets | A: CPU % of one core | B: CPU % of one core | B ÷ A |\n|---|---|---|---|---|")
    for n in sorted({k[0] for k in rows}):
        for initial in (288, 0):
            ca = statistics.median(rows[(n, initial, "A")])
            cb = statistics.median(rows[(n, initial, "B")])
            what = "full (288)" if initial else "filling from 0"
            print(f"| {n:,} | {what} | {ca:.2f} | {cb:.2f} | {cb / ca:.2f} |")


if __name__ == "__main__":
    main()
