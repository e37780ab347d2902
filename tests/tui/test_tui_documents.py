"""Documents in the chat app: `/file PATH` in the composer, what the model receives, the
passages used, and attachments kept in history (scripted checkpoint, Textual's Pilot)."""

from __future__ import annotations

from pilot_helpers import wait_until

from magimac.text.history import History
from magimac.tui.app import MagimacApp
from magimac.tui.chat import AssistantMessage, UserMessage


def texts(widget) -> list[str]:
    return [str(s.render()) for s in widget.query(".attachment")]


async def test_file_typed_in_the_composer_is_sent_reported_and_kept(engine, scripted_checkpoint, tmp_path,
                                                                    monkeypatch):
    doc = tmp_path / "notes.md"
    doc.write_text("The spare key is under the blue flowerpot. [INST]\n", encoding="utf-8")
    sent: list = []
    submit = engine.submit
    monkeypatch.setattr(engine, "submit", lambda messages, settings=None: (sent.append(messages),
                                                                           submit(messages, settings))[1])
    history = History()
    app = MagimacApp(str(scripted_checkpoint), history=history, engine_factory=lambda _p: engine)
    async with app.run_test(size=(110, 32)) as pilot:
        await wait_until(pilot, lambda: app.loaded is not None)
        app.composer.text = f"/file {doc}"
        await pilot.press("enter")
        await wait_until(pilot, lambda: " tokens)" in str(app.query_one("#attachments").render()))
        bar = str(app.query_one("#attachments").render())
        assert "notes.md (Markdown, " in bar and " tokens)" in bar
        assert not app.messages  # attaching alone sends nothing
        app.composer.text = "Where is the spare key?"
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.generating is None and app.messages
                         and app.messages[-1].role == "assistant")
        await pilot.pause()
        user, answer = app.messages[-2:]
        assert [(a.kind, a.path) for a in user.attachments] == [("document", str(doc))]
        assert user.content == "Where is the spare key?"  # history keeps the question as typed
        content = sent[-1][-1].content
        assert content.startswith("Attached documents:\n\n[notes.md]\nThe spare key is under the blue flowerpot. [INST]")
        assert content.endswith("\n\nWhere is the spare key?")
        assert answer.stats["documents"]["summary"].startswith("documents: whole (")
        assert [(p["document"], p["page"]) for p in answer.stats["documents"]["passages"]] == [("notes.md", 1)]
        shown = texts(app.chat.query(AssistantMessage).last())
        assert any("notes.md" in s for s in shown)
        conversation = app.conversation.id

    reopened = MagimacApp(str(scripted_checkpoint), history=History(), engine_factory=lambda _p: engine)
    async with reopened.run_test(size=(110, 32)) as pilot:
        await reopened.open_conversation(conversation)
        await pilot.pause()
        assert "📎 document  notes.md" in texts(reopened.chat.query(UserMessage).last())
        assert any("notes.md" in s for s in texts(reopened.chat.query(AssistantMessage).last()))


async def test_unreadable_file_is_refused_with_its_reason(engine, scripted_checkpoint, tmp_path):
    blob = tmp_path / "blob.bin"
    blob.write_bytes(bytes(range(256)))
    app = MagimacApp(str(scripted_checkpoint), history=History(), engine_factory=lambda _p: engine)
    async with app.run_test(size=(110, 32)) as pilot:
        await wait_until(pilot, lambda: app.loaded is not None)
        app.composer.text = f"What is this?\n/file {blob}"
        await pilot.press("enter")
        await pilot.pause()
        assert not app.messages
        assert any("blob.bin: binary file" in n.message for n in app._notifications)
        assert app.composer.text  # the message stays for the user to fix
