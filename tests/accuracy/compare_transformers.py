#!/usr/bin/env python3
"""sparsefill's GGUF path against Hugging Face transformers on the same GGUF file.

transformers reads the GGUF itself (its own dequantization, its own undoing of llama.cpp's Q/K
permutation, its own tokenizer built from the GGUF vocabulary) and runs its float32 Llama on the
CPU. For each prompt this runs `sparsefill run --backend cpu --save-kv` on the same file twice:
with transformers' token ids (--tokens: the model alone) and with the text (--text-file: our
tokenizer too), and reports

  ids        whether our tokenizer gave transformers' ids (from the prompt count and first token)
  logits     relative L2 error of the last position's logits, top-1 agreement, top-5 overlap
  kv         the worst relative L2 error of any layer's K (after RoPE) or V

    pip install torch transformers accelerate gguf safetensors
    deploy/fetch_models.sh smollm2
    tests/accuracy/compare_transformers.py [--bin build/bin/sparsefill] [--model PATH.gguf]
                                           [--json OUT.jsonl]

Needs no network: transformers loads the GGUF from the local folder (HF_HUB_OFFLINE=1 is set).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from safetensors.numpy import load_file  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CACHE = os.environ.get("SPARSEFILL_MODEL_CACHE", os.path.expanduser("~/.cache/sparsefill/models"))

FILLER = ("The grass is green. The sky is blue. The sun is yellow. Here we go. There and back "
          "again. ")
PROMPTS = [
    "The capital of France is",
    "Monday, Tuesday, Wednesday, Thursday,",
    "1, 2, 3, 4, ",
    "The largest planet in the solar system is",
    "Water is made of hydrogen and",
    "<|im_start|>user\nWhat is the capital of Italy?<|im_end|>\n<|im_start|>assistant\n",
    "def fibonacci(n):\n    if n < 2:\n        return n\n    return",
    "Der schnelle braune Fuchs springt über den faulen Hund. En français, le renard",
    # A passkey in filler text, ~1.1K tokens: long enough for real attention structure.
    FILLER * 20 + "The pass key is 71432. Remember it. 71432 is the pass key. " + FILLER * 20
    + "What is the pass key? The pass key is",
]


def rel(a, b):
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def run_cli(binary, model, prompt_args, out):
    cmd = [binary, "run", "--backend", "cpu", "--model", "gguf:" + model, "--save-kv", out] + prompt_args
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{r.stdout}{r.stderr}")
    return r.stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "bin", "sparsefill"))
    ap.add_argument("--model", default=os.path.join(CACHE, "SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--json", help="also write one JSON row per prompt here")
    args = ap.parse_args()
    if not os.path.exists(args.model):
        sys.exit(f"{args.model} is absent: run deploy/fetch_models.sh")

    t0 = time.time()
    folder, name = os.path.split(os.path.abspath(args.model))
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    hf = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    hf.eval()
    print(f"transformers loaded {name} in {time.time() - t0:.1f} s", file=sys.stderr)

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, prompt in enumerate(PROMPTS):
            ids = tok(prompt, add_special_tokens=True).input_ids
            with torch.no_grad():
                out = hf(torch.tensor([ids]), use_cache=True)
            ref_logits = out.logits[0, -1].float().numpy()
            cache = out.past_key_values
            ids_path = os.path.join(tmp, f"ids{i}.txt")
            with open(ids_path, "w") as f:
                f.write(" ".join(map(str, ids)))
            text_path = os.path.join(tmp, f"text{i}.txt")
            with open(text_path, "w", encoding="utf-8") as f:
                f.write(prompt)
            kv_path = os.path.join(tmp, f"kv{i}.safetensors")
            run_cli(args.bin, args.model, ["--tokens", ids_path], kv_path)
            ours = load_file(kv_path)
            text_out = run_cli(args.bin, args.model, ["--text-file", text_path],
                               os.path.join(tmp, f"kvt{i}.safetensors"))
            same_ids = f"prefill    {len(ids)} tokens" in text_out
            logits = ours["logits_last"]
            kv_err = 0.0
            for layer in range(hf.config.num_hidden_layers):
                lk = cache.layers[layer].keys if hasattr(cache, "layers") else cache[layer][0]
                lv = cache.layers[layer].values if hasattr(cache, "layers") else cache[layer][1]
                # transformers: [batch, kv_heads, tokens, head_dim]; ours: [tokens, kv_heads, head_dim]
                kv_err = max(kv_err,
                             rel(ours[f"layer.{layer}.k"], lk[0].permute(1, 0, 2).numpy()),
                             rel(ours[f"layer.{layer}.v"], lv[0].permute(1, 0, 2).numpy()))
            top5_ours = set(np.argsort(-logits)[:5].tolist())
            top5_ref = set(np.argsort(-ref_logits)[:5].tolist())
            row = {
                "prompt": prompt if len(prompt) < 60 else prompt[:40] + "...",
                "tokens": len(ids),
                "same_ids_from_text": same_ids,
                "logits_rel_err": rel(logits, ref_logits),
                "top1_agree": int(np.argmax(logits)) == int(np.argmax(ref_logits)),
                "top5_overlap": len(top5_ours & top5_ref),
                "kv_max_rel_err": kv_err,
                "next_token": tok.decode([int(np.argmax(ref_logits))]),
            }
            rows.append(row)
            print(json.dumps(row, ensure_ascii=False), file=sys.stderr)

    print("| prompt | tokens | ids from text | logits rel err | top-1 | top-5 overlap | max K/V rel err | transformers' next token |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        p = r["prompt"].replace("\n", "\\n").replace("|", "\\|")
        print(f"| {p} | {r['tokens']} | {'same' if r['same_ids_from_text'] else 'DIFFERENT'} | "
              f"{r['logits_rel_err']:.2e} | {'yes' if r['top1_agree'] else 'NO'} | "
              f"{r['top5_overlap']}/5 | {r['kv_max_rel_err']:.2e} | {json.dumps(r['next_token'], ensure_ascii=False)} |")
    if args.json:
        with open(args.json, "w") as f:
            for r in rows:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
    bad = [r for r in rows if not r["top1_agree"] or r["logits_rel_err"] > 1e-3]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
