"""The app at its smallest size and its small promises (scripted checkpoint, Textual's Pilot):
notifications leave the composer visible at 80x24, the help fits there and names `/file`,
exports name the model that answered, and a document's token count arrives without
blocking the UI."""

from __future__ import annotations

import threading

from magimac.testing.checkpoint import Script
from pilot_helpers import app_for, screen_lines, send, wait_until
from textual.widgets import Static
from textual.widgets._toast import Toast

from magimac.text.history import History
from magimac.tui.screens import HelpScreen


async def test_notifications_leave_the_composer_visible_at_80x24(fake_engine, scripted_checkpoint):
    app = app_for(fake_engine, scripted_checkpoint)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await wait_until(pilot, lambda: app.loaded is not None)
        app.composer.text = "What is in this picture?\n/image /nonexistent.png"
        await pilot.press("enter")
        for i in range(4):  # a pile of them, too
            app.notify(f"notification {i}: a message long enough to wrap over two lines of a toast")
        await wait_until(pilot, lambda: len(app.screen.query(Toast)) == 5)
        await pilot.pause(0.2)
        composer = app.composer.region
        shown = [t.region.intersection(app.screen.region) for t in app.screen.query(Toast)]
        assert shown[-1].area  # the newest is on screen...
        assert all(not r.overlaps(composer) for r in shown)  # ...and none over the composer
        assert app.composer.text.startswith("What is in this picture?")


async def test_help_fits_at_80x24_down_to_its_last_line(fake_engine, scripted_checkpoint):
    app = app_for(fake_engine, scripted_checkpoint)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f1")
        await pilot.pause(0.2)
        assert isinstance(app.screen, HelpScreen)
        shown = "\n".join(screen_lines(app))
        for line in ("Enter", "Ctrl+P", "Ctrl+Q", "quit", "Esc closes"):  # first to last, no scrolling
            assert line in shown


async def test_help_scrolls_to_its_last_line_when_the_terminal_is_shorter(fake_engine, scripted_checkpoint):
    app = app_for(fake_engine, scripted_checkpoint)
    async with app.run_test(size=(80, 14)) as pilot:
        await pilot.press("f1")
        await pilot.pause(0.2)
        assert "Ctrl+Q" not in "\n".join(screen_lines(app))
        await pilot.press("end")
        await pilot.pause(0.5)
        shown = "\n".join(screen_lines(app))
        assert "Ctrl+Q" in shown and "quit" in shown and "Esc closes" in shown


async def test_help_and_empty_hint_name_file_and_image_commands(fake_engine, scripted_checkpoint):
    app = app_for(fake_engine, scripted_checkpoint)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        hint = str(app.chat.query_one(".empty-hint", Static).render())
        assert "/file PATH" in hint and "/image PATH" in hint and "F3" in hint
        await pilot.press("f1")
        await pilot.pause(0.2)
        rows = [ln.strip(" │") for ln in screen_lines(app)]
        assert any(r.startswith("/file PATH") and "document" in r for r in rows)
        assert any(r.startswith("/image PATH") and "image" in r for r in rows)
        assert any(r.startswith("F3") and "document" in r for r in rows)


async def test_export_names_the_model_that_answered(engine, scripted_checkpoint, tmp_path):
    app = app_for(engine, scripted_checkpoint, export_dir=tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await send(pilot, "Hi")
        label = app.status.model  # the model as the status bar shows it
        assert app.messages[-1].stats["model"] == label
        # an older answer stored without a model name gets the conversation's model
        h = History()
        h.add_message(app.conversation.id, "user", "Again")
        h.add_message(app.conversation.id, "assistant", "Older answer", finish_reason="stop")
        h.add_message(app.conversation.id, "user", "And?")  # one another model wrote keeps its name
        h.add_message(app.conversation.id, "assistant", "Its answer", finish_reason="stop",
                      stats={"model": "Magistral Small 1.2 · 4bit"})
        await pilot.press("ctrl+s")
        await pilot.pause()
        [path] = tmp_path.glob("*.md")
        headings = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.startswith("## ")]
        assert headings == ["## You", f"## {label}", "## You", f"## {label}",
                            "## You", "## Magistral Small 1.2 · 4bit"]
        assert label != "Magistral" and label


async def test_a_document_is_counted_off_the_ui_thread(engine, scripted_checkpoint, tmp_path, monkeypatch):
    doc = tmp_path / "notes.md"
    doc.write_text("The spare key is under the blue flowerpot.\n", encoding="utf-8")
    gate = threading.Event()
    count = engine.count_tokens

    def slow_count(text: str) -> int:  # a huge document: counting takes a while
        gate.wait(5)
        return count(text)

    monkeypatch.setattr(engine, "count_tokens", slow_count)
    app = app_for(engine, scripted_checkpoint)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: app.loaded is not None)
        app.composer.text = f"/file {doc}"
        await pilot.press("enter")
        await pilot.press(*"Where")  # the app takes keys while the count runs
        bar = app.query_one("#attachments", Static)
        assert app.composer.text == "Where"
        assert "notes.md (Markdown) · counting tokens…" in str(bar.render())
        gate.set()
        expected = f"notes.md (Markdown, {count(doc.read_text(encoding='utf-8')):,} tokens)"
        await wait_until(pilot, lambda: expected in str(bar.render()))
        app.composer.text = "Where is the spare key?"
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.generating is None and app.messages
                         and app.messages[-1].role == "assistant")
        assert app.messages[-1].content == Script().answer
        assert [(a.kind, a.path) for a in app.messages[0].attachments] == [("document", str(doc))]
