"""The prose model of the quantization benchmark: its corpus and split (bench/prose_corpus.py),
the demo trainer's save path it reuses, and the benchmark's use of a model's own eval set."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from magimac.engine import evaluate

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import bench_quant_methods  # noqa: E402
import prose_corpus  # noqa: E402

SOURCE = '''#!/usr/bin/env python3
# -*- coding: utf-8 -*-
"""Module docstring: tools for lighthouses."""

# A comment block that explains
# the next function in two lines.
# ----------------------------
def beam(x):
    """Turn the beam by ``x`` degrees."""
    return x  # trailing note


class Keeper:
    """Keeps the log."""
'''


def test_module_text_keeps_docstrings_and_comment_blocks_in_source_order():
    text = prose_corpus.module_text(SOURCE)
    assert text.split("\n\n") == [
        "Module docstring: tools for lighthouses.",
        "A comment block that explains\nthe next function in two lines.",
        "Turn the beam by ``x`` degrees.",
        "trailing note",
        "Keeps the log.",
    ]
    assert "coding" not in text and "/usr/bin" not in text and "---" not in text
    assert prose_corpus.module_text("def broken(:\n") == ""


def test_split_is_by_module_stable_and_holds_out_about_a_tenth():
    root = prose_corpus.stdlib_root()
    rels = [p.relative_to(root).as_posix() for p in prose_corpus.module_paths(root)]
    assert rels and not any("test" in r or "site-packages" in r for r in rels)
    held = [r for r in rels if prose_corpus.is_held_out(r)]
    assert 0.05 < len(held) / len(rels) < 0.15
    assert [r for r in rels if prose_corpus.is_held_out(r)] == held  # deterministic


def test_held_out_text_is_an_eval_set_the_benchmark_scores_on(tmp_path, ckpt):
    from mlx_lm.utils import load_tokenizer

    held = [("json/decoder.py", "Decode JSON documents."), ("os.py", "Portable OS calls. " * 10)]
    model = tmp_path / "model"
    written = prose_corpus.write_eval(held, model / "eval", max_chars=60, root=Path("/stdlib"))
    assert written == 60
    assert sorted(p.name for p in (model / "eval").iterdir()) == [
        "SOURCES.md", "stdlib-json.decoder.txt", "stdlib-os.txt"]
    assert "PSF-2.0" in (model / "eval" / "SOURCES.md").read_text()
    texts = evaluate.load_eval_texts(load_tokenizer(ckpt), model / "eval")
    assert [t.name for t in texts] == ["stdlib-json.decoder", "stdlib-os"]

    sets = bench_quant_methods.eval_sets(model, tmp_path, [tmp_path / "extra"])
    assert sets == {"bundled": None, "own-held-out": model / "eval", "eval:extra": tmp_path / "extra"}
    assert bench_quant_methods.eval_sets(tmp_path / "other", tmp_path) == {"bundled": None}


def test_trainer_save_writes_a_checkpoint_mlx_lm_reads_the_same(tmp_path):
    pytest.importorskip("torch", reason="the demo/prose trainers need the `train` extra (PyTorch)")
    from magimac.demo import train
    from magimac.testing import checkpoint as ck

    text = dict(hidden=64, layers=1, intermediate=128, heads=2, kv_heads=1, head_dim=32)
    model = train.Decoder(vocab=2048, context=256, **text)
    opt, sched = train.make_optimizer(model, 1e-3, steps=3)  # fewer than 10 steps: warm-up of 1
    ids = list(range(1000, 1040))
    import torch

    x = torch.tensor([ids])
    train.train_step(model, opt, sched, train.loss_fn(model, x[:, :-1], x[:, 1:]))
    config = train.model_config(ck, vocab=2048, text=text, context=256)
    out = tmp_path / "m"
    train.save(model, config, ck, out, 0, system_prompt=None, extra=lambda d: (d / "eval").mkdir())
    assert not (out / "SYSTEM_PROMPT.txt").exists() and (out / "eval").is_dir()
    assert config["text_config"]["max_position_embeddings"] == 256
    assert train.check_against_mlx(model, out, ids) < 0.1
