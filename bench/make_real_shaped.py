"""Write a real-shaped Magistral Small 1.2 checkpoint with few text layers (for bench_quantize).

Same format as `magimac.testing.checkpoint` (HF layout, `mistral3` + `pixtral`, bf16 shards with an
index, v13 `tekken.json`), but with the real config (`magimac/data/magistral-small-2509.json`):
hidden 5120, intermediate 32768, vocabulary 131072, the full 24-layer vision tower, and
``--layers`` text layers (about 4.7 GB on disk for 1 layer, +1.1 GB per layer).  Random
weights (normal, std 0.02; one random block per tensor width, repeated down the rows, which
is as good as fresh noise for timing a conversion and much faster to make), written with
magimac's streaming shard writer, so making it needs well under 1 GB of memory.

Usage: ``python bench/make_real_shaped.py OUT_DIR --layers 2``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import mlx.core as mx

ROOT = Path(__file__).resolve().parent.parent

from magimac.testing.checkpoint import SYSTEM_PROMPT, tensor_shapes
from magimac.testing.tekken import BOS, EOS, write_tekken
from magimac.quantize.layout import TensorSpec
from magimac.quantize.shards import ShardWriter, split_shards

REAL_CONFIG = ROOT / "magimac" / "data" / "magistral-small-2509.json"
SHARD_BYTES = 2 << 30
ROWS = 4096


def real_config(layers: int) -> dict:
    """The real 2509 config.json with ``layers`` text layers."""
    cfg = json.loads(REAL_CONFIG.read_text())
    cfg["text_config"]["num_hidden_layers"] = layers
    return cfg


def make(out: Path, layers: int, seed: int = 0) -> Path:
    """Write the checkpoint into ``out`` (created); returns ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    cfg = real_config(layers)
    shapes = tensor_shapes(cfg)
    groups = [[TensorSpec(n, s, mx.bfloat16)] for n, s in shapes.items()]
    shards = split_shards(groups, SHARD_BYTES)
    mx.random.seed(seed)
    blocks: dict[tuple[int, ...], mx.array] = {}
    weight_map = {}
    for i, specs in enumerate(shards, 1):
        name = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
        w = ShardWriter(out / name, specs)
        for spec in specs:
            weight_map[spec.name] = name
            if "norm" in spec.name:
                w.write(spec.name, mx.ones(spec.shape, dtype=mx.bfloat16))
                continue
            block = blocks.get(spec.shape[1:])
            if block is None:
                block = blocks[spec.shape[1:]] = (mx.random.normal((ROWS, *spec.shape[1:])) * 0.02).astype(mx.bfloat16)
                mx.eval(block)
            for r in range(0, spec.shape[0], ROWS):
                n = min(ROWS, spec.shape[0] - r)
                w.write(spec.name, block[:n], r)
        w.close()
    total = sum(s.nbytes for specs in shards for s in specs)
    (out / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2) + "\n")
    (out / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    (out / "generation_config.json").write_text(json.dumps(
        {"bos_token_id": BOS, "eos_token_id": EOS, "pad_token_id": 11, "temperature": 0.7, "top_p": 0.95,
         "max_length": 131072}, indent=2) + "\n")
    (out / "SYSTEM_PROMPT.txt").write_text(SYSTEM_PROMPT, encoding="utf-8")
    write_tekken(out, vocab_size=131072, image=True, max_image_size=1540)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path)
    p.add_argument("--layers", type=int, default=1)
    a = p.parse_args(argv)
    make(a.out, a.layers)
    print(a.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
