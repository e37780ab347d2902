"""Exact output size of a conversion from ``config.json`` alone, and whether it fits a Mac.

`estimate` builds the lazy MLX model skeleton (`magimac.quantize.layout`), applies the recipe's
quantization plan and sums the bytes of every output tensor, so the numbers are the bytes
`magimac.quantize.convert.convert` writes (tensor data; safetensors headers add well under 0.1%).

Memory arithmetic (shared/MAGISTRAL.md): KV cache per token in 16-bit is
``2 (K and V) x layers x kv_heads x head_dim x 2 bytes``; what a Mac's GPU may use is
`magimac.core.units.gpu_budget` of `magimac.core.units.default_gpu_limit` (the rule
`magimac plan` uses too), and sizes print through `magimac.core.units.format_bytes`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from magimac.core.units import default_gpu_limit, format_bytes, gpu_budget
from magimac.quantize.layout import (
    architecture,
    base_params,
    build_model,
    component,
    output_specs,
    quant_plan,
)
from magimac.quantize.recipes import get_recipe

COMPONENTS = ("embeddings", "layers", "norms", "lm_head", "vision_tower", "projector")
TEXT_COMPONENTS = ("embeddings", "layers", "norms", "lm_head")


@dataclass(frozen=True)
class Estimate:
    """Output size of one conversion.

    Attributes:
        components: component -> bytes (keys of `COMPONENTS`; vision keys only for models
            with a vision tower).
        total_bytes: sum of ``components`` (bytes of tensor data written).
        bits_per_weight: bits per text-decoder parameter, scales and biases included.
        text_params: parameters of the text decoder (embeddings, layers, norms, lm_head).
        quantization: the ``quantization`` entry the output's config.json gets
            (top-level group_size/bits/mode plus per-module overrides).
        recipe, bits, group_size, mode, quantize_vision: the settings.
    """

    components: dict[str, int]
    total_bytes: int
    bits_per_weight: float
    text_params: int
    quantization: dict = field(repr=False)
    recipe: str = "uniform"
    bits: int = 4
    group_size: int = 64
    mode: str = "affine"
    quantize_vision: bool = False


def quantization_config(plan: dict[str, dict], params: dict) -> dict:
    """The config.json ``quantization`` dict: ``params`` at top level (for mixed plans, the
    most common bits), plus one entry per module whose params differ from it."""
    top = dict(params)
    if plan:
        counts: dict[tuple, int] = {}
        for p in plan.values():
            key = (p["group_size"], p["bits"], p["mode"])
            counts[key] = counts.get(key, 0) + 1
        if tuple(top.values()) not in counts:
            g, b, m = max(counts, key=counts.get)
            top = {"group_size": g, "bits": b, "mode": m}
    q = dict(top)
    for path, p in plan.items():
        if p != top:
            q[path] = dict(p)
    return q


def plan_for(config: dict, *, bits: int = 4, group_size: int = 64, mode: str = "affine",
             recipe: str | None = None, quantize_vision: bool = False):
    """``(model, plan, params)`` for a conversion: the lazy model, module -> params, base params.

    Raises:
        ValueError: bad bits/group size/mode/recipe (`layout.GroupSizeError` when a tensor's
            shape does not divide by the group size; `layout.UnknownArchitecture`).
    """
    architecture(config)
    rec = get_recipe(recipe)
    if not rec.uses_bits and mode != "affine":
        raise ValueError(f"recipe {rec.name!r} is affine only; drop --mode {mode}")
    params = base_params(bits, group_size, mode) if rec.uses_bits else base_params(4, 64, "affine")
    model = build_model(config)
    plan = quant_plan(model, rec.build(model, config), params, quantize_vision=quantize_vision)
    return model, plan, params


def estimate(config: dict, *, bits: int = 4, group_size: int = 64, mode: str = "affine",
             recipe: str | None = None, quantize_vision: bool = False) -> Estimate:
    """Exact output size of converting a checkpoint with this ``config.json`` dict.

    No weights are needed: works on `magimac/data/magistral-small-2509.json` (24B) in well
    under a second after imports.  Float modes (mxfp4, nvfp4, mxfp8) fix bits and group size.

    Raises:
        ValueError: unknown architecture, mode, bits, group size or recipe, or a tensor whose
            input dimension the group size does not divide (message names it).
    """
    model, plan, params = plan_for(config, bits=bits, group_size=group_size, mode=mode,
                                   recipe=recipe, quantize_vision=quantize_vision)
    return summarize(model, plan, params, recipe=recipe, quantize_vision=quantize_vision)


def summarize(model, plan: dict[str, dict], params: dict, *, recipe: str | None = None,
              quantize_vision: bool = False) -> Estimate:
    """The `Estimate` of a `plan_for` result (bytes of every output tensor, by component)."""
    from mlx.utils import tree_flatten

    text_params = sum(v.size for k, v in tree_flatten(model.parameters()) if component(k) in TEXT_COMPONENTS)
    comps = {c: 0 for c in COMPONENTS}
    for spec in output_specs(model, plan):
        comps[component(spec.name)] += spec.nbytes
    comps = {c: b for c, b in comps.items() if b or c in TEXT_COMPONENTS}
    text_bytes = sum(comps[c] for c in TEXT_COMPONENTS)
    return Estimate(
        components=comps,
        total_bytes=sum(comps.values()),
        bits_per_weight=text_bytes * 8 / text_params,
        text_params=text_params,
        quantization=quantization_config(plan, params),
        recipe=get_recipe(recipe).name,
        bits=params["bits"],
        group_size=params["group_size"],
        mode=params["mode"],
        quantize_vision=quantize_vision,
    )


def text_config(config: dict) -> dict:
    """The text part of a config (``text_config`` for mistral3, the config itself otherwise)."""
    return config.get("text_config") or config


def kv_bytes_per_token(config: dict, bytes_per_value: int = 2) -> int:
    """KV cache bytes per token: 2 x layers x kv_heads x head_dim x ``bytes_per_value``
    (2 for a 16-bit cache; 160 KiB for Magistral Small)."""
    t = text_config(config)
    head_dim = t.get("head_dim") or t["hidden_size"] // t["num_attention_heads"]
    kv_heads = t.get("num_key_value_heads") or t["num_attention_heads"]
    return 2 * t["num_hidden_layers"] * kv_heads * head_dim * bytes_per_value


@dataclass(frozen=True)
class Fit:
    """Whether weights plus a 16-bit KV cache fit: ``needed_bytes`` (weights + KV),
    ``usable_bytes`` (`units.gpu_budget` of the GPU limit: the one given to `fit`, else the
    macOS default for ``ram_bytes``),
    ``kv_bytes``, ``context`` (tokens); all in bytes."""

    weights_bytes: int
    kv_bytes: int
    context: int
    ram_bytes: int
    usable_bytes: int

    @property
    def needed_bytes(self) -> int:
        return self.weights_bytes + self.kv_bytes

    @property
    def fits(self) -> bool:
        return self.needed_bytes <= self.usable_bytes


def fit(est: Estimate, config: dict, *, ram_bytes: int, context: int,
        gpu_limit_bytes: int | None = None) -> Fit:
    """Check ``est`` against a Mac with ``ram_bytes`` of RAM and a ``context``-token (16-bit)
    KV cache, at ``gpu_limit_bytes`` (a detected limit, as `magimac plan` uses) or, when
    None, macOS's default GPU limit for ``ram_bytes``."""
    kv = kv_bytes_per_token(config) * context
    limit = gpu_limit_bytes if gpu_limit_bytes is not None else default_gpu_limit(ram_bytes)
    return Fit(est.total_bytes, kv, context, ram_bytes, gpu_budget(limit))


def describe(est: Estimate, f: Fit | None = None) -> str:
    """Human table: bytes by component, total, bits per weight, and the fit line."""
    lines = [f"output size ({est.recipe}, {level_name(est)}, vision {'quantized' if est.quantize_vision else 'bf16'}):"]
    for c, b in est.components.items():
        lines.append(f"  {c:<13} {format_bytes(b):>10}")
    lines.append(f"  {'total':<13} {format_bytes(est.total_bytes):>10}   "
                 f"({est.bits_per_weight:.2f} bits per text weight)")
    if f is not None:
        verdict = "fits" if f.fits else "does NOT fit"
        lines.append(
            f"memory: {format_bytes(f.needed_bytes)} (weights + {format_bytes(f.kv_bytes)} KV cache for "
            f"{f.context} tokens) {verdict} in {format_bytes(f.usable_bytes)} usable of "
            f"{format_bytes(f.ram_bytes, binary=True)} RAM"
        )
    return "\n".join(lines)


def level_name(est: Estimate) -> str:
    """``4-bit, group size 64`` or the float mode's name."""
    if est.mode != "affine":
        return est.mode
    return f"{est.bits}-bit, group size {est.group_size}"
