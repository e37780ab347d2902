"""``--method rtn|gptq|awq``: which combinations are allowed, and the calibrated part of a
conversion as `magimac.quantize.convert` drives it.

Refused, each in one line (`check`):
- ``gptq`` with ``--mode mxfp4|nvfp4|mxfp8``: GPTQ's error compensation rounds column by
  column on a fixed affine grid per group; MLX's float formats share a power-of-two scale per
  group that the compensation would have to re-derive, so only ``affine`` is done;
- ``--calibration`` (and its sizes) with ``rtn``: RTN reads no data;
- a calibrated method on a text decoder other than ``mistral``/``llama`` (its layers are run
  with the ``(x, mask)`` block interface those share).
AWQ works with every mode (its scales and clipping only need a quantize/dequantize pair).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import mlx.core as mx

from magimac.quantize.calibration import DEFAULT_SAMPLES, DEFAULT_TOKENS, Calibration, load_calibration, read_text
from magimac.quantize.layerwise import METHODS, Parts, split_jobs
from magimac.quantize.layout import BITS, GROUP_SIZES
from magimac.quantize.source import QuantizeError

CALIBRATED_TEXT = ("mistral", "llama")


def check(method: str, mode: str, config: dict, *, calibration: Path | None = None,
          sized: bool = False) -> None:
    """Raise `QuantizeError` (one line) for a method the settings or the model rule out;
    ``sized``: calibration sizes were given.  A given ``calibration`` file is read and checked
    here, before any download or output."""
    if method not in METHODS:
        raise QuantizeError(f"--method {method}: unknown (choose from {', '.join(METHODS)})")
    if method == "rtn":
        if calibration is not None or sized:
            raise QuantizeError("--calibration and its sizes apply to --method gptq or awq only; RTN reads no data")
        return
    if method == "gptq" and mode != "affine":
        raise QuantizeError(f"--method gptq works with --mode affine only (not {mode}); use --method awq or rtn")
    text = config.get("text_config", config)
    if text.get("model_type") not in CALIBRATED_TEXT:
        raise QuantizeError(f"--method {method}: supported for mistral/llama text decoders, not "
                            f"{text.get('model_type')!r}; use --method rtn")
    if calibration is not None:
        read_text(Path(calibration))


def check_numbers(*, bits: int, group_size: int, mode: str, context: int, samples: int | None = None,
                  tokens: int | None = None) -> None:
    """Raise `QuantizeError` (one line naming the option) for a number no conversion takes:
    affine ``bits`` / ``group_size`` outside `BITS` / `GROUP_SIZES`, a fit-check ``context``
    under 1 token, calibration ``samples`` or ``tokens`` (per sample) under 1 (None: the
    defaults, 128 x 512)."""
    if mode == "affine" and bits not in BITS:
        raise QuantizeError(f"--bits must be one of {', '.join(map(str, BITS))}, got {bits}")
    if mode == "affine" and group_size not in GROUP_SIZES:
        raise QuantizeError(f"--group-size must be one of {', '.join(map(str, GROUP_SIZES))}, got {group_size}")
    if context < 1:
        raise QuantizeError(f"--context must be a positive number of tokens of KV cache, got {context}")
    for flag, n in (("--calibration-samples", samples), ("--calibration-tokens", tokens)):
        if n is not None and n < 1:
            raise QuantizeError(f"{flag} must be at least 1, got {n} (leave it out for the default)")


@dataclass
class Calibrated:
    """The calibrated part of one conversion: ``method``, the encoded ``calibration``, the model
    skeleton and the quantization ``plan``."""

    method: str
    calibration: Calibration
    model: object
    plan: dict
    progress: bool = True
    parts: Parts | None = None

    def stream_jobs(self, jobs: list) -> list:
        """The jobs the ordinary streaming pass converts (all but decoder layers and the head)."""
        self.parts = split_jobs(jobs)
        return self.parts.stream

    def run(self, write: Callable[[str, mx.array], None]) -> None:
        """Calibrate and write the decoder layers and the head (after `stream_jobs`)."""
        from magimac.quantize import calibration_pass as calibrate

        def evaluated(name: str, a: mx.array) -> None:
            mx.eval(a)  # the writer thread has no MLX stream: it takes evaluated arrays only
            write(name, a)

        with layer_progress(self.progress, len(self.parts.layers), self.method,
                            int(self.calibration.ids.shape[0])) as report:
            calibrate.run(self.model, self.parts, self.calibration, self.plan, self.method, evaluated, report)

    def record(self) -> dict:
        """The manifest's ``method`` settings and ``calibration`` entries."""
        from magimac.quantize import affine, awq, gptq

        clip = {"factors": len(affine.GRID), "max_shrink": affine.MAX_SHRINK}  # `affine.clip_params`
        settings = ({"damp": gptq.DAMP, "block": gptq.BLOCK, "act_order": False, "sequential": True,
                     "group_clip": clip, "embedding_clip": clip}
                    if self.method == "gptq" else
                    {"grid": awq.N_GRID, "max_shrink": awq.MAX_SHRINK, "clip_tokens": awq.CLIP_TOKENS,
                     "embedding_clip": clip})
        return {"method": self.method, "method_settings": settings, "calibration": self.calibration.record()}


def prepare(method: str, calibration: Path | None, ckpt, model, plan: dict, *, samples: int | None,
            tokens: int | None, progress: bool) -> Calibrated | None:
    """The `Calibrated` part for ``method`` (None for RTN); encodes the calibration set with
    the checkpoint's tokenizer (`load_calibration`, which raises `QuantizeError`)."""
    if method == "rtn":
        return None
    cal = load_calibration(calibration, ckpt.path, samples=samples or DEFAULT_SAMPLES, tokens=tokens or DEFAULT_TOKENS)
    return Calibrated(method, cal, model, plan, progress)


@contextmanager
def layer_progress(enabled: bool, layers: int, method: str, samples: int) -> Iterator[Callable[[int, str, int], None]]:
    """``report(layer, step, samples)`` for a rich progress line on stderr: layers done of
    ``layers``, the current step and the samples through it; a no-op unless ``enabled``."""
    if not enabled:
        yield lambda layer, step, n: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    seen = {"layer": None, "samples": 0, "step": None}
    with Progress(TextColumn(f"calibrating ({method})"), BarColumn(), MofNCompleteColumn(), TextColumn("layers"),
                  TextColumn("{task.description}"), TimeElapsedColumn(), console=Console(stderr=True)) as bar:
        task = bar.add_task("", total=layers)

        def report(layer: int, step: str, n: int) -> None:
            if layer != seen["layer"]:
                if seen["layer"] is not None and seen["layer"] >= 0:
                    bar.advance(task, 1)
                seen["layer"] = layer
            if step != seen["step"]:
                seen.update(step=step, samples=0)
            seen["samples"] += n
            where = "lm_head" if layer < 0 else f"layer {layer + 1}"
            bar.update(task, description=f"{where}: {step} (samples {min(seen['samples'], samples)}/{samples})")

        yield report
