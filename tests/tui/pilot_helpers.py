"""Helpers for driving the app with Textual's Pilot (imported by the tests of this folder)."""

from __future__ import annotations

from magimac.tui.app import MagimacApp
from magimac.tui.chat import AssistantMessage


def app_for(engine, checkpoint, **kw) -> MagimacApp:
    """The app on ``checkpoint`` with ``engine`` (already loaded; the app neither starts nor closes it)."""
    return MagimacApp(str(checkpoint), engine_factory=lambda _path: engine, **kw)


async def wait_until(pilot, cond, steps: int = 600) -> None:
    """Let the app run until ``cond()`` holds (bounded number of short pauses)."""
    for _ in range(steps):
        if cond():
            return
        await pilot.pause(0.05)
    raise AssertionError("the app did not reach the expected state")


async def send(pilot, text: str) -> None:
    """Type ``text`` into the composer, press Enter and wait for the whole answer."""
    app = pilot.app
    await wait_until(pilot, lambda: app.loaded is not None)
    app.composer.text = text
    await pilot.press("enter")
    await wait_until(pilot, lambda: app.generating is None and app.messages and app.messages[-1].role == "assistant")
    await pilot.pause()


def answers(app) -> list[AssistantMessage]:
    """The answers in the conversation view, top to bottom."""
    return list(app.chat.query(AssistantMessage))


def screen_lines(app) -> list[str]:
    """The text on the terminal, one string per row."""
    return [strip.text for strip in app.screen._compositor.render_strips()]
