#!/usr/bin/python3
"""Stratified disjoint samples of a labelled JSONL file: train, test and (optional) unlabelled.

For the CoDA proof on SpamAssassin (docs/coda.md): the same split for every method, small enough
for a shared 2-core machine. Each class keeps its share of the whole file in every sample; the
unlabelled sample (texts only, for `graft train --task coda-distill`) is disjoint from both.

  bench/jsonl_sample.py IN.jsonl OUT_DIR --train 600 --test 300 [--unlabelled 600] [--seed 42] [--label label]
"""
import argparse
import json
import pathlib
import random


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input")
    p.add_argument("out")
    p.add_argument("--train", type=int, required=True)
    p.add_argument("--test", type=int, required=True)
    p.add_argument("--unlabelled", type=int, default=0)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--label", default="label")
    a = p.parse_args()
    rows = [json.loads(line) for line in open(a.input, encoding="utf-8") if line.strip()]
    by = {}
    for r in rows:
        by.setdefault(r[a.label], []).append(r)
    rng = random.Random(a.seed)
    for v in by.values():
        rng.shuffle(v)
    total = len(rows)
    sizes = {"train": a.train, "test": a.test, "unlabelled": a.unlabelled}
    if sum(sizes.values()) > total:
        p.error(f"asked for {sum(sizes.values())} rows, {a.input} has {total}")
    out = pathlib.Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    taken = {c: 0 for c in by}
    for name, n in sizes.items():
        if n == 0:
            continue
        sample = []
        classes = sorted(by)
        for i, c in enumerate(classes):
            share = n - len(sample) if i == len(classes) - 1 else round(n * len(by[c]) / total)
            sample += by[c][taken[c]:taken[c] + share]
            taken[c] += share
        rng.shuffle(sample)
        tmp = out / f"{name}.jsonl.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            for r in sample:
                f.write(json.dumps({"text": r["text"]} if name == "unlabelled" else r) + "\n")
        tmp.replace(out / f"{name}.jsonl")
        print(f"{out / (name + '.jsonl')}: {len(sample)} rows")


if __name__ == "__main__":
    main()
