#!/usr/bin/env python3
"""Merges the JSON rows of prefill_bench and transformers_baseline.py into issue 5's tables.

  format_prefill.py ROWS.jsonl [MORE.jsonl ...] [--out-dir DIR] [--card NAME] [--driver V]
                    [--commit SHA] [--command CMD] [--date YYYY-MM-DD] [--time TEXT]
                    [--budget-note TEXT]
  format_prefill.py --fill-missing FILE --bench NAME --mode MODE --tokens LIST
                    [--status error] --why TEXT
                    (appends a row with that status and mode to FILE for each length that has
                    no row of bench NAME in it: what run_prefill_bench.sh does when a process
                    died or was not run)

Table columns: tokens, mode, status, total s, linear s, attention s, estimation s, kv offload s,
tokens/s, mean density, peak GiB, speedup vs our dense at that length, time vs the transformers
baseline at that length, notes. Where our dense path did not run at a length (512K, 1M), its
time is extrapolated (the row prefill_bench printed, or the same formula here):
  dense_total(T) ~= [linear + embed + lm_head](T, sparse run) + dense_attention(T0) * (T/T0)^2
and such speedups are marked *. A second table checks issue 5's targets. Writes
prefill-<date>-<card>.md and the merged rows as prefill-<date>-<card>.jsonl into --out-dir (when
given), and prints the markdown on stdout. Standard library only.
"""

import argparse
import datetime
import json
import os
import sys

from bench_common import write_results, parse_tokens, fmt_tokens, sanitize  # noqa: E402

OURS = "sparsefill_prefill"
MODE_ORDER = ["dense", "sparse"]  # after the transformers rows

# Issue 5's targets (one 80 GB H100).
T_1M = 1048576
T_128K = 131072
T_32K = 32768
SPARSE_1M_MAX_S, SPARSE_1M_GOAL_S = 60.0, 40.0
SPEEDUP_1M_MIN = 8.0
SPEEDUP_128K_MIN = 2.0
DENSE_VS_TF_32K_MAX = 1.15


def read_rows(path):
    rows = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line.startswith("{"):
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                print(f"format_prefill: {path}:{n}: skipped, not JSON ({e})", file=sys.stderr)
                continue
            if not isinstance(row, dict) or "tokens" not in row or "mode" not in row:
                print(f"format_prefill: {path}:{n}: skipped, no tokens/mode", file=sys.stderr)
                continue
            rows.append(row)
    return rows


def load_rows(paths):
    """Rows keyed by (tokens, mode); a later row for the same key replaces an earlier one."""
    rows = {}
    for path in paths:
        for row in read_rows(path):
            rows[(int(row["tokens"]), str(row["mode"]))] = row
    return rows


def is_ok(row):
    return row is not None and row.get("status") == "ok" and num(row.get("total_s")) is not None


def has_total(row):
    """ok or extrapolated, with a time."""
    return row is not None and row.get("status") in ("ok", "extrapolated") \
        and num(row.get("total_s")) is not None


def num(v):
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def fmt_s(v):
    v = num(v)
    if v is None:
        return "—"
    if v >= 100:
        return f"{v:.1f}"
    if v >= 1:
        return f"{v:.2f}"
    return f"{v:.3f}"


def md(text):
    return str(text).replace("|", "\\|").replace("\n", " ")


def extrapolate(rows):
    """Adds extrapolated dense rows where our dense did not run but a sparse row and a shorter
    dense row exist (prefill_bench's formula); keeps the ones prefill_bench printed."""
    lengths = sorted({t for t, _ in rows})
    for t in lengths:
        if has_total(rows.get((t, "dense"))):
            continue
        sparse = rows.get((t, "sparse"))
        if not is_ok(sparse) or sparse.get("bench") != OURS:
            continue
        shorter = [t0 for t0 in lengths if t0 < t and is_ok(rows.get((t0, "dense")))]
        if not shorter:
            continue
        t0 = max(shorter)
        dense0 = rows[(t0, "dense")]
        attn0 = num(dense0.get("attention_s"))
        if attn0 is None:
            continue
        rest = sum(num(sparse.get(k)) or 0.0 for k in ("linear_s", "embed_s", "lm_head_s"))
        attention = attn0 * (t / t0) ** 2
        total = rest + attention
        formula = (f"dense_total(T) = [linear + embed + lm_head](T, sparse run) + "
                   f"dense_attention(T0) * (T/T0)^2 = {rest:.3f} + {attn0:.3f} * "
                   f"({fmt_tokens(t)}/{fmt_tokens(t0)})^2 = {rest:.3f} + {attention:.3f} = "
                   f"{total:.3f} s")
        row = {"bench": OURS, "tokens": t, "mode": "dense", "status": "extrapolated",
               "extrapolated_from": fmt_tokens(t0), "extrapolated_from_tokens": t0,
               "formula": formula, "total_s": total, "tokens_per_s": t / total,
               "linear_s": num(sparse.get("linear_s")), "attention_s": attention,
               "estimation_s": 0.0, "kv_export_s": None, "embed_s": num(sparse.get("embed_s")),
               "lm_head_s": num(sparse.get("lm_head_s")), "density_mean": 1.0,
               "peak_gib": None, "device": sparse.get("device"),
               "note": "extrapolated by format_prefill.py"}
        s0 = rows.get((t0, "sparse"))
        if is_ok(s0):
            pred = sum(num(s0.get(k)) or 0.0 for k in ("linear_s", "embed_s", "lm_head_s")) \
                + attn0
            meas = num(dense0.get("total_s"))
            row.update({"formula_check_predicted_s": pred, "formula_check_measured_s": meas,
                        "formula_check": f"at {fmt_tokens(t0)} the formula gives {pred:.3f} s, "
                                         f"dense measured {meas:.3f} s (ratio measured/formula "
                                         f"{meas / pred:.3f})"})
        rows[(t, "dense")] = row


def sort_key(key):
    t, mode = key
    if mode.startswith("transformers"):
        return (t, -1, mode)
    return (t, MODE_ORDER.index(mode) if mode in MODE_ORDER else len(MODE_ORDER), mode)


def tf_row(rows, t):
    """The transformers row at length t: an ok cuDNN one, else any ok one, else any."""
    tf = [(mode, r) for (tt, mode), r in rows.items()
          if tt == t and r.get("bench") == "transformers_baseline"]
    for pick in (lambda m, r: is_ok(r) and m.endswith("cudnn"), lambda m, r: is_ok(r),
                 lambda m, r: m.endswith("cudnn"), lambda m, r: True):
        for mode, r in tf:
            if pick(mode, r):
                return r
    return None


def speedup_vs_dense(rows, t, row):
    """(our dense total / this row's total, dense extrapolated?) or (None, False)."""
    dense = rows.get((t, "dense"))
    if not has_total(dense) or not has_total(row):
        return None, False
    return num(dense["total_s"]) / num(row["total_s"]), dense.get("status") == "extrapolated"


def table(rows):
    lines = ["| tokens | mode | status | total s | linear s | attention s | estimation s "
             "| kv offload s | tokens/s | density | peak GiB | speedup vs our dense "
             "| time vs transformers | notes |",
             "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for key in sorted(rows, key=sort_key):
        t, mode = key
        r = rows[key]
        status = r.get("status", "?")
        notes = []
        if has_total(r):
            sp, extra = speedup_vs_dense(rows, t, r)
            speed = "—" if sp is None else f"{sp:.2f}x" + ("*" if extra else "")
            tf = tf_row(rows, t)
            if is_ok(tf) and r is not tf:
                ratio = f"{num(r['total_s']) / num(tf['total_s']):.2f}x"
            else:
                ratio = "—"
            dens = num(r.get("density_mean"))
            density = "—" if dens is None else f"{dens:.4f}"
            peak = num(r.get("peak_gib"))
            peak_s = "—" if peak is None else f"{peak:.1f}"
            tps = num(r.get("tokens_per_s"))
            tps_s = "—" if tps is None else f"{tps:,.0f}"
            if status == "extrapolated":
                notes.append(f"extrapolated from {r.get('extrapolated_from')} (formula below)")
            if r.get("repeats") is not None:
                runs = r.get("runs_s") or []
                if len(runs) > 1:
                    notes.append(f"median of {len(runs)} runs "
                                 f"({', '.join(fmt_s(x) for x in runs)} s)")
                else:
                    notes.append("1 run")
            if r.get("bench") == "transformers_baseline":
                if r.get("gqa_mode"):
                    notes.append(f"GQA: {str(r['gqa_mode'])[:80]}")
            if r.get("kv_check") and not str(r["kv_check"]).startswith("ok"):
                notes.append(f"KV CHECK: {r['kv_check']}")
            if r.get("output_check") and not str(r["output_check"]).startswith("ok"):
                notes.append(f"OUTPUT CHECK: {r['output_check']}")
            if r.get("note") and status != "extrapolated":
                notes.append(str(r["note"]))
            cells = [fmt_s(r.get("total_s")), fmt_s(r.get("linear_s")),
                     fmt_s(r.get("attention_s")), fmt_s(r.get("estimation_s")),
                     fmt_s(r.get("kv_export_s")), tps_s, density, peak_s, speed, ratio]
        else:
            err = str(r.get("error", ""))
            if len(err) > 200:
                err = err[:197] + "..."
            notes.append(f"**{status}**" + (f": {err}" if err else ""))
            cells = ["—"] * 10
        status_cell = status if status in ("ok", "extrapolated") else f"**{status}**"
        lines.append(f"| {fmt_tokens(t)} | {md(mode)} | {status_cell} | " + " | ".join(cells)
                     + f" | {md('; '.join(notes))} |")
    return lines


def targets(rows):
    """Issue 5's targets, each with what was measured and whether it is met."""
    out = ["| target (issue 5, one 80 GB H100) | measured | met |", "|---|---:|---|"]

    def missing(r):
        if r is None:
            return "not run"
        return f"{r.get('status', '?')}" + (f": {str(r.get('error'))[:120]}"
                                           if r.get("error") else "")

    s1m = rows.get((T_1M, "sparse"))
    want = f"1M tokens, sparse: <= {SPARSE_1M_MAX_S:.0f} s (goal {SPARSE_1M_GOAL_S:.0f} s)"
    if is_ok(s1m):
        v = num(s1m["total_s"])
        peak = num(s1m.get("peak_gib"))
        extra = f", peak {peak:.1f} GiB" if peak is not None else ""
        met = "yes" + (" (goal met too)" if v <= SPARSE_1M_GOAL_S else " (goal not met)") \
            if v <= SPARSE_1M_MAX_S else "no"
        out.append(f"| {want} | {v:.1f} s{extra} | {met} |")
    else:
        out.append(f"| {want} | {md(missing(s1m))} | no |")

    for t, least in ((T_1M, SPEEDUP_1M_MIN), (T_128K, SPEEDUP_128K_MIN)):
        want = f"{fmt_tokens(t)}: sparse >= {least:.0f}x faster than our dense path"
        s = rows.get((t, "sparse"))
        sp, extra = speedup_vs_dense(rows, t, s)
        if sp is None:
            why = missing(s) if not is_ok(s) else "no dense time (" + missing(
                rows.get((t, "dense"))) + ")"
            out.append(f"| {want} | {md(why)} | — |")
        else:
            out.append(f"| {want} | {sp:.2f}x{'*' if extra else ''} | "
                       f"{'yes' if sp >= least else 'no'} |")

    want = (f"32K: our dense path <= {DENSE_VS_TF_32K_MAX:.2f}x the transformers baseline "
            f"(SDPA cuDNN)")
    d = rows.get((T_32K, "dense"))
    tf = tf_row(rows, T_32K)
    if is_ok(d) and is_ok(tf):
        ratio = num(d["total_s"]) / num(tf["total_s"])
        out.append(f"| {want} | {ratio:.2f}x ({fmt_s(d['total_s'])} s vs "
                   f"{fmt_s(tf['total_s'])} s) | {'yes' if ratio <= DENSE_VS_TF_32K_MAX else 'no'} |")
    else:
        why = "our dense: " + missing(d) if not is_ok(d) else "transformers: " + missing(tf)
        out.append(f"| {want} | {md(why)} | — |")
    return out


def fill_missing(args):
    """Appends a row (mode --mode) for each length of --tokens at which FILE has no row of
    bench --bench (whatever its mode: the baseline's mode names its SDPA backend)."""
    have = set()
    if os.path.exists(args.fill_missing):
        for r in read_rows(args.fill_missing):
            if str(r.get("bench")) == args.bench:
                have.add(int(r["tokens"]))
    added = 0
    with open(args.fill_missing, "a", encoding="utf-8") as f:
        for t in parse_tokens(args.tokens):
            if t in have:
                continue
            f.write(json.dumps({"bench": args.bench, "tokens": t, "mode": args.mode,
                                "status": args.status, "error": args.why}) + "\n")
            added += 1
    if added:
        print(f"format_prefill: {added} {args.status} row(s) for {args.mode}: {args.why}",
              file=sys.stderr)
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("inputs", nargs="*", help="JSON-lines files of rows")
    ap.add_argument("--out-dir", default="", help="write the .md and merged .jsonl here")
    ap.add_argument("--card", default="", help="GPU name (default: from the rows)")
    ap.add_argument("--driver", default="", help="driver version")
    ap.add_argument("--commit", default="", help="git commit of the code measured")
    ap.add_argument("--command", default="", help="the command that reproduces the run")
    ap.add_argument("--date", default="", help="YYYY-MM-DD (default: today, UTC)")
    ap.add_argument("--time", default="", help="the run's time, UTC (default: now)")
    ap.add_argument("--budget-note", action="append", default=[],
                    help="a line about what the time budget left out (repeatable)")
    ap.add_argument("--fill-missing", metavar="FILE", help="see the usage above")
    ap.add_argument("--bench", default=OURS)
    ap.add_argument("--mode", default="")
    ap.add_argument("--tokens", default="")
    ap.add_argument("--status", default="error")
    ap.add_argument("--why", default="")
    args = ap.parse_args()
    if args.fill_missing:
        if not args.mode or not args.tokens:
            ap.error("--fill-missing needs --mode and --tokens")
        return fill_missing(args)
    if not args.inputs:
        ap.error("no input files")

    rows = load_rows([p for p in args.inputs if os.path.exists(p)])
    for p in args.inputs:
        if not os.path.exists(p):
            print(f"format_prefill: {p}: no such file", file=sys.stderr)
    extrapolate(rows)
    now = datetime.datetime.now(datetime.timezone.utc)
    date = args.date or now.strftime("%Y-%m-%d")
    when = args.time or now.strftime("%Y-%m-%d %H:%M UTC")
    card = args.card or next((r["device"] for r in rows.values() if r.get("device")
                              and not str(r["device"]).startswith("cpu")), "") or next(
        (r["device"] for r in rows.values() if r.get("device")), "unknown GPU")

    ours = next((r for r in rows.values() if r.get("bench") == OURS and r.get("model")), {})
    summary = next((r.get("patterns_summary") for r in rows.values()
                    if r.get("patterns_summary")), None)
    patterns = next((r.get("patterns") for r in rows.values() if r.get("patterns")), None)
    tf = next((r for r in rows.values() if r.get("bench") == "transformers_baseline"
               and r.get("torch")), None)
    out = [f"# Prefill benchmark (issue 5): {card}", ""]
    out.append(f"- card: {card}" + (f", driver {args.driver}" if args.driver else ""))
    out.append(f"- date: {when}")
    out.append(f"- commit: `{args.commit or 'unknown'}`")
    if args.command:
        out.append(f"- command: `{args.command}`")
    if ours:
        out.append(f"- ours: `prefill_bench`, model `{ours.get('model')}` on the "
                   f"{ours.get('backend')} backend (seed {ours.get('seed')}, max_chunk_tokens "
                   f"{ours.get('max_chunk_tokens')}, export_slots {ours.get('export_slots')}, "
                   f"KV sink {'on' if ours.get('kv_sink') else 'off'}); random token ids")
    if patterns or summary:
        out.append(f"- sparse patterns: `{patterns}`: {summary}")
    if tf:
        out.append(f"- baseline: transformers {tf.get('transformers')} ({tf.get('model')}), "
                   f"torch {tf.get('torch')} (CUDA {tf.get('torch_cuda')}), cuDNN "
                   f"{tf.get('cudnn')}, SDPA backend {tf.get('sdpa_backend')}, GQA "
                   f"{tf.get('gqa_mode')}, use_cache=True; first SDPA call "
                   f"{json.dumps(tf.get('sdpa_call'))}; {tf.get('rope_check')}")
    for note in args.budget_note:
        out.append(f"- budget: {note}")
    out.append("")
    out += table(rows)
    out.append("")
    out += [
        "total s: wall time of one whole prefill (our `Model::Prefill`, host clock, returns after "
        "the device work and every layer's K/V reached the host sink; the transformers forward "
        "with use_cache=True, synchronised). linear / attention / estimation s: device time of "
        "those stages summed over layers (CUDA events on our compute stream; for transformers, "
        "attention is CUDA events around its SDPA calls, and the rest is not split). kv offload "
        "s: device time of the K/V copies to pinned host memory, on a copy stream that overlaps "
        "compute (not part of a sum). density: computed / dense causal (query, key) pairs, mean "
        "over layers. peak GiB: our backend's device memory pool high-water mark (weights "
        "included); torch.cuda.max_memory_allocated for transformers (weights, activations and "
        "its on-GPU KV cache). speedup vs our dense: our dense total / this row's total. time vs "
        "transformers: this row's total / the transformers total at the same length (below 1 is "
        "faster).", ""]
    extra = [r for r in rows.values() if r.get("status") == "extrapolated"]
    if extra:
        out.append("\\* our dense path was not run at this length; its time is extrapolated "
                   "from measured parts:")
        out.append("")
        for r in sorted(extra, key=lambda r: int(r["tokens"])):
            line = f"- {fmt_tokens(int(r['tokens']))}: {r.get('formula')}"
            if r.get("formula_check"):
                line += f". Check: {r['formula_check']}"
            out.append(line)
        out.append("")
    bad = [(k, r) for k, r in rows.items() if r.get("status") not in ("ok", "extrapolated")]
    if bad:
        out += ["## Rows not measured", ""]
        for (t, mode), r in sorted(bad, key=lambda kr: sort_key(kr[0])):
            out.append(f"- {fmt_tokens(t)} {mode}: **{r.get('status')}**: "
                       f"{md(r.get('error', ''))}")
        out.append("")
    out += ["## Issue 5 targets", ""] + targets(rows) + [""]
    text = "\n".join(out)
    print(text)

    if args.out_dir:
        write_results(args.out_dir, f"prefill-{date}-{sanitize(card)}", text, (rows[key] for key in sorted(rows, key=sort_key)), "format_prefill")
    return 0


if __name__ == "__main__":
    sys.exit(main())
