"""`magimac` command line: the TUI by default, and subcommands.

Each subcommand lives in its own module exposing ``add_arguments(parser)`` and
``run(args) -> int``; modules are imported only when their command runs, so
`magimac --help` is fast and a broken optional piece does not break the rest.

Errors meant for people derive from `magimac.core.errors.MagimacError`; `main` catches that
base once and prints ``magimac: <message>`` with exit code 1.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import sys

from magimac import __version__
from magimac.core.errors import MagimacError

# command -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "chat": ("magimac.cli.chat", "chat headlessly: answer to stdout, reasoning to stderr"),
    "quantize": ("magimac.cli.quantize", "convert a Hugging Face checkpoint to MLX weights"),
    "models": ("magimac.cli.models", "list registry models and what is installed"),
    "plan": ("magimac.cli.plan", "what fits this Mac: sizes per quantization level and KV cache"),
    "pull": ("magimac.cli.pull", "download a model (ready-made MLX, or original + quantize)"),
    "rm": ("magimac.cli.pull", "remove an installed model"),
    "doctor": ("magimac.cli.doctor", "hardware, versions and what is wrong"),
    "bench": ("magimac.cli.bench", "compare quantization levels: speed, memory, quality"),
    "key": ("magimac.cli.key", "save or remove the Mistral API key (OS keychain) for online models"),
    "tools": ("magimac.cli.tools_command", "list the tools a model may use: built-in and MCP servers' (mcp.json)"),
    "library": ("magimac.cli.library", "index folders of documents and search them from chat"),
    "serve": ("magimac.cli.serve", "serve the model to other apps through an OpenAI-compatible API"),
    "cache": ("magimac.cli.cache", "the prompt cache on disk: its size, budget, and clearing it"),
}


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser; subcommand parsers are filled in by their modules."""
    p = argparse.ArgumentParser(
        prog="magimac",
        description="Run Mistral's Magistral reasoning models on your Mac. "
        "With no command, opens the chat app.",
    )
    p.add_argument("--version", action="version", version=f"magimac {__version__}")
    p.add_argument("--model", help="registry name, hub id or converted model directory for the app")
    p.add_argument("--server", metavar="URL", help="use a running `magimac serve` as the app's model")
    p.add_argument("--no-server", action="store_true", help="load the model here even if a server has it")
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
            raise MagimacError(f"'magimac {name}' is not available in this build") from None
        raise


OUTPUT_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
"""Write errors of a full disk or quota, reported as one line instead of a traceback."""


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `magimac` console script; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    from magimac.models.store import enforce_offline  # noqa: PLC0415

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
    except MagimacError as e:
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
    except OSError as e:
        if e.errno not in OUTPUT_FULL:
            raise
        # stdout (or a file it was redirected to) cannot take more: one line, and no second
        # failure when the interpreter flushes stdout at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        print(f"magimac: cannot write the output: {e.strerror}; free some space or send it elsewhere",
              file=sys.stderr)
        return 1
    except SystemExit as e:
        # Rich's Console turns a BrokenPipeError into SystemExit(1) (`Console.on_broken_pipe`,
        # which has already pointed stdout at /dev/null): `magimac models | head -1` is the same
        if isinstance(e.__context__, BrokenPipeError):
            return 141
        raise
