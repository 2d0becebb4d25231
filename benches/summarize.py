#!/usr/bin/env python3
"""Tabulates the layer bench from target/criterion: for each mode, the median
over rounds of each case's criterion median, its overhead over `bare` (the
median over rounds of case - bare, both from the same round), the spread of
that overhead over rounds, and the ratio to the best peer's overhead.

    python3 benches/summarize.py [MODE ...]      # MODE: single, contended

Rounds are the groups `MODE-rNN` written by `benches/layer.rs`. Only the
latest run of each case counts: its rounds written no earlier than its round
1. Overheads are taken within a round, against that round's `bare`.
"""
import json
import pathlib
import re
import statistics
import sys

root = pathlib.Path(__file__).resolve().parent.parent / "target" / "criterion"
modes = sys.argv[1:] or ["single", "contended"]
OURS = "DrainLayer"  # every case whose name starts with it is ours
REFERENCE = "sketch"  # a reference point, not a peer users pick
SAME_RUN = 120  # seconds: results further apart than this are from two runs


def latest_rounds(mode):
    """The rounds of the latest run of `mode`, as {case: median ns} each.

    A case's rounds of the latest run are those written no earlier than its
    round 1, so a run that measured only some cases (a filter) replaces
    theirs and leaves the others as they were.
    """
    dirs = sorted(
        d for d in root.glob(f"{mode}-r*") if re.fullmatch(rf"{mode}-r\d+", d.name)
    )
    started = {}
    rounds = []
    for d in dirs:
        rows = {}
        for est in d.glob("*/new/estimates.json"):
            bench = json.loads((est.parent / "benchmark.json").read_text())
            case = bench["value_str"] or bench["function_id"]
            written = est.stat().st_mtime
            started.setdefault(case, written)
            if written >= started[case] - 1:
                median = json.loads(est.read_text())["median"]["point_estimate"]
                rows[case] = (median, written)
        # A case counts in a round only if it ran with that round's `bare`
        # (a round takes seconds; runs are minutes apart).
        bare = rows.get("bare")
        rounds.append(
            {
                case: median
                for case, (median, written) in rows.items()
                if bare is not None and abs(written - bare[1]) < SAME_RUN
            }
        )
    return rounds


for mode in modes:
    rounds = [r for r in latest_rounds(mode) if "bare" in r]
    if not rounds:
        continue
    cases = sorted({c for r in rounds for c in r})
    median = {c: statistics.median(r[c] for r in rounds if c in r) for c in cases}
    overheads = {c: [r[c] - r["bare"] for r in rounds if c in r] for c in cases}
    over = {c: statistics.median(v) for c, v in overheads.items()}
    peers = [
        v
        for c, v in over.items()
        if c != "bare" and not c.startswith(OURS) and REFERENCE not in c
    ]
    best = min(peers) if peers else None
    unit = "ns per request" + (" per thread" if mode == "contended" else "")
    counts = sorted({len(v) for v in overheads.values()})
    n = "/".join(map(str, counts))
    print(f"\n{mode}: {n} rounds, medians over rounds, {unit}")
    print(
        f"| {'case':<46} | {'median':>6} | {'overhead':>8} | "
        f"{'over rounds':>15} | {'vs best peer':>12} |"
    )
    print(f"|{'-' * 48}|{'-' * 7}:|{'-' * 9}:|{'-' * 16}:|{'-' * 13}:|")
    for c in sorted(cases, key=lambda c: over[c]):
        spread = "" if c == "bare" else f"{min(overheads[c]):+.1f} .. {max(overheads[c]):+.1f}"
        ratio = f"{over[c] / best:.2f}x" if best and c != "bare" else ""
        name = f"**{c}**" if c.startswith(OURS) else (f"*{c}*" if REFERENCE in c else c)
        print(
            f"| {name:<46} | {median[c]:6.1f} | {over[c]:+8.1f} | "
            f"{spread:>15} | {ratio:>12} |"
        )
