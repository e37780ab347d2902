"""A long prompt is read in chunks that report their progress (`Prefill` events), and a cancel
stops it between two chunks (the batched engine of `magimac serve`: tests/engine/test_batch.py).

The chunks are made small (16 tokens) so that a short test prompt takes many; the cancel comes
from the worker thread at the first progress event (as if Esc were pressed then), so no test
depends on timing.
"""

from __future__ import annotations

from magimac.core.conversation import Message
from magimac.engine.prefill import PrefillPace
from magimac.core.settings import GenerationSettings
from tests.engine.conftest import STEP, long_prompt, small_chunks, split

SHORT = GenerationSettings(system_prompt=None)


def test_a_long_prefill_reports_each_chunk_and_a_short_one_nothing(engine, monkeypatch):
    small_chunks(engine._runner, monkeypatch)
    engine._runner.cache.reset()
    progress, text, done = split(engine.submit(long_prompt("reported"), GenerationSettings()))
    total = progress[0].total_tokens
    assert done.finish_reason == "stop" and text
    assert [p.done_tokens for p in progress] == [*range(0, total - 1, STEP), total - 1, total]
    assert {p.total_tokens for p in progress} == {total} == {done.stats.prefilled_tokens}
    assert split(engine.submit([Message("user", "Hi")], SHORT))[0] == []


def test_a_cancel_stops_the_prefill_between_two_chunks(engine, monkeypatch, cancel_at_first_progress):
    small_chunks(engine._runner, monkeypatch)
    engine._runner.cache.reset()
    progress, text, done = split(engine.submit(long_prompt("cancelled"), GenerationSettings()))
    assert done.finish_reason == "cancelled" and text == ""
    assert len(progress) == 1 and progress[0].done_tokens == 0 and progress[0].total_tokens > 10 * STEP


def test_the_pace_aims_at_a_second_a_chunk():
    pace = PrefillPace()
    pace.measure(300, 1.0)  # Magistral Small: a few hundred tokens/s
    assert pace.step == 256
    pace.measure(50_000, 1.0)  # a tiny model: mlx-lm's 2048 at most
    assert pace.step == 2048
    pace.measure(10, 1.0)
    assert pace.step == 128
