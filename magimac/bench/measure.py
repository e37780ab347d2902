"""One variant of `magimac bench` measured: size on disk and in memory, load time, peak memory,
speed at each prompt length, quality against the reference, and optionally task accuracy.
One model in memory at a time; the MLX side is `magimac.engine.measure`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from magimac.core.errors import MagimacError
from magimac.core.units import GB
from magimac.engine import evaluate, measure, speed
from magimac.bench.progress import Steps
from magimac.bench.settings import Settings
from magimac.bench.variants import Variant, disk_bytes

REFERENCE_RAM_SHARE = 0.5  # the bf16 source is the reference when its weights fit in half of RAM


@dataclass
class Row:
    """Every measured field of one variant (the JSON record; sizes in bytes, times in s)."""

    label: str
    bits: int | None
    recipe: str | None
    group_size: int | None
    mode: str | None
    path: str
    disk_bytes: int
    memory_bytes: int
    bytes_per_token: int
    parameters: int
    bits_per_weight: float
    load_s: float
    peak_memory_bytes: int
    speed: list[dict]
    decode_tps: float
    ceiling_tps: float | None
    ceiling_share: float | None
    quality: dict | None
    tasks: dict | None = None
    is_reference: bool = False
    method: str = "rtn"


def pick_reference(reference: Path | None, source: Path, variants: list[Variant]) -> tuple[str, Path]:
    """``(label, directory)`` of the reference model: ``reference`` if given, else the bf16
    source when its weights fit in half of RAM, else the highest quantized level.

    Raises:
        MagimacError: the source does not fit and no quantized level was asked for.
    """
    import psutil

    if reference is not None:
        return reference.name, reference
    if disk_bytes(source) <= REFERENCE_RAM_SHARE * psutil.virtual_memory().total:
        return "bf16", source
    quantized = [v for v in variants if v.bits is not None]
    if not quantized:
        raise MagimacError("the bf16 source does not fit in memory and no quantized level was "
                           "asked for; pass --reference DIR")
    best = max(quantized, key=lambda v: v.bits)
    return best.label, best.path


TaskRunner = Callable[[object, object, Path, Callable[[], None]], dict]


def task_runner(n: int, max_tokens: int) -> TaskRunner | None:
    """The task-accuracy measurement for ``--tasks N``: ``(model, tokenizer, path, advance)
    -> dict``, or None when N is 0.

    Raises:
        MagimacError: the demo problem set is not part of this build.
    """
    if n <= 0:
        return None
    try:
        from magimac.engine import tasks

        problems, check = tasks.load_problems(n)
    except ImportError:
        raise MagimacError("--tasks: the demo problem set is not available in this build") from None
    return lambda model, tokenizer, path, advance: tasks.accuracy(
        model, tokenizer, path, problems, check, max_tokens=max_tokens, advance=advance)


def _speed(model, vocab: int, s: Settings, lengths: list[int], steps: Steps, label: str) -> list[dict]:
    steps.start(f"measuring {label}: speed", len(lengths))
    speed.warm_up(model, vocab)
    out = []
    for i, n in enumerate(lengths):
        prompt = speed.random_prompt(n, vocab, seed=i)
        out.append(speed.measure_median(model, prompt, s.decode_tokens, s.repeats).to_dict())
        steps.advance(f"({n}-token prompt)")
    return out


def measure_variant(v: Variant, s: Settings, *, lengths: list[int], chunks: list[evaluate.Chunk],
                    reference: evaluate.Reference, bandwidth_gbs: float | None,
                    tasks_fn: TaskRunner | None, steps: Steps) -> Row:
    """Load ``v`` and measure everything (speed, then tasks, then quality); the model is
    released before returning. Steps shown: loading, speed (per prompt length), tasks (per
    problem), quality (per chunk)."""
    from magimac.models.store import quantization_label

    measure.release()
    measure.reset_peak_memory()
    steps.start(f"loading {v.label}")
    m = measure.load(v.path)
    steps.advance()
    with measure.wired(m.model):
        samples = _speed(m.model, m.vocab, s, lengths, steps, v.label)
        tasks = None
        if tasks_fn is not None:
            steps.start(f"measuring {v.label}: tasks", s.tasks)
            tasks = tasks_fn(m.model, m.tokenizer, v.path, lambda: steps.advance("problem"))
        steps.start(f"measuring {v.label}: quality", len(chunks))
        quality = evaluate.compare(measure.for_quality(m.model), reference, chunks,
                                   advance=lambda: steps.advance("chunk")).to_dict()
    peak = measure.peak_memory()
    m.model = m.tokenizer = None
    measure.release()
    decode_tps = samples[0]["decode_tps"]
    ceiling = bandwidth_gbs * GB / m.bytes_per_token if bandwidth_gbs else None
    quantized = quantization_label(v.path) != "bf16"
    return Row(
        label=v.label, bits=v.bits, recipe=v.recipe,
        group_size=s.group_size if quantized else None, mode=s.mode if quantized else None,
        path=str(v.path), disk_bytes=disk_bytes(v.path), memory_bytes=m.memory_bytes,
        bytes_per_token=m.bytes_per_token, parameters=m.parameters,
        bits_per_weight=8 * m.memory_bytes / m.parameters, load_s=m.load_s,
        peak_memory_bytes=peak, speed=samples, decode_tps=decode_tps, ceiling_tps=ceiling,
        ceiling_share=decode_tps / ceiling if ceiling else None, quality=quality, tasks=tasks,
        method=v.method,
    )
