"""Tools as the model sees them: specs, call ids, and our messages' tool parts as mistral-common's.

The built-in tools' names, descriptions and JSON-schema parameters are fixed by the project
(the demo model is trained on exactly these tokens; TOOLSPEC in the project notes): ``python``
then ``search_documents`` when both are on.  Encoding is mistral-common's: tools become
`Tool(function=Function(...))` (Tekken v13 puts them as ``[AVAILABLE_TOOLS]`` JSON before the
first ``[INST]``), an assistant's calls become `ToolCall`s on its `AssistantMessage` (encoded
``[TOOL_CALLS]name[ARGS]{json}``), a result a `ToolMessage` (``[TOOL_RESULTS]...[/TOOL_RESULTS]``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from mistral_common.protocol.instruct.messages import ToolMessage
from mistral_common.protocol.instruct.tool_calls import Function, FunctionCall, Tool, ToolCall

from magimac.core.conversation import Message


@dataclass(frozen=True)
class ToolSpec:
    """One tool offered to the model.

    Attributes:
        name: the function name the model calls (``[a-zA-Z0-9_-]``, as mistral-common checks).
        description: one sentence for the model.
        parameters: the arguments' JSON schema (an ``"object"`` schema).
        source: ``"builtin"`` or ``"mcp:SERVER"`` (for listings; not sent to the model).
    """

    name: str
    description: str
    parameters: dict = field(default_factory=lambda: {"type": "object", "properties": {}})
    source: str = "builtin"

    def to_mistral(self) -> Tool:
        """The spec as mistral-common's `Tool`."""
        return Tool(function=Function(name=self.name, description=self.description, parameters=self.parameters))


PYTHON = ToolSpec(
    "python",
    "Run Python 3 code in a sandbox (no network, no files of the person's) and return what it prints.",
    {"type": "object",
     "properties": {"code": {"type": "string", "description": "Python code; print() what you need."}},
     "required": ["code"]},
)
SEARCH_DOCUMENTS = ToolSpec(
    "search_documents",
    "Search the documents attached to this conversation and return the matching passages, with file and page.",
    {"type": "object",
     "properties": {"query": {"type": "string", "description": "What to look for."}},
     "required": ["query"]},
)
BUILTIN_TOOLS: tuple[ToolSpec, ...] = (PYTHON, SEARCH_DOCUMENTS)
"""The built-in tools, in the order the model sees them."""

DENIED = "the person did not allow this call"
"""The error a tool result carries when the person denied the call."""
NOT_OFFERED = "not run: the conversation did not offer this tool"
"""The error of a call, and of its result, when the model called a tool it was not offered."""


def call_id(n: int) -> str:
    """The id of the conversation's ``n``-th tool call (from 1): ``"c"`` + 8 digits, e.g.
    ``c00000001`` (9 characters [a-zA-Z0-9], as mistral-common requires)."""
    return f"c{n:08d}"


def calls_in(messages: list[Message]) -> int:
    """How many tool calls ``messages`` hold (the next call's number is this + 1)."""
    return sum(len(m.tool_calls) for m in messages)


def dump_arguments(arguments: dict) -> str:
    """Arguments as the call's JSON string: default separators, ``ensure_ascii=False`` (the
    form mistral-common writes after ``[ARGS]``)."""
    return json.dumps(arguments, ensure_ascii=False)


def mistral_tool_calls(m: Message) -> list[ToolCall]:
    """An assistant message's calls as mistral-common `ToolCall`s."""
    return [ToolCall(id=c["id"], function=FunctionCall(name=c["name"], arguments=c["arguments"]))
            for c in m.tool_calls]


def mistral_tool_message(m: Message) -> ToolMessage:
    """A ``tool`` message as mistral-common's `ToolMessage`."""
    return ToolMessage(content=m.content, tool_call_id=m.tool_call_id, name=m.name)


def tool_message(call_id_: str, name: str, content: str, seconds: float | None = None) -> Message:
    """Our ``tool`` message for one result (``content``: the output, or ``"error: ..."``)."""
    return Message("tool", content, tool_call_id=call_id_, name=name, seconds=seconds)


def result_title(name: str, content: str, seconds: float | None) -> str:
    """A result's one-line title (the app's folded block, the Markdown export): ``Ran python ·
    0.4 s``, ``python failed · 0.1 s``, ``python not allowed`` or ``python not run (not offered)``;
    ``content`` as the model got it."""
    if content == f"error: {DENIED}":
        return f"{name} not allowed"
    if content == f"error: {NOT_OFFERED}":
        return f"{name} not run (not offered)"
    took = f" · {seconds:.1f} s" if isinstance(seconds, (int, float)) else ""
    return f"{name} failed{took}" if content.startswith("error: ") else f"Ran {name}{took}"
