"""`magimac chat --tools`: the tools a headless turn may use, and asking on the terminal.

``--tools python,search_documents`` (built-in and MCP tool names, comma-separated or repeated)
offers those tools; before a call runs, the person is asked on the terminal (once / for this
conversation / deny).  Without a terminal nobody can be asked: calls of tools not named in
``--allow-tools`` are denied (the model gets the denial) and a line on stderr says so.
MCP servers of mcp.json start only when a name is not built in.
"""

from __future__ import annotations

import argparse
import sys

from magimac.core.events import ToolCall
from magimac.session.tool_loop import ALLOW_CONVERSATION, ALLOW_ONCE, DENY, MAX_ROUNDS, ToolUse
from magimac.tools.toolbox import BUILTIN_NAMES, Toolbox, check_names


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The tool options of `magimac chat`."""
    p.add_argument("--tools", metavar="NAMES", action="append", default=[],
                   help="offer these tools to the model: python, search_documents, MCP tools (see `magimac tools`)")
    p.add_argument("--allow-tools", metavar="NAMES", action="append", default=[],
                   help="run these tools without asking (needed without a terminal)")
    p.add_argument("--max-tool-rounds", type=int, default=MAX_ROUNDS, metavar="N",
                   help=f"most rounds of tool calls in one turn (default {MAX_ROUNDS})")


def _names(values: list[str]) -> list[str]:
    return [n.strip() for v in values for n in v.split(",") if n.strip()]


def tool_use(args: argparse.Namespace, stdin=None, stderr=None) -> ToolUse | None:
    """The `ToolUse` of the options, or None without ``--tools``.

    Raises:
        magimac.tools.toolbox.ToolError: an unknown tool name (listing the known ones).
        magimac.core.errors.MagimacError: ``--max-tool-rounds`` below 1, a bad mcp.json.
    """
    names = _names(args.tools)
    if not names:
        return None
    if args.max_tool_rounds < 1:
        from magimac.core.errors import MagimacError

        raise MagimacError(f"--max-tool-rounds must be a positive number, got {args.max_tool_rounds}")
    stdin, stderr = stdin or sys.stdin, stderr or sys.stderr
    mcp = None
    if any(n not in BUILTIN_NAMES for n in names):
        from magimac.tools.mcp_client import open_mcp_tools

        mcp = open_mcp_tools()
        for notice in mcp.notices if mcp else []:
            print(f"magimac: {notice}", file=stderr)
    on = check_names(names, [t.name for t in mcp.specs()] if mcp else [])
    allowed = set(check_names(_names(args.allow_tools), [t.name for t in mcp.specs()] if mcp else []))
    ask = terminal_ask(stdin, stderr) if stdin.isatty() else refuse(stderr)
    return ToolUse(Toolbox(on, mcp=mcp), ask, allowed, args.max_tool_rounds)


def terminal_ask(stdin, stderr):
    """Ask on the terminal: shows the call, reads o / a / d (Enter: deny)."""

    def ask(call: ToolCall, shown: str) -> str:
        print(f"\nmagimac: the model wants to run {call.name}:", file=stderr)
        for line in shown.splitlines() or [""]:
            print(f"    {line}", file=stderr)
        stderr.write("Run it? [o]nce, [a]lways in this conversation, [d]eny (default): ")
        stderr.flush()
        reply = stdin.readline().strip().lower()
        return {"o": ALLOW_ONCE, "a": ALLOW_CONVERSATION}.get(reply[:1], DENY)

    return ask


def refuse(stderr):
    """No terminal: deny, and say how to allow."""

    def ask(call: ToolCall, shown: str) -> str:
        print(f"magimac: {call.name} call denied: no terminal to ask on (allow it with --allow-tools {call.name})",
              file=stderr)
        return DENY

    return ask
