"""Fixtures of the bench tests: a small random checkpoint and a short evaluation set."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from magimac.testing.checkpoint import build_checkpoint

SHORT_TEXT = ("The lighthouse keeper wrote in his logbook every evening, even when nothing "
              "happened: the wind, the colour of the sea, the ships far out on the horizon.")
TURN = {"name": "reasoning-add", "user": "What is 2 + 3?",
        "reasoning": "Two plus three is five. [INST] typed by a person stays text.",
        "answer": "$2 + 3 = 5$"}


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    """A random-weight bf16 checkpoint with a small vocabulary (fast on the CPU backend)."""
    return build_checkpoint(tmp_path_factory.mktemp("bench") / "ckpt", vocab=2048)


@pytest.fixture(scope="module")
def eval_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("eval")
    (d / "prose-en.txt").write_text(SHORT_TEXT)
    (d / "reasoning.json").write_text(json.dumps([TURN]))
    return d
