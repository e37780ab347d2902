"""Named quantization recipes (`magimac quantize --recipe NAME`, `--list-recipes`).

A recipe decides, per module of the text decoder, whether and how it is quantized; the vision
tower is governed by ``--quantize-vision`` instead.  Recipes return mlx-lm style predicates
(``(path, module) -> bool | dict``); the mixed ones are mlx-vlm's / mlx-lm's own
`mixed_quant_predicate_builder` (llama.cpp Q4_K_M-like choices: more bits for ``v_proj`` and
``down_proj`` in the first and last eighth of the layers and every third layer, and for
embeddings and ``lm_head``).  What magimac adds is ``uniform`` (lm_head quantized too, which
mlx-vlm's mistral3 predicate keeps in bf16) and the catalogue with descriptions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import mlx.nn as nn

from magimac.quantize.layout import ARCHITECTURES, Predicate, architecture

DEFAULT_RECIPE = "uniform"


@dataclass(frozen=True)
class Recipe:
    """A named recipe.

    Attributes:
        name: what ``--recipe`` takes.
        description: one line for ``--list-recipes``.
        uses_bits: whether ``--bits``/``--group-size``/``--mode`` apply (mixed recipes fix
            their own affine bits at group size 64).
        build: ``(model, config) -> predicate``.
    """

    name: str
    description: str
    uses_bits: bool
    build: Callable[[nn.Module, dict], Predicate]


def _uniform(model: nn.Module, config: dict) -> Predicate:
    return lambda path, module: True


def _library_default(model: nn.Module, config: dict) -> Predicate:
    pred = getattr(model, "quant_predicate", None)
    return pred if pred is not None else (lambda path, module: True)


def _mixed(recipe: str) -> Callable[[nn.Module, dict], Predicate]:
    def build(model: nn.Module, config: dict) -> Predicate:
        if ARCHITECTURES[architecture(config)] == "mlx_vlm":
            from mlx_vlm.convert import mixed_quant_predicate_builder
        else:
            from mlx_lm.convert import mixed_quant_predicate_builder
        return mixed_quant_predicate_builder(recipe, model)

    return build


_MIXED = {
    "mixed_2_6": "2-bit, 6-bit for sensitive layers, embeddings and lm_head",
    "mixed_3_4": "3-bit, 4-bit for sensitive layers, embeddings and lm_head",
    "mixed_3_6": "3-bit, 6-bit for sensitive layers, embeddings and lm_head",
    "mixed_4_6": "4-bit, 6-bit for sensitive layers, embeddings and lm_head",
}

RECIPES: dict[str, Recipe] = {
    "uniform": Recipe("uniform", "every text linear layer, embeddings and lm_head at --bits (default)", True, _uniform),
    "mlx-vlm": Recipe("mlx-vlm", "as `mlx_vlm.convert -q`: like uniform but lm_head stays bf16", True, _library_default),
    **{name: Recipe(name, desc + " (affine, group size 64; from mlx-vlm/mlx-lm)", False, _mixed(name))
       for name, desc in _MIXED.items()},
}


def get_recipe(name: str | None) -> Recipe:
    """The recipe called ``name`` (None: `DEFAULT_RECIPE`).

    Raises:
        ValueError: unknown name; the message lists the known ones.
    """
    name = name or DEFAULT_RECIPE
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r} (known: {', '.join(RECIPES)}; see --list-recipes)")
    return RECIPES[name]
