"""`magimac bench SOURCE --levels 3,4,6,8`: quantization levels side by side.

Parses the options, runs `magimac.bench.run` with progress on stderr, and prints the table,
the category table, the terminal plots and what the bench caches hold (stdout). Definitions
and the files written: docs/bench.md. `magimac bench --clear-cache` removes the caches.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from magimac.core.errors import MagimacError
from magimac.core.units import format_bytes
from magimac.bench.settings import (DEFAULT_DECODE_TOKENS, DEFAULT_LEVELS, DEFAULT_PROMPT_LENGTHS,
                                    Settings, parse_lengths, parse_methods, parse_recipes)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Arguments of `magimac bench`."""
    p.add_argument("model", metavar="SOURCE", nargs="?", help="the unquantized source: a Hugging Face checkpoint directory "
                   "or a registry name whose original checkpoint is in the Hugging Face cache")
    p.add_argument("--levels", metavar="LIST", default=DEFAULT_LEVELS,
                   help=f"comma-separated bits per weight, and 'bf16' for the source "
                   f"(default {DEFAULT_LEVELS})")
    p.add_argument("--recipes", metavar="LIST", default=None,
                   help="comma-separated quantize recipes (default: quantize's default)")
    p.add_argument("--methods", metavar="LIST", default=None,
                   help="comma-separated quantize methods per level: rtn, gptq, awq (default rtn)")
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
    p.add_argument("--clear-cache", action="store_true",
                   help="remove the bench caches (converted variants and reference log-probs, "
                   "<data dir>/bench/variants and bench/reference) and exit; results stay")


def settings_from(args) -> Settings:
    """The `Settings` of parsed arguments; raises MagimacError on a bad list."""
    return Settings(
        model=args.model, levels=args.levels, recipes=parse_recipes(args.recipes),
        group_size=args.group_size, mode=args.mode, reference=args.reference, out=args.out,
        tasks=args.tasks, task_max_tokens=args.task_max_tokens,
        prompt_lengths=parse_lengths(args.prompt_lengths), decode_tokens=args.decode_tokens,
        repeats=args.repeats, chunk_len=args.chunk_len, eval_dir=args.eval_dir,
        bandwidth=args.bandwidth, force=args.force, plots=not args.no_plots,
        methods=parse_methods(args.methods))


def _console():
    from rich.console import Console

    return Console() if Console().is_terminal else Console(width=200)


def clear_cache() -> int:
    """`magimac bench --clear-cache`: remove both caches and say what they held."""
    from magimac.bench.reference import bench_root, clear_caches

    removed = clear_caches()
    for e in removed:
        print(f"removed {e.name}: {e.path} ({format_bytes(e.size_bytes)})")
    if not removed:
        print(f"nothing to remove: no bench caches under {bench_root()}")
    return 0


def run(args) -> int:
    """Run the bench; returns 0. Raises MagimacError on bad input (nothing half-written)."""
    from magimac.bench import plots, report
    from magimac.bench.progress import Steps
    from magimac.bench.run import run as run_bench

    if args.clear_cache:
        return clear_cache()
    if args.model is None:
        raise MagimacError("give the SOURCE checkpoint to bench, e.g. magimac bench ./my-checkpoint --levels 4,8")
    settings = settings_from(args)
    with Steps() as steps:
        outcome = run_bench(settings, steps)
    stdout = _console()
    stdout.print(report.table(outcome.rows, outcome.info.ref_label))
    stdout.print(report.category_table(outcome.rows))
    if settings.plots:
        print(plots.terminal_plots(outcome.rows))
    if outcome.info.bandwidth is None:
        stdout.print("decode ceiling: chip bandwidth unknown (pass --bandwidth GB/s)")
    stdout.print("wrote " + ", ".join(str(f) for f in outcome.files), highlight=False)
    for line in report.cache_lines(outcome.caches):
        stdout.print(line, highlight=False)
    return 0
