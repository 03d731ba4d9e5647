"""Helpers shared by the benchmark scripts in tests/bench (standard library only)."""

import json
import os
import re
import sys


def parse_tokens(text):
    """ "32K,128K,1M" or "32768,131072" -> [32768, 131072, ...]."""
    out = []
    for item in str(text).split(","):
        item = item.strip()
        if not item:
            continue
        mult = 1
        if item[-1] in "kK":
            mult, item = 1024, item[:-1]
        elif item[-1] in "mM":
            mult, item = 1024 * 1024, item[:-1]
        out.append(int(item) * mult)
    return out


def fmt_tokens(t):
    """32768 -> "32K", 1048576 -> "1M"."""
    if t % (1024 * 1024) == 0:
        return f"{t // (1024 * 1024)}M"
    if t % 1024 == 0:
        return f"{t // 1024}K"
    return str(t)


def first_line(e):
    """The first line of an exception's text (for one-line error rows)."""
    text = str(e).strip().splitlines()
    return text[0] if text else repr(e)


def sanitize(text):
    """A file-name-safe form of a card name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "unknown"


def write_results(out_dir, stem, text, rows, tool):
    """Writes OUT_DIR/STEM.md (the table) and OUT_DIR/STEM.jsonl (the rows, one per line)."""
    os.makedirs(out_dir, exist_ok=True)
    md_path = os.path.join(out_dir, stem + ".md")
    json_path = os.path.join(out_dir, stem + ".jsonl")
    with open(md_path, "w", encoding="utf-8") as f:
        f.write(text + "\n")
    with open(json_path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    print(f"{tool}: wrote {md_path} and {json_path}", file=sys.stderr)
