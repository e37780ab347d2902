"""Installed models: find them, and resolve what a person typed to a model directory.

A model directory is *converted* (runnable) when it holds `config.json` with a
`quantization` entry or MLX-layout weights written by `magimac quantize` (a
`magimac-manifest.json`), or any directory `mlx_vlm.load` / `mlx_lm.load` accept.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from magimac import paths
from magimac.registry import ModelEntry, find_entry, load_registry


class ModelNotFound(LookupError):
    """No installed model matches; the message says what to run."""


@dataclass(frozen=True)
class InstalledModel:
    """A converted model on disk.

    Attributes:
        path: the directory; name: its registry name or directory name;
        quantization: e.g. ``"4bit"``, ``"bf16"``; size_bytes: bytes of weight files.
    """

    path: Path
    name: str
    quantization: str
    size_bytes: int


def is_model_dir(path: Path) -> bool:
    """True when ``path`` holds a config.json and safetensors weights."""
    return (path / "config.json").is_file() and any(path.glob("*.safetensors"))


def quantization_label(path: Path) -> str:
    """``"4bit"``, ``"mxfp4"``, ``"mixed"`` or ``"bf16"`` from a model's config.json."""
    try:
        cfg = json.loads((path / "config.json").read_text())
    except (OSError, json.JSONDecodeError):
        return "?"
    q = cfg.get("quantization") or cfg.get("quantization_config")
    if not q:
        return "bf16"
    mode = q.get("mode", "affine")
    if mode != "affine":
        return mode
    bits = q.get("bits")
    return f"{bits}bit" if bits else "mixed"


def _dir_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def installed_models() -> list[InstalledModel]:
    """Converted models under `paths.models_dir()` plus registry entries with a local path."""
    found: list[InstalledModel] = []
    root = paths.models_dir()
    if root.is_dir():
        for d in sorted(root.iterdir()):
            if d.is_dir() and not d.name.startswith(".") and is_model_dir(d):
                found.append(InstalledModel(d, d.name, quantization_label(d), _dir_size(d)))
    for e in load_registry().values():
        p = e.local_path()
        if p and is_model_dir(p):
            found.append(InstalledModel(p, e.name, quantization_label(p), _dir_size(p)))
    return found


def installed_for(entry: ModelEntry) -> list[InstalledModel]:
    """Installed conversions of a registry entry (directories named after the entry)."""
    out = []
    for m in installed_models():
        if m.name == entry.name or m.name.startswith(entry.name + "-"):
            out.append(m)
    return out


def resolve_model(name_or_dir: str | None) -> Path:
    """Turn ``--model`` into a converted model directory.

    Order: an existing directory; an installed model by directory name; a registry name or
    hub id with an installed conversion (the lowest-bit one first... the first found);
    with None: the default registry model if installed, else the demo model.

    Raises:
        ModelNotFound: nothing installed matches; the message names the command to run.
    """
    if name_or_dir:
        p = Path(name_or_dir).expanduser()
        if p.is_dir():
            if not is_model_dir(p):
                raise ModelNotFound(f"{p}: not a model directory (no config.json and *.safetensors)")
            return p
        for m in installed_models():
            if m.name == name_or_dir:
                return m.path
        entry = find_entry(load_registry(), name_or_dir)
        if entry is None:
            raise ModelNotFound(
                f"unknown model {name_or_dir!r}: not a directory nor a registry name (see `magimac models`)"
            )
        inst = installed_for(entry)
        if inst:
            return inst[0].path
        raise ModelNotFound(f"{entry.name} is not installed: run `magimac pull {entry.name}`")
    reg = load_registry()
    default = next((e for e in reg.values() if e.default), None)
    if default:
        inst = installed_for(default)
        if inst:
            return inst[0].path
    if "demo" in reg:
        p = reg["demo"].local_path()
        if p and is_model_dir(p):
            return p
    raise ModelNotFound("no model installed: run `magimac pull magistral-small-2509`")
