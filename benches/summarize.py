#!/usr/bin/env python3
"""Tabulates criterion's medians from target/criterion: each case against the
group's `bare` case (overhead) and the best peer (ratio).

    python3 benches/summarize.py [GROUP ...]
"""
import json
import pathlib
import sys

root = pathlib.Path(__file__).resolve().parent.parent / "target" / "criterion"
groups = sys.argv[1:] or ["single", "contended"]
OURS = "DrainLayer"  # every case whose name starts with it is ours
REFERENCE = "sketch"  # a reference point, not a peer users pick

for group in groups:
    gdir = root / group
    if not gdir.is_dir():
        continue
    rows = {}
    for est in gdir.glob("*/new/estimates.json"):
        bench = json.loads((est.parent / "benchmark.json").read_text())
        median = json.loads(est.read_text())["median"]["point_estimate"]
        rows[bench["value_str"] or bench["function_id"]] = median
    bare = rows.get("bare")
    peers = [v - bare for k, v in rows.items() if bare is not None and not k.startswith(OURS) and REFERENCE not in k and k != "bare"]
    best = min(peers) if peers else None
    print(f"\n{group}: median ns per request" + (" per thread" if group == "contended" else ""))
    print(f"| {'case':<30} | {'median':>8} | {'overhead':>8} | {'vs best peer':>12} |")
    print(f"|{'-' * 32}|{'-' * 10}|{'-' * 10}|{'-' * 14}|")
    for name, v in sorted(rows.items(), key=lambda kv: kv[1]):
        over = v - bare if bare is not None else float("nan")
        ratio = f"{over / best:.2f}x" if best and name != "bare" else ""
        print(f"| {name:<30} | {v:8.1f} | {over:+8.1f} | {ratio:>12} |")
