"""Batching engine events into bounded UI updates.

The engine can emit hundreds of tokens per second; repainting the conversation on each one
would cost the UI (and, on a busy machine, the decode) time. `DeltaBatcher` collects the
deltas of a turn in the worker thread and says when a flush is due: at most once per
``interval`` seconds (default 40 ms, i.e. <= 25 UI updates per second however fast tokens
come), and always at the first answer token (so the reasoning block folds at once) and at
the end of the turn.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from magimac.core.events import AnswerDelta, Done, Prefill, ReasoningDelta, Stats
from magimac.session.turn import ThinkingClock

FLUSH_INTERVAL_S = 0.04


@dataclass
class Chunk:
    """What changed since the last flush.

    Attributes:
        reasoning / answer: new text; reasoning_tokens / answer_tokens: deltas so far (one
        per engine delta, about one per token); elapsed_s: seconds since the turn was
        submitted; thinking_s: seconds the model spent reasoning once the answer started
        (else None; waits for tools left out, `ThinkingClock`);
        ttft_s: seconds to the first delta; stats / done: set when the engine sent them;
        prefill: the last `Prefill` (a long prompt being read) since the last flush, else None.
    """

    reasoning: str = ""
    answer: str = ""
    reasoning_tokens: int = 0
    answer_tokens: int = 0
    elapsed_s: float = 0.0
    thinking_s: float | None = None
    ttft_s: float | None = None
    stats: Stats | None = None
    done: Done | None = None
    prefill: Prefill | None = None


@dataclass
class DeltaBatcher:
    """Accumulates a turn's events (tool calls and results too, for the thinking time); `add`
    returns True when `take` should be called."""

    interval: float = FLUSH_INTERVAL_S
    clock: object = time.monotonic
    start: float = field(default=0.0)
    _pending: Chunk = field(default_factory=Chunk)
    _last_flush: float = 0.0
    _reasoning_tokens: int = 0
    _answer_tokens: int = 0
    _first_token: float | None = None
    _answer_start: float | None = None
    _thinking: ThinkingClock = field(default_factory=ThinkingClock)

    def __post_init__(self) -> None:
        self.start = self.clock()
        self._last_flush = self.start

    def add(self, ev: object) -> bool:
        """Take one engine event; True when a flush is due now."""
        now = self.clock()
        forced = False
        self._thinking.see(ev, now)
        if isinstance(ev, (ReasoningDelta, AnswerDelta)) and self._first_token is None:
            self._first_token = now
        if isinstance(ev, ReasoningDelta):
            self._pending.reasoning += ev.text
            self._reasoning_tokens += 1
        elif isinstance(ev, AnswerDelta):
            if self._answer_start is None:
                self._answer_start = now
                forced = True
            self._pending.answer += ev.text
            self._answer_tokens += 1
        elif isinstance(ev, Prefill):
            self._pending.prefill = ev
            forced = True
        elif isinstance(ev, Stats):
            self._pending.stats = ev
        elif isinstance(ev, Done):
            self._pending.done = ev
            forced = True
        return forced or now - self._last_flush >= self.interval

    def take(self) -> Chunk:
        """The pending chunk (with counters and timings filled in); resets the pending text."""
        now = self.clock()
        c = self._pending
        c.reasoning_tokens, c.answer_tokens = self._reasoning_tokens, self._answer_tokens
        c.elapsed_s = now - self.start
        if self._first_token is not None:
            c.ttft_s = self._first_token - self.start
        if self._answer_start is not None:
            c.thinking_s = self._thinking.seconds or 0.0
        self._pending = Chunk()
        self._last_flush = now
        return c
