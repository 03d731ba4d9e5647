"""Golden prefill outputs of Hugging Face transformers for Llama-family shapes beyond tiny-llama3.

Like shared/tools/gen_golden.py (which made tiny-llama3 on the GPU box), but run on the CPU in
float32 with eager attention, and with the checkpoint written the ways real models are:
  tiny-llama2-mha      MHA (4/4 heads), head_dim 64, default RoPE (theta 1e4) in the top-level
                       `rope_theta` form with `rope_scaling: null`, tied embeddings.
  tiny-llama31-sharded GQA 8/2, head_dim 32, llama3 RoPE in the top-level `rope_scaling` form
                       (Llama 3.1's config), weights in 2 shards + model.safetensors.index.json.
  tiny-mistral-window  model_type mistral, GQA 4/1 (ratio 4), head_dim 48, RoPE theta 1e6,
                       sliding window 64 over a 300-token prompt. transformers' sliding-window
                       cache keeps only the last 63 (window - 1) tokens, so its golden K/V hold
                       those; sparsefill streams all tokens and the test compares the tail.
  tiny-qwen2           model_type qwen2: q/k/v biases (drawn like the weights, so they matter),
                       GQA 6/2, head_dim 32, RoPE theta 1e6, untied embeddings; its config names a
                       sliding window that use_sliding_window=false leaves unused (transformers
                       writes it as null).
Each folder: config.json, weights, golden.safetensors (input_ids int32 [T]; layer.{i}.k/v float32
[T, kv_heads, head_dim], K after RoPE; logits_last float32 [vocab]), meta.json.

Usage (needs torch, transformers, safetensors): python3 gen_golden_variants.py [OUT_DIR [NAME...]]
(NAMEs: only those variants.)
"""
import json
import os
import sys

import torch
from safetensors.torch import save_file
from transformers import (AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM, MistralConfig,
                          MistralForCausalLM, Qwen2Config, Qwen2ForCausalLM)

CLASSES = {"llama": (LlamaConfig, LlamaForCausalLM), "mistral": (MistralConfig, MistralForCausalLM),
           "qwen2": (Qwen2Config, Qwen2ForCausalLM)}

VARIANTS = {
    "tiny-llama2-mha": dict(
        arch="llama",
        cfg=dict(vocab_size=384, hidden_size=256, intermediate_size=512, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=4, head_dim=64, rms_norm_eps=1e-6,
                 rope_theta=10000.0, max_position_embeddings=4096, tie_word_embeddings=True),
        legacy_rope=dict(rope_theta=10000.0, rope_scaling=None),
        tokens=257, seed=7, shard=None),
    "tiny-llama31-sharded": dict(
        arch="llama",
        cfg=dict(vocab_size=512, hidden_size=256, intermediate_size=640, num_hidden_layers=3,
                 num_attention_heads=8, num_key_value_heads=2, head_dim=32, rms_norm_eps=1e-5,
                 rope_theta=500000.0, max_position_embeddings=131072,
                 rope_scaling=dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0,
                                   high_freq_factor=4.0, original_max_position_embeddings=256),
                 tie_word_embeddings=False),
        legacy_rope=dict(rope_theta=500000.0,
                         rope_scaling=dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0,
                                           high_freq_factor=4.0, original_max_position_embeddings=256)),
        tokens=601, seed=11, shard="1MB"),
    "tiny-mistral-window": dict(
        arch="mistral",
        cfg=dict(vocab_size=320, hidden_size=192, intermediate_size=448, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=1, head_dim=48, rms_norm_eps=1e-5,
                 rope_theta=1000000.0, max_position_embeddings=32768, sliding_window=64,
                 tie_word_embeddings=False),
        legacy_rope=dict(rope_theta=1000000.0),
        tokens=300, seed=13, shard=None),
    "tiny-qwen2": dict(
        arch="qwen2",
        cfg=dict(vocab_size=448, hidden_size=192, intermediate_size=512, num_hidden_layers=2,
                 num_attention_heads=6, num_key_value_heads=2, head_dim=32, rms_norm_eps=1e-6,
                 rope_theta=1000000.0, max_position_embeddings=32768, use_sliding_window=False,
                 sliding_window=32, max_window_layers=1, tie_word_embeddings=False),
        legacy_rope=dict(rope_theta=1000000.0),
        tokens=233, seed=17, shard=None),
}


def rewrite_config_legacy(path, legacy):
    """transformers 5 writes `rope_parameters`; checkpoints in the wild carry the older keys."""
    with open(path) as f:
        cfg = json.load(f)
    cfg.pop("rope_parameters", None)
    cfg.update(legacy)
    with open(path, "w") as f:
        json.dump(cfg, f, indent=2)


def run(name, spec, out_root):
    torch.manual_seed(spec["seed"])
    config_cls, model_cls = CLASSES[spec["arch"]]
    cfg = config_cls(**spec["cfg"])
    cfg._attn_implementation = "eager"
    model = model_cls(cfg)
    with torch.no_grad():
        for _, p in model.named_parameters():
            if p.dim() == 2:
                p.normal_(0.0, 0.06)
        for pname, p in model.named_parameters():
            if pname.endswith(".bias"):  # transformers starts biases at zero: make them count
                p.normal_(0.0, 0.5)
    model = model.to(torch.bfloat16)
    d = os.path.join(out_root, name)
    os.makedirs(d, exist_ok=True)
    kwargs = dict(safe_serialization=True)
    if spec["shard"]:
        kwargs["max_shard_size"] = spec["shard"]
    model.save_pretrained(d, **kwargs)
    rewrite_config_legacy(os.path.join(d, "config.json"), spec["legacy_rope"])

    g = torch.Generator().manual_seed(spec["seed"] + 1)
    ids = torch.randint(0, cfg.vocab_size, (1, spec["tokens"]), generator=g)
    m32 = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32, attn_implementation="eager").eval()
    with torch.no_grad():
        o = m32(ids, use_cache=True)
    tensors = {"input_ids": ids[0].to(torch.int32).contiguous(),
               "logits_last": o.logits[0, -1].float().contiguous()}
    pkv = o.past_key_values
    for i in range(cfg.num_hidden_layers):
        layer = pkv.layers[i]
        tensors[f"layer.{i}.k"] = layer.keys[0].transpose(0, 1).float().contiguous()
        tensors[f"layer.{i}.v"] = layer.values[0].transpose(0, 1).float().contiguous()
    save_file(tensors, os.path.join(d, "golden.safetensors"))
    import transformers
    meta = dict(name=name, tokens=spec["tokens"], seed=spec["seed"], torch=torch.__version__,
                transformers=transformers.__version__, device="cpu",
                argmax_fp32=int(tensors["logits_last"].argmax()),
                files=sorted(os.listdir(d)))
    with open(os.path.join(d, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
    print(name, json.dumps(meta))


if __name__ == "__main__":
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
    names = sys.argv[2:] or list(VARIANTS)
    for n in names:
        run(n, VARIANTS[n], out)
