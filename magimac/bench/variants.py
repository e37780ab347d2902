"""The source checkpoint and the conversion cache of `magimac bench`: one converted directory
per level and recipe under ``<data dir>/bench/variants/``, keyed by the source's weight files
and the settings, reused by later runs.

A conversion is `magimac.quantize.convert.convert`, which writes into a staging directory and
renames it into place: Ctrl-C or an error removes the staging directory, so the cache only ever
holds complete conversions.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from magimac.core import paths
from magimac.core.errors import MagimacError


@dataclass
class Variant:
    """One model to measure.

    Attributes:
        label: e.g. ``"4bit"``, ``"bf16"``, ``"mixed_3_6"``, ``"3bit-gptq"``; bits: affine bits
        or None (bf16, mixed); recipe: quantize recipe name or None (the source); path: model
        directory (set by `ensure_variant`); method: quantize ``--method`` (rtn, gptq, awq).
    """

    label: str
    bits: int | None
    recipe: str | None
    path: Path | None = None
    method: str = "rtn"


def variants_root() -> Path:
    """``<data dir>/bench/variants``: the conversion cache."""
    return paths.data_dir() / "bench" / "variants"


def plan_variants(levels: list[int | None], recipes: list[str | None],
                  methods: list[str] | None = None) -> list[Variant]:
    """Variants to measure: each level under each recipe and each quantize method, side by
    side (a recipe that fixes its own bits, like the mixed ones, gives one variant per
    method); the source once if 'bf16' is a level.  Labels carry the method when it is not
    RTN (``3bit``, ``3bit-gptq``, ``3bit-awq``).

    Raises:
        MagimacError: an unknown recipe or method.
    """
    from magimac.quantize.layerwise import METHODS

    methods = methods or ["rtn"]
    for m in methods:
        if m not in METHODS:
            raise MagimacError(f"--methods: unknown method {m!r} (known: {', '.join(METHODS)})")
    from magimac.quantize.recipes import get_recipe

    out: list[Variant] = []
    if None in levels:
        out.append(Variant("bf16", None, None))
    for r in recipes:
        try:
            recipe = get_recipe(r)
        except (KeyError, ValueError) as e:
            raise MagimacError(f"--recipes: {e}") from None
        suffix = "" if r is None or len(recipes) == 1 else f"-{recipe.name}"
        tag = lambda m: "" if m == "rtn" else f"-{m}"  # noqa: E731
        if not recipe.uses_bits:
            out += [Variant(recipe.name + tag(m), None, recipe.name, method=m) for m in methods]
            continue
        for b in sorted((b for b in levels if b is not None), reverse=True):
            out += [Variant(f"{b}bit{suffix}{tag(m)}", b, recipe.name, method=m) for m in methods]
    return out


def resolve_source(name: str) -> Path:
    """The unquantized source checkpoint for ``name``: a directory, a registry name with a local
    path (the demo model), or what `magimac.quantize.source.resolve_source` finds (registry name
    or hub id, from the Hugging Face cache).

    Raises:
        MagimacError: nothing found (`QuantizeError` is one), or the directory is already quantized.
    """
    from magimac.models.registry import find_entry, load_registry, quantize_source
    from magimac.models.store import quantization_label
    from magimac.quantize.source import resolve_source as load_source

    entry = None if Path(name).expanduser().exists() else find_entry(load_registry(), name)
    local = entry.local_path() if entry is not None else None
    p = load_source(local if local else quantize_source(name)).path
    if quantization_label(p) != "bf16":
        raise MagimacError(f"{p}: already quantized ({quantization_label(p)}); bench needs the "
                           "unquantized source checkpoint")
    return p


def weights_stamp(path: Path) -> str:
    """Identity of a checkpoint (sha256 hex): resolved path plus name, size and mtime of its
    weight files."""
    h = hashlib.sha256(str(path.resolve()).encode())
    for f in sorted(path.glob("*.safetensors")):
        st = f.stat()
        h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()


def disk_bytes(path: Path) -> int:
    """Bytes of the ``*.safetensors`` files of a model directory (a decoy consolidated file
    next to HF shards is not counted)."""
    files = [f for f in path.glob("*.safetensors") if f.name != "consolidated.safetensors"]
    return sum(f.stat().st_size for f in files)


def variant_dir(source: Path, v: Variant, group_size: int, mode: str) -> Path:
    """The cache directory of a converted variant, keyed by the source and the settings."""
    key = json.dumps([weights_stamp(source), v.bits, v.recipe, group_size, mode]
                     + ([v.method, calibration_stamp()] if v.method != "rtn" else []))
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return variants_root() / f"{source.name}-{v.label}-{digest}"


def calibration_stamp() -> str:
    """sha256 of the shipped calibration set (a calibrated variant is keyed by it too)."""
    from magimac.quantize.calibration import DEFAULT_FILE

    return hashlib.sha256(DEFAULT_FILE.read_bytes()).hexdigest()


def ensure_variant(source: Path, v: Variant, *, group_size: int, mode: str, force: bool,
                   advance: Callable[[], None] = lambda: None) -> Path:
    """The directory of ``v``: the source itself, its cached conversion, or a new conversion
    (`magimac.quantize.convert.convert`; ``advance`` is called once it is done).

    Raises:
        MagimacError: the conversion failed (`QuantizeError`, `WriteError`); KeyboardInterrupt
            passes through with nothing left in the cache.
    """
    from magimac.models.store import is_model_dir

    if v.recipe is None:
        return source
    out = variant_dir(source, v, group_size, mode)
    if is_model_dir(out) and not force:
        return out
    from magimac.quantize.convert import convert

    out.parent.mkdir(parents=True, exist_ok=True)
    done = Path(convert(source, out, bits=v.bits or 4, group_size=group_size, mode=mode,
                        recipe=v.recipe, quantize_vision=False, force=True, progress=False,
                        log=lambda _line: None, method=v.method))
    advance()
    return done
