#!/usr/bin/env python3
"""PyTorch SDPA baseline for the attention benchmark of issue 4.

Causal bf16 attention through torch.nn.functional.scaled_dot_product_attention, one backend at a
time (cuDNN, flash), on the benchmark's workload: batch 1, 32 query heads, 8 KV heads, head_dim
128. Prints one JSON row per (tokens, backend) on stdout, in the schema of attention_bench
(tests/bench/README.md), and a human table on stderr.

GQA: enable_gqa=True where this torch and backend accept it (K/V stay 8 heads); otherwise K/V
are expanded to 32 heads with repeat_interleave before timing, outside the timed region. Each
row's "gqa_mode" says which ("enable_gqa" or "expanded_kv"), and "peak_extra_mib" is the memory
the call allocated beyond its inputs (an internal K/V copy would show here).

Timing: CUDA events around each call, median of --repeats timed calls after warm-up; L2 is
flushed (a memset of a 256 MiB scratch buffer, outside the timed region) before each call.
Layout: contiguous [batch, heads, tokens, head_dim], SDPA's native layout.
"""

import argparse
import json
import statistics
import sys
import time
import warnings

from bench_common import parse_tokens, first_line  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", default="32768,131072,262144",
                    help="token counts, comma-separated (K/M suffixes allowed)")
    ap.add_argument("--backends", default="cudnn,flash", help="cudnn and/or flash")
    ap.add_argument("--repeats", type=int, default=10, help="timed calls per row")
    ap.add_argument("--min-repeats", type=int, default=3,
                    help="fewest timed calls when --row-budget-s cuts them")
    ap.add_argument("--row-budget-s", type=float, default=20.0,
                    help="cap a row's timed calls at about this many seconds")
    ap.add_argument("--max-seconds", type=float, default=0.0,
                    help="skip the rows left after this many seconds (0: no limit)")
    ap.add_argument("--q-heads", type=int, default=32)
    ap.add_argument("--kv-heads", type=int, default=8)
    ap.add_argument("--head-dim", type=int, default=128)
    ap.add_argument("--gqa", choices=["auto", "native", "expand"], default="auto",
                    help="auto: enable_gqa where accepted, else expanded K/V")
    ap.add_argument("--seed", type=int, default=20261101)
    ap.add_argument("--json", default="", help="also append the JSON rows to this file")
    args = ap.parse_args()

    json_file = open(args.json, "a", encoding="utf-8") if args.json else None
    header_done = [False]

    def emit(row):
        line = json.dumps(row, sort_keys=False)
        print(line, flush=True)
        if json_file:
            json_file.write(line + "\n")
            json_file.flush()
        if not header_done[0]:
            print(f"{'tokens':>8}  {'pattern':<14} {'ms':>10} {'TFLOP/s':>8} {'gqa':<12} status",
                  file=sys.stderr)
            header_done[0] = True
        ms = row.get("ms")
        tf = row.get("tflops")
        print(f"{row['tokens']:>8}  {row['pattern']:<14} "
              f"{(f'{ms:.3f}' if ms is not None else '-'):>10} "
              f"{(f'{tf:.1f}' if tf is not None else '-'):>8} {row.get('gqa_mode') or '-':<12} "
              f"{row['status']}{': ' + row['error'] if row.get('error') else ''}",
              file=sys.stderr, flush=True)

    base = {"bench": "sdpa_baseline", "kind": "sdpa", "inputs": "random",
            "q_heads": args.q_heads, "kv_heads": args.kv_heads, "head_dim": args.head_dim,
            "dtype": "bf16", "causal": True, "l2_flushed": True, "layout": "bhsd"}
    tokens_list = parse_tokens(args.tokens)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]

    def row_for(tokens, backend, **fields):
        row = dict(base)
        row.update({"tokens": tokens, "pattern": f"sdpa_{backend}", "status": "ok", "ms": None,
                    "ms_min": None, "ms_max": None, "repeats": 0, "est_ms": None,
                    "attn_ms": None, "est_share": None, "density": 1.0,
                    "selected_density": 1.0,
                    "pairs": args.q_heads * tokens * (tokens + 1) // 2,
                    "selected_pairs": args.q_heads * tokens * (tokens + 1) // 2,
                    "pairs_source": "dense causal", "tflops": None, "tflops_incl_est": None,
                    "description": f"PyTorch SDPA, {backend} backend, causal"})
        row.update(fields)
        return row

    try:
        import torch
        import torch.nn.functional as F
        from torch.nn.attention import SDPBackend, sdpa_kernel
    except Exception as e:  # noqa: BLE001 - report any import failure as rows
        for t in tokens_list:
            for b in backends:
                emit(row_for(t, b, status="error", error=f"import torch: {e!r}"))
        return 1
    if not torch.cuda.is_available():
        for t in tokens_list:
            for b in backends:
                emit(row_for(t, b, status="error", error="torch.cuda.is_available() is False"))
        return 1

    device = torch.cuda.get_device_name()
    base.update({"device": device, "torch": torch.__version__,
                 "torch_cuda": torch.version.cuda,
                 "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available()
                 else None})
    backend_enum = {"cudnn": getattr(SDPBackend, "CUDNN_ATTENTION", None),
                    "flash": SDPBackend.FLASH_ATTENTION}
    print(f"sdpa_baseline on {device}: torch {torch.__version__}, cuDNN {base['cudnn']}, "
          f"q_heads {args.q_heads}, kv_heads {args.kv_heads}, head_dim {args.head_dim}",
          file=sys.stderr)

    flush = torch.empty(256 << 20, dtype=torch.uint8, device="cuda")
    start = time.monotonic()
    gen = torch.Generator(device="cuda")
    group = args.q_heads // args.kv_heads
    dense_flop = lambda t: 4.0 * args.q_heads * (t * (t + 1) / 2) * args.head_dim  # noqa: E731

    for tokens in tokens_list:
        q = k = v = None
        try:
            gen.manual_seed(args.seed + tokens)
            shape_q = (1, args.q_heads, tokens, args.head_dim)
            shape_kv = (1, args.kv_heads, tokens, args.head_dim)
            q = torch.randn(shape_q, generator=gen, device="cuda", dtype=torch.bfloat16)
            k = torch.randn(shape_kv, generator=gen, device="cuda", dtype=torch.bfloat16)
            v = torch.randn(shape_kv, generator=gen, device="cuda", dtype=torch.bfloat16)
            alloc_error = None
        except torch.cuda.OutOfMemoryError as e:
            alloc_error = ("oom", f"allocating inputs: {str(e).splitlines()[0]}")
        except Exception as e:  # noqa: BLE001
            alloc_error = ("error", f"allocating inputs: {e!r}")

        for backend in backends:
            if alloc_error:
                emit(row_for(tokens, backend, status=alloc_error[0], error=alloc_error[1]))
                continue
            if args.max_seconds > 0 and time.monotonic() - start > args.max_seconds:
                emit(row_for(tokens, backend, status="skipped",
                             error="time budget (--max-seconds) used up"))
                continue
            enum = backend_enum.get(backend)
            if enum is None:
                emit(row_for(tokens, backend, status="error",
                             error=f"backend {backend} not in this torch's SDPBackend"))
                continue
            emit(run_backend(torch, F, sdpa_kernel, enum, backend, tokens, q, k, v, group,
                             flush, args, row_for, dense_flop))
            torch.cuda.empty_cache()
        del q, k, v
        torch.cuda.empty_cache()
    return 0


def try_call(torch, fn):
    """Runs fn(); returns (result, None) or (None, why) for a RuntimeError/TypeError, with the
    warnings torch gave for rejecting a backend (the reasons behind "No available kernel")."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            return fn(), None
        except (RuntimeError, TypeError) as e:
            if isinstance(e, torch.cuda.OutOfMemoryError):
                raise
            reasons = [first_line(w.message) for w in caught][:4]
            why = first_line(e)
            if reasons:
                why += " [" + " | ".join(reasons) + "]"
            return None, why[:800]


def run_backend(torch, F, sdpa_kernel, enum, backend, tokens, q, k, v, group, flush, args,
                row_for, dense_flop):
    """Times one backend at one size; returns the row (status ok, oom or error)."""
    kx = vx = None
    try:
        with sdpa_kernel([enum]):
            # Choose the GQA mode with one (untimed) call.
            mode, errors = None, []
            def probe(kk, vv, **kwargs):
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
                before = torch.cuda.memory_allocated()
                o = F.scaled_dot_product_attention(q, kk, vv, is_causal=True, **kwargs)
                torch.cuda.synchronize()
                return o, torch.cuda.max_memory_allocated() - before

            if args.gqa in ("auto", "native") and group > 1:
                res, why = try_call(torch, lambda: probe(k, v, enable_gqa=True))
                if res is not None:
                    (out, peak_extra), mode = res, "enable_gqa"
                else:
                    errors.append(f"enable_gqa: {why}")
            if mode is None and (args.gqa != "native" or group == 1):
                if group > 1:
                    kx = k.repeat_interleave(group, dim=1)
                    vx = v.repeat_interleave(group, dim=1)
                else:
                    kx, vx = k, v
                res, why = try_call(torch, lambda: probe(kx, vx))
                if res is not None:
                    (out, peak_extra) = res
                    mode = "expanded_kv" if group > 1 else "mha"
                else:
                    errors.append(f"{'expanded K/V' if group > 1 else 'mha'}: {why}")
            if mode is None:
                return row_for(tokens, backend, status="error", error="; ".join(errors))
            finite = bool(torch.isfinite(out).all().item())
            del out
            kk, vv = (k, v) if mode == "enable_gqa" else (kx, vx)
            kwargs = {"enable_gqa": True} if mode == "enable_gqa" else {}

            def call():
                return F.scaled_dot_product_attention(q, kk, vv, is_causal=True, **kwargs)

            # Warm-up (timed, to size the repeats), a second one when cheap.
            e0 = torch.cuda.Event(enable_timing=True)
            e1 = torch.cuda.Event(enable_timing=True)
            e0.record()
            call()
            e1.record()
            torch.cuda.synchronize()
            first_ms = e0.elapsed_time(e1)
            if first_ms < 1000:
                call()
            n = args.repeats
            if first_ms * 1e-3 * n > args.row_budget_s:
                n = max(args.min_repeats, int(args.row_budget_s / (first_ms * 1e-3)))
            n = max(1, min(n, args.repeats))
            events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
                      for _ in range(n)]
            for i, (a, b) in enumerate(events):
                flush.fill_(i & 0xFF)  # evicts L2; outside the timed region
                a.record()
                call()
                b.record()
            torch.cuda.synchronize()
            times = [a.elapsed_time(b) for a, b in events]
            ms = statistics.median(times)
            fields = {"ms": ms, "ms_min": min(times), "ms_max": max(times), "repeats": n,
                      "tflops": dense_flop(tokens) / (ms * 1e-3) / 1e12, "gqa_mode": mode,
                      "peak_extra_mib": round(peak_extra / 2**20, 1),
                      "output_check": "ok: all outputs finite" if finite
                      else "non-finite outputs"}
            if errors:
                fields["note"] = "; ".join(errors)
            return row_for(tokens, backend, **fields)
    except torch.cuda.OutOfMemoryError as e:
        return row_for(tokens, backend, status="oom", error=str(e).splitlines()[0])
    except Exception as e:  # noqa: BLE001 - a backend that cannot run is a row, not a crash
        return row_for(tokens, backend, status="error",
                       error=f"{type(e).__name__}: {first_line(e)}"[:500])
    finally:
        del kx, vx


if __name__ == "__main__":
    sys.exit(main())
