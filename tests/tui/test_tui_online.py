"""The app on an online model (Mistral's API stand-in on 127.0.0.1), driven with Pilot at 80x24:
the question before anything leaves, the marks of an API answer, switching model in settings,
a retired model's successor, failures kept in place."""

from __future__ import annotations

from pilot_helpers import answers, screen_lines, wait_until

from magimac.testing.api_standin import ANSWER, KEY, REASONING, Reply
from magimac.tui.app import MagimacApp
from magimac.tui.screens import Confirm

MODEL = "mistral-medium-latest"


def answered(app) -> bool:
    return app.generating is None and bool(app.messages) and app.messages[-1].role == "assistant"


async def submit(pilot, text: str, confirm: str | None = None) -> None:
    """Type and send ``text``; answer the consent question with ``confirm`` when given."""
    app = pilot.app
    app.composer.text = text
    await pilot.press("enter")
    if confirm is not None:
        await wait_until(pilot, lambda: isinstance(app.screen, Confirm))
        await pilot.press(confirm)
    if confirm != "n":
        await wait_until(pilot, lambda: answered(app) and app.messages[-1].finish_reason is not None)
    await pilot.pause()


async def test_asks_once_per_conversation_and_marks_api_answers(api, fake_engine, tmp_path):
    api.replies.append(Reply(status=429, headers={"Retry-After": "1"}))
    app = MagimacApp(MODEL, engine_factory=lambda _p: fake_engine, export_dir=tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: app.loaded is not None)
        assert "Mistral Medium 3.5 · API │ ☁ Mistral API" in screen_lines(app)[-1]
        await submit(pilot, "Hi", confirm="n")
        assert api.requests == [] and app.composer.text == "Hi" and app.messages == []
        assert not isinstance(app.screen, Confirm)
        await submit(pilot, "Hi", confirm="y")
        first = app.messages[-1]
        assert (first.reasoning, first.content, first.finish_reason) == ("".join(REASONING), "".join(ANSWER), "stop")
        assert first.stats["service"] == "Mistral API" and first.stats["model"] == "Mistral Medium 3.5 · API"
        assert any("asking again in 1 s" in n.message for n in app._notifications)  # the 429, shown
        await submit(pilot, "And you?")  # no second question in this conversation
        assert len(api.requests) == 3  # the 429, then two answers
        assert api.bodies()[2]["messages"][1]["content"][0] == {
            "type": "thinking", "thinking": [{"type": "text", "text": "".join(REASONING)}]}
        assert [str(w.source.render()) for w in answers(app)] == ["☁ Mistral API · Mistral Medium 3.5 · API"] * 2
        await pilot.press("ctrl+s")
        await pilot.pause()
    [export] = tmp_path.glob("*.md")
    assert "## Mistral Medium 3.5 · API" in export.read_text()
    stored = b"".join(p.read_bytes() for p in (tmp_path.parent).rglob("history.db*"))
    assert stored and KEY.encode() not in stored and KEY not in export.read_text()


async def test_a_cut_stream_keeps_the_partial_answer_marked(api, fake_engine):
    api.replies.append(Reply(cut_after=4))
    app = MagimacApp(MODEL, engine_factory=lambda _p: fake_engine)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: app.loaded is not None)
        await submit(pilot, "Hi", confirm="y")
        msg = app.messages[-1]
        assert (msg.content, msg.finish_reason) == ("".join(ANSWER[:2]), "error")
        note = "⏹ error: the connection to Mistral's API was cut mid-answer; what arrived is kept"
        assert str(answers(app)[-1].note.render()) == note


async def test_settings_switch_a_conversation_between_local_and_online(api, fake_engine, scripted_checkpoint):
    app = MagimacApp(str(scripted_checkpoint), engine_factory=lambda _p: fake_engine)
    async with app.run_test(size=(100, 40)) as pilot:
        await wait_until(pilot, lambda: app.loaded is not None)
        await submit(pilot, "Hi")  # the local (fake) engine
        assert api.requests == []
        await pilot.press("f2")
        app.screen.query_one("#model").value = "magistral-medium-2509"  # retired: its successor is offered
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert "retired from Mistral's API on 2026-07-31" in str(app.screen.query_one("#settings-error").render())
        assert app.screen.query_one("#model").value == MODEL
        await pilot.press("ctrl+s")  # Save again takes the successor
        await wait_until(pilot, lambda: app.loaded is not None and app.loaded.service == "Mistral API")
        assert app.conversation.settings["model"] == MODEL
        await submit(pilot, "Now a hard one", confirm="y")
        sent = api.bodies()[0]["messages"]
        assert sent[1]["content"][0]["thinking"][0]["text"] == fake_engine.reasoning  # local reasoning, as chunks
        assert app.messages[-1].content == "".join(ANSWER)
        await pilot.press("f2")
        app.screen.query_one("#model").value = ""
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: app.loaded is not None and not app.loaded.service)
        await submit(pilot, "Thanks")
        assert fake_engine.submitted[-1][-2].content == "".join(ANSWER)  # the API's answer, prompted locally
        assert len(api.requests) == 1


async def test_a_retired_model_offers_its_successor(api, fake_engine):
    app = MagimacApp("magistral-medium-2509", engine_factory=lambda _p: fake_engine)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, Confirm))
        await pilot.pause(0.2)
        text = " ".join(screen_lines(app))
        assert "retired" in text and "2026-07-31" in text
        await pilot.press("y")
        await wait_until(pilot, lambda: app.loaded is not None)
        assert app.session.choice.online.name == MODEL and api.requests == []


def test_online_conversation_80x24(snap_compare, api):
    """What a person sees after a turn with Mistral Medium 3.5 (stored, so the numbers are fixed)."""
    from magimac.text.history import History
    from test_tui_snapshots import pinned

    h = History()
    c = h.new_conversation("Primes mod 24", {"model": MODEL, "online_ok": True})
    h.add_message(c.id, "user", "Why is p² − 1 divisible by 24 for primes p > 3?")
    h.add_message(c.id, "assistant", "Every prime p > 3 is **1 or 5 mod 6**, so (p − 1)(p + 1) is a multiple of 24.",
                  reasoning="p is odd and not a multiple of 3.",
                  stats={"prompt_tokens": 21, "reasoning_tokens": 8, "answer_tokens": 24, "ttft_s": 0.42,
                         "decode_tps": 61.5, "thinking_s": 1.0, "model": "Mistral Medium 3.5 · API",
                         "service": "Mistral API"}, finish_reason="stop")
    h.close()
    assert snap_compare(MagimacApp(MODEL), terminal_size=(80, 24), run_before=pinned())
    assert api.requests == []  # opening an online conversation sends nothing
