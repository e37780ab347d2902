"""What a new user hit in the app (issue 31), on a fake engine: closing the search, a dialog or a
screen leaves the keys with the message box; F8 turns reasoning off and on; exports go to one place."""

from __future__ import annotations

import pytest

from magimac.tui.screens import Confirm, HelpScreen
from magimac.tui.settings_screen import SettingsScreen
from pilot_helpers import app_for, screen_lines, send, wait_until


async def typed_after_closing(pilot, open_keys: list[str], screen_type=None) -> str:
    """Open with ``open_keys``, close with Esc, type "hi": what the message box holds."""
    app = pilot.app
    for key in open_keys:
        await pilot.press(key)
    if screen_type is not None:
        await wait_until(pilot, lambda: isinstance(app.screen, screen_type))
    await pilot.pause()
    await pilot.press("escape")
    if screen_type is not None:
        await wait_until(pilot, lambda: not isinstance(app.screen, screen_type))
    await pilot.pause()
    await pilot.press("h", "i")
    await pilot.pause()
    return app.composer.text


@pytest.mark.parametrize("opened", ["search", "settings", "help", "dialog"])
async def test_closing_search_dialog_or_screen_gives_the_keys_back_to_the_message_box(
        fake_engine, scripted_checkpoint, opened):
    app = app_for(fake_engine, scripted_checkpoint)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: app.loaded is not None)
        app.sidebar.query_one("#search").focus()  # the focus is elsewhere when the dialog opens
        await pilot.pause()
        keys, screen = {"search": (["ctrl+f"], None), "settings": (["f2"], SettingsScreen),
                        "help": (["f1"], HelpScreen), "dialog": ([], Confirm)}[opened]
        if opened == "dialog":
            app.push_screen(Confirm("Sure?"))
        assert await typed_after_closing(pilot, keys, screen) == "hi"
        assert app.focused is app.composer


async def test_f8_turns_reasoning_off_and_on_for_the_conversation_and_it_is_kept(fake_engine, scripted_checkpoint):
    app = app_for(fake_engine, scripted_checkpoint)
    async with app.run_test(size=(120, 30)) as pilot:
        assert "F8 reasoning off/on" in " ".join(" ".join(screen_lines(app)).split())  # the empty chat's keys
        await send(pilot, "Hi")
        assert "reasoning off" not in app.status.render()
        await pilot.press("f8")
        await pilot.pause()
        assert "reasoning off (F8)" in app.status.render()
        await send(pilot, "Again, at once")
        assert [s.reasoning_budget for s in fake_engine.settings] == [None, 0]
        conversation = app.conversation.id
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert "reasoning off" not in app.status.render()  # a new conversation reasons
        await pilot.press("f1")
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen))
        assert any("F8" in line and "reasoning off, on" in line for line in screen_lines(app))
    app = app_for(fake_engine, scripted_checkpoint)
    async with app.run_test(size=(120, 30)) as pilot:  # a new app opens the last conversation
        await wait_until(pilot, lambda: app.conversation is not None and app.conversation.id == conversation)
        await pilot.pause()
        assert "reasoning off (F8)" in app.status.render()
        await pilot.press("f8")
        await send(pilot, "Think again")
        assert fake_engine.settings[-1].reasoning_budget is None and "reasoning off" not in app.status.render()


async def test_ctrl_s_exports_into_the_data_directory_and_says_the_full_path(fake_engine, scripted_checkpoint,
                                                                              tmp_path, monkeypatch):
    from magimac.core import paths

    started_in = tmp_path / "a-git-clone"
    started_in.mkdir()
    monkeypatch.chdir(started_in)
    app = app_for(fake_engine, scripted_checkpoint)
    async with app.run_test(size=(100, 30)) as pilot:
        await send(pilot, "Hi")
        await pilot.press("ctrl+s")
        await pilot.pause()
        [path] = paths.exports_dir().glob("*.md")
        assert paths.exports_dir() == paths.data_dir() / "exports" and path.is_absolute()
        assert any(n.message == f"Exported to {path}" for n in app._notifications)
        assert list(started_in.iterdir()) == []
