"""The MLX-side layout of a converted model: which modules are quantized and how, and the
exact tensors (names, shapes, dtypes) the output holds.

The model skeleton comes from mlx-vlm (``mistral3``: text + Pixtral vision) or mlx-lm
(``mistral``/``llama``: text only), built lazily from ``config.json`` (no weights, no memory:
MLX arrays are not evaluated).  Its parameter names are the names `mlx_vlm.convert` writes, so
the output loads with `mlx_vlm.load` and, text only, with `mlx_lm.load`.

What magimac adds: a per-module quantization plan that can be computed before any weights are
read (for the size estimate and the fit check), and the shapes/dtypes of the packed tensors
(`mx.quantize` on one row, so every mode MLX supports is sized exactly).
"""

from __future__ import annotations

from magimac.core.errors import MagimacError

from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten

# config.json model_type -> the package whose model classes we use
ARCHITECTURES = {"mistral3": "mlx_vlm", "mistral": "mlx_lm", "llama": "mlx_lm"}
# mx.quantize modes and their fixed (group_size, bits); affine takes any of BITS x GROUP_SIZES.
FLOAT_MODES = {"mxfp4": (32, 4), "nvfp4": (16, 4), "mxfp8": (32, 8)}
MODES = ("affine", *FLOAT_MODES)
BITS = (2, 3, 4, 5, 6, 8)
GROUP_SIZES = (32, 64, 128)
OUTPUT_FLOAT_DTYPE = mx.bfloat16  # unquantized tensors, scales and biases are written in bf16
_VISION_MARKERS = ("vision_tower", "multi_modal_projector")


class UnknownArchitecture(MagimacError, ValueError):
    """config.json names a model type magimac cannot convert."""


class GroupSizeError(MagimacError, ValueError):
    """A tensor to quantize has an input dimension not divisible by the group size.

    Attributes: path (module path), shape (weight shape), group_size.
    """

    def __init__(self, path: str, shape: tuple[int, ...], group_size: int):
        self.path, self.shape, self.group_size = path, tuple(shape), group_size
        super().__init__(
            f"tensor {path}.weight has shape {list(shape)}: its last dimension is not divisible "
            f"by group size {group_size}; use --group-size {_divisor_hint(shape[-1])}"
        )


def _divisor_hint(n: int) -> str:
    ok = [g for g in GROUP_SIZES if n % g == 0]
    return " or ".join(map(str, ok)) if ok else "(none of 32/64/128 fits)"


def architecture(config: dict) -> str:
    """The config's ``model_type``; raises `UnknownArchitecture` if magimac cannot convert it."""
    mt = config.get("model_type")
    if mt not in ARCHITECTURES:
        raise UnknownArchitecture(
            f"unknown architecture model_type={mt!r} (magimac converts: {', '.join(ARCHITECTURES)})"
        )
    return mt


def build_model(config: dict) -> nn.Module:
    """A lazily initialised MLX model for ``config`` (a parsed ``config.json`` dict).

    Nothing is evaluated, so even the 24B config costs no memory.  ``mistral3`` uses
    mlx-vlm's classes, ``mistral``/``llama`` mlx-lm's.

    Raises:
        UnknownArchitecture: model_type not in `ARCHITECTURES`.
        ValueError / KeyError / TypeError: the config lacks fields the model class needs.
    """
    mt = architecture(config)
    config = dict(config)
    if ARCHITECTURES[mt] == "mlx_vlm":
        from mlx_vlm.utils import get_model_and_args, update_module_configs

        arch, _ = get_model_and_args(config)
        config.setdefault("text_config", {})
        config.setdefault("vision_config", {})
        model_config = arch.ModelConfig.from_dict(config)
        model_config = update_module_configs(model_config, arch, config, ["text", "vision", "projector"])
        return arch.Model(model_config)
    from mlx_lm.utils import _get_classes

    model_class, args_class = _get_classes(config)
    return model_class(args_class.from_dict(config))


def is_vision(path: str) -> bool:
    """True for modules of the vision tower or the multimodal projector."""
    return any(m in path for m in _VISION_MARKERS)


def component(name: str) -> str:
    """The size-table component of a parameter name.

    One of ``embeddings``, ``layers`` (decoder linear weights), ``norms`` (RMSNorm weights of
    the text decoder), ``lm_head``, ``vision_tower``, ``projector``.
    """
    if "multi_modal_projector" in name:
        return "projector"
    if "vision_tower" in name:
        return "vision_tower"
    if "embed_tokens" in name:
        return "embeddings"
    if "lm_head" in name:
        return "lm_head"
    if "norm" in name.rsplit(".", 2)[-2]:
        return "norms"
    return "layers"


@dataclass(frozen=True)
class TensorSpec:
    """One tensor of the output: ``name``, ``shape`` (tuple of ints), ``dtype`` (mx.Dtype)."""

    name: str
    shape: tuple[int, ...]
    dtype: mx.Dtype

    @property
    def nbytes(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n * self.dtype.size


def base_params(bits: int, group_size: int, mode: str) -> dict:
    """The ``{"group_size", "bits", "mode"}`` dict for a level; float modes fix both numbers.

    Raises:
        ValueError: unknown mode, bits or group size (message names the allowed values).
    """
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r} (choose from {', '.join(MODES)})")
    if mode in FLOAT_MODES:
        group_size, bits = FLOAT_MODES[mode]
        return {"group_size": group_size, "bits": bits, "mode": mode}
    if bits not in BITS:
        raise ValueError(f"--bits {bits} is not supported (choose from {', '.join(map(str, BITS))})")
    if group_size not in GROUP_SIZES:
        raise ValueError(f"--group-size {group_size} is not supported (choose from {', '.join(map(str, GROUP_SIZES))})")
    return {"group_size": group_size, "bits": bits, "mode": mode}


def quantizable_modules(model: nn.Module) -> dict[str, nn.Module]:
    """Leaf modules that `nn.quantize` could quantize (Linear, Embedding), by path."""
    leaves = tree_flatten(model.leaf_modules(), is_leaf=nn.Module.is_module)
    return {p: m for p, m in leaves if hasattr(m, "to_quantized") and hasattr(m, "weight")}


Predicate = Callable[[str, nn.Module], "bool | dict"]


def quant_plan(model: nn.Module, predicate: Predicate, params: dict, *, quantize_vision: bool) -> dict[str, dict]:
    """Module path -> full quantization params for every module the output quantizes.

    Args:
        model: from `build_model`.
        predicate: the recipe's ``(path, module) -> bool | dict`` (mlx-lm convention: a dict
            overrides ``params`` for that module).
        params: `base_params` of the requested level.
        quantize_vision: quantize vision tower and projector linears with ``params``
            (default off: they stay bf16).

    Raises:
        GroupSizeError: a module to quantize has an input dimension not divisible by its
            group size.
    """
    plan: dict[str, dict] = {}
    for path, module in quantizable_modules(model).items():
        if is_vision(path):
            decision = quantize_vision
        else:
            decision = predicate(path, module)
        if decision is False or decision is None:
            continue
        p = {**params, **decision} if isinstance(decision, dict) else dict(params)
        p.setdefault("mode", "affine")
        if module.weight.shape[-1] % p["group_size"]:
            raise GroupSizeError(path, module.weight.shape, p["group_size"])
        plan[path] = {"group_size": p["group_size"], "bits": p["bits"], "mode": p["mode"]}
    return plan


@lru_cache(maxsize=256)
def _packed_row(in_dims: int, group_size: int, bits: int, mode: str) -> tuple[tuple[int, mx.Dtype], ...]:
    row = mx.quantize(mx.zeros((1, in_dims), dtype=OUTPUT_FLOAT_DTYPE), group_size=group_size, bits=bits, mode=mode)
    return tuple((a.shape[-1], a.dtype) for a in row)


QUANT_SUFFIXES = ("weight", "scales", "biases")


def quantized_specs(module_path: str, shape: tuple[int, ...], params: dict) -> list[TensorSpec]:
    """The tensors `mx.quantize` writes for a weight of ``shape`` (``[..., in]``).

    Affine gives ``weight`` (uint32), ``scales`` and ``biases`` (bf16); float modes give
    ``weight`` and ``scales`` (uint8).  Sized by quantizing one row, so exact for every mode.
    """
    lead = tuple(shape[:-1])
    row = _packed_row(shape[-1], params["group_size"], params["bits"], params.get("mode", "affine"))
    return [TensorSpec(f"{module_path}.{s}", lead + (n,), dt) for s, (n, dt) in zip(QUANT_SUFFIXES, row)]


def output_specs(model: nn.Module, plan: dict[str, dict]) -> list[TensorSpec]:
    """Every tensor of the converted model, in parameter order (quantized ones expanded)."""
    specs: list[TensorSpec] = []
    for name, value in tree_flatten(model.parameters()):
        module_path, _, leaf = name.rpartition(".")
        if module_path in plan and leaf == "weight":
            specs.extend(quantized_specs(module_path, value.shape, plan[module_path]))
        else:
            specs.append(TensorSpec(name, tuple(value.shape), OUTPUT_FLOAT_DTYPE))
    return specs
