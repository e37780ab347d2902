"""A long conversation opens with only its newest messages mounted; earlier ones come back
with the "↑ N earlier messages" button, and a new message trims the view again."""

from __future__ import annotations

from magimac.testing.checkpoint import Script

from magimac.text.history import History
from magimac.tui.app import MagimacApp
from magimac.tui.chat import WINDOW_MESSAGES, AssistantMessage, EarlierMessages, UserMessage

from pilot_helpers import wait_until


def shown(app) -> list[str]:
    """The stored text of each message widget in the view, top to bottom."""
    return [w.message.content for w in app.chat.children if isinstance(w, (UserMessage, AssistantMessage))]


def button_label(app) -> str | None:
    buttons = list(app.chat.query(EarlierMessages))
    return str(buttons[0].label) if buttons else None


async def test_long_conversation_is_windowed_and_pages_back(engine, scripted_checkpoint):
    assert WINDOW_MESSAGES == 6
    history = History()
    conv = history.new_conversation("long", {})
    texts = []
    for i in range(8):
        history.add_message(conv.id, "user", f"question {i}")
        history.add_message(conv.id, "assistant", f"answer {i}", reasoning=f"thinking {i}")
        texts += [f"question {i}", f"answer {i}"]
    app = MagimacApp(str(scripted_checkpoint), engine_factory=lambda _p: engine)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: app.loaded is not None)
        await app.open_conversation(conv.id)
        await pilot.pause()
        assert shown(app) == texts[-6:]
        assert button_label(app) == "↑ 10 earlier messages (click or Enter to show)"

        await pilot.click(EarlierMessages)
        await pilot.pause()
        assert shown(app) == texts[-12:]
        assert button_label(app) == "↑ 4 earlier messages (click or Enter to show)"
        app.chat.query_one(EarlierMessages).focus()
        await pilot.pause(0.3)  # a Button ignores presses during its 0.2 s press animation
        await pilot.press("enter")
        await pilot.pause()
        assert shown(app) == texts
        assert button_label(app) is None
        assert app.focused is app.chat  # a further Enter opens no reasoning block by accident
        await pilot.press("enter")
        await pilot.pause()
        assert all(a.reasoning.collapsed for a in app.chat.query(AssistantMessage))

        app.composer.focus()
        app.composer.text = "Hi"
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.generating is None and app.messages[-1].role == "assistant")
        await pilot.pause()
        assert shown(app) == texts[-4:] + ["Hi", Script().answer]
        assert button_label(app) == "↑ 12 earlier messages (click or Enter to show)"
        assert app.chat.at_end
        # the whole conversation is still what the model is given and what history holds
        assert [m.content for m in app.messages] == texts + ["Hi", Script().answer]
        assert len(history.messages(conv.id)) == 18


async def test_a_conversation_opens_at_the_end_of_its_long_last_answer(engine, scripted_checkpoint):
    history = History()
    conv = history.new_conversation("long answer", {})
    history.add_message(conv.id, "user", "Tell me everything")
    history.add_message(conv.id, "assistant", "\n\n".join(f"Paragraph {i} of a long answer." for i in range(60))
                        + "\n\nThe very last line.")
    app = MagimacApp(str(scripted_checkpoint), engine_factory=lambda _p: engine)
    async with app.run_test(size=(80, 24)) as pilot:  # the app opens the latest conversation
        await wait_until(pilot, lambda: app.loaded is not None and app.conversation is not None)
        await pilot.pause(0.5)
        assert app.chat.max_scroll_y > 50  # the answer is many screens long
        last = app.chat.query(AssistantMessage).last().markdown.children[-1]
        assert "The very last line." in str(last.render())
        assert app.chat.at_end and app.chat.region.contains_region(last.region)
        await pilot.resize_terminal(60, 20)  # re-wrapped: still at the end
        await pilot.pause(0.5)
        assert app.chat.at_end
        app.chat.scroll_to(y=10, animate=False)  # the person scrolls up: the view stays there
        await pilot.pause(0.2)
        await pilot.resize_terminal(80, 24)
        await pilot.pause(0.5)
        assert not app.chat.at_end


async def test_an_answer_with_only_reasoning_says_so(engine, scripted_checkpoint):
    history = History()
    conv = history.new_conversation("thoughts only", {})
    history.add_message(conv.id, "user", "Hmm?")
    history.add_message(conv.id, "assistant", "", reasoning="Let me think it over.", finish_reason="stop")
    app = MagimacApp(str(scripted_checkpoint), engine_factory=lambda _p: engine)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: app.loaded is not None and app.conversation is not None)
        answer = app.chat.query(AssistantMessage).last()
        assert answer.reasoning.display
        assert answer.note.display and "no answer after the reasoning" in str(answer.note.render())


async def test_scrolling_up_while_an_answer_streams_keeps_the_view_there(endless_engine, random_checkpoint):
    history = History()
    conv = history.new_conversation("reading back", {})
    for i in range(3):
        history.add_message(conv.id, "user", f"question {i}")
        history.add_message(conv.id, "assistant", "\n\n".join(f"answer {i} part {j}" for j in range(10)))
    app = MagimacApp(str(random_checkpoint), engine_factory=lambda _p: endless_engine)

    async def some_batches():
        n = app.ui_updates
        await wait_until(pilot, lambda: app.ui_updates >= n + 5)
        await pilot.pause(0.1)

    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: app.loaded is not None and app.conversation is not None)
        app.composer.text = "Go on"
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.generating is not None)
        await some_batches()
        assert app.chat.at_end
        app.chat.focus()
        await pilot.press("down")  # down at the end: still following
        await some_batches()
        assert app.chat.at_end
        await pilot.press("up")  # one line up from the end: the view stays there
        await some_batches()
        y = app.chat.scroll_y
        await some_batches()  # the answer grows below
        assert app.chat.scroll_y == y and app.chat.max_scroll_y > y + 1
        await pilot.press("pageup")
        await some_batches()
        assert app.chat.scroll_y < y - 5
        await pilot.press("end")  # back at the end: it follows the answer again
        await some_batches()
        assert app.chat.at_end
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.generating is None)



async def test_page_keys_in_the_composer_scroll_the_conversation(engine, scripted_checkpoint):
    history = History()
    conv = history.new_conversation("long answer", {})
    history.add_message(conv.id, "user", "Tell me everything")
    history.add_message(conv.id, "assistant", "\n\n".join(f"Paragraph {i}." for i in range(60)))
    app = MagimacApp(str(scripted_checkpoint), engine_factory=lambda _p: engine)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: app.loaded is not None and app.conversation is not None)
        await pilot.pause(0.3)
        app.composer.focus()
        app.composer.text = "draft"
        end = app.chat.scroll_y
        await pilot.press("pageup", "pageup")
        await pilot.pause(0.2)
        assert app.chat.scroll_y < end - 10 and app.focused is app.composer and app.composer.text == "draft"
        await pilot.press("pagedown", "pagedown", "pagedown")
        await pilot.pause(0.2)
        assert app.chat.at_end
