"""The reference log-probabilities of `magimac bench`, computed once per reference model and
evaluation set under ``<data dir>/bench/reference/<hash>``, and what the bench caches hold.

The files themselves (format, staging, checks) are `magimac.engine.evaluate`'s
`write_reference` / `open_reference`: written into a staging directory and renamed into place,
so Ctrl-C leaves nothing half-written and a stored reference is complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from magimac.core import paths
from magimac.core.errors import MagimacError
from magimac.engine import evaluate, measure
from magimac.bench.variants import variants_root, weights_stamp


def bench_root() -> Path:
    """``<data dir>/bench``: the caches and the results live under it."""
    return paths.data_dir() / "bench"


def reference_root() -> Path:
    """``<data dir>/bench/reference``: the reference log-probabilities cache."""
    return paths.data_dir() / "bench" / "reference"


def reference_dir(ref_path: Path, chunks: list[evaluate.Chunk]) -> Path:
    """The cache directory of ``ref_path``'s log-probabilities over ``chunks``."""
    key = json.dumps([weights_stamp(ref_path), evaluate.chunks_digest(chunks)])
    return reference_root() / hashlib.sha256(key.encode()).hexdigest()[:16]


def ensure_reference(ref_path: Path, chunks: list[evaluate.Chunk], *, label: str,
                     advance: Callable[[], None]) -> evaluate.Reference:
    """The stored reference of ``ref_path`` over ``chunks``, computed first if missing or
    incomplete (``advance`` is called once per chunk either way). Loads the reference model
    only to compute, and releases it before returning.
    """
    path = reference_dir(ref_path, chunks)
    reference = evaluate.open_reference(path, chunks)
    if reference is not None:
        for _ in chunks:
            advance()
        return reference
    loaded = measure.load(ref_path)
    model = measure.for_quality(loaded.model)
    del loaded
    try:
        return evaluate.write_reference(model, chunks, path, label=label, advance=advance)
    finally:
        del model  # the reference never sits in memory with a variant
        measure.release()


@dataclass(frozen=True)
class CacheEntry:
    """One bench cache: ``name`` ("reference log-probs", "converted variants"), its ``path``
    and ``size_bytes`` (bytes of every file under it)."""

    name: str
    path: Path
    size_bytes: int


def tree_bytes(path: Path) -> int:
    """Bytes of every regular file under ``path`` (0 when it is missing)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except OSError:
                pass
    return total


def caches() -> list[CacheEntry]:
    """What the bench caches hold now: the reference log-probs and the converted variants."""
    return [CacheEntry(name, p, tree_bytes(p)) for name, p in
            (("reference log-probs", reference_root()), ("converted variants", variants_root()))]


def clear_caches() -> list[CacheEntry]:
    """Remove both bench caches (never ``bench/runs``, the results); returns what the ones
    that existed held (an empty list: there was nothing to remove).

    Each is renamed aside in one step, then removed, so a removal cut short leaves no
    half-emptied cache that a later run would read.

    Raises:
        MagimacError: a cache cannot be moved (permissions); the line gives the rm command.
    """
    held = [entry for entry in caches() if entry.path.is_dir()]
    for entry in held:
        aside = entry.path.with_name(f".{entry.path.name}.removing-{os.getpid()}")
        try:
            os.replace(entry.path, aside)
        except OSError as e:
            raise MagimacError(f"{entry.path}: cannot remove it ({e.strerror}); "
                               f"remove it by hand: rm -r {entry.path}") from None
        shutil.rmtree(aside, ignore_errors=True)
    return held
