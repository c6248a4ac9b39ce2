#!/usr/bin/env python3
"""Turns the bench.sh results in OUT into the Markdown tables of BENCHMARKS.md."""
import glob
import json
import statistics
import sys

out = sys.argv[1]


def merged(name):
    """Each command's run times and exit codes over every round (NAME.N.json) of a table."""
    res = {}
    for path in sorted(glob.glob(f"{out}/{name}.json") + glob.glob(f"{out}/{name}.*.json")):
        try:
            data = json.load(open(path))
        except (OSError, ValueError):
            continue
        for r in data["results"]:
            m = res.setdefault(r["command"], {"times": [], "exit_codes": []})
            m["times"] += r["times"]
            m["exit_codes"] += r.get("exit_codes", [])
    return res


def table(name):
    res = merged(name)
    if not res:
        print(f"\n{name}: no results (see {out}/{name}.txt)")
        return
    for v in res.values():
        v["mean"] = statistics.mean(v["times"])
        v["min"] = min(v["times"])
    med = {k: statistics.median(v["times"]) * 1000 for k, v in res.items()}
    fails = {k: sum(1 for c in v["exit_codes"] if c) for k, v in res.items()}
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
table("root-v1ns-idle")
table("rootless")
try:
    print("\n### peak RSS (KiB)\n")
    for line in open(f"{out}/rss.txt"):
        print(f"- {line.strip()}")
except OSError:
    pass
