#!/usr/bin/env python3
"""Reference data for the C++ tokenizer test, from Hugging Face `tokenizers` (the reference
implementation) built on SmolLM2-135M's own vocabulary:

  tests/data/smollm2-tokenizer/tokenizer.gguf  the tokenizer.ggml.* metadata of the SmolLM2 GGUF
                                               (no tensors; ~1 MB), so the test needs no download
  tests/data/smollm2-tokenizer/expected.json   for each sample text: the token ids of the
                                               SmolLM2 tokenizer and their decoded text, and the
                                               pieces of the gpt2 and qwen2 splitting regexes
                                               (tokenizers' Split)

The HF tokenizer is assembled as SmolLM2's tokenizer.json defines it: BPE over the vocabulary and
merges, pre-tokenizers Digits(individual_digits=True) then ByteLevel(add_prefix_space=False,
use_regex=True), the control tokens as special added tokens, no BOS.

    pip install gguf tokenizers && deploy/fetch_models.sh smollm2
    python3 tests/data/gen_tokenizer_golden.py [PATH_TO_SMOLLM2_GGUF]
"""
import json
import os
import struct
import sys

import gguf
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "smollm2-tokenizer")
DEFAULT_GGUF = os.path.join(
    os.environ.get("SPARSEFILL_MODEL_CACHE", os.path.expanduser("~/.cache/sparsefill/models")),
    "SmolLM2-135M-Instruct.Q4_1.gguf")

GPT2_REGEX = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
QWEN2_REGEX = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"""
               r""" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+""")

SAMPLES = [
    "The capital of France is",
    "Hello, world! How are you doing today?",
    "I don't think we'll make it; they're late, aren't they? WE'VE GOT IT'S",
    "Prices: $100.00, 3.14159, 1,234,567 and 2026-11-26T13:49:42Z.",
    "abc123def 42x  0xFF  ½ ² ٣ 一二三",
    "    leading spaces and trailing spaces    ",
    "tabs\tand\nnewlines\n\n\nand\r\nwindows\r\n  \n mixed \t\n",
    "Unicode: café naïve résumé Ærøskøbing straße İstanbul",
    "日本語のテキストと中文文本，还有한국어 텍스트。",
    "Русский текст и ελληνικά и العربية و עברית",
    "Emoji 🎉🚀 and symbols ©®™ ∑∫√ — “quotes” ‘single’ … «guillemets»",
    "def f(x):\n    return x ** 2  # square\n\nprint(f(3))",
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>",
    "<|endoftext|><|endoftext|>text<repo_name>name<file_sep>",
    "!!!???...,,,;;;::: ''' \"\"\" ``` ~~~ @@@ ###",
    "URL: https://example.com/path?query=1&b=2#frag and e-mail a.b@c.de",
    "A"*40 + " " + "ab"*30,
    "'s 's's ' s 'S 'RE 'tis o'clock rock'n'roll",
    "   ",
    "x",
    " \u00a0 \u3000nbsp and ideographic spaces\u2003em",
    # Bytes SmolLM2's vocabulary lacks (some controls, the lead byte F1 of plane-5 characters):
    # tokenizers drops them before merging.
    "ctrl\x04chars !\x04! ..\x13.. \U00050000z \x1dend",
    ("Once upon a time, in a land far, far away, there lived 7 dwarves and 1 princess. "
     "They worked 12-hour shifts (mostly!) in the mines; the pay was 3.5 gold/day.\n"
     "\"Why?\" she asked. \"Because,\" they said, \"that's how it's always been.\"\n"),
    # One 3000-letter pseudo-random word: many merges in one piece.
    "".join(chr(97 + (i * 7919 + (i * i) % 31) % 26) for i in range(3000)),
]


def strings(reader, key):
    field = reader.fields[key]
    return [bytes(field.parts[i]).decode("utf-8") for i in field.data]


def ints(reader, key):
    field = reader.fields[key]
    return [int(field.parts[i][0]) for i in field.data]


def scalar(reader, key):
    field = reader.fields[key]
    return field.parts[field.data[0]][0].item()


def write_gguf(path, kv):
    """A tensorless GGUF v3 holding `kv`: (key, type, value) with the GGUF value types used."""
    def s(x):
        b = x.encode("utf-8")
        return struct.pack("<Q", len(b)) + b
    out = bytearray(b"GGUF" + struct.pack("<IQQ", 3, 0, len(kv)))
    for key, vtype, value in kv:
        out += s(key) + struct.pack("<I", vtype)
        if vtype == 8:
            out += s(value)
        elif vtype == 4:
            out += struct.pack("<I", value)
        elif vtype == 7:
            out += struct.pack("<B", int(value))
        elif vtype == 9:
            etype, items = value
            out += struct.pack("<IQ", etype, len(items))
            for item in items:
                out += s(item) if etype == 8 else struct.pack("<i", item)
        else:
            raise ValueError(vtype)
    with open(path, "wb") as f:
        f.write(out)


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_GGUF
    reader = gguf.GGUFReader(path)
    tokens = strings(reader, "tokenizer.ggml.tokens")
    merges = strings(reader, "tokenizer.ggml.merges")
    types = ints(reader, "tokenizer.ggml.token_type")
    bos, eos = scalar(reader, "tokenizer.ggml.bos_token_id"), scalar(reader, "tokenizer.ggml.eos_token_id")
    add_bos = bool(scalar(reader, "tokenizer.ggml.add_bos_token"))
    pre = bytes(reader.fields["tokenizer.ggml.pre"].parts[-1]).decode()
    assert pre == "smollm", pre

    os.makedirs(OUT, exist_ok=True)
    write_gguf(os.path.join(OUT, "tokenizer.gguf"), [
        ("tokenizer.ggml.model", 8, "gpt2"),
        ("tokenizer.ggml.pre", 8, pre),
        ("tokenizer.ggml.tokens", 9, (8, tokens)),
        ("tokenizer.ggml.token_type", 9, (5, types)),
        ("tokenizer.ggml.merges", 9, (8, merges)),
        ("tokenizer.ggml.bos_token_id", 4, bos),
        ("tokenizer.ggml.eos_token_id", 4, eos),
        ("tokenizer.ggml.add_bos_token", 7, add_bos),
    ])

    tok = Tokenizer(models.BPE({t: i for i, t in enumerate(tokens)},
                               [tuple(m.split(" ")) for m in merges]))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False)
                            for t, ty in zip(tokens, types) if ty in (3, 4)])
    gpt2 = pre_tokenizers.Split(Regex(GPT2_REGEX), behavior="isolated")
    qwen2 = pre_tokenizers.Split(Regex(QWEN2_REGEX), behavior="isolated")

    cases = []
    for text in SAMPLES:
        ids = tok.encode(text).ids
        decoded = tok.decode(ids, skip_special_tokens=False)
        cases.append({
            "text": text,
            "ids": ids,
            "decoded": decoded,  # the text itself unless it has bytes the vocabulary lacks
            "gpt2_pieces": [p for p, _ in gpt2.pre_tokenize_str(text)],
            "qwen2_pieces": [p for p, _ in qwen2.pre_tokenize_str(text)],
        })
    with open(os.path.join(OUT, "expected.json"), "w", encoding="utf-8") as f:
        json.dump({"source": os.path.basename(path), "cases": cases}, f, ensure_ascii=False,
                  indent=1)
        f.write("\n")
    print(f"wrote {len(cases)} cases, {sum(len(c['ids']) for c in cases)} tokens to {OUT}")


if __name__ == "__main__":
    main()
