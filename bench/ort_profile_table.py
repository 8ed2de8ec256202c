#!/usr/bin/env python3
"""Per-op-type time table from ONNX Runtime JSON profiles (SessionOptions.enableProfiling).

    python3 bench/ort_profile_table.py PROFILE.json [--runs-skip N] [--top K]

Sums the kernel time ("cat": "Node", names ending in _kernel_time) per op type over the session's
model_run events after the first N (warm-up) ones, and prints ms per run and share, then the top K
single nodes. Used to find where a train step's time goes (docs/performance.md).
"""
import json, sys, collections, argparse

ap = argparse.ArgumentParser()
ap.add_argument("profile")
ap.add_argument("--runs-skip", type=int, default=1)
ap.add_argument("--top", type=int, default=15)
a = ap.parse_args()
ev = json.load(open(a.profile))
runs = sorted([e for e in ev if e.get("cat") == "Session" and e.get("name") == "model_run"], key=lambda e: e["ts"])
if not runs:
    sys.exit("no model_run events in " + a.profile)
kept = runs[a.runs_skip:] or runs
spans = [(r["ts"], r["ts"] + r["dur"]) for r in kept]
def inside(ts):
    return any(s <= ts <= e for s, e in spans)
by_op = collections.Counter(); count = collections.Counter(); by_node = collections.Counter()
for e in ev:
    if e.get("cat") != "Node" or not e.get("name", "").endswith("_kernel_time"): continue
    if not inside(e["ts"]): continue
    op = e.get("args", {}).get("op_name", "?")
    by_op[op] += e["dur"]; count[op] += 1
    by_node[(e["name"][:-len("_kernel_time")], op)] += e["dur"]
n = len(kept)
total = sum(by_op.values())
run_ms = sum(r["dur"] for r in kept) / n / 1000
print(f"{n} runs, model_run {run_ms:.1f} ms/run, kernels {total/n/1000:.1f} ms/run")
print(f"{'op type':28s} {'nodes':>6s} {'ms/run':>9s} {'share':>6s}")
for op, d in by_op.most_common():
    print(f"{op:28s} {count[op]//n:6d} {d/n/1000:9.1f} {100*d/total:5.1f}%")
print(f"\ntop {a.top} nodes")
for (name, op), d in by_node.most_common(a.top):
    print(f"  {d/n/1000:8.1f} ms  {op:16s} {name}")
