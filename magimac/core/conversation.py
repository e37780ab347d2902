"""The conversation data model shared by the engine, `magimac chat`, the TUI and history.

Plain dataclasses; JSON round-trips through `to_dict` / `from_dict` in the format that
`magimac chat --conversation FILE` reads: a list of ``{"role", "content", "reasoning"?,
"images"?, "documents"?}`` objects.
"""

from __future__ import annotations

from magimac.core.errors import MagimacError

from dataclasses import dataclass, field
from typing import Any

ROLES = ("system", "user", "assistant")


class ConversationError(MagimacError, ValueError):
    """A conversation (e.g. a ``--conversation`` file) is malformed; one-line message."""


@dataclass
class Message:
    """One message.

    Attributes:
        role: ``"system"``, ``"user"`` or ``"assistant"``.
        content: the text (for an assistant: the answer, without reasoning).
        reasoning: an assistant's reasoning (the text between the reasoning markers), or None.
        images: paths of image files attached to a user message.
        documents: paths of documents attached to a user message.
    """

    role: str
    content: str
    reasoning: str | None = None
    images: list[str] = field(default_factory=list)
    documents: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.reasoning is not None:
            d["reasoning"] = self.reasoning
        if self.images:
            d["images"] = list(self.images)
        if self.documents:
            d["documents"] = list(self.documents)
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
        return cls(role=role, content=content, reasoning=reasoning, **lists)


def conversation_from_json(data: Any, where: str = "conversation") -> list[Message]:
    """Parse a JSON list of messages; raises ConversationError with the index at fault."""
    if not isinstance(data, list):
        raise ConversationError(f"{where}: expected a JSON list of messages")
    msgs = [Message.from_dict(m, f"{where}: message {i}") for i, m in enumerate(data)]
    for i, m in enumerate(msgs):
        if m.role == "system" and i != 0:
            raise ConversationError(f"{where}: message {i}: a system message may only come first")
    return msgs
