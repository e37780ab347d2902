"""The MLX side of `magimac bench`: load a model to measure, its sizes, the memory peak, wired
weights while measuring, and the model that quality is scored with.

`magimac.bench` (which must not import MLX) calls these; speed, quality and task accuracy
themselves are `magimac.engine.speed`, `evaluate` and `tasks`.

Quality on the CPU backend: MLX's CPU `quantized_matmul` is slow for prompt-sized inputs and
less exact than the matmul of the dequantized weights (measured on a 131072 x 128 4-bit output
projection, 366 tokens: 36-58 s against 2-4 s; on 8 bits its error, rms 0.0032 on the logits,
is twice the quantization's own effect, 0.0015, where the dequantized bf16 matmul's is 0.0011).
So on the CPU, `for_quality` scores the quantized layers through their dequantized weights
(`mlx_lm.utils.dequantize_model`: the same values, rounded to bf16); on a GPU (Metal) it changes
nothing. docs/bench.md has the numbers.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import mlx.core as mx
from mlx_lm import load as mlx_load
from mlx_lm.generate import generation_stream, wired_limit
from mlx_lm.utils import dequantize_model, get_total_parameters
from mlx_lm.utils import load_tokenizer as mlx_load_tokenizer

from magimac.engine import speed


@dataclass
class Loaded:
    """A model loaded for measuring.

    Attributes:
        model / tokenizer: from `mlx_lm.load` (the text decoder); load_s: seconds to load and
        evaluate every parameter; memory_bytes: bytes of all parameters; bytes_per_token: bytes
        read per decoded token (`speed.weight_bytes`); parameters: as mlx-lm counts them;
        vocab: size of the output distribution (tokens).
    """

    model: object
    tokenizer: object
    load_s: float
    memory_bytes: int
    bytes_per_token: int
    parameters: int
    vocab: int


def load(path: Path) -> Loaded:
    """`mlx_lm.load` of the text decoder at ``path``, every parameter evaluated."""
    t0 = time.perf_counter()
    model, tokenizer = mlx_load(str(path))
    mx.eval(model.parameters())
    load_s = time.perf_counter() - t0
    memory, per_token = speed.weight_bytes(model)
    vocab = int(model(mx.array([[1]])).shape[-1])
    return Loaded(model, tokenizer, load_s, memory, per_token, get_total_parameters(model), vocab)


def load_tokenizer(path: Path):
    """The tokenizer of the model at ``path`` (`mlx_lm.utils.load_tokenizer`), no weights."""
    return mlx_load_tokenizer(Path(path))


def release() -> None:
    """Return freed MLX buffers to the system (after the caller dropped its references)."""
    gc.collect()
    mx.clear_cache()


def reset_peak_memory() -> None:
    """Start a new peak of MLX memory (`peak_memory`)."""
    mx.reset_peak_memory()


def peak_memory() -> int:
    """The most bytes MLX held since `reset_peak_memory`."""
    return int(mx.get_peak_memory())


@contextmanager
def wired(model) -> Iterator[None]:
    """Wire the weights while measuring, as mlx-lm's own generation does (a no-op off a Mac)."""
    with wired_limit(model, [generation_stream]):
        yield


def on_cpu() -> bool:
    """Whether MLX computes on the CPU backend (Linux, or a Mac told to)."""
    return mx.default_device().type == mx.cpu


def for_quality(model):
    """The model to score quality with: on the CPU backend, ``model`` with its quantized layers
    replaced by their dequantized weights, in place (see the module docstring); on a GPU,
    ``model`` unchanged. Speed and tasks must be measured before this."""
    return dequantize_model(model) if on_cpu() else model


def runtime() -> dict:
    """``{"mlx_device", "mlx_version"}`` for the report."""
    return {"mlx_device": str(mx.default_device()), "mlx_version": mx.__version__}
