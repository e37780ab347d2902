"""`magimac pull MODEL [--quant 4bit]` and `magimac rm MODEL [--yes]`."""

from __future__ import annotations

import argparse
import sys

from magimac.core.errors import MagimacError
from magimac.core.files import read_stdin_line
from magimac.core.units import format_bytes
from magimac.models.registry import QUANT_LEVELS


def add_arguments_for(name: str, p: argparse.ArgumentParser) -> None:
    if name == "pull":
        p.add_argument("model", nargs="?", help="registry name, alias or hub id (default: the default model)")
        p.add_argument("--quant", default="4bit", choices=QUANT_LEVELS,
                       help="quantization level (default 4bit; `magimac plan` shows what fits)")
        p.add_argument("--force", action="store_true",
                       help="pull even if it does not fit this machine's memory; replace an installed copy")
        p.add_argument("--keep-original", action="store_true",
                       help="keep the original checkpoint in the Hugging Face cache after converting")
    else:
        p.add_argument("model", help="installed model name, hub repo id, registry name or directory")
        p.add_argument("-y", "--yes", action="store_true", help="remove without asking")


def run(args: argparse.Namespace) -> int:
    if args.command == "rm":
        return remove(args.model, yes=args.yes)
    from magimac.models.embedders import load_embedders, pull_embedder

    if args.model in (embedders := load_embedders()):
        pull_embedder(embedders[args.model], lambda s: print(s, file=sys.stderr))
        return 0
    from magimac.models.pull import pull

    pull(args.model, args.quant, force=args.force, keep_original=args.keep_original)
    return 0


def remove(name: str, *, yes: bool) -> int:
    """Remove one installed model after asking (stdin) unless ``yes``; 0 removed, 1 declined."""
    from magimac.models import store

    found = store.find_installed(name)
    if not found:
        raise store.ModelNotFound(f"{name}: no installed model of that name (see `magimac models`)")
    if len(found) > 1:
        raise MagimacError(f"{name} matches {len(found)} installed models: name one of "
                        f"{', '.join(m.name for m in found)}")
    m = found[0]
    store.check_removable(m)  # refuse before asking
    what = f"{m.name} ({m.quantization}, {format_bytes(m.size_bytes)}) at {m.path}"
    if not yes:
        print(f"remove {what}? [y/N] ", end="", file=sys.stderr, flush=True)
        answer = read_stdin_line(sys.stdin).strip().lower()
        if answer not in ("y", "yes"):
            print("magimac rm: nothing removed", file=sys.stderr)
            return 1
    store.remove(m)
    print(f"removed {what}", file=sys.stderr)
    return 0
