"""`magimac-manifest.json`: what a converted model was made from and how.

Fields: ``source`` (local path or hub id), ``revision`` (hub commit, null for a local
directory), ``source_files`` (file name -> sha256), ``recipe``, ``bits``, ``group_size``,
``mode``, ``quantize_vision``, ``bits_per_weight`` (text decoder, scales and biases
included), ``bytes`` (component -> bytes, plus ``total``), ``quantization`` (as in
config.json), ``tokenizer`` (file name and the ``[THINK]``/``[/THINK]`` ids read from it),
``tools`` (versions of mlx, mlx-lm, mlx-vlm, magimac), ``created`` (UTC, ISO 8601).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

MANIFEST_NAME = "magimac-manifest.json"
TOOLS = ("mlx", "mlx-lm", "mlx-vlm", "magimac")


def tool_versions() -> dict[str, str | None]:
    """Installed versions of `TOOLS` (None when one is not installed)."""
    out: dict[str, str | None] = {}
    for name in TOOLS:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def write_manifest(directory: Path, manifest: dict) -> Path:
    """Write ``manifest`` (adding ``tools`` and ``created``) to ``directory``; returns the path."""
    data = {**manifest, "tools": tool_versions(),
            "created": datetime.now(timezone.utc).replace(microsecond=0).isoformat()}
    path = Path(directory) / MANIFEST_NAME
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def read_manifest(directory: Path) -> dict | None:
    """The manifest of a converted model directory, or None if it has none (or it is unreadable)."""
    try:
        return json.loads((Path(directory) / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
