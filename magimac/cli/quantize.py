"""`magimac quantize SOURCE --out DIR` (also `python -m quantize`): arguments and entry point.

All the work is in `magimac.quantize.convert.convert`; this module parses options, prints the recipe
list, and turns library errors into one-line `QuantizeError`s.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from magimac.core import staging
from magimac.core.units import SizeError, parse_size
from magimac.quantize.layout import BITS, GROUP_SIZES, MODES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `magimac quantize`."""
    parser.add_argument("source", nargs="?", metavar="SOURCE",
                        help="Hugging Face checkpoint directory, registry name (magistral-small-2509) or hub id")
    parser.add_argument("--out", type=Path, help="output directory (default: magimac's models dir, NAME-LEVEL)")
    parser.add_argument("--bits", type=int, default=4,
                        help=f"affine bits per weight: {', '.join(map(str, BITS))} (default 4)")
    parser.add_argument("--group-size", type=int, default=64,
                        help=f"weights per scale/bias: {', '.join(map(str, GROUP_SIZES))} (default 64)")
    parser.add_argument("--mode", choices=MODES, default="affine",
                        help="affine, or an MLX float format with fixed bits/group size "
                             "(mxfp4: 4/32, nvfp4: 4/16, mxfp8: 8/32)")
    parser.add_argument("--recipe", help="named mixed-precision recipe (default uniform; see --list-recipes)")
    parser.add_argument("--list-recipes", action="store_true", help="list recipes and exit")
    parser.add_argument("--quantize-vision", action="store_true",
                        help="quantize the vision tower and projector too (default: keep them bf16)")
    parser.add_argument("--target-ram", metavar="SIZE",
                        help="RAM of the Mac that will run the model, e.g. 32GB as Apple sells it "
                             "(= 32 GiB, as `magimac plan --ram`; default: this machine's)")
    parser.add_argument("--context", type=int, default=32768,
                        help="tokens of KV cache for the fit check, at least 1 (default 32768)")
    parser.add_argument("--revision", help="hub revision (branch, tag or commit) for hub sources")
    parser.add_argument("--force", action="store_true",
                        help="replace an existing output that magimac wrote (never another folder), "
                             "and convert even if it will not fit --target-ram")
    parser.add_argument("--method", choices=("rtn", "gptq", "awq"), default="rtn",
                        help="rtn: round to nearest (default, streamed); gptq / awq: calibrated on sample "
                             "chats one decoder layer at a time (slower, lower error at 3-4 bits)")
    parser.add_argument("--calibration", type=Path, metavar="FILE",
                        help="calibration text for gptq/awq (UTF-8; '@@ user' / '@@ think' / '@@ answer' "
                             "lines make chats, '@@ text' a document; default: the shipped set)")
    parser.add_argument("--calibration-samples", type=int, metavar="N",
                        help="calibration samples, at least 1 (default 128, or as many as the text gives)")
    parser.add_argument("--calibration-tokens", type=int, metavar="N",
                        help="tokens per sample, at least 1 (default 512)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def list_recipes() -> str:
    """The ``--list-recipes`` text."""
    from magimac.quantize.recipes import DEFAULT_RECIPE, RECIPES

    width = max(map(len, RECIPES))
    return "\n".join(f"{r.name:<{width}}  {r.description}{'  [default]' if r.name == DEFAULT_RECIPE else ''}"
                     for r in RECIPES.values())


def default_out(source: str, args: argparse.Namespace) -> Path:
    """``<models dir>/<registry name or directory name>-<level>[-method]``, e.g.
    ``magistral-small-2509-4bit`` or ``magistral-small-2509-3bit-gptq``."""
    from magimac.core import paths
    from magimac.models.registry import find_entry, load_registry

    entry = None if Path(source).exists() else find_entry(load_registry(), source)
    name = entry.name if entry else Path(source.rstrip("/")).name
    level = args.recipe or (args.mode if args.mode != "affine" else f"{args.bits}bit")
    if args.mode == "affine" and args.group_size != 64 and not args.recipe:
        level += f"-g{args.group_size}"
    if getattr(args, "method", "rtn") != "rtn":
        level += f"-{args.method}"
    return paths.models_dir() / f"{name}-{level}"


def run(args: argparse.Namespace) -> int:
    """Run `magimac quantize`; returns the exit code (errors raise `QuantizeError`)."""
    from magimac.quantize.source import QuantizeError

    if args.list_recipes:
        print(list_recipes())
        return 0
    if not args.source:
        raise QuantizeError("SOURCE is required: a checkpoint directory, registry name or hub id")
    from magimac.quantize.methods import check_numbers

    check_numbers(bits=args.bits, group_size=args.group_size, mode=args.mode, context=args.context,
                  samples=args.calibration_samples, tokens=args.calibration_tokens)
    try:
        target_ram = parse_size(args.target_ram) if args.target_ram else None
    except SizeError as e:
        raise QuantizeError(f"--target-ram: {e}") from None
    if args.mode != "affine" and (args.bits != 4 or args.group_size != 64):
        raise QuantizeError(f"--mode {args.mode} fixes bits and group size; drop --bits/--group-size")
    from magimac.quantize.recipes import get_recipe

    try:
        recipe = get_recipe(args.recipe)
    except ValueError as e:
        raise QuantizeError(str(e)) from None
    if not recipe.uses_bits and (args.bits != 4 or args.group_size != 64 or args.mode != "affine"):
        raise QuantizeError(f"--recipe {recipe.name} fixes its own bits (affine, group size 64); "
                            "drop --bits/--group-size/--mode")
    from magimac.quantize.convert import convert

    out = args.out or default_out(args.source, args)
    from magimac.models.registry import quantize_source

    gpu_limit = None
    if target_ram is None:  # size against this machine as `magimac plan` sees it
        from magimac.models import hardware

        hw = hardware.detect(out.parent)
        target_ram, gpu_limit = hw.total_memory, hw.gpu_limit
    staging.remember_place(out.parent)  # where `magimac doctor` looks for partials of killed runs
    convert(quantize_source(args.source), out, bits=args.bits, group_size=args.group_size, mode=args.mode, recipe=args.recipe,
            quantize_vision=args.quantize_vision, target_ram_bytes=target_ram, gpu_limit_bytes=gpu_limit,
            context=args.context, force=args.force, progress=not args.quiet, revision=args.revision,
            method=args.method, calibration=args.calibration, calibration_samples=args.calibration_samples,
            calibration_tokens=args.calibration_tokens)
    print(out)
    return 0
