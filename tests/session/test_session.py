"""The session layer: opening a model by name and running a turn for any front-end."""

from __future__ import annotations

import pytest

from magimac.core.conversation import Message
from magimac.core.events import AnswerDelta, Done, ReasoningDelta, Stats
from magimac.models.store import ModelNotFound
from magimac.session.model import choose_model, open_model
from magimac.session.turn import DocumentsUsed
from magimac.testing.checkpoint import DEFAULT_SCRIPT_ANSWER as ANSWER
from magimac.testing.checkpoint import DEFAULT_SCRIPT_REASONING as REASONING
from magimac.text.images import ImageTooLarge, open_image
from tests.conftest import huge_png


def test_nothing_installed_opens_the_demo_and_says_what_it_can_do():
    choice = choose_model(None)
    assert choice.is_demo and choice.path.is_dir()
    assert "demo" in choice.notice and "arithmetic" in choice.notice and "magimac pull" in choice.notice
    assert choose_model("demo").notice is None  # asked for by name: nothing to explain


def test_a_mistyped_name_lists_the_close_matches():
    with pytest.raises(ModelNotFound) as e:
        choose_model("magistral-smal-2509")
    assert "unknown model 'magistral-smal-2509'" in str(e.value)
    assert "did you mean magistral-small-2509" in str(e.value) and "\n" not in str(e.value)


@pytest.fixture(scope="module")
def session(scripted_checkpoint):
    s = open_model(str(scripted_checkpoint))
    yield s
    s.close()


def test_a_turn_streams_and_builds_the_record_to_store(session):
    run = session.turn([Message("user", "Hi")])
    events = list(run)
    assert isinstance(events[-1], Done) and events[-1].finish_reason == "stop"
    assert "".join(e.text for e in events if isinstance(e, ReasoningDelta)) == REASONING
    assert (run.answer.content, run.answer.reasoning) == (ANSWER, REASONING)
    stored = run.answer.stored_stats()
    assert stored["reasoning_tokens"] > 0 and stored["answer_tokens"] > 0 and stored["prompt_tokens"] > 0
    assert stored["model"] and "thinking_s" in stored


def test_documents_come_first_and_are_kept_with_the_answer(session, tmp_path):
    doc = tmp_path / "notes.md"
    doc.write_text("# Notes\n\nThe launch code is 4242.\n")
    run = session.turn([Message("user", "What is the code?", documents=[str(doc)])])
    events = list(run)
    assert isinstance(events[0], DocumentsUsed) and "notes.md" in events[0].summary
    assert "4242" in run.messages[-1].content  # the document went into the prompt
    assert run.answer.stored_stats()["documents"]["summary"] == events[0].summary


def test_an_unreadable_document_ends_the_turn_with_one_error(session, tmp_path):
    events = list(session.turn([Message("user", "Hi", documents=[str(tmp_path / "missing.pdf")])]))
    assert len(events) == 1 and events[0].finish_reason == "error" and "missing.pdf" in events[0].error


def test_an_image_of_too_many_pixels_ends_the_turn_with_one_line(session, tmp_path):
    huge = tmp_path / "huge.png"
    huge.write_bytes(huge_png(20000, 20000))  # 400 million pixels in a few KB
    events = list(session.turn([Message("user", "Look", images=[str(huge)])]))
    assert events[-1].finish_reason == "error"
    assert events[-1].error == f"image {huge}: more than 64 million pixels, the most magimac reads: make it smaller"
    huge.write_bytes(huge_png(9000, 8000))  # under Pillow's own refusal, over magimac's limit
    with pytest.raises(ImageTooLarge, match="^9000 x 8000 pixels is more than 64 million pixels"):
        open_image(huge)


def test_cancelled_before_it_starts(session):
    run = session.turn([Message("user", "Hi")])
    run.cancel()
    assert [e.finish_reason for e in run] == ["cancelled"]


class _InterruptedOnce:
    """An engine whose turn raises KeyboardInterrupt once while waiting, as Ctrl-C does."""

    context_length = 1000

    def __init__(self):
        self.cancelled = False

    def wait_loaded(self, timeout=None):
        return None

    def prompt_tokens(self, messages, settings=None):
        return [1, 2, 3]

    def cancel(self):
        self.cancelled = True

    def submit(self, messages, settings=None):
        engine = self

        class Turn:
            def __init__(self):
                self.events = [AnswerDelta("a"), "interrupt", AnswerDelta("b"), Stats(answer_tokens=2)]

            def cancel(self):
                engine.cancel()

            def __iter__(self):
                while self.events:
                    ev = self.events.pop(0)
                    if ev == "interrupt":
                        raise KeyboardInterrupt
                    yield ev
                yield Done("cancelled" if engine.cancelled else "stop")

        return Turn()


def test_ctrl_c_while_waiting_leaves_the_run_readable_to_its_done():
    from magimac.session.model import ChatSession, ModelChoice

    session = ChatSession(ModelChoice(path=None), _InterruptedOnce(), owns_engine=False)
    run = session.turn([Message("user", "Hi")])
    seen = []
    with pytest.raises(KeyboardInterrupt):
        for ev in run:
            seen.append(ev)
    run.cancel()
    seen += list(run)
    assert [type(e).__name__ for e in seen] == ["AnswerDelta", "AnswerDelta", "Stats", "Done"]
    assert run.done.finish_reason == "cancelled" and run.answer.content == "ab"


def test_close_matches_are_the_names_magimac_models_lists():
    """An alias that looks like the typo is offered as its entry's listed name, once."""
    from magimac.models.registry import load_registry
    from magimac.models.store import close_matches

    listed = set(load_registry())
    near = close_matches("magistral-smal")
    assert near and set(near) <= listed and len(near) == len(set(near))


def test_the_demo_is_named_demo_not_after_its_folder():
    from magimac.session.model import choose_model

    choice = choose_model(None)  # nothing installed in the tests: the bundled demo
    assert choice.is_demo and choice.path.name == "model" and choice.name == "demo"
