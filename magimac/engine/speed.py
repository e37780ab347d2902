"""Speed of a loaded model: time to first token, prefill and decode tokens/s.

Generation itself is `mlx_lm.generate.generate_step` (prefill in steps, KV cache, greedy
sampling); this module only times it. Unlike `mlx_lm.stream_generate` it does not stop at
``</s>``, so every measurement decodes exactly the requested number of tokens, and each
measurement starts from a fresh KV cache (no prompt cache reuse).

Definitions (as mlx-lm's ``prompt_tps`` / ``generation_tps``):

- TTFT: seconds from the call until the first generated token is evaluated; it includes the
  whole prefill and the first decode step.
- Prefill tokens/s: prompt tokens / TTFT.
- Decode tokens/s: (decoded tokens - 1) / seconds from the first to the last generated token.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import mlx.core as mx
import numpy as np
from mlx_lm.generate import generate_step
from mlx.utils import tree_flatten

FIRST_ORDINARY_ID = 1000  # Tekken: ids below are control tokens (shared/MAGISTRAL.md)


@dataclass(frozen=True)
class SpeedSample:
    """One measurement at one prompt length.

    Attributes:
        prompt_tokens: prompt length (tokens); ttft_s: time to first token (seconds);
        prefill_tps: prompt tokens per second; decode_tokens: tokens generated;
        decode_tps: decode tokens per second.
    """

    prompt_tokens: int
    ttft_s: float
    prefill_tps: float
    decode_tokens: int
    decode_tps: float

    def to_dict(self) -> dict:
        return asdict(self)


def random_prompt(length: int, vocab: int, seed: int = 0) -> mx.array:
    """``length`` random ordinary token ids (no control tokens), uint32-compatible int32."""
    rng = np.random.default_rng(seed)
    low = FIRST_ORDINARY_ID if vocab > FIRST_ORDINARY_ID + 1 else 0
    return mx.array(rng.integers(low, vocab, size=length), dtype=mx.int32)


def measure(model, prompt: mx.array, decode_tokens: int) -> SpeedSample:
    """Prefill ``prompt`` (int ``(L,)``) and decode ``decode_tokens`` (>= 2) tokens greedily."""
    if decode_tokens < 2:
        raise ValueError(f"decode_tokens must be at least 2, got {decode_tokens}")
    t0 = time.perf_counter()
    gen = generate_step(prompt, model, max_tokens=decode_tokens)
    next(gen)  # generate_step evaluates the token (.item()) before yielding it
    t1 = time.perf_counter()
    n = 1
    for _ in gen:
        n += 1
    t2 = time.perf_counter()
    ttft = t1 - t0
    return SpeedSample(
        prompt_tokens=int(prompt.size), ttft_s=ttft, prefill_tps=prompt.size / ttft,
        decode_tokens=n, decode_tps=(n - 1) / (t2 - t1) if t2 > t1 else float("nan"),
    )


def measure_median(model, prompt: mx.array, decode_tokens: int, repeats: int) -> SpeedSample:
    """`measure` ``repeats`` times; TTFT and decode tokens/s are the medians (prefill tokens/s
    follows from the median TTFT)."""
    runs = [measure(model, prompt, decode_tokens) for _ in range(repeats)]
    ttft = float(np.median([r.ttft_s for r in runs]))
    return SpeedSample(prompt_tokens=int(prompt.size), ttft_s=ttft, prefill_tps=prompt.size / ttft,
                       decode_tokens=decode_tokens,
                       decode_tps=float(np.median([r.decode_tps for r in runs])))


def warm_up(model, vocab: int) -> None:
    """One short generation, so kernel compilation does not count in the first measurement."""
    measure(model, random_prompt(8, vocab, seed=1), 3)


def weight_bytes(model) -> tuple[int, int]:
    """``(bytes of all parameters, bytes read per decoded token)`` of a loaded model.

    Bytes read per token: every parameter except the input embedding table, of which a token
    reads one row (quantized scales and biases included). With tied embeddings the table is
    also the output projection and counts in full. KV cache reads are not included.
    """
    params = tree_flatten(model.parameters())
    total = sum(v.nbytes for _, v in params)
    tied = not any(k.endswith("lm_head.weight") for k, _ in params)
    embed = 0 if tied else sum(v.nbytes for k, v in params if ".embed_tokens." in k)
    return total, total - embed
