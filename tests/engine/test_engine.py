"""The engine on scripted checkpoints: exact reasoning and answer, prompt cache, limits, images.

A scripted checkpoint emits ``[THINK] reasoning [/THINK] answer </s>`` after ``[/INST]`` at
Magistral's default sampling (magimac.testing.checkpoint), so the text each turn streams is known.
"""

from __future__ import annotations


import numpy as np
import pytest
from mistral_common.tokens.tokenizers.tekken import Tekkenizer
from PIL import Image

from magimac.testing.checkpoint import DEFAULT_SCRIPT_ANSWER as ANSWER
from magimac.testing.checkpoint import DEFAULT_SCRIPT_REASONING as REASONING
from magimac.testing.checkpoint import Script, build_checkpoint, script_tokens
from magimac.testing.tekken import drop_think_control_tokens
from magimac.core.conversation import Message
from magimac.engine.loading import EngineLoadError
from magimac.core.settings import GenerationSettings
from magimac.engine.worker import Engine
from magimac.core.events import AnswerDelta, Done, Loaded, LoadProgress, ReasoningDelta, Stats
from magimac.text.reasoning import ReasoningMarkers, ReasoningSplitter, markers_for


def run(engine: Engine, messages, settings=None, on_event=None):
    """One turn -> (reasoning, answer, stats, done); checks Done is last and Stats precedes it."""
    reasoning = answer = ""
    events = []
    for ev in engine.submit(messages, settings or GenerationSettings()):
        events.append(ev)
        if isinstance(ev, ReasoningDelta):
            reasoning += ev.text
        elif isinstance(ev, AnswerDelta):
            answer += ev.text
        if on_event:
            on_event(ev)
    assert isinstance(events[-1], Done)
    done = events[-1]
    if done.finish_reason != "error":
        assert isinstance(events[-2], Stats) and events[-2] == done.stats
    return reasoning, answer, done.stats, done


def test_load_events_end_with_loaded(engine):
    events = list(engine.load_events())
    assert isinstance(events[0], LoadProgress)
    loaded = events[-1]
    assert isinstance(loaded, Loaded) and loaded.vision and loaded.quantization == "bf16"
    assert engine.wait_loaded() == loaded
    assert loaded.context_length == 131072  # the config's max_position_embeddings


def test_exact_reasoning_and_answer_with_stats(engine, scripted_checkpoint):
    msgs = [Message("user", "Hi there")]
    reasoning, answer, stats, done = run(engine, msgs)
    assert (reasoning, answer) == (REASONING, ANSWER)
    assert done.finish_reason == "stop" and done.error is None
    n_reason = len(Tekkenizer.from_file(scripted_checkpoint / "tekken.json").encode(REASONING, bos=False, eos=False))
    assert stats.reasoning_tokens == n_reason
    assert stats.prompt_tokens == len(engine.prompt_tokens(msgs))
    assert stats.ttft_s > 0 and stats.decode_tps > 0 and stats.peak_memory_bytes > 0
    assert stats.context_length == 131072


def test_top_k_as_large_as_the_vocabulary_keeps_every_token(engine):
    """The largest top-k `magimac chat` accepts (131072, the Tekken vocabulary) samples as
    top-k off does, instead of failing inside the turn with mlx-lm's wording."""
    settings = GenerationSettings(top_k=131072, min_p=0.05, seed=3)
    reasoning, answer, _stats, done = run(engine, [Message("user", "Hi there")], settings)
    assert done.finish_reason == "stop" and done.error is None
    assert (reasoning, answer) == (REASONING, ANSWER)


def test_answer_streams_in_pieces_with_multibyte_characters_whole(engine):
    pieces = []
    run(engine, [Message("user", "Hi")], on_event=lambda ev: isinstance(ev, AnswerDelta) and pieces.append(ev.text))
    assert len(pieces) > 3
    assert "🦊" in pieces and "\ufffd" not in "".join(pieces)


def test_next_turn_prefills_only_what_follows_the_common_prefix(engine):
    first = [Message("user", "Hi")]
    _, _, s1, _ = run(engine, first)
    # reasoning dropped: the prompt matches the cache up to the first [/INST]
    second = first + [Message("assistant", ANSWER, reasoning=REASONING), Message("user", "More")]
    r, a, s2, _ = run(engine, second)
    assert (r, a) == (REASONING, ANSWER)
    assert s2.cached_tokens == s1.prompt_tokens
    assert s2.prompt_tokens == len(engine.prompt_tokens(second))


def test_keep_reasoning_reuses_the_whole_previous_turn(engine):
    keep = GenerationSettings(keep_reasoning=True)
    first = [Message("user", "Question one")]
    _, _, s1, _ = run(engine, first, keep)
    second = first + [Message("assistant", ANSWER, reasoning=REASONING), Message("user", "Question two")]
    _, _, s2, _ = run(engine, second, keep)
    generated = s1.reasoning_tokens + s1.answer_tokens + 3  # [THINK], [/THINK], </s>
    assert s2.cached_tokens == s1.prompt_tokens + generated
    new = s2.prompt_tokens - s2.cached_tokens
    assert new == len(engine.prompt_tokens([Message("user", "Question two")], GenerationSettings(system_prompt=None))) - 1


def test_regenerate_reuses_all_but_one_prompt_token(engine):
    msgs = [Message("user", "Regenerate me")]
    _, _, s1, _ = run(engine, msgs)
    r, a, s2, _ = run(engine, msgs)
    assert (r, a) == (REASONING, ANSWER)
    assert s2.cached_tokens == s1.prompt_tokens - 1


def test_the_kv_cache_is_read_and_emptied_through_public_methods(engine):
    """What bench/bench_engine.py uses instead of the engine's private runner."""
    msgs, short = [Message("user", "Cache me")], GenerationSettings(system_prompt=None)
    _, _, s1, _ = run(engine, msgs, short)
    held = engine.cached_tokens()
    assert held[:s1.prompt_tokens] == engine.prompt_tokens(msgs, short)
    assert len(held) == s1.prompt_tokens + s1.reasoning_tokens + s1.answer_tokens + 3  # [THINK], [/THINK], </s>
    engine.forget_cached_tokens()
    assert engine.cached_tokens() == []
    _, _, s2, _ = run(engine, msgs, short)
    assert s2.memory_tokens == 0  # (what the prompt cache on disk holds may still come back)

def test_max_tokens_ends_while_thinking_and_keeps_the_reasoning(engine):
    r, a, stats, done = run(engine, [Message("user", "Hi")], GenerationSettings(max_tokens=6))
    assert done.finish_reason == "length"
    assert a == "" and r and REASONING.startswith(r) and r != REASONING
    assert stats.reasoning_tokens == 5  # [THINK] + 5 reasoning tokens


def test_reasoning_budget_closes_the_thinking_and_the_model_answers(engine, scripted_checkpoint):
    tk = Tekkenizer.from_file(scripted_checkpoint / "tekken.json")
    r, a, stats, done = run(engine, [Message("user", "Hi")], GenerationSettings(reasoning_budget=4))
    assert done.finish_reason == "stop"
    assert r == tk.decode(tk.encode(REASONING, bos=False, eos=False)[:4])
    assert a == ANSWER and stats.reasoning_tokens == 4


def test_cancel_ends_the_turn_within_one_token(engine):
    seen = []

    def on_event(ev):
        if isinstance(ev, ReasoningDelta):
            seen.append(ev.text)
            if len(seen) == 2:
                engine.cancel()

    r, a, stats, done = run(engine, [Message("user", "Hi")], on_event=on_event)
    assert done.finish_reason == "cancelled"
    assert len(seen) <= 4 and a == ""
    # the engine is still usable, and the cache still serves the same prompt
    r2, a2, s2, _ = run(engine, [Message("user", "Hi")])
    assert (r2, a2) == (REASONING, ANSWER) and s2.cached_tokens > 0


def test_images_of_different_sizes_and_cache_keyed_by_image_content(engine, tmp_path):
    rng = np.random.default_rng(0)
    a, b = tmp_path / "a.png", tmp_path / "b.jpg"
    Image.fromarray((rng.random((60, 200, 3)) * 255).astype("uint8")).save(a)
    Image.fromarray((rng.random((150, 90, 3)) * 255).astype("uint8")).save(b)
    first = [Message("user", "Look", images=[str(a), str(b)])]
    r, ans, s1, _ = run(engine, first)
    assert (r, ans) == (REASONING, ANSWER)
    same_size = tmp_path / "a2.png"  # same size as a, other pixels: same tokens, other image
    Image.fromarray((rng.random((60, 200, 3)) * 255).astype("uint8")).save(same_size)
    other = [Message("user", "Look", images=[str(same_size), str(b)])]
    assert engine.prompt_tokens(other) == engine.prompt_tokens(first)
    _, _, s2, _ = run(engine, other)
    first_img = engine.prompt_tokens(first).index(10)
    assert s2.cached_tokens == first_img  # recomputed from the first image on


def test_bad_image_ends_the_turn_with_a_one_line_error(engine, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG broken")
    _, _, _, done = run(engine, [Message("user", "x", images=[str(bad)])])
    assert done.finish_reason == "error" and "bad.png" in done.error and "\n" not in done.error
    r, a, _, _ = run(engine, [Message("user", "Hi")])
    assert (r, a) == (REASONING, ANSWER)


def test_context_overflow_drops_oldest_turns_then_errors(scripted_checkpoint):
    e = Engine(scripted_checkpoint, context_length=400)
    try:
        e.wait_loaded()
        long = " ".join(f"item{j}" for j in range(50))
        msgs = []
        for i in range(4):
            msgs += [Message("user", f"{i} {long}"), Message("assistant", "ok")]
        msgs.append(Message("user", "last"))
        full = len(e.prompt_tokens(msgs))
        assert full > 400
        r, a, stats, done = run(e, msgs, GenerationSettings(max_tokens=60))
        assert done.finish_reason == "stop" and (r, a) == (REASONING, ANSWER)
        assert stats.prompt_tokens + 60 <= 400
        _, _, _, done = run(e, [Message("user", "word " * 500)])
        assert done.finish_reason == "error" and "context holds 400" in done.error
    finally:
        e.close()


def test_quantized_kv_cache_gives_the_same_text(scripted_checkpoint):
    e = Engine(scripted_checkpoint, kv_bits=8)
    try:
        msgs = [Message("user", "Hi")]
        assert run(e, msgs)[:2] == (REASONING, ANSWER)
        msgs += [Message("assistant", ANSWER), Message("user", "Again")]
        r, a, stats, _ = run(e, msgs)
        assert (r, a) == (REASONING, ANSWER) and stats.cached_tokens > 0
    finally:
        e.close()


def test_missing_model_fails_to_load_with_one_line(tmp_path):
    e = Engine(tmp_path / "nope")
    with pytest.raises(EngineLoadError, match="not a model directory") as err:
        e.wait_loaded(timeout=60)
    assert "\n" not in str(err.value)
    _, _, _, done = run(e, [Message("user", "x")])
    assert done.finish_reason == "error"
    e.close()


@pytest.fixture(scope="module")
def no_think_text_model(tmp_path_factory):
    """A text-only (mlx-lm) scripted model that answers without reasoning."""
    return build_checkpoint(tmp_path_factory.mktemp("nothink") / "ckpt", script=Script(think=False), vision=False)


def test_text_only_model_that_skips_reasoning(no_think_text_model):
    e = Engine(no_think_text_model)
    try:
        assert not e.wait_loaded().vision
        r, a, stats, done = run(e, [Message("user", "Hi")])
        assert (r, a) == ("", ANSWER) and done.finish_reason == "stop"
        assert stats.reasoning_tokens == 0 and stats.answer_tokens > 0
        _, _, _, done = run(e, [Message("user", "Hi", images=["x.png"])])
        assert done.finish_reason == "error" and "does not take images" in done.error
    finally:
        e.close()


def test_after_4bit_conversion_the_text_is_exact(scripted_checkpoint, tmp_path):
    from magimac.quantize.convert import convert

    out = convert(scripted_checkpoint, tmp_path / "scripted-4bit", bits=4, progress=False, log=lambda s: None)
    e = Engine(out)
    try:
        assert e.wait_loaded().quantization == "4bit"
        r, a, _, done = run(e, [Message("user", "Hi")])
        assert (r, a) == (REASONING, ANSWER) and done.finish_reason == "stop"
    finally:
        e.close()


# ---- the reasoning splitter on its own ----------------------------------------------------


@pytest.fixture(scope="module")
def tekken(scripted_checkpoint):
    return Tekkenizer.from_file(scripted_checkpoint / "tekken.json")


def split(markers, tekken, ids):
    s = ReasoningSplitter(markers, tekken)
    evs = [ev for i in ids for ev in s.feed(i)] + s.flush()
    return ("".join(e.text for e in evs if isinstance(e, ReasoningDelta)),
            "".join(e.text for e in evs if isinstance(e, AnswerDelta)), s)


def test_splitter_control_markers(tekken, scripted_checkpoint):
    markers = markers_for(tekken)
    assert (markers.kind, markers.open_id, markers.close_id) == ("control", 34, 35)
    r, a, s = split(markers, tekken, script_tokens(scripted_checkpoint / "tekken.json", Script()))
    assert (r, a) == (REASONING, ANSWER)


def test_splitter_text_markers_split_across_tokens(tekken):
    markers = ReasoningMarkers("text", "<think>", "</think>")
    text = "<think>\nLet me see: a<b and </thin is not a marker.\n</think>\n\nThe answer </think> stays."
    ids = tekken.encode(text, bos=False, eos=False)
    assert len(ids) > 20
    r, a, s = split(markers, tekken, ids)
    assert r == "\nLet me see: a<b and </thin is not a marker.\n"
    assert a == "\n\nThe answer </think> stays."
    # one character at a time, too
    s2 = ReasoningSplitter(markers, tekken)
    evs = [ev for ch in text for ev in s2._feed_text(ch)] + s2.flush()
    assert "".join(e.text for e in evs if isinstance(e, ReasoningDelta)) == r


def test_splitter_text_markers_model_skips_reasoning(tekken):
    markers = ReasoningMarkers("text", "<think>", "</think>")
    r, a, _ = split(markers, tekken, tekken.encode("Just <think> an answer.", bos=False, eos=False))
    assert (r, a) == ("", "Just <think> an answer.")


@pytest.fixture(scope="module")
def text_marker_checkpoint(tmp_path_factory):
    """A Magistral 1.0-like model: no [THINK] control tokens; it writes <think> text."""
    d = build_checkpoint(tmp_path_factory.mktemp("v10") / "ckpt", system_prompt=None,
                         script=Script(reasoning="", answer=TEXT_MARKED, think=False))
    drop_think_control_tokens(d)
    return d


TEXT_MARKED = "<think>\nThe user says hi; greet back.\n</think>\n\nHello! 🦊 Ça va?"


def test_text_marker_model_splits_think_text_and_honours_the_budget(text_marker_checkpoint):
    e = Engine(text_marker_checkpoint)
    try:
        e.wait_loaded()
        assert e.markers.kind == "text"
        r, a, stats, done = run(e, [Message("user", "Hi")])
        assert (r, a) == ("\nThe user says hi; greet back.\n", "\n\nHello! 🦊 Ça va?")
        assert done.finish_reason == "stop" and stats.reasoning_tokens > 5
        # the budget forces "</think>" after ~3 tokens; then this bigram model babbles on
        r, a, stats, done = run(e, [Message("user", "Hi")], GenerationSettings(reasoning_budget=3, max_tokens=30))
        assert r.startswith("\nThe user") and len(r) < len("\nThe user says hi; greet back.\n")
        assert a and stats.answer_tokens > 0
    finally:
        e.close()
