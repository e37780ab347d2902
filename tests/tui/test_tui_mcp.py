"""MCP servers' tools in the app (issue 16): started off the UI thread when the app starts,
offered in the conversation's settings next to the built-ins, asked before they run; a server
that fails is a one-line notice."""

from __future__ import annotations

import sys

from textual.widgets import Switch

from magimac.testing.fake_engine import FakeEngine
from magimac.testing.mcp_server import write_mcp_json
from magimac.tui.settings_screen import SettingsScreen
from magimac.tui.tool_blocks import PermissionScreen, ToolBlock

from pilot_helpers import app_for, screen_lines, wait_until


async def test_an_mcp_tool_is_switched_on_in_the_settings_and_called(isolated_dirs, tmp_path, scripted_checkpoint):
    write_mcp_json(isolated_dirs / "config", tmp_path, sys.executable)
    engine = FakeEngine(answer="2 + 3 = 5.", tool_rounds=[[("add", '{"a": 2, "b": 3}')]])
    app = app_for(engine, scripted_checkpoint)
    async with app.run_test(size=(100, 40)) as pilot:
        await wait_until(pilot, lambda: app.loaded is not None and app.mcp is not None, steps=400)
        await pilot.pause()
        notices = [n.message for n in app._notifications]
        assert any(n.startswith("mcp server broken: did not start (") for n in notices), notices
        await pilot.press("f2")
        await wait_until(pilot, lambda: isinstance(app.screen, SettingsScreen))
        switch = app.screen.query_one("#mcp_0", Switch)
        switch.scroll_visible(animate=False)
        await pilot.pause(0.2)
        shown = "\n".join(screen_lines(app))
        assert "Tool python" in shown and "Tool add (mcp server sums): Add two whole numbers." in shown
        assert switch.value is False  # MCP tools are off until switched on
        switch.value = True
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: not isinstance(app.screen, SettingsScreen))
        assert app.conversation.settings["tools"] == ["python", "add"]
        app.composer.text = "Add 2 and 3"
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, PermissionScreen))
        await pilot.pause()
        assert "add" in "\n".join(screen_lines(app)) and '"a": 2' in "\n".join(screen_lines(app))
        await pilot.press("o")
        await wait_until(pilot, lambda: app.generating is None and app.messages[-1].role == "assistant")
        assert [m.content for m in app.messages if m.role == "tool"] == ["5"]
        assert str(app.chat.query_one(ToolBlock).title).startswith("Ran add · ")
        tools = [t.name for t in engine.settings[-1].tools]
        assert tools == ["python", "add"]  # what the model was offered
