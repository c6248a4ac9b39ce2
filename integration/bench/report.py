#!/usr/bin/env python3
"""Turns the bench.sh results in OUT into the Markdown tables of BENCHMARKS.md."""
import json
import statistics
import sys

out = sys.argv[1]


def table(name):
    try:
        data = json.load(open(f"{out}/{name}.json"))
    except (OSError, ValueError):
        print(f"\n{name}: no results (see {out}/{name}.txt)")
        return
    res = {r["command"]: r for r in data["results"]}
    med = {k: statistics.median(v["times"]) * 1000 for k, v in res.items()}
    fails = {k: sum(1 for c in v.get("exit_codes", []) if c) for k, v in res.items()}
    print(f"\n### {name}\n")
    print("| command | median ms | mean ms | min ms | runs | non-zero exits | ratio to crun |")
    print("|---|---|---|---|---|---|---|")
    crun = med.get("crun")
    for k, v in res.items():
        ratio = f"{med[k] / crun:.2f}" if crun else "-"
        print(
            f"| {k} | {med[k]:.2f} | {v['mean'] * 1000:.2f} | {v['min'] * 1000:.2f} | "
            f"{len(v['times'])} | {fails[k]} | {ratio} |"
        )
    if crun and "crun-wrapper-cost" in med:
        adj = crun - med["crun-wrapper-cost"]
        if "husk" in med and adj > 0:
            print(f"\ncrun minus its wrapper's cost: {adj:.2f} ms; husk / that = {med['husk'] / adj:.2f}")


table("root")
table("root-v1ns")
table("rootless")
try:
    print("\n### peak RSS (KiB)\n")
    for line in open(f"{out}/rss.txt"):
        print(f"- {line.strip()}")
except OSError:
    pass
