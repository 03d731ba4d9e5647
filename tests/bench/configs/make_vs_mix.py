#!/usr/bin/env python3
"""Writes llama3-8b-vs-mix.json: a sparse pattern config (our format, worker/pattern_config.h)
with the per-head budget mix of MInference's Llama-3-8B config, for the prefill benchmark.

  make_vs_mix.py [--seed N] [--out PATH]       (default: llama3-8b-vs-mix.json beside this file)
  make_vs_mix.py --check PATH                  (verifies a file against the mix; exit 1 if not)

1024 heads (32 layers x 32 query heads), every head vertical_slash with these (vertical, slash)
counts, in these numbers: (1000, 6096) x 560, (30, 800) x 210, (100, 800) x 150, (500, 700) x 50,
(3500, 100) x 54. The proportions were read off MInference's published Llama-3-8B-262K
best-pattern config; which head gets which budget is NOT MInference's (a seeded shuffle here), so
this config has the same total budget and mix, not the same per-head assignment. Benchmark use
only: it says nothing about accuracy. min_sparse_tokens is 0 (sparse at every length).
Standard library only; the output is deterministic for a seed (random.Random(seed).shuffle).
"""

import argparse
import collections
import json
import os
import random
import sys

NUM_LAYERS = 32
NUM_HEADS = 32
MIX = [  # (vertical, slash, heads)
    (1000, 6096, 560),
    (30, 800, 210),
    (100, 800, 150),
    (500, 700, 50),
    (3500, 100, 54),
]
DEFAULT_SEED = 20260505
DEFAULT_OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "llama3-8b-vs-mix.json")


def make_heads(seed):
    heads = [(v, s) for v, s, n in MIX for _ in range(n)]
    assert len(heads) == NUM_LAYERS * NUM_HEADS, len(heads)
    random.Random(seed).shuffle(heads)
    return heads


def to_json(heads, kind="vertical_slash"):
    """Our format, one layer per line (a list of 32 head objects). kind "a_shape" writes the same
    budgets as sinks + local window (n_init = vertical, n_local = slash): the same number of
    (query, key) pairs per head, with a fixed structure instead of an estimated one."""
    lines = ['{', '  "format": "sparsefill.patterns.v1",', '  "min_sparse_tokens": 0,',
             '  "layers": [']
    for layer in range(NUM_LAYERS):
        row = heads[layer * NUM_HEADS:(layer + 1) * NUM_HEADS]
        if kind == "a_shape":
            items = ", ".join(f'{{"type": "a_shape", "n_init": {v}, "n_local": {s}}}' for v, s in row)
        else:
            items = ", ".join(f'{{"type": "vertical_slash", "vertical": {v}, "slash": {s}}}'
                              for v, s in row)
        lines.append(f"    [{items}]" + ("," if layer + 1 < NUM_LAYERS else ""))
    lines += ["  ]", "}"]
    return "\n".join(lines) + "\n"


def check(path):
    """Problems with the file at path (empty when it is the mix)."""
    with open(path, encoding="utf-8") as f:
        cfg = json.load(f)
    problems = []
    if cfg.get("format") != "sparsefill.patterns.v1":
        problems.append("format is not sparsefill.patterns.v1")
    if cfg.get("min_sparse_tokens") != 0:
        problems.append(f"min_sparse_tokens is {cfg.get('min_sparse_tokens')}, want 0")
    layers = cfg.get("layers", [])
    if len(layers) != NUM_LAYERS:
        problems.append(f"{len(layers)} layers, want {NUM_LAYERS}")
    counts = collections.Counter()
    for i, layer in enumerate(layers):
        if not isinstance(layer, list) or len(layer) != NUM_HEADS:
            problems.append(f"layer {i}: want a list of {NUM_HEADS} heads")
            continue
        for head in layer:
            if head.get("type") != "vertical_slash":
                problems.append(f"layer {i}: a head of type {head.get('type')}")
            counts[(head.get("vertical"), head.get("slash"))] += 1
    want = collections.Counter({(v, s): n for v, s, n in MIX})
    if counts != want:
        problems.append(f"budget counts {dict(counts)} differ from the mix {dict(want)}")
    return problems


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED, help="shuffle seed")
    ap.add_argument("--out", default=DEFAULT_OUT, help="where to write the config")
    ap.add_argument("--check", metavar="PATH", help="verify PATH against the mix instead")
    ap.add_argument("--a-shape", action="store_true",
                    help="write the same budgets as A-shape heads (n_init = vertical, n_local = slash)")
    args = ap.parse_args()
    if args.check:
        problems = check(args.check)
        for p in problems:
            print(f"make_vs_mix: {args.check}: {p}", file=sys.stderr)
        if not problems:
            print(f"make_vs_mix: {args.check}: ok, the mix of {NUM_LAYERS * NUM_HEADS} heads")
        return 1 if problems else 0
    text = to_json(make_heads(args.seed), "a_shape" if args.a_shape else "vertical_slash")
    with open(args.out, "w", encoding="utf-8") as f:
        f.write(text)
    problems = [] if args.a_shape else check(args.out)
    for p in problems:
        print(f"make_vs_mix: BUG: {p}", file=sys.stderr)
    print(f"make_vs_mix: wrote {args.out} (seed {args.seed})", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
