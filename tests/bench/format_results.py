#!/usr/bin/env python3
"""Merges the JSON rows of attention_bench and sdpa_baseline.py into one markdown table.

  format_results.py ROWS.jsonl [MORE.jsonl ...] [--out-dir DIR] [--card NAME] [--driver V]
                    [--commit SHA] [--command CMD] [--date YYYY-MM-DD] [--time ISO]

Columns: tokens, pattern, ms, speedup vs cuDNN dense SDPA at that length, density, effective
TFLOP/s, estimation share, notes. Where cuDNN was not run at a length (512K, 1M), its time is
extrapolated quadratically from the largest measured length below it, and marked with *.
Writes attention-<date>-<card>.md and the merged rows as attention-<date>-<card>.jsonl into
--out-dir (when given), and prints the markdown on stdout. Standard library only.
"""

import argparse
import datetime
import json
import sys

from bench_common import write_results, fmt_tokens, sanitize  # noqa: E402

# Display order of patterns within one token count; unknown patterns follow, sorted.
ORDER = ["sdpa_cudnn", "sdpa_flash", "dense", "vs_band_v1000_s6096", "vs_band_v100_s800",
         "vs_scatter_v100_s800", "vs_band_v3500_s100", "bs_top100", "ashape_128_3968",
         "est_vs_v1000_s6096_random", "est_vs_v1000_s6096_rope", "est_bs_top100_random",
         "est_bs_top100_rope"]

# Issue 4's "at least" targets (H100), checked where the rows exist.
SPEEDUP_TARGETS = [  # (pattern, tokens, at least x cuDNN, goal)
    ("dense", 32768, 0.8, 1.0),
    ("dense", 131072, 0.8, 1.0),
    ("vs_band_v1000_s6096", 131072, 5.0, 7.0),
    ("vs_band_v1000_s6096", 262144, 11.0, 15.0),
    ("bs_top100", 131072, 5.5, None),
    ("ashape_128_3968", 131072, 7.0, None),
]
TFLOPS_TARGET, TFLOPS_GOAL = 400.0, 500.0
EST_SHARE_TARGET = 0.10


def load_rows(paths):
    """Rows from JSON-lines files; a later row for the same (tokens, pattern) replaces one before
    it. Lines that are not JSON objects are skipped with a warning on stderr."""
    rows = {}
    for path in paths:
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                line = line.strip()
                if not line or not line.startswith("{"):
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as e:
                    print(f"format_results: {path}:{n}: skipped, not JSON ({e})", file=sys.stderr)
                    continue
                if not isinstance(row, dict) or "tokens" not in row or "pattern" not in row:
                    print(f"format_results: {path}:{n}: skipped, no tokens/pattern",
                          file=sys.stderr)
                    continue
                rows[(int(row["tokens"]), str(row["pattern"]))] = row
    return list(rows.values())


def sort_key(row):
    p = row["pattern"]
    return (int(row["tokens"]), ORDER.index(p) if p in ORDER else len(ORDER), p)


def ok(row):
    return row.get("status") == "ok" and isinstance(row.get("ms"), (int, float)) and row["ms"] > 0


def cudnn_reference(rows):
    """tokens -> (cuDNN ms, extrapolated_from or None) for every token count in rows."""
    measured = {int(r["tokens"]): float(r["ms"]) for r in rows
                if r["pattern"] == "sdpa_cudnn" and ok(r)}
    ref = {}
    if not measured:
        return ref, measured
    for t in sorted({int(r["tokens"]) for r in rows}):
        if t in measured:
            ref[t] = (measured[t], None)
            continue
        below = [m for m in measured if m < t]
        base = max(below) if below else min(measured)
        ref[t] = (measured[base] * (t / base) ** 2, base)
    return ref, measured


def fmt_ms(ms):
    if ms >= 100:
        return f"{ms:.1f}"
    if ms >= 1:
        return f"{ms:.2f}"
    return f"{ms:.3f}"


def md_escape(text):
    return str(text).replace("|", "\\|").replace("\n", " ")


def speedup_of(row, ref):
    """(speedup, extrapolated_from) or (None, None)."""
    t = int(row["tokens"])
    if not ok(row) or t not in ref:
        return None, None
    ref_ms, base = ref[t]
    return ref_ms / float(row["ms"]), base


def table(rows, ref):
    lines = ["| tokens | pattern | ms | speedup vs cuDNN | density | TFLOP/s | tile TFLOP/s "
             "| est. share | notes |",
             "|---:|---|---:|---:|---:|---:|---:|---:|---|"]
    extrapolated = set()
    for r in sorted(rows, key=sort_key):
        notes = []
        if ok(r):
            ms = fmt_ms(float(r["ms"]))
            sp, base = speedup_of(r, ref)
            if sp is None:
                speed = "—"
            else:
                speed = f"{sp:.2f}x" + ("*" if base is not None else "")
                if base is not None:
                    extrapolated.add((int(r["tokens"]), base))
            d, sd = r.get("density"), r.get("selected_density")
            dens = "—" if d is None else f"{d:.4f}"
            if d is not None and sd is not None and sd > 0 and abs(d - sd) > 0.005 * sd:
                dens += f" (sel. {sd:.4f})"
            tf = r.get("tflops")
            tflops = "—" if tf is None else f"{tf:.0f}"
            ttf = r.get("tflops_tiles")
            tile_tflops = "—" if ttf is None else f"{ttf:.0f}"
            share = r.get("est_share")
            est = "—" if share is None else f"{100 * share:.1f}%"
            if share is not None and r.get("est_ms") is not None:
                notes.append(f"est {fmt_ms(r['est_ms'])} + attn {fmt_ms(r['attn_ms'])} ms")
            if r.get("repeats") is not None and 0 < r["repeats"] < 10:
                notes.append(f"{r['repeats']} runs")
            check = r.get("output_check")
            if check and not str(check).startswith("ok"):
                notes.append(f"CHECK: {check}")
            if r.get("pairs_source", "").startswith("index"):
                notes.append("density from the index (kernel counter 0)")
            if r.get("gqa_mode") and r.get("gqa_mode") != "enable_gqa":
                notes.append(f"GQA: {r['gqa_mode']}")
        else:
            ms = speed = dens = tflops = tile_tflops = est = "—"
            err = str(r.get("error", ""))
            if len(err) > 160:
                err = err[:157] + "..."
            notes.append(f"**{r.get('status', '?')}**" + (f": {err}" if err else ""))
        lines.append(f"| {fmt_tokens(int(r['tokens']))} | {md_escape(r['pattern'])} | {ms} | "
                     f"{speed} | {dens} | {tflops} | {tile_tflops} | {est} | "
                     f"{md_escape('; '.join(notes))} |")
    return lines, extrapolated


def targets(rows, ref):
    """Issue 4's "at least" targets, for the rows present."""
    by = {(int(r["tokens"]), r["pattern"]): r for r in rows}
    lines = ["| target (issue 4, H100) | measured | met |", "|---|---:|---|"]
    for pattern, t, least, goal in SPEEDUP_TARGETS:
        r = by.get((t, pattern))
        if r is None:
            continue
        sp, base = speedup_of(r, ref)
        want = f"{pattern} at {fmt_tokens(t)}: >= {least}x cuDNN" + (
            f" (goal {goal}x)" if goal else "")
        if sp is None and ok(r):
            lines.append(f"| {want} | {fmt_ms(float(r['ms']))} ms, no cuDNN reference | — |")
        elif sp is None:
            lines.append(f"| {want} | {r.get('status', '?')} | no |")
        else:
            mark = "*" if base is not None else ""
            lines.append(f"| {want} | {sp:.2f}x{mark} | {'yes' if sp >= least else 'no'} |")
    sparse = [r for r in rows if ok(r) and r.get("kind") in ("fixed", "estimated")
              and int(r["tokens"]) == 131072 and r.get("tflops") is not None]
    for r in sorted(sparse, key=sort_key):
        # The measure is the computed blocks (the 64 x 64 tiles the kernel ran); the
        # stricter one on the pattern's own pairs is shown beside it.
        tf = float(r["tflops"])
        ttf = r.get("tflops_tiles")
        if ttf is None:
            lines.append(f"| {r['pattern']} at 128K: >= {TFLOPS_TARGET:.0f} TFLOP/s on computed "
                         f"pairs (goal {TFLOPS_GOAL:.0f}+) | {tf:.0f} | "
                         f"{'yes' if tf >= TFLOPS_TARGET else 'no'} |")
            continue
        ttf = float(ttf)
        lines.append(f"| {r['pattern']} at 128K: >= {TFLOPS_TARGET:.0f} TFLOP/s on computed "
                     f"blocks (goal {TFLOPS_GOAL:.0f}+) | {ttf:.0f} (on the pattern's pairs: "
                     f"{tf:.0f}) | {'yes' if ttf >= TFLOPS_TARGET else 'no'} |")
    for r in sorted(rows, key=sort_key):
        if r.get("kind") == "estimated" and int(r["tokens"]) == 131072 and ok(r) \
                and r.get("est_share") is not None:
            s = float(r["est_share"])
            lines.append(f"| {r['pattern']} at 128K: estimation <= 10% of sparse attention time "
                         f"| {100 * s:.1f}% | {'yes' if s <= EST_SHARE_TARGET else 'no'} |")
    return lines if len(lines) > 2 else []


def main():
    ap = argparse.ArgumentParser(description="Merge benchmark JSON rows into a markdown table.")
    ap.add_argument("inputs", nargs="+", help="JSON-lines files of rows")
    ap.add_argument("--out-dir", default="", help="write the .md and merged .jsonl here")
    ap.add_argument("--card", default="", help="GPU name (default: from the rows)")
    ap.add_argument("--driver", default="", help="driver version")
    ap.add_argument("--commit", default="", help="git commit of the code measured")
    ap.add_argument("--command", default="", help="the command that reproduces the run")
    ap.add_argument("--date", default="", help="YYYY-MM-DD (default: today, UTC)")
    ap.add_argument("--time", default="", help="the run's time, UTC (default: now)")
    args = ap.parse_args()

    rows = load_rows(args.inputs)
    now = datetime.datetime.now(datetime.timezone.utc)
    date = args.date or now.strftime("%Y-%m-%d")
    when = args.time or now.strftime("%Y-%m-%d %H:%M UTC")
    card = args.card or next((r["device"] for r in rows if r.get("device")), "unknown GPU")
    ref, measured = cudnn_reference(rows)

    sdpa = next((r for r in rows if r.get("bench") == "sdpa_baseline" and r.get("torch")), None)
    shape = next((r for r in rows if r.get("q_heads")), {})
    out = [f"# Attention benchmark: {card}", ""]
    out.append(f"- card: {card}" + (f", driver {args.driver}" if args.driver else ""))
    out.append(f"- date: {when}")
    out.append(f"- commit: `{args.commit or 'unknown'}`")
    if args.command:
        out.append(f"- command: `{args.command}`")
    if shape:
        out.append(f"- workload: batch 1, {shape.get('q_heads')} query heads, "
                   f"{shape.get('kv_heads')} KV heads, head_dim {shape.get('head_dim')}, bf16, "
                   f"causal; median of timed runs (CUDA events), L2 flushed before each run")
    if sdpa:
        out.append(f"- baseline: PyTorch {sdpa.get('torch')} (CUDA {sdpa.get('torch_cuda')}), "
                   f"cuDNN {sdpa.get('cudnn')}, SDPA layout {sdpa.get('layout')}, GQA mode "
                   + ", ".join(sorted({f"{r['pattern']}: {r.get('gqa_mode')}" for r in rows
                                       if r.get("kind") == "sdpa" and r.get("gqa_mode")})))
    out.append("")
    lines, extrapolated = table(rows, ref)
    out += lines
    out.append("")
    if extrapolated:
        bases = sorted({b for _, b in extrapolated})
        out.append("\\* cuDNN not run at this length: its time is extrapolated quadratically "
                   "(x (T / T0)^2) from the largest measured length T0 below it ("
                   + ", ".join(fmt_tokens(b) for b in bases) + ").")
    if not measured:
        out.append("No cuDNN SDPA row succeeded: no speedups.")
    out += ["",
            "density: (query, key) pairs the kernel computed (its per-head counter, summed) / "
            "dense causal pairs (heads x T(T+1)/2); \"sel.\" is what the index selects, shown "
            "where the two differ by over 0.5%. TFLOP/s: 4 x pairs x head_dim / time (for "
            "estimated rows, the attention kernel's time alone). tile TFLOP/s: the same on the "
            "pairs of the 64 x 64 tiles the kernel computed, masked pairs included (the computed "
            "blocks: the kernel's efficiency, where TFLOP/s also charges the pattern's tile "
            "cover). est. share: estimation and "
            "index building / (estimation + attention), from the medians.", ""]
    tgt = targets(rows, ref)
    if tgt:
        out += ["## Issue 4 targets", ""] + tgt + [""]
    text = "\n".join(out)
    print(text)

    if args.out_dir:
        write_results(args.out_dir, f"attention-{date}-{sanitize(card)}", text, sorted(rows, key=sort_key), "format_results")
    return 0


if __name__ == "__main__":
    sys.exit(main())
