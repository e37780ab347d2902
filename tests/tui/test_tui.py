"""The chat app driven with Textual's Pilot on the scripted checkpoint (a real model that
emits `Script()`): streaming order, folding reasoning, stop, regenerate, edit, history,
search, export, attachments, missing model and engine errors."""

from __future__ import annotations

from magimac.testing.checkpoint import Script

from magimac.text.history import History
from magimac.tui.app import MagimacApp
from magimac.tui.chat import AssistantMessage, UserMessage
from magimac.tui.screens import HelpScreen, MissingModel
from magimac.tui.sidebar import ConversationItem
from textual.widgets import Label

from pilot_helpers import answers, app_for, send, wait_until

SCRIPT = Script()


async def test_message_gets_reasoning_then_answer_with_the_scripted_text(engine, scripted_checkpoint, monkeypatch):
    seen: list[tuple[str, str]] = []  # (reasoning shown, answer shown) at each UI update
    original = AssistantMessage.add

    async def spy(self, chunk):
        await original(self, chunk)
        seen.append((self.reasoning.text, self.answer_text))

    monkeypatch.setattr(AssistantMessage, "add", spy)
    app = app_for(engine, scripted_checkpoint)
    async with app.run_test(size=(100, 30)) as pilot:
        await send(pilot, "Hi")
        [answer] = answers(app)
        assert answer.message.reasoning == SCRIPT.reasoning
        assert answer.message.content == SCRIPT.answer
        assert answer.markdown.source == SCRIPT.answer
        assert answer.reasoning.text == SCRIPT.reasoning
        # reasoning streamed first, and was complete before any answer text appeared
        first_answer = next(i for i, (_r, a) in enumerate(seen) if a)
        assert all(r == SCRIPT.reasoning for r, _a in seen[first_answer:])
        assert seen[0][1] == "" and seen[0][0]
        assert answer.reasoning.collapsed
        assert answer.reasoning.title.startswith("Thought for ")
        assert answer.reasoning.title.endswith(" · 18 tokens")
        assert "ctx " in app.status.render() and "tok/s" in app.status.render()
        stored = History().messages(app.conversation.id)
        assert [(m.role, m.content, m.finish_reason) for m in stored] == [
            ("user", "Hi", None), ("assistant", SCRIPT.answer, "stop")]


async def test_reasoning_block_opens_on_click_and_folds_on_key(engine, scripted_checkpoint):
    app = app_for(engine, scripted_checkpoint)
    async with app.run_test(size=(100, 30)) as pilot:
        await send(pilot, "Hi")
        block = answers(app)[0].reasoning
        assert block.collapsed
        await pilot.click(block._title)
        await pilot.pause()
        assert not block.collapsed
        assert block.body.visible and SCRIPT.reasoning in str(block.body.render())
        await pilot.press("ctrl+t")
        await pilot.pause()
        assert block.collapsed


async def test_escape_stops_and_keeps_the_partial_answer(endless_engine, random_checkpoint):
    app = app_for(endless_engine, random_checkpoint)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: app.loaded is not None)
        app.composer.text = "Write forever"
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.generating is not None and app.ui_updates >= 2)
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.generating is None)
        await pilot.pause()
        [answer] = answers(app)
        stored = History().messages(app.conversation.id)[-1]
        assert stored.finish_reason == "cancelled"
        assert (stored.content, stored.reasoning or "") == (answer.message.content, answer.message.reasoning or "")
        assert stored.content or stored.reasoning  # something was written before the stop
        assert answer.note.display and "stopped" in str(answer.note.render())


async def test_regenerate_replaces_the_last_answer(engine, scripted_checkpoint):
    app = app_for(engine, scripted_checkpoint)
    async with app.run_test(size=(100, 30)) as pilot:
        await send(pilot, "Hi")
        updates = app.ui_updates
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: app.generating is None and app.ui_updates > updates
                         and app.messages[-1].role == "assistant")
        await pilot.pause()
        stored = History().messages(app.conversation.id)
        assert [(m.role, m.content) for m in stored] == [("user", "Hi"), ("assistant", SCRIPT.answer)]
        [answer] = answers(app)
        assert answer.markdown.source == SCRIPT.answer and answer.reasoning.collapsed


async def test_edit_and_resend_last_message(engine, scripted_checkpoint):
    app = app_for(engine, scripted_checkpoint)
    async with app.run_test(size=(100, 30)) as pilot:
        await send(pilot, "Hi")
        await pilot.press("ctrl+l")
        assert app.composer.text == "Hi"
        app.composer.text = "Hello there"
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.generating is None and app.messages[-1].role == "assistant")
        await pilot.pause()
        stored = History().messages(app.conversation.id)
        assert [(m.role, m.content) for m in stored] == [("user", "Hello there"), ("assistant", SCRIPT.answer)]
        assert [str(w.query_one(".user-text").render()) for w in app.chat.query(UserMessage)] == ["Hello there"]


async def test_history_survives_a_restart_and_search_finds_it(engine, scripted_checkpoint):
    app = app_for(engine, scripted_checkpoint)
    async with app.run_test(size=(100, 30)) as pilot:
        await send(pilot, "Bonjour, how are you?")
    app = app_for(engine, scripted_checkpoint)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        assert app.conversation.title == "Bonjour, how are you?"
        assert [m.content for m in app.messages] == ["Bonjour, how are you?", SCRIPT.answer]
        assert answers(app)[0].markdown.source == SCRIPT.answer
        await app.action_new_conversation()
        assert answers(app) == []
        await pilot.press("ctrl+f")
        await pilot.press(*"café")  # a word of the reasoning
        await pilot.pause(0.2)
        hits = list(app.sidebar.query(ConversationItem))
        assert len(hits) == 1 and hits[0].message_id is not None
        shown = hits[0].query_one(Label).render()  # the matched word in bold, no markers
        assert str(shown).startswith("Bonjour, how are you?\n") and "café" in str(shown)
        assert "[café]" not in str(shown) and "\x02" not in str(shown)
        assert [str(shown)[s.start:s.end] for s in shown.spans if "bold" in str(s.style)] == ["café"]
        app.sidebar.list.focus()
        app.sidebar.list.index = 0
        await pilot.press("enter")
        await pilot.pause(0.2)
        assert [m.content for m in app.messages] == ["Bonjour, how are you?", SCRIPT.answer]


async def test_export_writes_the_expected_markdown(engine, scripted_checkpoint, tmp_path):
    app = app_for(engine, scripted_checkpoint, export_dir=tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await send(pilot, "Hi")
        await pilot.press("ctrl+s")
        await pilot.pause()
        [path] = tmp_path.glob("*.md")
        assert path.name == f"magimac-hi-{app.conversation.id}.md"
        assert path.read_text(encoding="utf-8") == (
            "# Hi\n\n## You\n\nHi\n\n## ckpt · bf16\n\n<details><summary>Reasoning</summary>\n\n"
            f"{SCRIPT.reasoning}\n\n</details>\n\n{SCRIPT.answer}\n"
        )


async def test_image_path_typed_in_the_composer_is_attached(engine, scripted_checkpoint, tmp_path):
    from PIL import Image

    img = tmp_path / "cat.png"
    Image.new("RGB", (32, 32), "orange").save(img)
    app = app_for(engine, scripted_checkpoint)
    async with app.run_test(size=(100, 30)) as pilot:
        await send(pilot, f"What is this?\n/image {img}")
        user = History().messages(app.conversation.id)[0]
        assert user.content == "What is this?"
        assert [(a.kind, a.path) for a in user.attachments] == [("image", str(img))]
        shown = [str(s.render()) for s in app.chat.query(".attachment")]
        assert shown == ["📎 image  cat.png"]
        assert (app.messages[-1].finish_reason, app.messages[-1].content) == ("stop", SCRIPT.answer)


async def test_a_broken_image_is_refused_when_attached(engine, scripted_checkpoint, tmp_path):
    fake = tmp_path / "fake.png"
    fake.write_text("not a picture")
    app = app_for(engine, scripted_checkpoint)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: app.loaded is not None)
        app.composer.text = f"What is this?\n/image {fake}"
        await pilot.press("enter")
        await pilot.pause()
        assert app.attachments.images == [] and not app.messages
        assert any("not an image Pillow can read" in str(n.message) for n in app._notifications)
        await send(pilot, "Hi")  # the conversation still works
        assert app.messages[-1].content == SCRIPT.answer


async def test_a_missing_model_explains_how_to_get_one():
    app = MagimacApp("magistral-small-2509")  # a known model, not installed
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, MissingModel)
        screen = app.screen
        await wait_until(pilot, lambda: screen.recommendations is not None, steps=1200)  # `magimac plan` ran
        text = screen.query_one("Markdown").source
        assert "magimac pull magistral-small-2509" in text and "magimac --model demo" in text
        assert "pull demo" not in text  # the demo is bundled: nothing to pull
        assert not screen.recommendations or "For this Mac (`magimac plan`)" in text
        await pilot.press("escape")
        await pilot.press("f1")
        assert isinstance(app.screen, HelpScreen)


async def test_an_engine_that_fails_to_load_becomes_a_notification(tmp_path):
    bad = tmp_path / "broken"
    bad.mkdir()
    (bad / "config.json").write_text('{"model_type": "mistral3"}')
    (bad / "model.safetensors").write_bytes(b"not safetensors")
    app = MagimacApp(str(bad))
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: app.status.load_state == "load failed")
        assert any(n.severity == "error" for n in app._notifications)
        app.composer.text = "Hi"
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.generating is None and app.messages
                         and app.messages[-1].role == "assistant")
        assert app.messages[-1].finish_reason == "error"
        assert app.is_running


async def test_ctrl_j_adds_a_new_line_and_enter_sends(engine, scripted_checkpoint):
    app = app_for(engine, scripted_checkpoint)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: app.loaded is not None)
        await pilot.press(*"one", "ctrl+j", *"two")
        assert app.composer.text == "one\ntwo" and app.messages == []
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.generating is None and app.messages
                         and app.messages[-1].role == "assistant")
        assert app.messages[0].content == "one\ntwo"


async def test_the_demo_model_answers_a_new_problem_in_the_app():
    """Issue 8: the bundled demo (no Magistral installed) answers a held-out problem correctly."""
    import mlx.core as mx

    from magimac.demo.problems import check_answer

    mx.random.seed(1)  # the app samples at the registry's 0.7 / 0.95: make the run repeatable
    app = MagimacApp(None)
    async with app.run_test(size=(100, 30)) as pilot:
        await send(pilot, "What is 45 + 27?")  # held out from training (tests/test_demo.py)
        [answer] = answers(app)
        assert "45+27" in answer.message.reasoning
        assert check_answer(answer.message.content, "72"), answer.message.content
        assert answer.message.finish_reason == "stop"


async def test_loading_a_model_frees_earlier_garbage_before_freezing(engine, scripted_checkpoint):
    """gc.freeze() after a load must not pin what is already garbage (an engine closed when
    another model replaced it, caught in a reference cycle) for the rest of the session."""
    import gc
    import weakref

    from magimac.core.events import Loaded
    from magimac.tui.messages import LoadEvent

    class Garbage:
        pass

    app = app_for(engine, scripted_checkpoint)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: app.loaded is not None)
        gc.disable()  # no automatic pass frees it before the load event
        try:
            old = Garbage()
            old.me = old  # a cycle: only the collector frees it
            alive = weakref.ref(old)
            del old
            app.on_load_event(LoadEvent(Loaded("another model", "4bit", 4096, False)))
        finally:
            gc.enable()
        gc.collect()
        assert alive() is None
        # frozen while in use (the first model's objects), garbage once that model is replaced:
        # the next load frees it
        used = Garbage()
        used.me = used
        alive = weakref.ref(used)
        app.on_load_event(LoadEvent(Loaded("first model", "4bit", 4096, False)))
        del used
        gc.collect()
        assert alive() is not None  # frozen: full passes skip it (that is what saves the pauses)
        app.on_load_event(LoadEvent(Loaded("second model", "4bit", 4096, False)))
        gc.collect()
        assert alive() is None
