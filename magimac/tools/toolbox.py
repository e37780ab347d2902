"""The tools a conversation may use, and running one call: built-ins and MCP servers' tools.

Built-ins: ``python`` (`magimac.tools.sandbox`; the conversation's attached documents are
copied into its folder, under their names: the only files of the person's it sees) and ``search_documents``
(`magimac.text.doc_search`, over the conversation's attached documents).  MCP tools come from
the servers of ``mcp.json`` (`magimac.tools.mcp_client`), named as their server gives them.
A call to a tool that is not on, or whose arguments could not be read, is answered with an
error the model sees (``"error: ..."``); nothing here raises for the model's mistakes.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from dataclasses import dataclass, field

from magimac.core.errors import MagimacError
from magimac.core.events import ToolCall, ToolResult
from magimac.text.tools import BUILTIN_TOOLS, PYTHON, SEARCH_DOCUMENTS, ToolSpec
from magimac.tools.sandbox import SandboxLimits, isolation, run_python

BUILTIN_NAMES = tuple(t.name for t in BUILTIN_TOOLS)


class ToolError(MagimacError, ValueError):
    """A tool name that is neither built in nor offered by an MCP server; one line."""


@dataclass
class Toolbox:
    """The tools on for a conversation.

    Attributes:
        names: the tools on, in the order the model sees them (built-ins first).
        limits: the python sandbox's limits.
        mcp: an `magimac.tools.mcp_client.McpTools` when MCP tools are on, else None.
    """

    names: tuple[str, ...] = ()
    limits: SandboxLimits = field(default_factory=SandboxLimits)
    mcp: object | None = None

    def specs(self) -> tuple[ToolSpec, ...]:
        """The tools' specs for the prompt (built-ins in their fixed order, then MCP tools)."""
        mcp = {t.name: t for t in (self.mcp.specs() if self.mcp is not None else [])}
        builtin = [t for t in BUILTIN_TOOLS if t.name in self.names]
        return tuple(builtin + [mcp[n] for n in self.names if n in mcp])

    def describe(self, call: ToolCall) -> str:
        """What will run, for the permission prompt: the code for python, else the arguments,
        plus what the sandbox cannot enforce here."""
        if call.name == PYTHON.name:
            note = "" if isolation().enforced else f"\n(it will not run: {isolation().how})"
            return str(call.arguments.get("code", "")) + note
        return call.raw or "{}"

    def run(self, call: ToolCall, documents: list[str] = (), cancel: threading.Event | None = None) -> ToolResult:
        """Run ``call`` (already allowed) and return its result; never raises for the call's
        content (bad arguments, a failing tool: the result's ``error``)."""
        start = time.monotonic()
        if call.error:
            return ToolResult(call.id, call.name, error=call.error)
        if call.name not in self.names or not any(t.name == call.name for t in self.specs()):
            on = ", ".join(self.names) or "none"
            return ToolResult(call.id, call.name, error=f"there is no tool named {call.name!r} (tools on: {on})")
        try:
            if call.name == PYTHON.name:
                attached = tuple(d for d in dict.fromkeys(documents) if Path(d).is_file())
                r = run_python(_str_arg(call, "code"), self.limits, attached, cancel)
                return ToolResult(call.id, call.name, r.output, r.error, r.seconds)
            if call.name == SEARCH_DOCUMENTS.name:
                from magimac.text.doc_search import search_documents

                out = search_documents(_str_arg(call, "query"), list(documents))
            else:
                out = self.mcp.call(call.name, call.arguments)
        except (MagimacError, OSError) as e:
            return ToolResult(call.id, call.name, error=str(e), seconds=round(time.monotonic() - start, 2))
        return ToolResult(call.id, call.name, out, None, round(time.monotonic() - start, 2))


def _str_arg(call: ToolCall, key: str) -> str:
    """Argument ``key`` of ``call`` as a string.

    Raises:
        ToolError: it is missing or not a string (the model gets the message back).
    """
    v = call.arguments.get(key)
    if not isinstance(v, str):
        raise ToolError(f"{call.name} needs the argument {key!r} (a string)")
    return v


def check_names(names: list[str], mcp_names: list[str] = ()) -> tuple[str, ...]:
    """``--tools`` names checked against the built-ins and the MCP tools, in order, deduplicated.

    Raises:
        ToolError: an unknown name (the message lists what there is).
    """
    known = [*BUILTIN_NAMES, *mcp_names]
    for n in names:
        if n not in known:
            raise ToolError(f"--tools: no tool named {n!r}; there are: {', '.join(known)} (see `magimac tools`)")
    return tuple(dict.fromkeys(names))
