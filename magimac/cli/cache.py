"""`magimac cache`: what the prompt cache on disk holds, its budget, and clearing it.

The prompt cache (`magimac.engine.disk_cache`) keeps the KV of prompts in blocks on disk so a
reopened conversation, the system prompt or a document attached again is not prefilled again.
This command reads and edits its index only (`magimac.engine.disk_index`, no MLX, no model).

    magimac cache                 # where, what it holds (tokens, blocks), of what budget
    magimac cache --clear         # delete every block
    magimac cache --budget 20GB   # keep at most 20 x 10^9 bytes (least recently used go first)
    magimac cache --json
"""

from __future__ import annotations

import argparse
import json
import sqlite3
from dataclasses import asdict

from magimac.core.errors import MagimacError
from magimac.core.units import SizeError, counted, format_bytes, parse_size
from magimac.engine.disk_index import DiskIndex, Usage, clear_cache, default_directory


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of `magimac cache` (see the module doc)."""
    p.add_argument("--clear", action="store_true", help="delete every cached block")
    p.add_argument("--budget", metavar="SIZE",
                   help="most disk the cache may use, e.g. 20GB (GB = 10^9 bytes, as magimac and Finder "
                        "show sizes; a bare 20 is 20GB); 0 turns saving off")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")


def _budget(text: str) -> int:
    """Bytes of a ``--budget`` (decimal: 20GB = 20 x 10^9 bytes, as `magimac serve --cache-gb`)."""
    try:
        return parse_size(text, decimal=True, zero=True)
    except SizeError as e:
        raise MagimacError(f"--budget: {e}") from None


def run(args: argparse.Namespace) -> int:
    """Show (and with ``--clear`` / ``--budget`` change) the prompt cache; exit status 0.
    ``--clear`` also starts a damaged index anew.

    Raises:
        MagimacError: a bad ``--budget``, or the cache directory or its index cannot be used.
    """
    budget = _budget(args.budget) if args.budget is not None else None
    try:
        index, freed = clear_cache() if args.clear else (DiskIndex(), 0)
        if budget is not None:
            before = index.usage().bytes
            index.set_budget(budget)
            freed += before - index.usage().bytes
        usage = index.usage()
    except (OSError, sqlite3.Error) as e:
        todo = "delete the folder" if args.clear else "`magimac cache --clear` deletes it and starts anew"
        raise MagimacError(f"the prompt cache in {default_directory()} cannot be used ({e}); {todo}") from None
    if args.json:
        print(json.dumps({"directory": str(index.directory), **asdict(usage), "freed_bytes": freed}))
        return 0
    if freed:
        print(f"freed {format_bytes(freed)}")
    print(f"prompt cache: {index.directory}")
    print("\n".join("  " + line for line in describe(usage)))
    return 0


def describe(usage: Usage) -> list[str]:
    """What the cache holds, in the README's words: tokens of KV in whole blocks of N tokens and
    partial blocks (a prompt's last tokens), then its size and budget."""
    size = usage.block_tokens
    whole = usage.blocks - usage.partial_blocks
    return [f"{counted(usage.tokens, 'token')} of KV of {counted(usage.models, 'model')}: "
            f"{counted(whole, 'whole block')} of {size} tokens and {counted(usage.partial_blocks, 'partial block')} "
            f"(a prompt's last tokens, fewer than {size})",
            f"{format_bytes(usage.bytes)} on disk, budget {format_bytes(usage.budget_bytes)}"]
