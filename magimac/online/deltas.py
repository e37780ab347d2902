"""The streamed ``delta.content`` of Mistral's API as reasoning and answer deltas.

The format (Mistral's platform docs): while the model thinks, ``delta.content`` is a list holding
a thinking chunk ``{"type": "thinking", "thinking": [{"type": "text", "text": ...}]}``; one
event may carry the end of the thinking and the first ``{"type": "text"}`` chunk; after that
``delta.content`` is a plain string. Chunks arrive as the SDK's models (``ThinkChunk``,
``TextChunk``, ...) or, in tests of this module, as plain dicts; both are read alike.
"""

from __future__ import annotations

from typing import Any

from magimac.core.errors import MagimacError
from magimac.core.events import AnswerDelta, ReasoningDelta

IGNORED_CHUNKS = ("reference", "tool_reference")
"""Chunk types that carry no text for the person (citations); skipped."""


class MalformedEvent(MagimacError):
    """An event whose content is none of the documented shapes; one line naming the part."""


def _get(obj: Any, key: str) -> Any:
    return obj.get(key) if isinstance(obj, dict) else getattr(obj, key, None)


def content_events(content: Any) -> list[ReasoningDelta | AnswerDelta]:
    """The deltas of one event's ``delta.content`` (None or "" gives none).

    Raises:
        MalformedEvent: a chunk of an unknown type, or text that is not a string.
    """
    if content is None or content == "":
        return []
    if isinstance(content, str):
        return [AnswerDelta(content)]
    if not isinstance(content, list):
        raise MalformedEvent(f"delta.content is a {type(content).__name__}, not text or a list of chunks")
    out: list[ReasoningDelta | AnswerDelta] = []
    for chunk in content:
        kind = _get(chunk, "type")
        if kind == "text":
            out.append(AnswerDelta(_text(chunk)))
        elif kind == "thinking":
            for part in _get(chunk, "thinking") or []:
                if _get(part, "type") == "text":
                    out.append(ReasoningDelta(_text(part)))
                elif _get(part, "type") not in IGNORED_CHUNKS:
                    raise MalformedEvent(f"a thinking chunk holds a part of type {_get(part, 'type')!r}")
        elif kind not in IGNORED_CHUNKS:
            raise MalformedEvent(f"a content chunk of type {kind!r}")
    return [d for d in out if d.text]


def _text(chunk: Any) -> str:
    text = _get(chunk, "text")
    if not isinstance(text, str):
        raise MalformedEvent("a text chunk without text")
    return text
