"""Shared fixtures: isolated magimac directories and small real-format checkpoints.

Checkpoints are built once per session (`magimac.testing.checkpoint`); tests that modify a
checkpoint copy it first. Each layer's folder has a `conftest.py` of its own for what only its
tests need.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from magimac.testing.checkpoint import Script, build_checkpoint


@pytest.fixture(autouse=True)
def isolated_dirs(tmp_path, monkeypatch):
    """Every test gets its own config, data, models and Hugging Face cache directories."""
    root = tmp_path / "magimac-home"
    for var, sub in (("MAGIMAC_CONFIG_DIR", "config"), ("MAGIMAC_DATA_DIR", "data"),
                     ("MAGIMAC_MODELS_DIR", "models"), ("HF_HOME", "hf")):
        (root / sub).mkdir(parents=True)
        monkeypatch.setenv(var, str(root / sub))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    return root


@pytest.fixture(scope="session")
def scripted_checkpoint(tmp_path_factory) -> Path:
    """A bf16 Magistral-format checkpoint that emits `Script()` after `[/INST]`."""
    return build_checkpoint(tmp_path_factory.mktemp("scripted") / "ckpt", script=Script())


@pytest.fixture(scope="session")
def random_checkpoint(tmp_path_factory) -> Path:
    """A bf16 Magistral-format checkpoint with random weights (and a decoy consolidated file)."""
    return build_checkpoint(tmp_path_factory.mktemp("random") / "ckpt", decoy_consolidated=True)
