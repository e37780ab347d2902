"""`magimac` command line: the TUI by default, and subcommands.

Each subcommand lives in its own module exposing ``add_arguments(parser)`` and
``run(args) -> int``; modules are imported only when their command runs, so
`magimac --help` is fast and a broken optional piece does not break the rest.

Errors meant for people (bad input, missing model) are raised as `UserError` (or any of the
project's one-line error classes) and printed as ``magimac: <message>`` with exit code 1.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from magimac import __version__

# command -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "chat": ("magimac.chat_cli", "chat headlessly: answer to stdout, reasoning to stderr"),
    "quantize": ("quantize.cli", "convert a Hugging Face checkpoint to MLX weights"),
    "models": ("magimac.models_cli", "list registry models and what is installed"),
    "plan": ("magimac.plan_cli", "what fits this Mac: sizes per quantization level and KV cache"),
    "pull": ("magimac.pull_cli", "download a model (ready-made MLX, or original + quantize)"),
    "rm": ("magimac.pull_cli", "remove an installed model"),
    "doctor": ("magimac.doctor_cli", "hardware, versions and what is wrong"),
    "bench": ("magimac.bench_cli", "compare quantization levels: speed, memory, quality"),
}


class UserError(Exception):
    """An error caused by the person's input or environment; printed as one line, exit 1."""


def _user_error_types() -> tuple[type[BaseException], ...]:
    from magimac.conversation import ConversationError
    from magimac.registry import RegistryError
    from magimac.store import ModelNotFound

    return (UserError, RegistryError, ModelNotFound, ConversationError)


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser; subcommand parsers are filled in by their modules."""
    p = argparse.ArgumentParser(
        prog="magimac",
        description="Run Mistral's Magistral reasoning models on your Mac. "
        "With no command, opens the chat app.",
    )
    p.add_argument("--version", action="version", version=f"magimac {__version__}")
    p.add_argument("--model", help="registry name, hub id or converted model directory for the app")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_module, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return p


def _load_command(name: str):
    module_name = COMMANDS[name][0]
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name == module_name:
            raise UserError(f"'magimac {name}' is not available in this build") from None
        raise


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `magimac` console script; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    errors = _user_error_types()
    from magimac.store import enforce_offline  # noqa: PLC0415

    enforce_offline(argv[0] if argv and argv[0] in COMMANDS else None)  # only pull/quantize go online
    try:
        if len(argv) > 2 and argv[0] == "--model" and argv[2] in COMMANDS:
            # `magimac --model X chat ...`: the app's --model given before a command
            argv = [argv[2], "--model", argv[1], *argv[3:]]
        if argv and argv[0] in COMMANDS:
            name = argv[0]
            module = _load_command(name)
            sp = argparse.ArgumentParser(prog=f"magimac {name}", description=COMMANDS[name][1])
            if hasattr(module, "add_arguments_for"):
                module.add_arguments_for(name, sp)
            else:
                module.add_arguments(sp)
            args = sp.parse_args(argv[1:])
            args.command = name
            return int(module.run(args) or 0)
        args = build_parser().parse_args(argv)
        from magimac.tui import app as tui_app  # noqa: PLC0415  (Textual only when needed)

        return int(tui_app.run(args) or 0)
    except errors as e:
        print(f"magimac: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("magimac: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (`magimac chat --json ... | head -1`): stop quietly, as
        # Python's docs advise for pipes, so the interpreter's final flush does not fail too
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
