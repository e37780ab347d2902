"""Shared fixtures: isolated magimac directories and small real-format checkpoints.

Checkpoints are built once per session (`magimac.testing.checkpoint`); tests that modify a
checkpoint copy it first. Each layer's folder has a `conftest.py` of its own for what only its
tests need.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pytest

from magimac.engine.worker import Engine
from magimac.testing.checkpoint import Script, build_checkpoint


@pytest.fixture(autouse=True)
def isolated_dirs(tmp_path, monkeypatch):
    """Every test gets its own config, data, models, prompt-cache, runtime and Hugging Face cache directories."""
    root = tmp_path / "magimac-home"
    for var, sub in (("MAGIMAC_CONFIG_DIR", "config"), ("MAGIMAC_DATA_DIR", "data"),
                     ("MAGIMAC_MODELS_DIR", "models"), ("HF_HOME", "hf"),
                     ("MAGIMAC_CACHE_DIR", "cache"), ("MAGIMAC_RUNTIME_DIR", "run")):
        (root / sub).mkdir(parents=True)
        monkeypatch.setenv(var, str(root / sub))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    # online models: no real key, no real keychain, no real API (tests/online point it at a stand-in)
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    monkeypatch.delenv("MISTRAL_API_KEY", raising=False)
    monkeypatch.delenv("MAGIMAC_MISTRAL_API_URL", raising=False)
    monkeypatch.setenv("MAGIMAC_NO_SERVER", "1")  # `magimac chat` never finds a server on :8080 in tests
    return root


@pytest.fixture(scope="session")
def scripted_checkpoint(tmp_path_factory) -> Path:
    """A bf16 Magistral-format checkpoint that emits `Script()` after `[/INST]`."""
    return build_checkpoint(tmp_path_factory.mktemp("scripted") / "ckpt", script=Script())


SMALL = {"vision": False, "layers": 1, "vocab": 20000, "hidden": 64, "intermediate": 64}
"""A smaller scripted model (builds and loads in a fraction of the time; enough for tool scripts)."""
TOOL_SCRIPT = Script("Multiply with python", tool_calls=(("python", '{"code": "print(6*7)"}'),), after_tools="Got it!")
"""A model that calls python once after reasoning, and answers "Got it!" after the result."""


@pytest.fixture(scope="session")
def tool_checkpoint(tmp_path_factory) -> Path:
    """A checkpoint that emits `TOOL_SCRIPT` (a python call, then an answer after the result)."""
    return build_checkpoint(tmp_path_factory.mktemp("tool") / "ckpt", script=TOOL_SCRIPT, **SMALL)


@pytest.fixture(scope="session")
def random_checkpoint(tmp_path_factory) -> Path:
    """A bf16 Magistral-format checkpoint with random weights (and a decoy consolidated file)."""
    return build_checkpoint(tmp_path_factory.mktemp("random") / "ckpt", decoy_consolidated=True)


def huge_png(width: int, height: int) -> bytes:
    """A valid 1-bit PNG of ``width`` x ``height`` pixels, all black (a few KB)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    z, row = zlib.compressobj(9), b"\0" * (1 + (width + 7) // 8)
    idat = b"".join(z.compress(row) for _ in range(height)) + z.flush()
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
            + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


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
def tool_engine(tool_checkpoint):
    """A loaded engine on `tool_checkpoint` (shared: each test compares its own turns)."""
    e = loaded_engine(tool_checkpoint)
    yield e
    e.close()


@pytest.fixture(scope="session")
def endless_engine(random_checkpoint):
    """A random-weights model: it writes until stopped (for Esc)."""
    e = loaded_engine(random_checkpoint)
    yield e
    e.close()
