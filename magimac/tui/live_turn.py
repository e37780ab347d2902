"""The answer being streamed: its state on the UI thread (`LiveTurn`) and the thread worker's
loop that feeds it (`stream_turn`).

The worker iterates the session's `TurnRun` and posts batches (`streaming.DeltaBatcher`) with
backpressure (`Pace`): a new batch only once the UI painted the previous one, and not before as
long again has passed, so a slow UI (a long answer) gets fewer, larger batches and stays idle
at least half the time for keys.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from magimac.core.events import Done, Retrying, ToolCall, ToolResult
from magimac.session.turn import DocumentsUsed, TurnRun
from magimac.text.history import StoredMessage
from magimac.tui.chat import AssistantMessage
from magimac.tui.messages import Streamed, ToolEvent, TurnDocuments, TurnNotice
from magimac.tui.status_bar import StatusBar, prefill_label
from magimac.tui.streaming import Chunk, DeltaBatcher


@dataclass
class Pace:
    """Backpressure between the generation worker and the UI.

    Attributes:
        ready: set when the UI painted the last batch (the worker may post the next).
        cost_s: seconds from posting the last batch to its paint.
    """

    ready: threading.Event = field(default_factory=threading.Event)
    cost_s: float = 0.0

    def painted(self, posted: float) -> None:
        """The batch posted at ``posted`` (`time.monotonic` seconds) is on screen."""
        self.cost_s = time.monotonic() - posted
        self.ready.set()


def stream_turn(run: TurnRun, message_id: int, post: Callable, pace: Pace) -> None:
    """Iterate ``run`` (in a thread worker) and ``post`` its events as `TurnDocuments`,
    `TurnNotice` (an online turn waiting out a rate limit) and `Streamed` batches for the
    answer ``message_id``; the last batch always holds the `Done`."""
    batcher = DeltaBatcher()
    pace.ready.set()
    pace.cost_s = posted = 0.0
    try:
        for ev in run:
            if isinstance(ev, DocumentsUsed):
                post(TurnDocuments(message_id, ev))
                continue
            if isinstance(ev, Retrying):
                post(TurnNotice(message_id, ev.reason, ev.wait_s))
                continue
            if isinstance(ev, (ToolCall, ToolResult)):  # after the text before it
                batcher.add(ev)
                post(Streamed(message_id, batcher.take(), run.answer.stored_stats()))
                post(ToolEvent(message_id, ev))
                continue
            due = batcher.add(ev)
            if isinstance(ev, Done):
                break
            if due and pace.ready.is_set() and time.monotonic() - posted >= 2 * pace.cost_s:
                pace.ready.clear()
                message = Streamed(message_id, batcher.take(), run.answer.stored_stats())
                posted = message.posted
                post(message)
    except Exception as e:  # engine errors become notifications, never crashes
        done = Done("error", f"{type(e).__name__}: {e}")
        run.answer.add(done)
        batcher.add(done)
    post(Streamed(message_id, batcher.take(), run.answer.stored_stats()))


@dataclass
class LiveTurn:
    """The answer being streamed into the conversation view.

    Attributes:
        message: its history row (written empty when the turn began). widget: its view.
        run: the session's turn (its ``answer`` is complete once the last batch arrived).
        reasoning / answer: the text shown so far. stats: the stats as of the last batch.
        saved_at: `time.monotonic` seconds of the last save. status_at: the turn's elapsed
            seconds when the status bar's speed was last updated.
    """

    message: StoredMessage
    widget: AssistantMessage
    run: TurnRun
    saved_at: float = field(default_factory=time.monotonic)
    status_at: float = -1.0
    reasoning: str = ""
    answer: str = ""
    stats: dict = field(default_factory=dict)
    blocks: dict = field(default_factory=dict)  # call id -> its `tool_blocks.ToolBlock`

    @property
    def id(self) -> int:
        return self.message.id

    async def show(self, batch: Streamed, status: StatusBar) -> None:
        """Add a batch to the view, and the live TTFT and tokens/s (twice a second)."""
        chunk = batch.chunk
        self.reasoning += chunk.reasoning
        self.answer += chunk.answer
        self.stats = batch.stats
        await self.widget.add(chunk)
        reading = chunk.prefill is not None and not (chunk.reasoning or chunk.answer or chunk.done)
        status.prefill = prefill_label(chunk.prefill) if reading else ""
        if chunk.ttft_s is not None and chunk.elapsed_s - self.status_at >= 0.5:
            self.status_at = chunk.elapsed_s
            status.ttft_s = chunk.ttft_s
            n, dt = chunk.reasoning_tokens + chunk.answer_tokens, chunk.elapsed_s - chunk.ttft_s
            if n > 1 and dt > 0:
                status.tokens_per_s = (n - 1) / dt

    def finished(self, chunk: Chunk) -> StoredMessage:
        """The history row as the turn ended (the last batch, with its `Done`, was shown)."""
        record = self.run.answer
        stats = record.stored_stats()
        if "thinking_s" not in stats and record.reasoning:  # reasoning only: all of it was thinking
            stats["thinking_s"] = round(chunk.elapsed_s - (chunk.ttft_s or 0.0), 2)
        msg = self.message
        msg.content, msg.reasoning = record.content, record.reasoning or None
        msg.stats, msg.finish_reason = stats, record.finish_reason
        return msg
