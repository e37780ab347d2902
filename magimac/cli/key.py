"""`magimac key set mistral` / `magimac key rm mistral`: the Mistral API key in the OS keychain.

``set`` reads the key without echo on a terminal (`getpass`), else one line from stdin (so
``pbpaste | magimac key set mistral`` works); it is never printed. ``MISTRAL_API_KEY``, when
set, is used before the saved key (`magimac.online.keys.api_key`).
"""

from __future__ import annotations

import argparse
import getpass
import sys

from magimac.core.errors import MagimacError
from magimac.core.files import read_stdin_line


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=("set", "rm"), help="save the key, or remove the saved one")
    p.add_argument("provider", choices=("mistral",), help="whose key (Mistral's API)")


def _read_key() -> str:
    if sys.stdin.isatty():
        return getpass.getpass("Mistral API key (not shown): ")
    return read_stdin_line(sys.stdin).strip()


def run(args: argparse.Namespace) -> int:
    from magimac.online import keys

    if args.action == "set":
        try:
            key = _read_key()
        except EOFError:
            raise MagimacError("no key given: paste it when asked, or pipe it in") from None
        keys.save_key(key, args.provider)
        print(f"saved the {args.provider} key in the keychain (MISTRAL_API_KEY, when set, comes first)")
        return 0
    if keys.remove_key(args.provider):
        print(f"removed the saved {args.provider} key")
    else:
        print(f"no {args.provider} key was saved")
    return 0
