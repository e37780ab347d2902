"""Tools in the OpenAI API <-> magimac's: a request's ``tools`` / ``tool_choice`` / ``parallel_tool_calls``,
checked here; the calls' shape, both ways, is `magimac.text.openai_wire`'s.

The server runs no tool: it offers the client's tools to the model (encoded by mistral-common
through `magimac.text.tools.ToolSpec`) and returns the model's calls in OpenAI's shape
(``{"id", "type": "function", "function": {"name", "arguments": JSON string}}``, finish
reason ``"tool_calls"``).  ``tool_choice``: ``"auto"`` and ``"none"`` (the tools stay in the
prompt and ``[TOOL_CALLS]`` is never sampled: `GenerationSettings.tool_choice`) are served;
``"required"`` and a named function are refused (mistral-common enforces them only with a
grammar, which magimac does not run), as are the deprecated ``functions`` / ``function_call``
and ``parallel_tool_calls: false`` (Magistral may call several tools in one message).
"""

from __future__ import annotations

import re
from typing import Any

from magimac.server.errors import RequestError
from magimac.text.tools import ToolSpec

NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
"""A function name as mistral-common's `Function` accepts it (and OpenAI's limit of 64)."""


def request_tools(body: dict) -> tuple[tuple[ToolSpec, ...], str]:
    """(the offered tools in order, the tool choice ``"auto"`` or ``"none"``).

    Raises:
        RequestError: a malformed tool, or a choice magimac serve cannot honour.
    """
    for key, instead in (("functions", "tools"), ("function_call", "tool_choice")):
        if body.get(key) is not None:
            raise RequestError(f"{key}: deprecated by OpenAI and not supported; send {instead} instead", key)
    if body.get("parallel_tool_calls") is False:
        raise RequestError("parallel_tool_calls: false is not supported (the model may call several "
                           "tools at once); leave it out", "parallel_tool_calls")
    raw = body.get("tools")
    if raw is not None and not isinstance(raw, list):
        raise RequestError("tools: must be an array of {\"type\": \"function\", \"function\": {...}}", "tools")
    specs = tuple(_spec(t, f"tools[{i}]") for i, t in enumerate(raw or []))
    if len({s.name for s in specs}) < len(specs):
        raise RequestError("tools: two tools have the same name", "tools")
    return specs, _choice(body.get("tool_choice"), specs)


def _spec(t: Any, where: str) -> ToolSpec:
    if not isinstance(t, dict) or t.get("type") != "function" or not isinstance(t.get("function"), dict):
        raise RequestError(f"{where}: must be {{\"type\": \"function\", \"function\": {{\"name\", ...}}}}", where)
    f = t["function"]
    name = f.get("name")
    if not isinstance(name, str) or not NAME.match(name):
        raise RequestError(f"{where}.function.name: 1 to 64 of a-z, A-Z, 0-9, _ and -, got {name!r}",
                           f"{where}.function.name")
    description = f.get("description", "")
    if not isinstance(description, str):
        raise RequestError(f"{where}.function.description: must be a string", f"{where}.function.description")
    parameters = f.get("parameters", {"type": "object", "properties": {}})
    if not isinstance(parameters, dict):
        raise RequestError(f"{where}.function.parameters: must be a JSON schema object",
                           f"{where}.function.parameters")
    return ToolSpec(name, description, parameters, source="client")


def _choice(choice: Any, specs: tuple[ToolSpec, ...]) -> str:
    if choice is None or choice == "auto":
        return "auto"
    if choice == "none":
        return "none"
    if choice == "required" or choice == "any":
        raise RequestError("tool_choice: \"required\" is not supported by magimac serve (it cannot force a "
                           "call); send \"auto\"", "tool_choice")
    if isinstance(choice, dict):
        raise RequestError("tool_choice: a named function is not supported by magimac serve (it cannot "
                           "force a call); send \"auto\" and offer only that tool", "tool_choice")
    raise RequestError(f"tool_choice: must be \"auto\" or \"none\", got {choice!r}", "tool_choice")
