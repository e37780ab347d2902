"""What a new user ran into in a real terminal (tmux, 80x24), driven here with Textual's Pilot
on the scripted checkpoint: the status bar keeps its numbers when the model's name is long,
a search is opened with Enter, Enter and shows the message it found, and a line `/image PATH`
on its own attaches without sending, as `/file PATH` does."""

from __future__ import annotations

from pilot_helpers import app_for, screen_lines, send, wait_until

from magimac.text.history import History
from magimac.tui.chat import UserMessage

DEMO_LABEL = "magimac demo (tiny Magistral-format model, arithmetic and units) · bf16"


async def test_status_bar_keeps_context_and_speed_visible_with_a_long_model_name(fake_engine, scripted_checkpoint):
    app = app_for(fake_engine, scripted_checkpoint)
    async with app.run_test(size=(80, 24)) as pilot:
        await send(pilot, "Hi")
        app.status.model = DEMO_LABEL
        await pilot.pause(0.2)
        bottom = screen_lines(app)[-1]
        assert "ctx " in bottom and "tok/s" in bottom and "mem " in bottom
        assert bottom.lstrip().startswith("magimac demo")  # the name, shortened with "…"
        assert "…" in bottom


async def test_search_enter_enter_opens_the_hit_and_shows_its_message(fake_engine, scripted_checkpoint):
    history = History()
    conv = history.new_conversation("long", {})
    for i in range(8):
        history.add_message(conv.id, "user", "zebra question" if i == 0 else f"question {i}")
        history.add_message(conv.id, "assistant", f"answer {i}")
    other = history.new_conversation("other", {})
    history.add_message(other.id, "user", "unrelated")
    history.add_message(other.id, "assistant", "reply")
    app = app_for(fake_engine, scripted_checkpoint)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: app.loaded is not None)
        assert app.conversation.id == other.id  # the newest opens first
        await pilot.press("ctrl+f")
        await pilot.press(*"zebra")
        await pilot.pause(0.3)
        await pilot.press("enter")  # from the search box to the results...
        await pilot.press("enter")  # ...and open the first one
        await wait_until(pilot, lambda: app.conversation.id == conv.id)
        await pilot.pause(0.3)
        [hit] = [w for w in app.chat.query(UserMessage) if w.message.content == "zebra question"]
        assert hit.region.overlaps(app.chat.region)  # mounted (it was behind the window) and in view


async def test_image_line_alone_attaches_without_sending_even_with_a_document_waiting(
        engine, scripted_checkpoint, tmp_path):
    from PIL import Image

    img = tmp_path / "cat.png"
    Image.new("RGB", (32, 32), "orange").save(img)
    doc = tmp_path / "notes.md"
    doc.write_text("# Notes\n\nThe meeting is on Tuesday.\n", encoding="utf-8")
    app = app_for(engine, scripted_checkpoint)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: app.loaded is not None)
        for line in (f"/file {doc}", f"/image {img}"):
            app.composer.text = line
            await pilot.press("enter")
            await pilot.pause(0.2)
        assert app.messages == [] and app.generating is None  # nothing sent yet
        assert app.attachments.images == [img.resolve()] and list(app.attachments.documents) == [doc.resolve()]
        assert app.composer.text == ""
        await send(pilot, "What is on Tuesday?")
        user = History().messages(app.conversation.id)[0]
        assert user.content == "What is on Tuesday?"
        assert sorted(a.kind for a in user.attachments) == ["document", "image"]


async def settings_saved_with(pilot, **values) -> str:
    """Open F2, type ``values`` into its inputs, press Ctrl+S; returns the error line shown
    (empty when the screen closed)."""
    from textual.widgets import Input, Static

    from magimac.tui.settings_screen import SettingsScreen

    app = pilot.app
    await pilot.press("f2")
    await pilot.pause(0.2)
    screen = app.screen
    assert isinstance(screen, SettingsScreen)
    for key, value in values.items():
        screen.query_one(f"#{key}", Input).value = value
    await pilot.press("ctrl+s")
    await pilot.pause(0.2)
    if app.screen is not screen:
        return ""
    error = str(screen.query_one("#settings-error", Static).render())
    await pilot.press("escape")
    await pilot.pause(0.2)
    return error


async def test_settings_refuse_what_magimac_chat_refuses(engine, scripted_checkpoint):
    app = app_for(engine, scripted_checkpoint)
    async with app.run_test(size=(100, 30)) as pilot:
        await send(pilot, "Hi")
        for key, value, expected in [("top_p", "5", "Top-p"), ("top_p", "0", "Top-p"),
                                     ("temperature", "nan", "Temperature"), ("temperature", "inf", "Temperature"),
                                     ("max_tokens", "0", "Max tokens"),
                                     ("model", "no-such-model", "unknown model 'no-such-model'")]:
            error = await settings_saved_with(pilot, **{key: value})
            assert expected in error, (key, value, error)
        assert History().conversation(app.conversation.id).settings == {}  # nothing was saved
        assert await settings_saved_with(pilot, top_p="0.9", temperature="0", max_tokens="64") == ""
        saved = History().conversation(app.conversation.id).settings
        assert (saved["top_p"], saved["temperature"], saved["max_tokens"]) == (0.9, 0.0, 64)
        await send(pilot, "Hi again")  # the model is still there and answers
        assert app.messages[-1].finish_reason in ("stop", "length") and app.loaded is not None


async def test_the_settings_form_sets_every_number_of_the_table_and_the_turn_uses_them(
        fake_engine, scripted_checkpoint):
    """The form has a field for each row of `SETTINGS` (top-k, min-p, repetition penalty and the
    seed included); what is saved there reaches the engine with the next message."""
    app = app_for(fake_engine, scripted_checkpoint)
    async with app.run_test(size=(100, 30)) as pilot:
        await send(pilot, "Hi")
        values = dict(top_k="40", min_p="0.05", repetition_penalty="1.15", seed="7", temperature="2")
        assert await settings_saved_with(pilot, **values) == ""
        await send(pilot, "Hi again")
        used = fake_engine.settings[-1]
        assert (used.top_k, used.min_p, used.repetition_penalty, used.seed, used.temperature) == (40, 0.05, 1.15, 7, 2.0)
        assert "Temperature: must be a number in [0, 2], got 2.5" in await settings_saved_with(pilot, temperature="2.5")


def test_a_number_saved_outside_todays_range_is_left_unset():
    """A temperature of 5 saved by an older magimac (whose form allowed any number >= 0) no longer
    reaches the engine, or a server that would refuse the turn."""
    from magimac.tui.settings_screen import generation_settings

    s = generation_settings({"temperature": 5.0, "seed": 7, "top_k": -1})
    assert (s.temperature, s.seed, s.top_k) == (None, 7, 0)


async def test_hiding_the_sidebar_while_searching_sends_typing_to_the_composer(fake_engine, scripted_checkpoint):
    app = app_for(fake_engine, scripted_checkpoint)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: app.loaded is not None)
        await pilot.press("ctrl+f", "ctrl+b")  # hide the sidebar while typing in its search box
        await pilot.press(*"abc")
        await pilot.pause(0.2)
        assert not app.sidebar.display
        assert app.composer.text == "abc" and app.sidebar.query_one("#search").value == ""


async def test_escape_drops_waiting_attachments_and_cancelling_an_edit_drops_its_own(
        engine, scripted_checkpoint, tmp_path):
    doc = tmp_path / "wrong.md"
    doc.write_text("# The wrong file\n", encoding="utf-8")
    app = app_for(engine, scripted_checkpoint)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: app.loaded is not None)
        app.composer.text = f"/file {doc}"
        await pilot.press("enter")
        await pilot.pause(0.2)
        assert app.query_one("#attachments").display and "Esc" in str(app.query_one("#attachments").render())
        await pilot.press("escape")  # attached the wrong file: Esc takes it back
        await pilot.pause(0.2)
        assert app.attachments.documents == {} and not app.query_one("#attachments").display
        await send(pilot, "Hi")
        assert History().messages(app.conversation.id)[0].attachments == []

        await send(pilot, f"Read this\n/file {doc}")
        await pilot.press("ctrl+l")  # edit it, then think better of it
        await pilot.pause(0.2)
        assert list(app.attachments.documents) == [doc.resolve()]
        await pilot.press("escape")
        await pilot.pause(0.2)
        assert app.editing_from is None and app.composer.text == "" and app.attachments.documents == {}
        await send(pilot, "Hi again")  # a new message, without the edited one's attachment
        assert History().messages(app.conversation.id)[-2].attachments == []


async def test_a_failed_turn_leaves_the_last_real_numbers_in_the_status_bar(fake_engine, scripted_checkpoint):
    history = History()
    conv = history.new_conversation("failed", {})
    history.add_message(conv.id, "user", "Hi")
    history.add_message(conv.id, "assistant", "Hello", stats={"prompt_tokens": 40, "answer_tokens": 2,
                                                             "ttft_s": 0.25, "decode_tps": 21.5},
                        finish_reason="stop")
    history.add_message(conv.id, "user", "a message too long for the context")
    history.add_message(conv.id, "assistant", "", stats={"prompt_tokens": 0, "ttft_s": 0.0, "decode_tps": 0.0,
                                                        "error": "the prompt is too long"},
                        finish_reason="error")
    app = app_for(fake_engine, scripted_checkpoint)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: app.loaded is not None)
        await pilot.pause(0.2)
        status = app.status.render()
        assert "ctx 42/" in status and "TTFT 0.25 s" in status and "21.5 tok/s" in status
