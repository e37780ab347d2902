"""Loading a converted model: read its directory (no MLX), check it fits, load the weights.

- `read_model` resolves the model and reads config.json, generation_config.json and tekken.json;
  it needs no MLX and may run in any thread (the tokenizer serves `Engine.prompt_tokens` before
  the weights are loaded).
- `check_memory` asks `magimac.models.plan.check_fits` whether weights + KV cache fit, and which
  context limit and KV-cache bits to use.
- `load_weights` loads with `mlx_vlm` when the directory has a ``vision_config`` (one copy of
  the weights serves text and images), else with `mlx_lm`; it runs in the engine's worker thread.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from magimac.core.errors import MagimacError, one_line
from magimac.core.settings import DEFAULT_TEMPERATURE, DEFAULT_TOP_P

IMG_TOKENS = ("[IMG]", "[IMG_BREAK]", "[IMG_END]")


class EngineLoadError(MagimacError, RuntimeError):
    """The model could not be loaded (missing, not converted, too large, broken); one line."""


@dataclass
class ModelInfo:
    """What a converted model directory says about the model (read without MLX).

    Attributes:
        path: the model directory.
        config: config.json; gen_defaults: generation_config.json ({} when absent).
        tokenizer: mistral-common's `MistralTokenizer`; markers: its `ReasoningMarkers`.
        entry: the registry entry the directory belongs to, or None.
        vision: whether the config has a ``vision_config`` (images are accepted).
    """

    path: Path
    config: dict
    tokenizer: Any
    markers: Any
    entry: Any = None
    gen_defaults: dict = field(default_factory=dict)

    @property
    def vision(self) -> bool:
        return "vision_config" in self.config

    @property
    def text_config(self) -> dict:
        return self.config.get("text_config", self.config)

    @property
    def tekken(self):
        """The mistral-common Tekkenizer (ids <-> text)."""
        return self.tokenizer.instruct_tokenizer.tokenizer

    def default_context_length(self) -> int:
        """Tokens: the registry entry's context length, else the config's max_position_embeddings."""
        if self.entry is not None:
            return int(self.entry.context_length)
        return int(self.text_config.get("max_position_embeddings", 32768))

    def vocabulary_size(self) -> int:
        """Tokens in the model's output layer (config ``vocab_size``, else the tokenizer's)."""
        return int(self.text_config.get("vocab_size") or self.tekken.n_words)

    def sampling_defaults(self) -> tuple[float, float]:
        """(temperature, top_p): the registry entry's, else generation_config.json's, else
        0.7 / 0.95 (the Magistral model card)."""
        if self.entry is not None:
            return self.entry.temperature, self.entry.top_p
        return (float(self.gen_defaults.get("temperature", DEFAULT_TEMPERATURE)),
                float(self.gen_defaults.get("top_p", DEFAULT_TOP_P)))

    def kv_group_size(self) -> int:
        """64 (mlx-lm's default), or 32 when the head dimension is not a multiple of 64."""
        text = self.text_config
        head_dim = text.get("head_dim") or text.get("hidden_size", 0) // max(1, text.get("num_attention_heads", 1))
        return 64 if head_dim % 64 == 0 else 32

    def image_token_ids(self) -> tuple[int, int, int]:
        """The ids of ``[IMG]``, ``[IMG_BREAK]``, ``[IMG_END]``; (-1, -1, -1) for a text-only model."""
        if not self.vision:
            return (-1, -1, -1)
        img, brk, end = (self.tekken.get_special_token(t) for t in IMG_TOKENS)
        return img, brk, end


def read_model(model: str | Path) -> ModelInfo:
    """Read the config and tokenizer of the converted model directory ``model``.  No MLX; any
    thread.

    Raises:
        EngineLoadError: not a model directory, unreadable config.json, no tekken.json.
    """
    from magimac.models import store
    from magimac.text import prompt
    from magimac.text.reasoning import markers_for

    path = Path(model).expanduser()
    if not store.is_model_dir(path):
        raise EngineLoadError(f"{path}: not a model directory (no config.json and *.safetensors); "
                              "`magimac models` lists the installed ones")
    try:
        config = json.loads((path / "config.json").read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise EngineLoadError(
            f"{path}/config.json: unreadable ({one_line(e)}); convert the model with `magimac quantize`"
        ) from None
    try:
        gen_defaults = json.loads((path / "generation_config.json").read_text())
    except (OSError, json.JSONDecodeError):
        gen_defaults = {}
    try:
        tokenizer = prompt.load_tokenizer(path)
    except prompt.PromptError as e:
        raise EngineLoadError(str(e)) from None
    return ModelInfo(path=path, config=config, tokenizer=tokenizer,
                     markers=markers_for(tokenizer.instruct_tokenizer.tokenizer),
                     entry=store.entry_for_dir(path), gen_defaults=gen_defaults)


@dataclass(frozen=True)
class MemoryChoice:
    """What `check_memory` decided: context limit (tokens), KV-cache bits (None: 16-bit) and
    the weights' size in memory (bytes)."""

    context_length: int
    kv_bits: int | None
    weights_bytes: int


def check_memory(info: ModelInfo, context_length: int | None, kv_bits: int | None, force: bool) -> MemoryChoice:
    """Check that weights + KV cache fit the memory the GPU may use (`magimac.models.plan`).

    Args:
        context_length: tokens asked for; None: the plan's choice, at most the model's default.
        kv_bits: KV-cache bits asked for; None: the plan's choice (16-bit when it fits).
        force: load even when the plan says it does not fit.

    Raises:
        EngineLoadError: more context than the model takes (its ``max_position_embeddings``),
            or it does not fit (the plan's one line, which says what to do).
    """
    from magimac.models import plan

    most = int(info.text_config.get("max_position_embeddings") or 0)
    if context_length and most and context_length > most:
        raise EngineLoadError(f"a context of {context_length:,} tokens is more than this model takes "
                              f"({most:,}, its config.json max_position_embeddings): ask for at most {most:,}")

    try:
        choice = plan.check_fits(info.path, context_length, kv_bits, force=force)
    except plan.DoesNotFit as e:
        raise EngineLoadError(str(e)) from None
    ctx = choice.context_length if context_length else min(choice.context_length, info.default_context_length())
    return MemoryChoice(int(ctx), choice.kv_bits, choice.weights_bytes)


class TextModel:
    """mlx-lm's model call signature over an mlx-vlm language model.

    mlx-vlm's ``language_model(inputs, cache, inputs_embeds)`` returns a
    ``LanguageModelOutput``; mlx-lm's `generate_step` wants ``model(inputs, cache=...,
    input_embeddings=...) -> logits`` and ``model.layers`` (to build a KV cache).
    """

    def __init__(self, language_model: Any) -> None:
        self.lm = language_model
        self.layers = language_model.layers

    def __call__(self, inputs, cache=None, input_embeddings=None):
        return self.lm(inputs, cache=cache, inputs_embeds=input_embeddings).logits


def load_weights(info: ModelInfo) -> tuple[Any, Any]:
    """Load the weights (in the engine's worker thread: MLX streams are thread-local).

    Returns:
        (model, vlm): ``model`` takes mlx-lm's call signature (a `TextModel` over mlx-vlm's
        language model for a vision model); ``vlm`` is the whole mlx-vlm model, or None.

    Raises:
        EngineLoadError: the weights cannot be loaded (one line: convert with `magimac quantize`).
    """
    try:
        if info.vision:
            from mlx_vlm.utils import load_model as vlm_load_model

            vlm = vlm_load_model(info.path)
            return TextModel(vlm.language_model), vlm
        from mlx_lm.utils import load_model as lm_load_model

        model, _ = lm_load_model(info.path)
        return model, None
    except Exception as e:
        raise EngineLoadError(
            f"{info.path}: cannot load the weights ({one_line(e)}); convert the model with `magimac quantize`"
        ) from None
