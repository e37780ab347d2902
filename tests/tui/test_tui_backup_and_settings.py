"""What a new user hit (issue: history left in the WAL after a clean quit, a settings error
printed off-screen, "1 tokens"), on a fake engine where no model is needed."""

from __future__ import annotations

import shutil
import sqlite3

from textual.widgets import Input

from magimac.text.history import default_path
from magimac.tui.reasoning import thinking_title, thought_title
from magimac.tui.settings_screen import SettingsScreen
from pilot_helpers import app_for, screen_lines, send, wait_until


async def test_after_ctrl_q_history_db_alone_holds_the_conversation(fake_engine, scripted_checkpoint, tmp_path):
    app = app_for(fake_engine, scripted_checkpoint)
    async with app.run_test(size=(100, 30)) as pilot:
        await send(pilot, "Back me up")
        await pilot.press("ctrl+q")
        await wait_until(pilot, lambda: not app.is_running)
    backup = tmp_path / "backup.db"
    shutil.copyfile(default_path(), backup)  # the database file only: no -wal, no -shm
    db = sqlite3.connect(backup)
    try:
        rows = db.execute("SELECT role, content FROM messages ORDER BY id").fetchall()
    finally:
        db.close()
    assert ("user", "Back me up") in rows and any(role == "assistant" for role, _ in rows)


async def test_a_settings_error_is_shown_on_screen_at_30_rows(fake_engine, scripted_checkpoint):
    app = app_for(fake_engine, scripted_checkpoint)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: app.loaded is not None)
        await pilot.press("f2")
        await wait_until(pilot, lambda: isinstance(app.screen, SettingsScreen))
        app.screen.query_one("#model", Input).value = "abc"
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: "'abc'" in "\n".join(screen_lines(app)))
        assert isinstance(app.screen, SettingsScreen)  # refused
        shown = "\n".join(screen_lines(app))
        assert "Model: " in shown and "'abc'" in shown, shown
        assert "Save (Ctrl+S)" in shown, shown  # the buttons it refers to are still in view


def test_one_reasoning_token_is_singular():
    assert thinking_title(1, 2) == "Thinking… 1 token · 2 s"
    assert thought_title(1, 3) == "Thought for 3 s · 1 token"
    assert thought_title(1, None) == "Thought · 1 token"
    assert thought_title(2, None) == "Thought · 2 tokens"
    assert thought_title(0, None) == "Thought · 0 tokens"
