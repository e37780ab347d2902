"""How a turn samples, for both generation paths (the one-turn engine and `magimac serve`'s batch).

One construction of everything that picks the next token: the settings resolved against the
model's defaults (`resolved`), mlx-lm's sampler (``make_sampler``) and logits processors
(repetition penalty, magimac's reasoning budget and opening ban from `magimac.engine.budget`,
``tool_choice: "none"``), and, in a batch, a sampler with a random key of its own for a seeded
turn (`SeededSampler`) or one shared by the turns that sample alike (`batch_sampling`).
"""

from __future__ import annotations

from typing import Callable

import mlx.core as mx
from mlx_lm.sample_utils import apply_min_p, apply_top_k, apply_top_p, make_logits_processors, make_sampler

from magimac.core.settings import GenerationSettings
from magimac.engine.budget import budget_processor, opening_ban
from magimac.engine.loading import ModelInfo
from magimac.text.tool_calls import tool_call_ids


def resolved(settings: GenerationSettings, info: ModelInfo) -> tuple[float, float, float, int]:
    """(temperature, top_p, min_p, top_k) of ``settings``, None fields taken from the model's
    defaults; a ``top_k`` at or above the vocabulary size keeps every token (0)."""
    temp_d, top_p_d = info.sampling_defaults()
    temp = temp_d if settings.temperature is None else settings.temperature
    top_p = top_p_d if settings.top_p is None else settings.top_p
    top_k = settings.top_k if settings.top_k < info.vocabulary_size() else 0
    return temp, top_p, settings.min_p, top_k


def sampling(settings: GenerationSettings, info: ModelInfo) -> tuple[Callable, list[Callable]]:
    """The sampler and logits processors for ``settings`` (None fields: the model's defaults):
    mlx-lm's sampler, or with a seed a `SeededSampler` (the same seed gives the same tokens in a
    chat, the app and `magimac serve`, whatever else the server decodes).  A ``top_k`` at or
    above the vocabulary size keeps every token (as 0 does)."""
    temp, top_p, min_p, top_k = resolved(settings, info)
    if settings.seed is not None:  # the one seed rule: a key of the turn's own, on both paths
        sampler = SeededSampler(settings.seed, temp, top_p, min_p, top_k)
    else:
        sampler = make_sampler(temp=temp, top_p=top_p if top_p < 1 else 0.0, min_p=min_p, top_k=top_k)
    processors = make_logits_processors(repetition_penalty=settings.repetition_penalty)
    if settings.reasoning_budget is not None:
        processors.append(budget_processor(info.markers, info.tekken, settings.reasoning_budget))
    if settings.tool_choice == "none":
        processors.append(no_tool_calls(info))
    if (ban := opening_ban(info.markers, info.tekken, settings.banned_openings)) is not None:
        processors.append(ban)
    return sampler, processors


def no_tool_calls(info: ModelInfo) -> Callable:
    """A logits processor that never lets ``[TOOL_CALLS]`` be sampled (``tool_choice: "none"``);
    logits [1, vocabulary] in, the same shape out.  A tokenizer without that token: unchanged."""
    ids = tool_call_ids(info.tekken)
    if ids is None:
        return lambda tokens, logits: logits
    mask = mx.zeros((info.vocabulary_size(),)).at[ids[0]].add(-mx.inf)

    def processor(tokens: mx.array, logits: mx.array) -> mx.array:
        return logits + mask[: logits.shape[-1]]

    return processor


def batch_sampling(settings: GenerationSettings, info: ModelInfo,
                   shared: dict[tuple, Callable]) -> tuple[Callable, list[Callable]]:
    """A batched turn's sampler and processors: a `SeededSampler` of its own with a seed (so the
    turn repeats whatever runs beside it), else the sampler in ``shared`` for the same
    (temperature, top_p, min_p, top_k), so the batch samples alike turns in one call."""
    sampler, processors = sampling(settings, info)
    if settings.seed is not None:
        return sampler, processors
    return shared.setdefault(resolved(settings, info), sampler), processors


class SeededSampler:
    """Sampling with a random key of its own: mlx-lm's filters (``apply_top_p``,
    ``apply_min_p``, ``apply_top_k``), then a categorical draw at ``temp``.

    Why our own: mlx-lm's samplers draw from MLX's one global random state, so in a batch a
    seed would not make one turn repeatable.  Called with log-probabilities [1, vocabulary];
    returns the token id [1].
    """

    def __init__(self, seed: int, temp: float, top_p: float, min_p: float, top_k: int) -> None:
        self.key = mx.random.key(seed)
        self.temp = temp
        self.filters: list[Callable] = []
        if 0 < top_p < 1:
            self.filters.append(lambda x: apply_top_p(x, top_p))
        if min_p > 0:
            self.filters.append(lambda x: apply_min_p(x, min_p))
        if top_k > 0:
            self.filters.append(lambda x: apply_top_k(x, top_k))

    def __call__(self, logprobs: mx.array) -> mx.array:
        if self.temp == 0:
            return mx.argmax(logprobs, axis=-1)
        for f in self.filters:
            logprobs = f(logprobs)
        keys = mx.random.split(self.key)
        self.key = keys[0]
        return mx.random.categorical(logprobs * (1.0 / self.temp), key=keys[1])
