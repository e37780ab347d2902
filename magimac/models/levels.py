"""Sizes per quantization level: weights (exact, from ``config.json``) and KV cache.

Weight sizes come from `magimac.quantize.sizes.estimate` (the bytes `magimac quantize` writes;
it builds a lazy MLX skeleton, so the MLX import happens here, inside `LevelSpec.estimate`,
only when a size is asked for).  KV cache per token in 16-bit is
``2 x layers x kv_heads x head_dim x 2`` bytes (`magimac.quantize.sizes.kv_bytes_per_token`;
160 KiB for Magistral Small); a quantized KV cache (mlx-lm's `QuantizedKVCache`, group size 64)
stores ``bits/8`` bytes per value plus a 16-bit scale and bias per 64 values.
"""

from __future__ import annotations

from dataclasses import dataclass

from magimac.core.errors import MagimacError

KV_BITS = (16, 8, 4)
KV_GROUP_SIZE = 64  # mlx-lm's default kv_group_size


@dataclass(frozen=True)
class LevelSpec:
    """One way to quantize: the level name `magimac pull --quant` takes (or a recipe name)."""

    level: str
    recipe: str = "uniform"
    bits: int = 4
    group_size: int = 64
    mode: str = "affine"

    def estimate(self, config: dict):
        """`magimac.quantize.sizes.estimate` for this spec (vision tower kept in bf16)."""
        from magimac.quantize.sizes import estimate

        return estimate(config, bits=self.bits, group_size=self.group_size, mode=self.mode, recipe=self.recipe)


def spec_for_level(level: str) -> LevelSpec:
    """The uniform `LevelSpec` of a `magimac pull --quant` level (``"2bit"``..``"8bit"``,
    ``"mxfp4"``).

    Raises:
        MagimacError: a level magimac cannot convert to.
    """
    if level == "mxfp4":
        return LevelSpec("mxfp4", mode="mxfp4", group_size=32)
    if level.endswith("bit") and level[:-3].isdigit() and int(level[:-3]) in (2, 3, 4, 5, 6, 8):
        return LevelSpec(level, bits=int(level[:-3]))
    raise MagimacError(f"cannot convert to {level!r}: use 2bit, 3bit, 4bit, 5bit, 6bit, 8bit or mxfp4")


def level_specs() -> list[LevelSpec]:
    """The rows of `magimac plan`: uniform affine 2..8-bit (group size 64), mxfp4, mlx-vlm's
    4-bit (lm_head in bf16) and each mixed recipe of `magimac.quantize.recipes`."""
    from magimac.quantize.recipes import RECIPES

    specs = [spec_for_level(level) for level in ("2bit", "3bit", "4bit", "5bit", "6bit", "8bit", "mxfp4")]
    specs.append(LevelSpec("4bit", recipe="mlx-vlm", bits=4))
    specs += [LevelSpec(name, recipe=name) for name, r in RECIPES.items() if not r.uses_bits]
    return specs


def kv_bytes_per_token(config: dict, kv_bits: int = 16) -> float:
    """KV cache bytes per token at ``kv_bits`` (16, 8 or 4); fractional for quantized caches."""
    from magimac.quantize.sizes import kv_bytes_per_token as kv16

    per16 = kv16(config)
    if kv_bits == 16:
        return float(per16)
    return per16 / 2 * (kv_bits / 8 + 2 * 2 / KV_GROUP_SIZE)


def kv_bytes(config: dict, context: int, kv_bits: int = 16) -> int:
    """KV cache bytes for ``context`` tokens at ``kv_bits``."""
    return int(kv_bytes_per_token(config, kv_bits) * context)


def max_context(config: dict, weights: int, budget: int, kv_bits: int, cap: int) -> int:
    """The largest context (tokens, a multiple of 1024, at most ``cap``) whose KV cache fits
    next to ``weights`` in ``budget``; 0 when none does."""
    room = budget - weights
    if room <= 0:
        return 0
    tokens = int(room / kv_bytes_per_token(config, kv_bits))
    return min(cap, tokens // 1024 * 1024)


def model_max_context(config: dict) -> int:
    """``max_position_embeddings`` of the text config (tokens)."""
    from magimac.quantize.sizes import text_config

    return int(text_config(config).get("max_position_embeddings") or 131072)


@dataclass(frozen=True)
class LevelPlan:
    """One row of the plan.

    Attributes:
        level / recipe / bits / group_size / mode: the quantization.
        weights_bytes: bytes of the converted weights (exact, `magimac.quantize.sizes.estimate`).
        components: bytes by component (embeddings, layers, lm_head, vision_tower, ...).
        bits_per_weight: of the text decoder, scales and biases included.
        kv_bytes: KV bits (16, 8, 4) -> bytes at the plan's context.
        fits: KV bits -> whether weights + KV fit the budget.
        max_context: KV bits -> largest context that fits (tokens; 0: weights alone do not).
    """

    level: str
    recipe: str
    bits: int
    group_size: int
    mode: str
    weights_bytes: int
    components: dict[str, int]
    bits_per_weight: float
    kv_bytes: dict[int, int]
    fits: dict[int, bool]
    max_context: dict[int, int]


def plan_rows(config: dict, budget: int, context: int) -> list[LevelPlan]:
    """A `LevelPlan` for each of `level_specs` (those the config's shapes allow), against
    ``budget`` bytes (`plan.budget_bytes`) with a KV cache for ``context`` tokens."""
    cap = model_max_context(config)
    rows = []
    for spec in level_specs():
        try:
            est = spec.estimate(config)
        except ValueError:  # e.g. a group size the tensor shapes do not divide
            continue
        kv = {b: kv_bytes(config, context, b) for b in KV_BITS}
        rows.append(LevelPlan(
            level=spec.level, recipe=est.recipe, bits=est.bits, group_size=est.group_size, mode=est.mode,
            weights_bytes=est.total_bytes, components=dict(est.components), bits_per_weight=est.bits_per_weight,
            kv_bytes=kv, fits={b: est.total_bytes + kv[b] <= budget for b in KV_BITS},
            max_context={b: max_context(config, est.total_bytes, budget, b, cap) for b in KV_BITS},
        ))
    return rows
