"""What only the engine's tests need: small prefill chunks, a cancel at the first progress
event (from the worker thread, as if Esc were pressed then: no test depends on timing)."""

from __future__ import annotations

import pytest

from magimac.core.conversation import Message
from magimac.core.events import AnswerDelta, Done, Prefill, ReasoningDelta
from magimac.engine.prefill import PrefillPace
from magimac.engine.worker import Turn

STEP = 16
"""Tokens per prefill chunk in these tests (`small_chunks`)."""


def long_prompt(tag: str) -> list[Message]:
    """A prompt of some 500 tokens that no cache holds (``tag`` differs per test)."""
    return [Message("user", f"{tag}: please read all of this first. " + "lorem ipsum dolor sit amet " * 60)]


@pytest.fixture
def cancel_at_first_progress(monkeypatch):
    """Every turn cancels itself when its first `Prefill` event is sent (worker thread)."""
    put = Turn.put

    def put_and_cancel(self, ev):
        put(self, ev)
        if isinstance(ev, Prefill):
            self.cancel()

    monkeypatch.setattr(Turn, "put", put_and_cancel)


def small_chunks(runner, monkeypatch) -> None:
    """``runner`` (the engine's) prefills in chunks of `STEP` tokens for this test."""
    monkeypatch.setattr(runner, "pace", PrefillPace(STEP, STEP, STEP))


def split(turn) -> tuple[list[Prefill], str, Done]:
    """A turn's (`Prefill` events, reasoning + answer text, Done)."""
    events = list(turn)
    text = "".join(e.text for e in events if isinstance(e, (ReasoningDelta, AnswerDelta)))
    return [e for e in events if isinstance(e, Prefill)], text, events[-1]
