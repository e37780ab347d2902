"""What the app's stream of a turn carries: a long prompt's progress (a `Prefill` event is
flushed at once, and the status bar names it until the model writes), and the thinking time
of the reasoning block's title, without the wait for a tool's permission."""

from __future__ import annotations

from magimac.core.events import AnswerDelta, Prefill, ReasoningDelta, ToolCall, ToolResult
from magimac.tui.status_bar import prefill_label
from magimac.tui.streaming import DeltaBatcher


def test_a_prefill_event_is_flushed_at_once_and_labelled():
    batcher = DeltaBatcher(interval=1000, clock=lambda: 0.0)
    assert batcher.add(Prefill(12_288, 42_000))
    chunk = batcher.take()
    assert chunk.prefill == Prefill(12_288, 42_000) and chunk.ttft_s is None
    assert prefill_label(chunk.prefill) == "reading prompt 12.3K/42.0K"
    assert not batcher.add(ReasoningDelta("a")) and batcher.take().prefill is None


def test_thought_for_counts_the_model_time_only():
    now = [0.0]
    batcher = DeltaBatcher(clock=lambda: now[0])
    for ev, seconds in [(ReasoningDelta("a"), 2.0), (ToolCall("c00000001", "python"), 100.0),
                        (ToolResult("c00000001", "python", "42"), 1.0), (AnswerDelta("42"), 0.0)]:
        batcher.add(ev)
        now[0] += seconds  # the permission dialog waits 100 s after the call
    assert batcher.take().thinking_s == 3.0
