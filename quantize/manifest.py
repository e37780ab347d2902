"""`magimac-manifest.json`: what a converted model was made from and how.

Fields: ``source`` (local path or hub id), ``revision`` (hub commit, null for a local
directory), ``source_files`` (file name -> sha256), ``recipe``, ``bits``, ``group_size``,
``mode``, ``quantize_vision``, ``bits_per_weight`` (text decoder, scales and biases
included), ``bytes`` (component -> bytes, plus ``total``), ``quantization`` (as in
config.json), ``tokenizer`` (file name and the ``[THINK]``/``[/THINK]`` ids read from it),
``files`` (the names of every file magimac wrote into the directory, the manifest included),
``tools`` (versions of mlx, mlx-lm, mlx-vlm, magimac), ``created`` (UTC, ISO 8601).

`not_ours` is the rule for replacing or deleting a directory: only one whose manifest says
magimac wrote it, and that holds nothing else, may go (`magimac quantize --force`).
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
    """Write ``manifest`` (adding ``files``, ``tools`` and ``created``) to ``directory``, whose
    other files must all be written already; returns the path."""
    files = sorted({p.name for p in Path(directory).iterdir()} | {MANIFEST_NAME})
    data = {**manifest, "files": files, "tools": tool_versions(),
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


def not_ours(directory: Path) -> str | None:
    """Why ``directory`` is not a conversion magimac wrote (so must not be replaced or
    deleted), or None when it is: a manifest written by `write_manifest` (``tools`` names
    magimac), and no entry beyond the manifest's ``files`` (without that list, no folder).

    The reason is a phrase for a one-line message, e.g. ``"holds thesis.txt, which magimac
    did not write"``.
    """
    d = Path(directory)
    if d.is_symlink() or not d.is_dir():
        return "is not a folder"
    m = read_manifest(d)
    if not isinstance(m, dict) or not isinstance(m.get("tools"), dict) or "magimac" not in m["tools"]:
        return f"has no {MANIFEST_NAME} of magimac's, so it is not a model magimac wrote"
    try:
        entries = sorted(d.iterdir())
    except OSError as e:
        return f"cannot be listed ({e.strerror})"
    files = m.get("files")
    extra = [p for p in entries if p.name not in files] if isinstance(files, list) else \
        [p for p in entries if p.is_dir() or p.is_symlink()]
    if extra:
        return f"holds {extra[0].name}, which magimac did not write"
    return None
