"""What fits this Mac: the plan of `magimac plan`, its recommendation, and the engine's fit check.

Sizes per level and KV cache are `magimac.models.levels`; an installed model's weights are the
bytes of its safetensors files.  The budget is the GPU's wired-memory limit
(`magimac.models.hardware`) less `magimac.core.units.HEADROOM_FRACTION` of it
(`units.gpu_budget`, the rule `magimac quantize` uses too), kept for activations, the prompt
being prefilled and what else uses the GPU.  The first-run advice is `magimac.models.advice`.

What magimac adds to the libraries: the recommendation policy (`recommend`), and the check the
engine runs before loading (`check_fits`), so a model that would swap the Mac is refused.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from magimac.core.errors import MagimacError
from magimac.core.units import HEADROOM_FRACTION, format_bytes, gpu_budget
from magimac.models.hardware import Hardware
from magimac.models.levels import KV_BITS, LevelPlan, kv_bytes, kv_bytes_per_token, max_context, \
    model_max_context, plan_rows

DEFAULT_CONTEXT = 32 * 1024  # the context the recommendation aims for, tokens
MIN_CONTEXT = 8 * 1024  # below this a reasoning model cannot finish its thinking, tokens
# Levels the recommendation may pick, in order of preference within a tier.  The first tier
# keeps quality close to bf16; the second is for Macs the first does not fit.
PREFERRED_LEVELS = ("8bit", "6bit", "5bit", "4bit")
FALLBACK_LEVELS = ("3bit", "2bit")


class DoesNotFit(MagimacError):
    """A model will not fit this Mac's GPU memory; the one-line message names the fixes."""


def budget_bytes(hw: Hardware) -> int:
    """Bytes weights plus KV cache may take on ``hw``: `units.gpu_budget` of its GPU limit."""
    return gpu_budget(hw.gpu_limit)


def parse_context(text: str | int) -> int:
    """``"32k"`` -> 32768, ``"128K"`` -> 131072, ``"8192"`` -> 8192 tokens (k = 1024).

    Raises:
        MagimacError: not a positive number of tokens.
    """
    s = str(text).strip().lower()
    scale = 1024 if s.endswith("k") else 1
    try:
        value = int(float(s[:-1] if scale > 1 else s) * scale)
    except ValueError:
        raise MagimacError(f"cannot read context {text!r}: write it like 32k or 8192 (tokens)") from None
    if value <= 0:
        raise MagimacError(f"context must be a positive number of tokens, got {text!r}")
    return value


@dataclass(frozen=True)
class Recommendation:
    """What to run on this machine: ``level`` (for `magimac pull --quant`), ``context``
    (tokens), ``kv_bits`` (16, 8 or 4), the bytes they take, and why."""

    model: str
    level: str
    context: int
    kv_bits: int
    weights_bytes: int
    kv_bytes: int
    reason: str

    @property
    def pull_command(self) -> str:
        return f"magimac pull {self.model} --quant {self.level}"

    @property
    def quantize_command(self) -> str | None:
        """At 4 bits or fewer, the calibrated conversion to make instead of a plain one (GPTQ had
        the lowest KL to bf16 there: bench/bench_quant_methods.py); None above 4 bits."""
        bits = self.level.removesuffix("bit")
        if not bits.isdigit() or int(bits) > 4:
            return None
        return f"magimac quantize {self.model} --bits {bits} --method gptq"


@dataclass(frozen=True)
class Bundled:
    """A model that ships at its own path (a registry entry with ``path``, like the demo):
    ready to run, nothing to pull.

    Attributes:
        path: its directory; quantization: e.g. ``"bf16"`` (`store.quantization_label`);
        weights_bytes: bytes of its safetensors files; fits: whether the engine loads it on
        this machine without ``--force``; context_length (tokens) and kv_bits (16, 8 or 4):
        what the engine would load it with (`check_fits`; when it does not fit, the largest
        context asked for with a 16-bit KV cache).
    """

    path: str
    quantization: str
    weights_bytes: int
    fits: bool
    context_length: int
    kv_bits: int


@dataclass(frozen=True)
class Plan:
    """The whole plan for one model on one machine (see `make_plan`).  ``recommendation`` is
    the level to pull; None when nothing fits or when the model is ``bundled``."""

    model: str
    config_source: str
    hardware: Hardware
    context: int
    model_max_context: int
    budget_bytes: int
    kv_bytes_per_token: dict[int, float]
    rows: list[LevelPlan]
    recommendation: Recommendation | None
    installed: list[dict] = field(default_factory=list)
    in_registry: bool = True  # False for a directory: `magimac pull` cannot fetch it
    bundled: Bundled | None = None  # the model ships at its own path: nothing to pull

    def to_dict(self) -> dict:
        """JSON-ready dict (bytes as integers, KV bits as string keys)."""
        d = asdict(self)
        d["hardware"] = self.hardware.to_dict()
        d["recommendation"] = asdict(self.recommendation) if self.recommendation else None
        if self.recommendation and self.in_registry and self.bundled is None:
            d["recommendation"]["pull_command"] = self.recommendation.pull_command
        return json.loads(json.dumps(d))


def load_config(model: str | None) -> tuple[str, dict, str, list[dict]]:
    """``(name, config, where the config came from, installed conversions)`` for ``model``.

    ``model``: a directory with config.json, or a registry name / alias / hub id (its
    packaged ``reference_config``, else an installed conversion's config); None: the default.

    Raises:
        MagimacError: no such model, or no config to plan from.
    """
    from magimac.models import store
    from magimac.models.registry import default_model, find_entry, load_registry

    if model and Path(model).expanduser().is_dir():
        d = Path(model).expanduser()
        cfg_path = d / "config.json"
        if not cfg_path.is_file():
            raise MagimacError(f"{d}: no config.json to plan from")
        inst = [store.describe_dir(d)] if store.is_model_dir(d) else []
        return d.name, _read_json(cfg_path), str(cfg_path), [_inst_dict(m) for m in inst]
    reg = load_registry()
    entry = find_entry(reg, model) if model else default_model(reg)
    if entry is None:
        raise MagimacError(f"unknown model {model!r}: give a registry name (see `magimac models`) or a directory")
    installed = store.installed_for(entry)
    ref = entry.reference_config_path()
    if ref is not None and ref.is_file():
        return entry.name, _read_json(ref), f"packaged config of {entry.hub_id}", [_inst_dict(m) for m in installed]
    local = entry.local_path()
    if local is not None:
        if not (local / "config.json").is_file():
            raise MagimacError(f"{local}: no config.json for {entry.name} (its registry `path`); reinstall "
                            "magimac, or fix the path in your models.toml")
        return entry.name, _read_json(local / "config.json"), str(local), []
    for m in installed:
        if (m.path / "config.json").is_file():
            return entry.name, _read_json(m.path / "config.json"), str(m.path / "config.json"), \
                [_inst_dict(i) for i in installed]
    raise MagimacError(f"no config.json known for {entry.name} before download: "
                    f"run `magimac pull {entry.name}` or plan a directory")


def _inst_dict(m) -> dict:
    return {"path": str(m.path), "name": m.name, "quantization": m.quantization, "size_bytes": m.size_bytes}


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise MagimacError(f"{path}: cannot read config: {e}") from None


def recommend(name: str, config: dict, hw: Hardware, rows: list[LevelPlan] | None = None,
              context: int = DEFAULT_CONTEXT) -> Recommendation | None:
    """The level, context limit and KV bits to run ``name`` with on ``hw``.

    Policy: aim for ``context`` tokens (capped at the model's maximum).  Among
    `PREFERRED_LEVELS` (8, 6, 5, 4-bit) prefer a 16-bit KV cache over a quantized one, then the
    highest level; only when none fits, `FALLBACK_LEVELS` (3, then 2-bit), each with the
    widest KV cache that fits; only when none fits at ``context``, aim for `MIN_CONTEXT`.  The context limit returned is the largest that fits with the chosen
    level and KV bits (so it is at least the aim).  Returns None when nothing fits even at
    `MIN_CONTEXT` with a 4-bit KV cache and 2-bit weights.
    """
    rows = rows if rows is not None else plan_rows(config, budget_bytes(hw), context)
    uniform = {r.level: r for r in rows if r.recipe == "uniform"}
    budget = budget_bytes(hw)
    cap = model_max_context(config)
    aims = [min(context, cap)] + ([MIN_CONTEXT] if MIN_CONTEXT < min(context, cap) else [])
    for aim in aims:
        for tier in (PREFERRED_LEVELS, FALLBACK_LEVELS):
            order = ([(lv, kv) for kv in KV_BITS for lv in tier] if tier is PREFERRED_LEVELS
                     else [(lv, kv) for lv in tier for kv in KV_BITS])
            for level, kv in order:
                row = uniform.get(level)
                if row is None or row.weights_bytes + kv_bytes(config, aim, kv) > budget:
                    continue
                ctx = max_context(config, row.weights_bytes, budget, kv, cap)
                why = (f"{level} weights ({format_bytes(row.weights_bytes)}) and a {kv}-bit KV cache for "
                       f"{ctx} tokens fit {format_bytes(budget)} usable ({format_bytes(hw.gpu_limit)} GPU "
                       f"limit less {HEADROOM_FRACTION:.0%} headroom)")
                if tier is FALLBACK_LEVELS:
                    why += f"; {level} loses noticeable quality, a Mac with more memory runs 4-bit"
                return Recommendation(name, level, ctx, kv, row.weights_bytes,
                                      kv_bytes(config, ctx, kv), why)
    return None


def make_plan(model: str | None = None, *, ram: int | None = None, context: int = DEFAULT_CONTEXT) -> Plan:
    """Plan ``model`` (see `load_config`) on this machine, or on a Mac with ``ram`` bytes.

    Raises:
        MagimacError: unknown model or no config.
    """
    from magimac.models import hardware

    name, config, source, installed = load_config(model)
    hw = hardware.assumed_mac(ram) if ram else hardware.detect()
    rows = plan_rows(config, budget_bytes(hw), context)
    is_dir = bool(model and Path(model).expanduser().is_dir())
    bundled = None if is_dir else bundled_model(name, hw)
    return Plan(
        model=name, config_source=source, hardware=hw, context=context,
        model_max_context=model_max_context(config), budget_bytes=budget_bytes(hw),
        kv_bytes_per_token={b: kv_bytes_per_token(config, b) for b in KV_BITS},
        rows=rows, recommendation=None if bundled else recommend(name, config, hw, rows, context),
        installed=installed, in_registry=not is_dir, bundled=bundled,
    )


def bundled_model(name: str, hw: Hardware) -> Bundled | None:
    """The `Bundled` model of registry entry ``name`` when the entry has its own ``path``
    holding a model (the demo), else None.  Its fit is `check_fits` on ``hw``."""
    from magimac.models import store
    from magimac.models.registry import find_entry, load_registry

    entry = find_entry(load_registry(), name)
    local = entry.local_path() if entry is not None else None
    if local is None or not store.is_model_dir(local):
        return None
    choice = check_fits(local, force=True, hw=hw)
    return Bundled(str(local), store.quantization_label(local), choice.weights_bytes, choice.fits,
                   choice.context_length, choice.kv_bits or 16)


@dataclass(frozen=True)
class PlanChoice:
    """What the engine loads a model with.

    Attributes:
        context_length: the context limit, tokens.
        kv_bits: None for a 16-bit KV cache, else 8 or 4 (mlx-lm's ``kv_bits``).
        weights_bytes: bytes of the model's safetensors files.
        kv_bytes: KV cache bytes at ``context_length``.
        budget_bytes: what the GPU may hold (limit less headroom).
        fits: whether weights + KV fit the budget (False only when forced).
        forced: ``--force`` was given and the model does not fit.
    """

    context_length: int
    kv_bits: int | None
    weights_bytes: int
    kv_bytes: int
    budget_bytes: int
    fits: bool
    forced: bool = False


def weights_bytes_on_disk(model_dir: Path) -> int:
    """Bytes of the ``*.safetensors`` files in ``model_dir`` (what loading maps into memory;
    a Mistral-native ``consolidated.safetensors`` is not loaded and not counted)."""
    from magimac.models.registry import NEVER_FETCH

    return sum(f.stat().st_size for f in Path(model_dir).glob("*.safetensors") if f.name != NEVER_FETCH)


def check_fits(model_dir: Path | str, context_length: int | None = None, kv_bits: int | None = None,
               force: bool = False, hw: Hardware | None = None) -> PlanChoice:
    """Decide the context limit and KV bits for loading ``model_dir``, or refuse it.

    Args:
        model_dir: a converted model directory (config.json + safetensors).
        context_length: wanted context (tokens); None: the largest that fits, up to the
            model's ``max_position_embeddings``.
        kv_bits: 16, or 2-8 for mlx-lm's quantized KV cache; None: 16-bit if
            `DEFAULT_CONTEXT` (or the model's maximum, if smaller) fits with it, else 8, else 4.
        force: return the choice even when it does not fit (``fits=False``, ``forced=True``).
        hw: the machine (default `hardware.detect()`).

    Returns:
        a `PlanChoice`.

    Raises:
        DoesNotFit: weights + KV cache exceed the budget and not ``force``; the one-line
            message says how much is needed and which fixes work.
        MagimacError: no readable config.json in ``model_dir``.
    """
    from magimac.models import hardware

    model_dir = Path(model_dir)
    config = _read_json(model_dir / "config.json")
    hw = hw or hardware.detect()
    budget = budget_bytes(hw)
    weights = weights_bytes_on_disk(model_dir)
    cap = model_max_context(config)
    if kv_bits is not None and kv_bits not in (2, 3, 4, 5, 6, 8, 16):
        raise MagimacError(f"KV cache bits must be 2, 3, 4, 5, 6, 8 or 16, got {kv_bits}")
    aim = min(context_length or DEFAULT_CONTEXT, cap)
    need_ctx = context_length or min(MIN_CONTEXT, cap)
    kv_choices = [kv_bits] if kv_bits else list(KV_BITS)
    chosen = next((b for b in kv_choices if weights + kv_bytes(config, aim, b) <= budget), None)
    if chosen is None:
        chosen = next((b for b in kv_choices if weights + kv_bytes(config, need_ctx, b) <= budget), None)
    if chosen is not None:
        ctx = context_length or max_context(config, weights, budget, chosen, cap)
        return PlanChoice(ctx, None if chosen == 16 else chosen, weights, kv_bytes(config, ctx, chosen), budget, True)
    want_kv = kv_bits or 16
    ctx = context_length or aim
    if force:
        return PlanChoice(ctx, None if want_kv == 16 else want_kv, weights, kv_bytes(config, ctx, want_kv),
                          budget, False, forced=True)
    raise DoesNotFit(_does_not_fit(model_dir, config, hw, weights, ctx, want_kv, budget, cap))


def _does_not_fit(model_dir: Path, config: dict, hw: Hardware, weights: int, ctx: int, kv: int,
                  budget: int, cap: int) -> str:
    need = weights + kv_bytes(config, ctx, kv)
    fixes = []
    if weights < budget:
        for b in KV_BITS:
            n = max_context(config, weights, budget, b, cap)
            if n >= 1024:
                fixes.append(f"--context-length {n}" + (f" --kv-bits {b}" if b != 16 else ""))
                break
    else:
        fixes.append("a smaller level (`magimac plan` shows what fits)")
    if hw.system == "Darwin":
        fixes.append("raise the GPU limit (`sudo sysctl iogpu.wired_limit_mb=N`)")
    fixes.append("--force")
    return (f"{model_dir.name} needs {format_bytes(need)} ({format_bytes(weights)} weights + "
            f"{kv}-bit KV cache for {ctx} tokens) but this machine's GPU may use {format_bytes(budget)}: "
            f"use {' or '.join(fixes)}")
