"""The conversation data model shared by the engine, `magimac chat`, the TUI and history.

Plain dataclasses; JSON round-trips through `to_dict` / `from_dict` in the format that
`magimac chat --conversation FILE` reads: a list of ``{"role", "content", "reasoning"?,
"images"?, "documents"?, "tool_calls"?}`` objects, and ``{"role": "tool", "tool_call_id",
"name"?, "content"}`` for a tool's result.  A tool call is ``{"id", "name", "arguments"}``
with ``arguments`` a JSON object written as a string (OpenAI's and mistral-common's shape).
"""

from __future__ import annotations

from magimac.core.errors import MagimacError

from dataclasses import dataclass, field
from typing import Any

ROLES = ("system", "user", "assistant", "tool")


class ConversationError(MagimacError, ValueError):
    """A conversation (e.g. a ``--conversation`` file) is malformed; one-line message."""


@dataclass
class Message:
    """One message.

    Attributes:
        role: ``"system"``, ``"user"``, ``"assistant"`` or ``"tool"`` (a tool's result).
        content: the text (for an assistant: the answer, without reasoning).
        reasoning: an assistant's reasoning (the text between the reasoning markers), or None.
        images: paths of image files attached to a user message.
        documents: paths of documents attached to a user message.
        tool_calls: an assistant's calls, ``{"id", "name", "arguments"}`` dicts (``arguments``
            a JSON string; ``id`` 9 characters [a-zA-Z0-9], as mistral-common requires).
        tool_call_id / name: a tool message's call id and tool name.
        seconds: a tool message's run time, seconds (not sent to the model).
    """

    role: str
    content: str
    reasoning: str | None = None
    images: list[str] = field(default_factory=list)
    documents: list[str] = field(default_factory=list)
    tool_calls: list[dict] = field(default_factory=list)
    tool_call_id: str | None = None
    name: str | None = None
    seconds: float | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.reasoning is not None:
            d["reasoning"] = self.reasoning
        if self.images:
            d["images"] = list(self.images)
        if self.documents:
            d["documents"] = list(self.documents)
        if self.tool_calls:
            d["tool_calls"] = [dict(c) for c in self.tool_calls]
        for key in ("tool_call_id", "name", "seconds"):
            if getattr(self, key) is not None:
                d[key] = getattr(self, key)
        return d

    @classmethod
    def from_dict(cls, d: Any, where: str = "message") -> "Message":
        """Build a Message from a JSON object; raises ConversationError naming ``where``."""
        if not isinstance(d, dict):
            raise ConversationError(f"{where}: expected an object with 'role' and 'content'")
        role = d.get("role")
        if role not in ROLES:
            raise ConversationError(f"{where}: 'role' must be one of {', '.join(ROLES)}, got {role!r}")
        content = d.get("content", "")
        if not isinstance(content, str):
            raise ConversationError(f"{where}: 'content' must be a string")
        reasoning = d.get("reasoning")
        if reasoning is not None and (role != "assistant" or not isinstance(reasoning, str)):
            raise ConversationError(f"{where}: 'reasoning' is a string, on assistant messages only")
        lists = {}
        for key in ("images", "documents"):
            v = d.get(key, [])
            if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
                raise ConversationError(f"{where}: '{key}' must be a list of file paths")
            lists[key] = v
        return cls(role=role, content=content, reasoning=reasoning, **lists, **_tool_fields(d, role, where))


def _tool_fields(d: dict, role: str, where: str) -> dict[str, Any]:
    """The tool fields of message object ``d``: ``tool_calls`` (assistant), ``tool_call_id``,
    ``name`` and ``seconds`` (tool); raises ConversationError naming ``where``."""
    calls = d.get("tool_calls", [])
    if calls and role != "assistant":
        raise ConversationError(f"{where}: 'tool_calls' go on assistant messages only")
    if not isinstance(calls, list) or not all(
            isinstance(c, dict) and all(isinstance(c.get(k), str) for k in ("id", "name", "arguments"))
            for c in calls):
        raise ConversationError(f"{where}: 'tool_calls' must be a list of {{id, name, arguments}} strings")
    out: dict[str, Any] = {"tool_calls": [{k: c[k] for k in ("id", "name", "arguments")} for c in calls]}
    if role == "tool":
        if not isinstance(d.get("tool_call_id"), str):
            raise ConversationError(f"{where}: a tool message needs its 'tool_call_id' (a string)")
        out["tool_call_id"] = d["tool_call_id"]
        out["name"] = d.get("name") if isinstance(d.get("name"), str) else None
        sec = d.get("seconds")
        out["seconds"] = float(sec) if isinstance(sec, (int, float)) and not isinstance(sec, bool) else None
    return out


def conversation_from_json(data: Any, where: str = "conversation") -> list[Message]:
    """Parse a JSON list of messages; raises ConversationError with the index at fault."""
    if not isinstance(data, list):
        raise ConversationError(f"{where}: expected a JSON list of messages")
    msgs = [Message.from_dict(m, f"{where}: message {i}") for i, m in enumerate(data)]
    for i, m in enumerate(msgs):
        if m.role == "system" and i != 0:
            raise ConversationError(f"{where}: message {i}: a system message may only come first")
    return msgs
