"""Shared fixtures: isolated magimac directories and small real-format checkpoints.

Checkpoints are built once per session (`magimac.testing.checkpoint`); tests that modify a
checkpoint copy it first. Each layer's folder has a `conftest.py` of its own for what only its
tests need.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from magimac.engine.worker import Engine
from magimac.testing.checkpoint import Script, build_checkpoint


@pytest.fixture(autouse=True)
def isolated_dirs(tmp_path, monkeypatch):
    """Every test gets its own config, data, models, prompt-cache and Hugging Face cache directories."""
    root = tmp_path / "magimac-home"
    for var, sub in (("MAGIMAC_CONFIG_DIR", "config"), ("MAGIMAC_DATA_DIR", "data"),
                     ("MAGIMAC_MODELS_DIR", "models"), ("HF_HOME", "hf"),
                     ("MAGIMAC_CACHE_DIR", "cache")):
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


def loaded_engine(checkpoint) -> Engine:
    e = Engine(checkpoint)
    e.start()
    e.wait_loaded()
    return e


@pytest.fixture(scope="session")
def engine(scripted_checkpoint):
    """The one loaded engine on the scripted checkpoint (it answers `Script()`), shared by the
    engine, prompt and app tests (each test compares its own turns, so sharing the KV cache is safe)."""
    e = loaded_engine(scripted_checkpoint)
    yield e
    e.close()


@pytest.fixture(scope="session")
def endless_engine(random_checkpoint):
    """A random-weights model: it writes until stopped (for Esc)."""
    e = loaded_engine(random_checkpoint)
    yield e
    e.close()
