"""The app shows a long prompt's progress: a `Prefill` event is flushed at once, and the status
bar names it until the model writes."""

from __future__ import annotations

from magimac.core.events import Prefill, ReasoningDelta
from magimac.tui.status_bar import prefill_label
from magimac.tui.streaming import DeltaBatcher


def test_a_prefill_event_is_flushed_at_once_and_labelled():
    batcher = DeltaBatcher(interval=1000, clock=lambda: 0.0)
    assert batcher.add(Prefill(12_288, 42_000))
    chunk = batcher.take()
    assert chunk.prefill == Prefill(12_288, 42_000) and chunk.ttft_s is None
    assert prefill_label(chunk.prefill) == "reading prompt 12.3K/42.0K"
    assert not batcher.add(ReasoningDelta("a")) and batcher.take().prefill is None
