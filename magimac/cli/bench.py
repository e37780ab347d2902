"""`magimac bench MODEL --levels 3,4,6,8`: quantization levels side by side.

Converts (or reuses) one variant per level and recipe, then measures each in the same run:
size on disk and in memory, load time, peak memory, time to first token and prefill tokens/s
at several prompt lengths, decode tokens/s (and its share of the chip's bandwidth ceiling),
and quality against a reference (`magimac.engine.evaluate`): KL divergence, top-1 agreement,
perplexity; optionally task accuracy on generated problems. Writes ``bench.json``,
``bench.csv``, ``quality_vs_size.png`` and ``speed_vs_size.png`` and prints a table and
terminal plots. Definitions: docs/bench.md.

What this adds to mlx-lm: the orchestration (conversion cache keyed by settings, reference
log-probabilities stored once, one model in memory at a time) and the report; models are
loaded with `mlx_lm.load` (text decoder only) and run with mlx-lm's generation.
"""

from __future__ import annotations

import argparse
import csv
import gc
import hashlib
import io
import json
import math
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from magimac.core import paths
from magimac.core.errors import MagimacError

SCHEMA = 1
GB = 1e9
DEFAULT_LEVELS = "3,4,6,8"
DEFAULT_PROMPT_LENGTHS = "256,1024,4096"
DEFAULT_DECODE_TOKENS = 128
REFERENCE_RAM_SHARE = 0.5  # the bf16 source is the reference when its weights fit in half of RAM


@dataclass
class Variant:
    """One model to measure.

    Attributes:
        label: e.g. ``"4bit"``, ``"bf16"``, ``"mixed_3_6"``; bits: affine bits or None (bf16,
        mixed); recipe: quantize recipe name or None (the source); path: model directory.
    """

    label: str
    bits: int | None
    recipe: str | None
    path: Path | None = None


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


# ---------------------------------------------------------------------------------------- args

def add_arguments(p: argparse.ArgumentParser) -> None:
    """Arguments of `magimac bench`."""
    p.add_argument("model", metavar="SOURCE", help="the unquantized source: a Hugging Face checkpoint directory "
                   "or a registry name whose original checkpoint is in the Hugging Face cache")
    p.add_argument("--levels", metavar="LIST", default=DEFAULT_LEVELS,
                   help=f"comma-separated bits per weight, and 'bf16' for the source "
                   f"(default {DEFAULT_LEVELS})")
    p.add_argument("--recipes", metavar="LIST", default=None,
                   help="comma-separated quantize recipes (default: quantize's default)")
    p.add_argument("--group-size", metavar="N", type=int, default=64, help="quantization group size (64)")
    p.add_argument("--mode", default="affine", help="quantization mode (affine)")
    p.add_argument("--reference", metavar="DIR", type=Path, default=None,
                   help="model directory scored as the reference (default: the bf16 source when "
                   "its weights fit in half of RAM, else the highest level)")
    p.add_argument("--out", metavar="DIR", type=Path, default=None,
                   help="directory for bench.json, bench.csv and plots "
                   "(default: <data dir>/bench/runs/<time>)")
    p.add_argument("--tasks", metavar="N", type=int, default=0,
                   help="also measure task accuracy on N generated problems (default 0: off)")
    p.add_argument("--task-max-tokens", metavar="N", type=int, default=1024,
                   help="generation limit per problem for --tasks (tokens)")
    p.add_argument("--prompt-lengths", metavar="LIST", default=DEFAULT_PROMPT_LENGTHS,
                   help=f"prompt lengths for TTFT and prefill, tokens ({DEFAULT_PROMPT_LENGTHS})")
    p.add_argument("--decode-tokens", metavar="N", type=int, default=DEFAULT_DECODE_TOKENS,
                   help=f"tokens decoded per speed measurement ({DEFAULT_DECODE_TOKENS})")
    p.add_argument("--repeats", metavar="N", type=int, default=3,
                   help="speed measurements per prompt length; the median is reported (3)")
    p.add_argument("--chunk-len", metavar="N", type=int, default=512,
                   help="tokens per forward pass in the quality evaluation (512)")
    p.add_argument("--eval-dir", metavar="DIR", type=Path, default=None,
                   help="evaluation texts (*.txt, reasoning.json) instead of the bundled set")
    p.add_argument("--bandwidth", metavar="GBS", type=float, default=None,
                   help="memory bandwidth in GB/s for the decode ceiling (default: chip table)")
    p.add_argument("--force", action="store_true", help="convert again even when cached")
    p.add_argument("--no-plots", action="store_true", help="skip PNG and terminal plots")


def parse_levels(text: str) -> list[int | None]:
    """``"bf16,8,4"`` -> ``[None, 8, 4]`` (None = the unquantized source).

    Raises:
        MagimacError: an empty list or a level that is not an integer of quantize's BITS.
    """
    from magimac.quantize.layout import BITS

    out: list[int | None] = []
    for part in (s.strip() for s in text.split(",")):
        if not part:
            continue
        if part.lower() in ("bf16", "16"):
            out.append(None)
            continue
        try:
            bits = int(part.removesuffix("bit"))
        except ValueError:
            bits = -1
        if bits not in BITS:
            raise MagimacError(f"--levels: {part!r} is not one of bf16, {', '.join(map(str, BITS))}")
        out.append(bits)
    if not out:
        raise MagimacError("--levels: give at least one level, e.g. --levels 4,8")
    return list(dict.fromkeys(out))


def parse_lengths(text: str) -> list[int]:
    """``"256,1024"`` -> ``[256, 1024]``; raises MagimacError on non-positive or non-integers."""
    try:
        out = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        out = []
    if not out or min(out) < 1:
        raise MagimacError(f"--prompt-lengths: {text!r} is not a list of positive token counts")
    return out


def plan_variants(levels: list[int | None], recipes: list[str | None]) -> list[Variant]:
    """Variants to measure: each level under each recipe (a recipe that fixes its own bits,
    like the mixed ones, gives one variant); the source once if 'bf16' is a level."""
    from magimac.quantize.recipes import get_recipe

    out: list[Variant] = []
    if None in levels:
        out.append(Variant("bf16", None, None))
    for r in recipes:
        try:
            recipe = get_recipe(r)
        except (KeyError, ValueError) as e:
            raise MagimacError(f"--recipes: {e}") from None
        suffix = "" if r is None or len(recipes) == 1 else f"-{recipe.name}"
        if not recipe.uses_bits:
            out.append(Variant(recipe.name, None, recipe.name))
            continue
        for b in sorted((b for b in levels if b is not None), reverse=True):
            out.append(Variant(f"{b}bit{suffix}", b, recipe.name))
    return out


# -------------------------------------------------------------------------------- the source

def resolve_source(name: str) -> Path:
    """The unquantized source checkpoint for ``name``: a directory, a registry name with a local
    path (the demo model), or what `magimac.quantize.source.resolve_source` finds (registry name or hub
    id, from the Hugging Face cache).

    Raises:
        MagimacError: nothing found (`QuantizeError` is one), or the directory is already quantized.
    """
    from magimac.models.registry import find_entry, load_registry
    from magimac.models.store import quantization_label
    from magimac.models.registry import quantize_source
    from magimac.quantize.source import resolve_source as load_source

    entry = None if Path(name).expanduser().exists() else find_entry(load_registry(), name)
    local = entry.local_path() if entry is not None else None
    p = load_source(local if local else quantize_source(name)).path
    if quantization_label(p) != "bf16":
        raise MagimacError(f"{p}: already quantized ({quantization_label(p)}); bench needs the "
                        "unquantized source checkpoint")
    return p


def _weights_stamp(path: Path) -> str:
    """Identity of a checkpoint: resolved path plus name, size and mtime of its weight files."""
    h = hashlib.sha256(str(path.resolve()).encode())
    for f in sorted(path.glob("*.safetensors")):
        st = f.stat()
        h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()


def disk_bytes(path: Path) -> int:
    """Bytes of the ``*.safetensors`` files of a model directory (a decoy consolidated file
    next to HF shards is not counted)."""
    files = [f for f in path.glob("*.safetensors") if f.name != "consolidated.safetensors"]
    return sum(f.stat().st_size for f in files)


# ------------------------------------------------------------------------------- conversions

def variant_dir(source: Path, v: Variant, group_size: int, mode: str) -> Path:
    """The cache directory of a converted variant, keyed by the source and the settings."""
    key = json.dumps([_weights_stamp(source), v.bits, v.recipe, group_size, mode])
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return paths.data_dir() / "bench" / "variants" / f"{source.name}-{v.label}-{digest}"


def ensure_variant(source: Path, v: Variant, *, group_size: int, mode: str, force: bool) -> Path:
    """Convert ``v`` with `magimac.quantize.convert.convert` unless its cached conversion exists."""
    from magimac.models.store import is_model_dir

    if v.recipe is None:
        return source
    out = variant_dir(source, v, group_size, mode)
    if is_model_dir(out) and not force:
        return out
    from magimac.quantize.convert import convert

    out.parent.mkdir(parents=True, exist_ok=True)
    return Path(convert(source, out, bits=v.bits or 4, group_size=group_size, mode=mode,
                        recipe=v.recipe, quantize_vision=False, force=True, progress=False,
                        log=lambda _line: None))


# --------------------------------------------------------------------------------- measuring

def load_model(path: Path):
    """`mlx_lm.load` of a model's text decoder; returns ``(model, tokenizer, seconds)``."""
    import mlx.core as mx
    from mlx_lm import load

    t0 = time.perf_counter()
    model, tokenizer = load(str(path))
    mx.eval(model.parameters())
    return model, tokenizer, time.perf_counter() - t0


def _release() -> None:
    """Return freed MLX buffers to the system (after the caller dropped its references)."""
    import mlx.core as mx

    gc.collect()
    mx.clear_cache()


def pick_reference(args, source: Path, variants: list[Variant]) -> tuple[str, Path]:
    """``(label, directory)`` of the reference model (see ``--reference``)."""
    import psutil

    if args.reference is not None:
        if not args.reference.is_dir():
            raise MagimacError(f"--reference {args.reference}: not a directory")
        return args.reference.name, args.reference
    if disk_bytes(source) <= REFERENCE_RAM_SHARE * psutil.virtual_memory().total:
        return "bf16", source
    quantized = [v for v in variants if v.bits is not None]
    if not quantized:
        raise MagimacError("the bf16 source does not fit in memory and no quantized level was "
                        "asked for; pass --reference DIR")
    best = max(quantized, key=lambda v: v.bits)
    return best.label, best.path


def measure_variant(v: Variant, *, args, lengths: list[int], chunks, reference, bandwidth_gbs,
                    tasks_fn, advance: Callable[[], None]) -> Row:
    """Load ``v`` and measure everything; one model in memory at a time."""
    import mlx.core as mx
    from mlx_lm.generate import generation_stream, wired_limit
    from mlx_lm.utils import get_total_parameters

    from magimac.engine import evaluate, speed
    from magimac.models.store import quantization_label

    _release()
    mx.reset_peak_memory()
    model, tokenizer, load_s = load_model(v.path)
    advance()
    memory, per_token = speed.weight_bytes(model)
    params = get_total_parameters(model)
    vocab = int(model(mx.array([[1]])).shape[-1])
    # wired_limit: on a Mac, wire the weights as mlx-lm's own generation does (no-op elsewhere)
    with wired_limit(model, [generation_stream]):
        speed.warm_up(model, vocab)
        samples = []
        for i, n in enumerate(lengths):
            samples.append(speed.measure_median(model, speed.random_prompt(n, vocab, seed=i),
                                                args.decode_tokens, args.repeats).to_dict())
            advance()
        quality = evaluate.compare(model, reference, chunks, advance=advance).to_dict()
        tasks = tasks_fn(model, tokenizer, v.path, advance) if tasks_fn else None
    peak = mx.get_peak_memory()
    del model, tokenizer
    _release()
    decode_tps = samples[0]["decode_tps"]
    ceiling = bandwidth_gbs * GB / per_token if bandwidth_gbs else None
    label = quantization_label(v.path)
    return Row(
        label=v.label, bits=v.bits, recipe=v.recipe,
        group_size=None if label == "bf16" else args.group_size,
        mode=None if label == "bf16" else args.mode, path=str(v.path),
        disk_bytes=disk_bytes(v.path), memory_bytes=memory, bytes_per_token=per_token,
        parameters=params, bits_per_weight=8 * memory / params, load_s=load_s,
        peak_memory_bytes=peak, speed=samples, decode_tps=decode_tps, ceiling_tps=ceiling,
        ceiling_share=decode_tps / ceiling if ceiling else None, quality=quality, tasks=tasks,
    )


# ------------------------------------------------------------------------------------ output

def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + f".tmp-{os.getpid()}")
    tmp.write_text(text)
    tmp.replace(path)


def flat_row(r: Row) -> dict:
    """One CSV row: scalar fields, speed per prompt length, headline quality and task fields."""
    d = {k: v for k, v in asdict(r).items() if k not in ("speed", "quality", "tasks")}
    for s in r.speed:
        n = s["prompt_tokens"]
        d[f"ttft_s@{n}"] = s["ttft_s"]
        d[f"prefill_tps@{n}"] = s["prefill_tps"]
        d[f"decode_tps@{n}"] = s["decode_tps"]
    for k, v in (r.quality or {}).items():
        if not k.startswith("by_"):
            d[k] = v
    for k, v in (r.tasks or {}).items():
        if not isinstance(v, (list, dict)):
            d[f"tasks_{k}"] = v
    return d


def write_outputs(out: Path, report: dict, rows: list[Row], plots: bool) -> list[Path]:
    """Write bench.json, bench.csv and (with ``plots``) the two PNG plots into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "bench.json", out / "bench.csv"]
    _atomic_write(written[0], json.dumps(report, indent=2, default=str))
    flat = [flat_row(r) for r in rows]
    keys = list(dict.fromkeys(k for d in flat for k in d))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys)
    w.writeheader()
    w.writerows(flat)
    _atomic_write(written[1], buf.getvalue())
    if plots:
        written += png_plots(out, rows)
    return written


def png_plots(out: Path, rows: list[Row]) -> list[Path]:
    """``quality_vs_size.png`` (KL mean, log scale, and perplexity) and ``speed_vs_size.png``
    (decode and prefill tokens/s) against size in memory (GB)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = [r.memory_bytes / GB for r in rows]
    labels = [r.label for r in rows]

    def scatter(ax, ys, ylabel, log=False):
        pts = [(a, b, t) for a, b, t in zip(x, ys, labels) if b is not None and (b > 0 or not log)]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "o", linestyle="none")
        for a, b, t in pts:
            ax.annotate(t, (a, b), textcoords="offset points", xytext=(4, 4), fontsize=8)
        ax.set_xlabel("weights in memory (GB)")
        ax.set_ylabel(ylabel)
        if log and pts:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)

    files = []
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    scatter(axes[0], [r.quality["kl_mean"] if r.quality else None for r in rows],
            "mean KL divergence vs reference (nats/token)", log=True)
    scatter(axes[1], [r.quality["ppl"] if r.quality else None for r in rows], "perplexity")
    fig.suptitle("Quality against size")
    fig.tight_layout()
    files.append(out / "quality_vs_size.png")
    fig.savefig(files[-1], dpi=120)
    plt.close(fig)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    scatter(axes[0], [r.decode_tps for r in rows], "decode tokens/s")
    n = rows[0].speed[-1]["prompt_tokens"] if rows else 0
    scatter(axes[1], [r.speed[-1]["prefill_tps"] for r in rows], f"prefill tokens/s ({n}-token prompt)")
    fig.suptitle("Speed against size")
    fig.tight_layout()
    files.append(out / "speed_vs_size.png")
    fig.savefig(files[-1], dpi=120)
    plt.close(fig)
    return files


def terminal_plots(rows: list[Row]) -> str:
    """Two plotext plots (KL mean and decode tokens/s against size) as plain text; each point
    is drawn as its level's label."""
    import plotext

    fig = plotext.figure
    text = []
    for title, ys in (
        ("mean KL divergence (nats/token) vs weights in memory (GB)",
         [r.quality["kl_mean"] if r.quality else 0.0 for r in rows]),
        ("decode tokens/s vs weights in memory (GB)", [r.decode_tps for r in rows]),
    ):
        fig.clear()
        fig.plot_size(72, 14)
        xs = [r.memory_bytes / GB for r in rows]
        fig.draw(fig.signal(xs, ys, marker="o"))
        mid = (min(xs) + max(xs)) / 2
        for a, b, r in zip(xs, ys, rows):
            fig.draw(fig.text(a, b, r.label, alignment="right" if a > mid else "left"))
        fig.title(title)
        text.append(plotext.uncolorize(str(fig.build())))
    return "\n".join(text)


def _fmt(x, spec: str) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def _size(n: int) -> str:
    """Bytes as decimal GB, or MB below 1 GB (test checkpoints)."""
    return f"{n / GB:.2f} GB" if n >= GB else f"{n / 1e6:.2f} MB"


def table(rows: list[Row], reference: str):
    """The terminal table (a rich `Table`)."""
    from rich.table import Table

    t = Table(title=f"magimac bench (quality against {reference})")
    lengths = [s["prompt_tokens"] for s in rows[0].speed] if rows else []
    for col in ("level", "disk", "memory", "bpw", "load s", "peak mem",
                *(f"TTFT s @{n}" for n in lengths), f"prefill t/s @{lengths[-1] if lengths else ''}",
                "decode t/s", "% ceiling", "KL mean", "KL p99", "top-1 %", "PPL"):
        t.add_column(col, justify="right")
    has_tasks = any(r.tasks for r in rows)
    if has_tasks:
        t.add_column("tasks %", justify="right")
        t.add_column("reasoning tok", justify="right")
    for r in rows:
        q = r.quality or {}
        cells = [r.label + (" (ref)" if r.is_reference else ""), _size(r.disk_bytes),
                 _size(r.memory_bytes), _fmt(r.bits_per_weight, ".2f"),
                 _fmt(r.load_s, ".2f"), _size(r.peak_memory_bytes),
                 *(_fmt(s["ttft_s"], ".3f") for s in r.speed), _fmt(r.speed[-1]["prefill_tps"], ".0f"),
                 _fmt(r.decode_tps, ".1f"),
                 _fmt(r.ceiling_share * 100 if r.ceiling_share else None, ".3g"),
                 _fmt(q.get("kl_mean"), ".3g"), _fmt(q.get("kl_p99"), ".3g"),
                 _fmt(q.get("top1_agreement", 0) * 100, ".1f"), _fmt(q.get("ppl"), ".5g")]
        if has_tasks:
            tk = r.tasks or {}
            cells += [_fmt(tk.get("accuracy", 0) * 100 if tk else None, ".0f"),
                      _fmt(tk.get("mean_reasoning_tokens"), ".0f")]
        t.add_row(*cells)
    return t


def category_table(rows: list[Row]):
    """Mean KL divergence and top-1 agreement per text category (a rich `Table`)."""
    from rich.table import Table

    cats = list(dict.fromkeys(c for r in rows if r.quality for c in r.quality["by_category"]))
    t = Table(title="mean KL divergence (nats/token) / top-1 agreement by category")
    t.add_column("level", justify="right")
    for c in cats:
        t.add_column(c, justify="right")
    for r in rows:
        by = (r.quality or {}).get("by_category", {})
        t.add_row(r.label, *(f"{_fmt(by[c]['kl_mean'], '.3g')} / {by[c]['top1_agreement']:.0%}"
                             if c in by else "–" for c in cats))
    return t


# ----------------------------------------------------------------------------------------- run

def _task_runner(n: int, max_tokens: int):
    """The task-accuracy measurement for ``--tasks N``: ``(model, tokenizer, path, advance)
    -> dict``, or None when N is 0."""
    if n <= 0:
        return None
    try:
        from magimac.engine import tasks

        problems, check = tasks.load_problems(n)
    except ImportError:
        raise MagimacError("--tasks: the demo problem set is not available in this build") from None
    return lambda model, tokenizer, path, advance: tasks.accuracy(
        model, tokenizer, path, problems, check, max_tokens=max_tokens, advance=advance)


def run(args) -> int:
    """Run the bench; returns 0. Raises MagimacError on bad input (nothing half-written)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from magimac.models import chips

    from magimac.engine import evaluate

    levels = parse_levels(args.levels)
    lengths = parse_lengths(args.prompt_lengths)
    if args.decode_tokens < 2:
        raise MagimacError(f"--decode-tokens {args.decode_tokens}: must be at least 2")
    if args.repeats < 1:
        raise MagimacError(f"--repeats {args.repeats}: must be at least 1")
    recipes = [s.strip() for s in args.recipes.split(",") if s.strip()] if args.recipes else [None]
    source = resolve_source(args.model)
    variants = plan_variants(levels, recipes)
    if not variants:
        raise MagimacError("nothing to measure: give --levels")
    out = args.out or paths.data_dir() / "bench" / "runs" / datetime.now().strftime("%Y%m%d-%H%M%S")
    if args.eval_dir is not None and not args.eval_dir.is_dir():
        raise MagimacError(f"--eval-dir {args.eval_dir}: not a directory")

    from mlx_lm.utils import load_tokenizer

    try:
        texts = evaluate.load_eval_texts(load_tokenizer(source), args.eval_dir)
        chunks = evaluate.make_chunks(texts, args.chunk_len)
    except evaluate.EvalError as e:
        raise MagimacError(str(e)) from None
    brand, chip = chips.detect_chip()
    bandwidth = args.bandwidth or (chip.bandwidth_gbs if chip else None)
    tasks_fn = _task_runner(args.tasks, args.task_max_tokens)

    console = Console(stderr=True)
    per_variant = 1 + len(lengths) + len(chunks) + max(args.tasks, 0)
    total = len(variants) * (1 + per_variant) + len(chunks)
    rows: list[Row] = []
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console) as progress:
        task = progress.add_task("bench", total=total)
        advance = lambda: progress.advance(task)  # noqa: E731

        def stage(description: str) -> None:
            """Name the current step on the bar; off a terminal (no live bar), as a log line."""
            progress.update(task, description=description)
            if not console.is_terminal:
                console.print(f"magimac bench: {description}")
        for v in variants:
            stage(f"converting {v.label}")
            v.path = ensure_variant(source, v, group_size=args.group_size, mode=args.mode,
                                    force=args.force)
            advance()
        ref_label, ref_path = pick_reference(args, source, variants)
        stage(f"reference log-probs ({ref_label})")
        key = hashlib.sha256(json.dumps([_weights_stamp(ref_path), evaluate.chunks_digest(chunks)])
                             .encode()).hexdigest()[:16]
        ref_dir = paths.data_dir() / "bench" / "reference" / key
        reference = evaluate.open_reference(ref_dir, chunks)
        if reference is None:
            model = load_model(ref_path)[0]
            reference = evaluate.write_reference(model, chunks, ref_dir, label=ref_label,
                                                 advance=advance)
            del model  # the reference never sits in memory with a variant
            _release()
        else:
            progress.advance(task, len(chunks))
        def report(rows: list[Row]) -> dict:
            return _report(args, source=source, ref_label=ref_label, ref_path=ref_path,
                           ref_dir=ref_dir, reference=reference, brand=brand, chip=chip,
                           bandwidth=bandwidth, recipes=recipes, lengths=lengths, texts=texts,
                           chunks=chunks, rows=rows)

        for v in variants:
            stage(f"measuring {v.label}")
            row = measure_variant(v, args=args, lengths=lengths, chunks=chunks,
                                  reference=reference, bandwidth_gbs=bandwidth,
                                  tasks_fn=tasks_fn, advance=advance)
            row.is_reference = v.path is not None and v.path.resolve() == ref_path.resolve()
            rows.append(row)
            # rewrite bench.json / bench.csv after every variant: an interrupted run keeps them
            write_outputs(out, report(rows), rows, plots=False)
        stage("done")

    files = write_outputs(out, report(rows), rows, plots=not args.no_plots)
    stdout = Console() if Console().is_terminal else Console(width=200)
    stdout.print(table(rows, ref_label))
    stdout.print(category_table(rows))
    if not args.no_plots:
        print(terminal_plots(rows))
    if bandwidth is None:
        stdout.print("decode ceiling: chip bandwidth unknown (pass --bandwidth GB/s)")
    stdout.print("wrote " + ", ".join(str(f) for f in files))
    return 0


def _report(args, *, source, ref_label, ref_path, ref_dir, reference, brand, chip, bandwidth,
            recipes, lengths, texts, chunks, rows) -> dict:
    """The bench.json document."""
    import mlx.core as mx

    return {
        "schema": SCHEMA,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "model": args.model,
        "source": str(source),
        "reference": {"label": ref_label, "path": str(ref_path), "logprobs": str(ref_dir),
                      "logprobs_dtype": reference.meta["dtype"]},
        "machine": {"platform": platform.platform(), "chip": brand,
                    "bandwidth_gbs": bandwidth,
                    "bandwidth_source": "--bandwidth" if args.bandwidth else (chip.source if chip else None),
                    "mlx_device": str(mx.default_device()), "mlx_version": mx.__version__},
        "settings": {"levels": args.levels, "recipes": recipes, "group_size": args.group_size,
                     "mode": args.mode, "prompt_lengths": lengths,
                     "decode_tokens": args.decode_tokens, "repeats": args.repeats,
                     "chunk_len": args.chunk_len,
                     "tasks": args.tasks},
        "eval_set": {"texts": [{"name": t.name, "category": t.category, "tokens": len(t.ids)}
                               for t in texts],
                     "chunks": len(chunks), "scored_tokens": reference.meta["tokens"],
                     "digest": reference.meta["digest"]},
        "variants": [asdict(r) for r in rows],
    }
