#!/usr/bin/env python3
"""Hugging Face transformers prefill baseline for issue 5's end-to-end benchmark.

The baseline a user would pick instead of sparsefill: transformers' Llama with SDPA attention
(cuDNN backend forced), a Llama-3-8B-shaped model with random bf16 weights on the GPU, one prompt
of random token ids, use_cache=True (the KV cache is what a prefill service produces). Prints one
JSON row per length on stdout, in the schema of prefill_bench (tests/bench/README.md), and a table
on stderr.

  transformers_baseline.py [--tokens 32K,128K] [--repeats 3] [--long-repeats 1]
                           [--long-from 128K] [--json PATH] [--max-seconds S] ...

Model: LlamaForCausalLM with logits_to_keep=1 (the last position's logits, as our prefill
computes for the first token); --model-class base runs LlamaModel (no LM head). Config:
32 layers, hidden 4096, 32 query / 8 KV heads of 128, intermediate 14336, vocab 128256,
RoPE llama3 (theta 500000, factor 8, low 1, high 4, original 8192), untied embeddings. Built on
the meta device and materialised with to_empty + normal_(0, 0.02) (norm weights 1), so it takes
seconds; the rotary embedding is rebuilt on the GPU and checked against the llama3 formula.
attn_implementation "sdpa", run under torch.nn.attention.sdpa_kernel(SDPBackend.CUDNN_ATTENTION)
(--sdpa-backend changes it). The first SDPA call's arguments are recorded in the row (sdpa_call):
no mask and is_causal=True is the fast causal path; GQA goes through enable_gqa=True, or, if the
backend refuses that, through transformers' repeat_kv (gqa_mode says which).

Timing: a full-model warm-up at --warmup-tokens, then before each length one untimed 1-layer
pass at that length (cuDNN builds an execution plan per shape; cuBLAS and the caching allocator
warm up too), then the timed prefills: the host clock around a synchronised forward (total_s), and
CUDA events around every SDPA call (attention_s). The median of --repeats runs below --long-from,
--long-repeats at and above it. peak_gib is torch.cuda.max_memory_allocated() during the run
(weights, activations and the KV cache). An out-of-memory error is a row with status "oom".
"""

import argparse
import gc
import json
import math
import sys
import time

from bench_common import parse_tokens, fmt_tokens, first_line  # noqa: E402

MODE_PREFIX = "transformers_sdpa_"
LLAMA3_8B = dict(vocab_size=128256, hidden_size=4096, intermediate_size=14336,
                 num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8, head_dim=128,
                 rms_norm_eps=1e-5, tie_word_embeddings=False, attention_bias=False,
                 mlp_bias=False, bos_token_id=128000, eos_token_id=128001)
# --check-on-cpu: the same family at toy size (like our random:llama3-tiny), to check this
# script on a machine without a GPU.
LLAMA3_TINY = dict(LLAMA3_8B, vocab_size=1024, hidden_size=256, intermediate_size=512,
                   num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=64,
                   bos_token_id=1, eos_token_id=2)
ROPE = {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
        "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}


def llama3_inv_freq(head_dim):
    """The llama3-scaled RoPE inverse frequencies, written out independently of transformers."""
    base, factor = ROPE["rope_theta"], ROPE["factor"]
    low, high, old = ROPE["low_freq_factor"], ROPE["high_freq_factor"], \
        ROPE["original_max_position_embeddings"]
    low_wavelen, high_wavelen = old / low, old / high
    out = []
    for i in range(0, head_dim, 2):
        f = 1.0 / base ** (i / head_dim)
        wavelen = 2 * math.pi / f
        if wavelen < high_wavelen:
            out.append(f)
        elif wavelen > low_wavelen:
            out.append(f / factor)
        else:
            smooth = (old / wavelen - low) / (high - low)
            out.append((1 - smooth) * f / factor + smooth * f)
    return out


class SdpaProbe:
    """Wraps torch.nn.functional.scaled_dot_product_attention: records the first call's
    arguments and, while timing, CUDA events around every call."""

    def __init__(self, torch, cuda):
        self.torch = torch
        self.cuda = cuda
        self.orig = torch.nn.functional.scaled_dot_product_attention
        self.first_call = None
        self.timing = False
        self.events = []
        self.calls = 0
        torch.nn.functional.scaled_dot_product_attention = self

    def __call__(self, query, key, value, attn_mask=None, *args, **kwargs):
        if self.first_call is None:
            self.first_call = {
                "q_shape": list(query.shape), "q_stride": list(query.stride()),
                "k_shape": list(key.shape), "k_stride": list(key.stride()),
                "attn_mask": None if attn_mask is None else
                f"{tuple(attn_mask.shape)} {attn_mask.dtype}",
                "is_causal": bool(kwargs.get("is_causal", False)),
                "enable_gqa": bool(kwargs.get("enable_gqa", False)),
                "dtype": str(query.dtype).replace("torch.", "")}
        self.calls += 1
        if not self.timing:
            return self.orig(query, key, value, attn_mask, *args, **kwargs)
        if not self.cuda:  # synchronous on the CPU
            t0 = time.perf_counter()
            out = self.orig(query, key, value, attn_mask, *args, **kwargs)
            self.events.append(time.perf_counter() - t0)
            return out
        e0 = self.torch.cuda.Event(enable_timing=True)
        e1 = self.torch.cuda.Event(enable_timing=True)
        e0.record()
        out = self.orig(query, key, value, attn_mask, *args, **kwargs)
        e1.record()
        self.events.append((e0, e1))
        return out

    def start(self):
        """Starts timing; the next call's arguments are recorded (this length's)."""
        self.events, self.calls, self.timing = [], 0, True
        self.first_call = None

    def stop(self):
        """Seconds inside SDPA since start() (call after synchronising)."""
        self.timing = False
        if not self.cuda:
            total = sum(self.events)
        else:
            total = sum(a.elapsed_time(b) for a, b in self.events) / 1e3
        self.events = []
        return total


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", default="32768,131072", help="prompt lengths (K/M suffixes)")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs below --long-from")
    ap.add_argument("--long-repeats", type=int, default=1, help="timed runs at --long-from and up")
    ap.add_argument("--long-from", default="128K", help="(default 128K)")
    ap.add_argument("--warmup-tokens", default="2048", help="full-model warm-up length (0: none)")
    ap.add_argument("--no-shape-warmup", action="store_true",
                    help="skip the 1-layer pass at each length before its timed runs")
    ap.add_argument("--sdpa-backend", default="cudnn",
                    choices=["cudnn", "flash", "efficient", "math", "default"],
                    help="SDPA backend to force (default cudnn; 'default' lets torch choose)")
    ap.add_argument("--model-class", default="causal", choices=["causal", "base"],
                    help="causal: LlamaForCausalLM, logits_to_keep=1; base: LlamaModel")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--max-seconds", type=float, default=0.0,
                    help="skip lengths predicted not to fit in this many seconds from start "
                         "(0: no limit)")
    ap.add_argument("--json", default="", help="also append the JSON rows to this file")
    ap.add_argument("--check-on-cpu", action="store_true",
                    help="check this script without a GPU: a toy-size model on the CPU, SDPA "
                         "backend chosen by torch (the numbers mean nothing)")
    args = ap.parse_args()
    if args.check_on_cpu:
        args.sdpa_backend = "default"
    start = time.monotonic()
    tokens_list = parse_tokens(args.tokens)
    long_from = parse_tokens(args.long_from)[0]
    warmup_tokens = parse_tokens(args.warmup_tokens)[0] if args.warmup_tokens else 0
    mode = MODE_PREFIX + args.sdpa_backend

    json_file = open(args.json, "a", encoding="utf-8") if args.json else None
    base = {"bench": "transformers_baseline", "mode": mode, "backend": "transformers",
            "model": "random llama3-8b shape (transformers "
                     + ("LlamaForCausalLM, logits_to_keep=1" if args.model_class == "causal"
                        else "LlamaModel") + ")",
            "seed": args.seed, "sdpa_backend": args.sdpa_backend,
            "linear_s": None, "estimation_s": None, "kv_export_s": None,
            "density_mean": 1.0}
    header_done = [False]

    def emit(tokens, status, **fields):
        row = {"bench": base["bench"], "tokens": tokens, "mode": mode, "status": status}
        row.update({k: v for k, v in base.items() if k not in row})
        row.update(fields)
        line = json.dumps(row)
        print(line, flush=True)
        if json_file:
            json_file.write(line + "\n")
            json_file.flush()
        if not header_done[0]:
            print(f"{'tokens':>8} {'mode':<24} {'status':<8} {'total_s':>9} {'attn_s':>9} "
                  f"{'tok/s':>10} {'peakGiB':>8}  note", file=sys.stderr)
            header_done[0] = True

        def f(v, spec):
            return "-" if v is None else format(v, spec)
        print(f"{fmt_tokens(tokens):>8} {mode:<24} {status:<8} {f(row.get('total_s'), '.3f'):>9} "
              f"{f(row.get('attention_s'), '.3f'):>9} {f(row.get('tokens_per_s'), '.0f'):>10} "
              f"{f(row.get('peak_gib'), '.2f'):>8}  {row.get('error') or row.get('note') or ''}",
              file=sys.stderr, flush=True)
        return row

    def fail_all(why):
        for t in tokens_list:
            emit(t, "error", error=why)
        return 1

    try:
        import torch
        import transformers
        from torch.nn.attention import SDPBackend, sdpa_kernel
        from transformers import LlamaConfig, LlamaForCausalLM, LlamaModel
    except Exception as e:  # noqa: BLE001 - every failure becomes rows
        return fail_all(f"import: {type(e).__name__}: {first_line(e)}")
    cuda = not args.check_on_cpu
    dev = "cuda" if cuda else "cpu"
    if cuda and not torch.cuda.is_available():
        return fail_all("torch.cuda.is_available() is False")

    def sync():
        if cuda:
            torch.cuda.synchronize()

    base.update({"device": torch.cuda.get_device_name() if cuda else "cpu (script check only)",
                 "device_mem_gib": torch.cuda.get_device_properties(0).total_memory / 2**30
                 if cuda else None,
                 "torch": torch.__version__, "torch_cuda": torch.version.cuda,
                 "transformers": transformers.__version__,
                 "cudnn": torch.backends.cudnn.version()
                 if torch.backends.cudnn.is_available() else None})
    backend_enum = {"cudnn": getattr(SDPBackend, "CUDNN_ATTENTION", None),
                    "flash": SDPBackend.FLASH_ATTENTION,
                    "efficient": SDPBackend.EFFICIENT_ATTENTION,
                    "math": SDPBackend.MATH, "default": None}[args.sdpa_backend]
    if args.sdpa_backend != "default" and backend_enum is None:
        return fail_all(f"SDPBackend has no {args.sdpa_backend} backend in torch {torch.__version__}")
    print(f"transformers_baseline on {base['device']}: torch {torch.__version__} (CUDA "
          f"{torch.version.cuda}), cuDNN {base['cudnn']}, transformers {transformers.__version__}, "
          f"SDPA backend {args.sdpa_backend}", file=sys.stderr, flush=True)

    # The model: config, meta-device build, materialisation on the GPU.
    try:
        t0 = time.monotonic()
        max_pos = max([131072] + tokens_list)
        major = int(transformers.__version__.split(".")[0])
        shape = LLAMA3_TINY if args.check_on_cpu else LLAMA3_8B
        if major >= 5:
            config = LlamaConfig(**shape, max_position_embeddings=max_pos,
                                 rope_parameters=dict(ROPE), attn_implementation="sdpa")
        else:
            scaling = {k: v for k, v in ROPE.items() if k != "rope_theta"}
            config = LlamaConfig(**shape, max_position_embeddings=max_pos,
                                 rope_theta=ROPE["rope_theta"], rope_scaling=scaling,
                                 attn_implementation="sdpa")
        config.use_cache = True
        cls = LlamaForCausalLM if args.model_class == "causal" else LlamaModel
        with torch.device("meta"):
            model = cls(config)
        model = model.to(dtype=torch.bfloat16)
        model.to_empty(device=dev)
        gen = torch.Generator(device=dev)
        gen.manual_seed(args.seed)
        n_params = 0
        with torch.no_grad():
            for _, p in model.named_parameters():
                n_params += p.numel()
                if p.dim() == 1:
                    p.fill_(1.0)  # RMSNorm weights
                else:
                    p.normal_(0.0, 0.02, generator=gen)
        # Buffers came from to_empty uninitialised: rebuild the rotary embedding (fp32 inv_freq).
        inner = model.model if hasattr(model, "model") else model
        rot_cls = type(inner.rotary_emb)
        inner.rotary_emb = rot_cls(config=config).to(dev)
        inv = inner.rotary_emb.inv_freq.float().cpu().tolist()
        want = llama3_inv_freq(config.head_dim)
        rope_err = max(abs(a - b) / b for a, b in zip(inv, want)) if len(inv) == len(want) \
            else float("inf")
        rope_check = (f"ok: inv_freq matches llama3 scaling (max rel. err {rope_err:.1e})"
                      if rope_err < 1e-5 else
                      f"MISMATCH: inv_freq vs llama3 scaling, max rel. err {rope_err:.3g}")
        bad = [n for n, b in model.named_buffers()
               if b.device.type != dev or (b.is_floating_point() and
                                               not bool(torch.isfinite(b).all()))]
        if bad:
            return fail_all(f"buffers left uninitialised after to_empty: {bad[:5]}")
        model.eval()
        attn_impl = getattr(model.config, "_attn_implementation", None)
        sync()
        weights_bytes = torch.cuda.memory_allocated() if cuda else \
            sum(p.numel() * p.element_size() for p in model.parameters())
        base.update({"params": n_params, "weights_gib": weights_bytes / 2**30,
                     "attn_implementation": attn_impl, "rope_check": rope_check})
        print(f"transformers_baseline: {cls.__name__} with {n_params / 1e9:.2f} B parameters "
              f"({weights_bytes / 2**30:.1f} GiB) in {time.monotonic() - t0:.1f} s; "
              f"attn_implementation {attn_impl}; rope {rope_check}", file=sys.stderr, flush=True)
        if attn_impl != "sdpa":
            return fail_all(f"attn_implementation is {attn_impl!r}, not 'sdpa'")
    except torch.cuda.OutOfMemoryError as e:
        for t in tokens_list:
            emit(t, "oom", error=f"building the model: {first_line(e)}")
        return 1
    except Exception as e:  # noqa: BLE001
        return fail_all(f"building the model: {type(e).__name__}: {first_line(e)}")

    probe = SdpaProbe(torch, cuda)
    gqa = {"mode": None, "fallback_tried": False}

    def kernel_ctx():
        if backend_enum is None:
            import contextlib
            return contextlib.nullcontext()
        return sdpa_kernel([backend_enum])

    def forward(ids):
        with torch.inference_mode(), kernel_ctx():
            if args.model_class == "causal":
                return model(input_ids=ids, use_cache=True, logits_to_keep=1)
            return model(input_ids=ids, use_cache=True)

    import transformers.integrations.sdpa_attention as sdpa_integration
    use_gqa_orig = getattr(sdpa_integration, "use_gqa_in_sdpa", None)

    def use_repeat_kv(on):
        """on: transformers expands K/V (repeat_kv) instead of passing enable_gqa=True."""
        if use_gqa_orig is not None:
            sdpa_integration.use_gqa_in_sdpa = (lambda *a, **k: False) if on else use_gqa_orig

    def cache_bytes(cache):
        try:
            layers = getattr(cache, "layers", None)
            if layers is not None:
                return sum(t.numel() * t.element_size() for layer in layers
                           for t in (layer.keys, layer.values) if t is not None)
            return sum(t.numel() * t.element_size()
                       for t in list(cache.key_cache) + list(cache.value_cache))
        except Exception:  # noqa: BLE001 - only a reported number
            return None

    def make_ids(t):
        g = torch.Generator(device=dev)
        g.manual_seed(args.seed * 1000003 + t)
        return torch.randint(0, config.vocab_size, (1, t), device=dev, generator=g)

    def run_checked(ids):
        """One forward. The first one that works fixes the GQA mode: enable_gqa=True as
        transformers passes it, else (the backend refused it; tried once) K/V expanded by
        repeat_kv."""
        try:
            out = forward(ids)
        except RuntimeError as e:
            if gqa["mode"] is not None or gqa["fallback_tried"] or use_gqa_orig is None \
                    or isinstance(e, torch.cuda.OutOfMemoryError):
                raise
            gqa["fallback_tried"] = True
            why = first_line(e)
            print(f"transformers_baseline: forward failed ({why}); retrying once with K/V "
                  f"expanded by repeat_kv instead of enable_gqa", file=sys.stderr, flush=True)
            use_repeat_kv(True)
            probe.first_call = None
            try:
                out = forward(ids)
            except RuntimeError as e2:
                use_repeat_kv(False)  # no better with it: back to what transformers does
                if isinstance(e2, torch.cuda.OutOfMemoryError):
                    raise
                raise RuntimeError(f"{why}; and with repeat_kv: {first_line(e2)}") from e2
            gqa["mode"] = f"expanded_kv (repeat_kv; enable_gqa failed: {why[:200]})"
        if gqa["mode"] is None:
            call = probe.first_call or {}
            gqa["mode"] = "enable_gqa" if call.get("enable_gqa") else "expanded_kv"
        return out

    def one_layer_pass(ids):
        """An untimed forward through the first layer alone, at the full length."""
        cfg = inner.config  # the config LlamaModel.forward reads num_hidden_layers from
        n = cfg.num_hidden_layers
        cfg.num_hidden_layers = 1
        probe.calls = 0
        try:
            out = run_checked(ids)
            del out
        finally:
            cfg.num_hidden_layers = n
        sync()
        if probe.calls != 1:
            print(f"transformers_baseline: WARNING: the 1-layer pass made {probe.calls} SDPA "
                  f"calls (expected 1)", file=sys.stderr, flush=True)

    def timed(ids):
        sync()
        if cuda:
            torch.cuda.reset_peak_memory_stats()
            e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        probe.start()
        t0 = time.perf_counter()
        if cuda:
            e0.record()
        out = run_checked(ids)
        if cuda:
            e1.record()
        sync()
        wall = time.perf_counter() - t0
        attn = probe.stop()
        res = {"total_s": wall, "events_s": e0.elapsed_time(e1) / 1e3 if cuda else wall,
               "attention_s": attn, "sdpa_calls": probe.calls,
               "peak_device_bytes": torch.cuda.max_memory_allocated() if cuda else None}
        cache = getattr(out, "past_key_values", None)
        res["kv_cache_bytes"] = cache_bytes(cache) if cache is not None else None
        if args.model_class == "causal":
            logits = out.logits
            finite = bool(torch.isfinite(logits).all())
            res["output_check"] = (f"ok: logits {list(logits.shape)} finite"
                                   if logits.shape[1] == 1 and finite
                                   else f"BAD: logits {list(logits.shape)}, finite {finite}")
        else:
            h = out.last_hidden_state
            finite = bool(torch.isfinite(h).all())
            res["output_check"] = (f"ok: hidden {list(h.shape)} finite" if finite
                                   else f"BAD: hidden {list(h.shape)} not finite")
        del out, cache
        return res

    def free():
        gc.collect()
        if cuda:
            torch.cuda.empty_cache()

    # Full-model warm-up at a short length.
    if warmup_tokens > 0:
        try:
            t0 = time.monotonic()
            out = run_checked(make_ids(warmup_tokens))
            del out
            sync()
            print(f"transformers_baseline: warm-up at {fmt_tokens(warmup_tokens)}: "
                  f"{time.monotonic() - t0:.2f} s; GQA {gqa['mode']}; first SDPA call "
                  f"{probe.first_call}", file=sys.stderr, flush=True)
        except Exception as e:  # noqa: BLE001 - rows below will say what fails
            print(f"transformers_baseline: warm-up failed: {type(e).__name__}: {first_line(e)}",
                  file=sys.stderr, flush=True)
        free()

    prev = None  # (tokens, total_s, attention_s) of the last ok length
    any_error = False
    for t in tokens_list:
        n = args.repeats if t < long_from else args.long_repeats
        remaining = args.max_seconds - (time.monotonic() - start) if args.max_seconds > 0 else None
        if remaining is not None:
            why = None
            if remaining <= 0:
                why = f"time budget (--max-seconds {args.max_seconds:g}) used up"
            elif prev is not None:
                x = t / prev[0]
                predicted = 1.2 * ((prev[1] - prev[2]) * x + prev[2] * x * x) * (1 + 1 / 32)
                if predicted > remaining:
                    why = (f"predicted {predicted:.1f} s (scaled from {fmt_tokens(prev[0])}) > "
                           f"{remaining:.1f} s left of --max-seconds {args.max_seconds:g}")
            if why:
                emit(t, "skipped", error=why)
                continue
        ids = None
        runs = []
        try:
            ids = make_ids(t)
            warm = "none"
            if not args.no_shape_warmup:
                one_layer_pass(ids)
                warm = "a 1-layer pass at this length"
            for i in range(n):
                if i > 0 and remaining is not None:
                    left = args.max_seconds - (time.monotonic() - start)
                    if runs[-1]["total_s"] * 1.1 > left:
                        break
                runs.append(timed(ids))
                print(f"  [{fmt_tokens(t)}] run {i + 1}: {runs[-1]['total_s']:.3f} s "
                      f"(attention {runs[-1]['attention_s']:.3f} s)", file=sys.stderr, flush=True)
            order = sorted(range(len(runs)), key=lambda i: runs[i]["total_s"])
            med = runs[order[(len(order) - 1) // 2]]
            fields = {
                "total_s": med["total_s"], "runs_s": [r["total_s"] for r in runs],
                "repeats": len(runs), "repeats_wanted": n,
                "total_min_s": runs[order[0]]["total_s"],
                "total_max_s": runs[order[-1]]["total_s"],
                "events_s": med["events_s"], "attention_s": med["attention_s"],
                "sdpa_calls": med["sdpa_calls"],
                "tokens_per_s": t / med["total_s"],
                "peak_device_bytes": max(r["peak_device_bytes"] for r in runs) if cuda else None,
                "peak_gib": max(r["peak_device_bytes"] for r in runs) / 2**30 if cuda else None,
                "kv_cache_bytes": med["kv_cache_bytes"], "output_check": med["output_check"],
                "gqa_mode": gqa["mode"], "sdpa_call": probe.first_call, "warmup": warm}
            notes = []
            call = probe.first_call or {}
            if call.get("attn_mask") is not None or not call.get("is_causal"):
                notes.append(f"SDPA got mask {call.get('attn_mask')} is_causal "
                             f"{call.get('is_causal')}: not the fast causal path")
            if len(runs) < n:
                notes.append(f"{len(runs)} of {n} runs: the next would not fit the time budget")
            if not str(med["output_check"]).startswith("ok"):
                notes.append(f"output check: {med['output_check']}")
            if notes:
                fields["note"] = "; ".join(notes)
            emit(t, "ok", **fields)
            prev = (t, med["total_s"], med["attention_s"])
        except torch.cuda.OutOfMemoryError as e:
            emit(t, "oom", error=first_line(e)[:500], runs_s=[r["total_s"] for r in runs])
        except Exception as e:  # noqa: BLE001 - a failure is a row, not a crash
            any_error = True
            emit(t, "error", error=f"{type(e).__name__}: {first_line(e)}"[:500],
                 runs_s=[r["total_s"] for r in runs])
        finally:
            del ids
            free()
    print(f"transformers_baseline: done in {time.monotonic() - start:.1f} s", file=sys.stderr)
    return 1 if any_error else 0


if __name__ == "__main__":
    sys.exit(main())
