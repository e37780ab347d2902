"""The Textual messages the app's thread workers post to the UI thread.

Workers never touch widgets: they post one of these and the handler (on the UI thread) does.
"""

from __future__ import annotations

import time
from pathlib import Path

from textual.message import Message

from magimac.core.events import EngineError, Loaded, LoadProgress
from magimac.session.turn import DocumentsUsed
from magimac.tui.streaming import Chunk


class LoadEvent(Message):
    """A model-loading event from the load worker."""

    def __init__(self, event: LoadProgress | Loaded | EngineError) -> None:
        super().__init__()
        self.event = event


class TurnDocuments(Message):
    """What of the attached documents a turn sends (the session's `DocumentsUsed`), posted
    before the turn's first batch for the answer ``message_id``."""

    def __init__(self, message_id: int, used: DocumentsUsed) -> None:
        super().__init__()
        self.message_id = message_id
        self.used = used


class Streamed(Message):
    """A batch of a turn's output from the generation worker.

    Attributes:
        message_id: the answer's history id. chunk: the batch (`streaming.Chunk`).
        stats: the answer's stats as far as this batch (`AnswerRecord.stored_stats`), to save.
        posted: `time.monotonic` seconds when it was posted (for the UI's cost).
    """

    def __init__(self, message_id: int, chunk: Chunk, stats: dict) -> None:
        super().__init__()
        self.message_id = message_id
        self.chunk = chunk
        self.stats = stats
        self.posted = time.monotonic()


class TokensCounted(Message):
    """An attached document's token count (None: no tokenizer), from the counting worker."""

    def __init__(self, path: Path, document, tokens: int | None) -> None:
        super().__init__()
        self.path = path
        self.document = document
        self.tokens = tokens


class PlanAdvice(Message):
    """What `magimac plan --json` recommends for this machine, as lines ([]: it could not say)."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__()
        self.lines = lines


class TurnNotice(Message):
    """A turn's notice for the person while it waits (`magimac.core.events.Retrying`): ``text``
    one line, ``wait_s`` seconds or None."""

    def __init__(self, message_id: int, text: str, wait_s: float | None = None) -> None:
        super().__init__()
        self.message_id, self.text, self.wait_s = message_id, text, wait_s
class ToolEvent(Message):
    """A `ToolCall` or `ToolResult` of the turn answering ``message_id``, from the generation worker."""

    def __init__(self, message_id: int, event) -> None:
        super().__init__()
        self.message_id = message_id
        self.event = event
