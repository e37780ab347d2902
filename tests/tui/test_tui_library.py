"""Libraries in the app: `/library NAME` in the composer, the cited passages above the answer,
and a citation opening its passage (file path, page, text), also after a restart."""

from __future__ import annotations

from pilot_helpers import wait_until

from magimac.testing.library_corpus import LIGHTHOUSE_PAGE, write_corpus
from magimac.text.history import History
from magimac.text.library import index
from magimac.tui.app import MagimacApp
from magimac.tui.chat import AssistantMessage
from magimac.tui.citations import Citations, PassageScreen


async def test_library_passages_are_cited_and_open(engine, scripted_checkpoint, tmp_path, monkeypatch):
    docs = write_corpus(tmp_path / "docs")
    index.add("docs", [docs])
    sent: list = []
    submit = engine.submit
    monkeypatch.setattr(engine, "submit", lambda messages, settings=None: (sent.append(messages),
                                                                           submit(messages, settings))[1])
    app = MagimacApp(str(scripted_checkpoint), history=History(), engine_factory=lambda _p: engine)
    async with app.run_test(size=(110, 32)) as pilot:
        await wait_until(pilot, lambda: app.loaded is not None)
        app.composer.text = "/library nope"
        await pilot.press("enter")
        await pilot.pause()
        assert any("no library named 'nope'" in n.message for n in app._notifications)
        app.composer.text = "/library docs\nWho was the lighthouse keeper of Ushant Island?"
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.generating is None and app.messages
                         and app.messages[-1].role == "assistant")
        await pilot.pause()
        assert app.conversation.settings["libraries"] == ["docs"]
        assert sent[-1][-1].content.startswith("Passages from the person's document library")
        assert f"[1] ledger.pdf, page {LIGHTHOUSE_PAGE}\nThe lighthouse keeper" in sent[-1][-1].content
        cites = app.chat.query(AssistantMessage).last().query(Citations).first()
        button = cites.query("Button").first()
        assert str(button.label).startswith(f"[1] ledger.pdf p.{LIGHTHOUSE_PAGE} · ")
        button.press()
        await wait_until(pilot, lambda: isinstance(app.screen, PassageScreen))
        where = str(app.screen.query_one("#passage-where").render())
        assert where == f"[1] {docs / 'ledger.pdf'}, page {LIGHTHOUSE_PAGE}"
        assert "Marguerite Le Bris" in str(app.screen.query_one("#passage-text Static").render())
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, PassageScreen)
        conversation = app.conversation.id

    reopened = MagimacApp(str(scripted_checkpoint), history=History(), engine_factory=lambda _p: engine)
    async with reopened.run_test(size=(110, 32)) as pilot:
        await reopened.open_conversation(conversation)
        await pilot.pause()
        cites = reopened.chat.query(AssistantMessage).last().query(Citations).first()
        cites.query("Button").first().press()
        await wait_until(pilot, lambda: isinstance(reopened.screen, PassageScreen))
        assert "Marguerite Le Bris" in str(reopened.screen.query_one("#passage-text Static").render())


async def test_a_library_chosen_in_the_settings_is_searched(engine, scripted_checkpoint, tmp_path, monkeypatch):
    from textual.widgets import Input

    from magimac.tui.settings_screen import SettingsScreen

    index.add("docs", [write_corpus(tmp_path / "docs")])
    sent: list = []
    submit = engine.submit
    monkeypatch.setattr(engine, "submit", lambda messages, settings=None: (sent.append(messages),
                                                                           submit(messages, settings))[1])
    app = MagimacApp(str(scripted_checkpoint), history=History(), engine_factory=lambda _p: engine)
    async with app.run_test(size=(110, 40)) as pilot:
        await wait_until(pilot, lambda: app.loaded is not None)
        await pilot.press("f2")
        await wait_until(pilot, lambda: isinstance(app.screen, SettingsScreen))
        app.screen.query_one("#libraries", Input).value = "docs, nope"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert isinstance(app.screen, SettingsScreen)  # refused, with the reason
        assert "Libraries: no library named 'nope' (libraries: docs)" in str(
            app.screen.query_one("#settings-error").render())
        app.screen.query_one("#libraries", Input).value = "docs"
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: not isinstance(app.screen, SettingsScreen))
        assert app.conversation.settings["libraries"] == ["docs"]
        await wait_until(pilot, lambda: app.loaded is not None)
        app.composer.text = "Who was the lighthouse keeper of Ushant Island?"
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.generating is None and app.messages
                         and app.messages[-1].role == "assistant")
        assert "Marguerite Le Bris" in sent[-1][-1].content


async def test_a_citation_in_the_answer_is_a_link_to_its_passage(tmp_path, scripted_checkpoint):
    from textual.widgets import Markdown

    from magimac.testing.fake_engine import FakeEngine

    docs = write_corpus(tmp_path / "docs")
    index.add("docs", [docs])
    engine = FakeEngine(answer="She lit it from 1911 [1]; see `[1]` and [2].")
    app = MagimacApp(str(scripted_checkpoint), history=History(), engine_factory=lambda _p: engine)
    async with app.run_test(size=(110, 32)) as pilot:
        await wait_until(pilot, lambda: app.loaded is not None)
        app.composer.text = "/library docs\nWho was the lighthouse keeper of Ushant Island?"
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.generating is None and app.messages
                         and app.messages[-1].role == "assistant")
        await pilot.pause()
        md = app.chat.query(AssistantMessage).last().markdown
        assert md.source == r"She lit it from 1911 [\[1\]](cite:1); see `[1]` and [2]."  # only passage 1 was sent
        md.post_message(Markdown.LinkClicked(md, "cite:1"))
        await wait_until(pilot, lambda: isinstance(app.screen, PassageScreen))
        assert str(app.screen.query_one("#passage-where").render()) == \
            f"[1] {docs / 'ledger.pdf'}, page {LIGHTHOUSE_PAGE}"
