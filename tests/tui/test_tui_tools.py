"""Tool calls in the app: the permission dialog, folded call blocks, history, export, search."""

from __future__ import annotations

from magimac.testing.fake_engine import FakeEngine
from magimac.text.export import conversation_markdown
from magimac.tui.tool_blocks import PermissionScreen, ToolBlock

from pilot_helpers import app_for, screen_lines, send, wait_until

PY = ("python", '{"code": "print(347 * 29)"}')


async def ask_and_answer(pilot, key: str) -> None:
    app = pilot.app
    await wait_until(pilot, lambda: app.loaded is not None)
    app.composer.text = "What is 347 x 29?"
    await pilot.press("enter")
    await wait_until(pilot, lambda: isinstance(app.screen, PermissionScreen))
    await pilot.pause()  # let the dialog be drawn
    pilot.app.permission_lines = screen_lines(app)
    await pilot.press(key)
    await wait_until(pilot, lambda: app.generating is None and app.messages and app.messages[-1].role == "assistant")
    await pilot.pause()


async def test_a_python_call_is_asked_shown_folded_stored_exported_and_found(tmp_path, scripted_checkpoint):
    engine = FakeEngine(answer="347 x 29 = 10063.", tool_rounds=[[PY]])
    app = app_for(engine, scripted_checkpoint, export_dir=tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await ask_and_answer(pilot, "o")
        shown = "\n".join(app.permission_lines)
        assert "Magistral wants to run python" in shown and "print(347 * 29)" in shown
        assert "Allow once (o)" in shown and "Deny (d)" in shown
        assert [m.role for m in app.messages] == ["user", "assistant", "tool", "assistant"]
        assert app.messages[2].content == "10063" and app.messages[-1].content == "347 x 29 = 10063."
        (block,) = app.chat.query(ToolBlock)
        assert block.collapsed and str(block.title).startswith("Ran python · ")
        lines = "\n".join(screen_lines(app))
        assert "Ran python" in lines and "10063" in lines
        app.screen_80x24 = screen_lines(app)
        # stored: reopening the conversation shows the same block; the next turn sends the call
        await app.open_conversation(app.conversation.id)
        await pilot.pause()
        assert len(app.chat.query(ToolBlock)) == 1
        sent = [m.to_message() for m in app.messages]
        assert sent[1].tool_calls[0]["name"] == "python" and sent[2].tool_call_id == sent[1].tool_calls[0]["id"]
        hits = app.history.search("10063")
        assert {h.role for h in hits} >= {"tool"}
        assert app.history.search("print")  # the code is found too
        md = conversation_markdown(app.conversation, app.history.messages(app.conversation.id))
    assert "<summary>Ran python" in md and "print(347 * 29)" in md and "10063" in md


async def test_a_denied_call_goes_back_to_the_model_and_allow_for_conversation_is_kept(scripted_checkpoint):
    engine = FakeEngine(tool_rounds=[[PY]])
    app = app_for(engine, scripted_checkpoint)
    async with app.run_test(size=(80, 24)) as pilot:
        await ask_and_answer(pilot, "d")
        assert app.messages[2].content == "error: the person did not allow this call"
        assert str(app.chat.query_one(ToolBlock).title) == "python not allowed"
        engine.tool_rounds = [[PY]]
        app.composer.text = "Again"
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, PermissionScreen))
        await pilot.press("a")
        await wait_until(pilot, lambda: app.generating is None and app.messages[-1].role == "assistant")
        assert app.conversation.settings["allowed_tools"] == ["python"]


async def test_unknown_tool_and_malformed_arguments_need_no_permission(scripted_checkpoint):
    engine = FakeEngine(tool_rounds=[[("calculator", "{}"), ("python", '{"code": ')]])
    app = app_for(engine, scripted_checkpoint)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: app.loaded is not None)
        app.composer.text = "Hi"
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.generating is None and app.messages and app.messages[-1].role == "assistant")
        results = [m.content for m in app.messages if m.role == "tool"]
        assert results[0].startswith("error: there is no tool named 'calculator'")
        assert results[1].startswith("error: the arguments are not valid JSON")
        assert [str(b.title) for b in app.chat.query(ToolBlock)] == ["calculator failed · 0.0 s", "python failed · 0.0 s"]


async def test_the_scripted_model_calls_python_through_the_app(tool_engine, tool_checkpoint):
    app = app_for(tool_engine, tool_checkpoint)
    async with app.run_test(size=(80, 24)) as pilot:
        await ask_and_answer(pilot, "o")
        assert [m.content for m in app.messages[2:]] == ["42", "Got it!"]
        stats = app.messages[-1].stats
        assert stats["prompt_tokens"] - stats["cached_tokens"] == 2 + tool_engine.count_tokens("42")
        assert "Ran python" in "\n".join(screen_lines(app))


async def test_the_bundled_demo_calls_python_in_the_app_and_answers_with_the_result():
    """The demo (nothing installed), python on by default: the dialog, allow once, the answer."""
    from magimac.tui.app import MagimacApp

    app = MagimacApp(None)
    async with app.run_test(size=(80, 24)) as pilot:
        # The app samples at the registry's 0.7 / 0.95; a conversation's seed makes each turn
        # repeatable (its own random key; MLX's global seed is shared with whatever else samples).
        app.conversation = app.history.new_conversation("New chat", {"seed": 1})
        await ask_and_answer(pilot, "o")
        shown = "\n".join(app.permission_lines)
        assert "Magistral wants to run python" in shown and "print(347 * 29)" in shown
        assert "347×29: a 3-digit by 2-digit product" in shown  # the reasoning, above the dialog
        assert [m.role for m in app.messages] == ["user", "assistant", "tool", "assistant"]
        assert app.messages[2].content == "10063" and "10063" in app.messages[-1].content
        lines = "\n".join(screen_lines(app))
        assert "▶ Ran python · " in lines and "347 × 29 = 10063" in lines
        app.screen_80x24 = screen_lines(app)
        for q in ("What is 45 + 27?", "Who wrote Hamlet?"):  # no call needed: no dialog
            app.composer.text = q
            await pilot.press("enter")
            await wait_until(pilot, lambda: app.generating is None and app.messages[-1].role == "assistant"
                             and app.messages[-2].content == q)
        assert not isinstance(app.screen, PermissionScreen) and len(app.chat.query(ToolBlock)) == 1
        assert "72" in app.messages[-3].content
        assert app.messages[-1].content.startswith("I am magimac's small demo model")


async def test_a_call_of_a_tool_not_offered_is_a_notice_and_never_runs(scripted_checkpoint, monkeypatch):
    monkeypatch.setattr("magimac.tui.tool_use.DEFAULT_TOOLS", ())  # a conversation with tools off
    engine = FakeEngine(tool_rounds=[[PY]])
    app = app_for(engine, scripted_checkpoint)
    async with app.run_test(size=(80, 24)) as pilot:
        await send(pilot, "What is 347 x 29?")
        assert [str(b.title) for b in app.chat.query(ToolBlock)] == ["python not run (not offered)"]
        assert [n.message for n in app._notifications][-1] == (
            "The model called python, a tool this conversation does not offer: it was not run (F2 turns tools on)")
        assert [m.role for m in app.messages] == ["user", "assistant"] and len(engine.submitted) == 1


async def test_control_sequences_in_an_answer_never_reach_the_terminal(scripted_checkpoint):
    """Textual writes text as it is but for BEL, BS, VT, FF and CR: the app's line filter takes
    the ESC of ``ESC ] 0 ; TITLE`` (and every other control) out before the terminal sees it."""
    engine = FakeEngine(answer="Hi \x1b]0;TITLE\x07 there \x9b2J")
    app = app_for(engine, scripted_checkpoint)
    async with app.run_test(size=(80, 24)) as pilot:
        await send(pilot, "Hi")
        update = app.screen._compositor.render_update(full=True)
        written = "".join(update.render_segments(app.console))  # what the driver writes to the terminal
        assert "]0;TITLE" in written and "\x1b]0;" not in written and "\x9b" not in written
