"""Turns of the bundled demo through the session layer, as the app and `magimac chat` run them:
its "I can't do that" reply stays in the question's language when tools, library passages or an
image come first, and with reasoning off it answers without reasoning scraps.  Greedy, so the
text is what the model itself prefers."""

from __future__ import annotations

import pytest
from PIL import Image

from magimac.core.conversation import Message
from magimac.core.events import AnswerDelta, ReasoningDelta
from magimac.demo.language import question_language
from magimac.demo.tooldata import CAN_DO
from magimac.core.settings import DiskCacheSettings, GenerationSettings
from magimac.session.model import open_model
from magimac.session.tool_loop import ToolUse
from magimac.text.library import index
from magimac.tools.toolbox import Toolbox

GREEDY = GenerationSettings(temperature=0.0)


@pytest.fixture(scope="module")
def demo():
    s = open_model("demo", disk_cache=DiskCacheSettings(enabled=False))
    yield s
    s.close()


def answer(demo, question: str, settings=GREEDY, **kw) -> tuple[str, str]:
    """(reasoning shown, answer) of one turn with the python tool on (the app's default)."""
    run = demo.turn([Message("user", question, images=kw.pop("images", []))], settings,
                    ToolUse(Toolbox(("python",))), **kw)
    events = list(run)
    assert events[-1].finish_reason == "stop", events[-1]
    return ("".join(e.text for e in events if isinstance(e, ReasoningDelta)),
            "".join(e.text for e in events if isinstance(e, AnswerDelta)))


def test_an_english_question_with_an_image_or_a_library_gets_the_english_sentence(demo, tmp_path):
    Image.new("RGB", (300, 200), (200, 30, 30)).save(tmp_path / "red.png")
    assert answer(demo, "What is in this picture?", images=[str(tmp_path / "red.png")])[1] == CAN_DO["en"]
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "refund.txt").write_text("Refunds are possible within 30 days of purchase with the receipt.\n")
    index.add("shop", [docs])
    assert answer(demo, "What is the refund policy?", libraries=["shop"])[1] == CAN_DO["en"]
    assert answer(demo, "Wer hat Hamlet geschrieben?")[1] == CAN_DO["de"]  # a German question: German


def test_with_reasoning_off_the_demo_answers_directly(demo):
    off = GenerationSettings(temperature=0.0, reasoning_budget=0)
    assert answer(demo, "What is 47 + 27?", off) == ("", "47 + 27 = **74**")
    assert answer(demo, "Combien font 38 - 19 ?", off) == ("", "38 - 19 = **19**")
    reasoning, text = answer(demo, "What is 47 + 27?")
    assert reasoning.startswith("47+27:") and text == "47 + 27 = **74**"  # reasoning on: shown


def test_the_question_language_is_read_from_its_words():
    assert [question_language(q) for q in ("What is in this picture?", "Qui a écrit Macbeth ?",
                                            "Wer hat Hamlet geschrieben?", "¿Cuál es la capital de Italia?",
                                            "347 x 29 = ?")] == ["en", "fr", "de", "es", None]
