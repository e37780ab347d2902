"""What a new user hit in the app (issue 14), on a fake engine where no model is needed:
settings inputs without a box, a sidebar that never folded away, "pull demo" for a mistyped
name, a demo that claimed to be Magistral, and a killed answer's reasoning counted 0 tokens."""

from __future__ import annotations

import threading

import pytest
from textual.widgets import Input, Markdown

from magimac.models.store import DEMO_SCOPE
from magimac.testing.fake_engine import FakeEngine
from magimac.text.history import History
from magimac.tui.app import MagimacApp
from magimac.tui.chat import AssistantMessage
from magimac.tui.screens import MissingModel
from magimac.tui.settings_screen import SettingsScreen
from pilot_helpers import app_for, screen_lines, send, wait_until


@pytest.mark.parametrize("size", [(80, 24), (200, 50)])
async def test_settings_inputs_have_a_box_and_the_switch_label_is_whole(fake_engine, scripted_checkpoint, size):
    app = app_for(fake_engine, scripted_checkpoint)
    async with app.run_test(size=size) as pilot:
        await wait_until(pilot, lambda: app.loaded is not None)
        await pilot.press("f2")
        await wait_until(pilot, lambda: isinstance(app.screen, SettingsScreen))
        await pilot.pause(0.2)
        inputs = {i.id: i for i in app.screen.query(Input)}
        assert {"model", "temperature", "top_p", "max_tokens", "reasoning_budget"} <= set(inputs)
        for key, box in inputs.items():
            assert box.outer_size.height >= 3, (key, box.outer_size)  # a bordered box, not grey text alone
        for label in app.screen.query(".switch-row Label"):
            app.screen.query_one("#settings").scroll_to_widget(label, animate=False)
            await pilot.pause(0.2)
            shown = " ".join(screen_lines(app))
            for word in str(label.render()).split():
                assert word in shown, (word, shown)


async def test_the_sidebar_folds_away_below_70_columns_and_ctrl_b_brings_it_back(fake_engine, scripted_checkpoint):
    app = app_for(fake_engine, scripted_checkpoint)
    async with app.run_test(size=(60, 24)) as pilot:
        await pilot.pause(0.2)
        assert not app.sidebar.display
        await pilot.press("ctrl+b")
        await pilot.pause()
        assert app.sidebar.display
        await pilot.resize_terminal(100, 24)
        await pilot.pause(0.2)
        assert app.sidebar.display
        await pilot.resize_terminal(60, 24)
        await pilot.pause(0.2)
        assert not app.sidebar.display
    app = app_for(fake_engine, scripted_checkpoint)
    async with app.run_test(size=(100, 24)) as pilot:
        await pilot.pause(0.2)
        assert app.sidebar.display and app.sidebar.region.width >= 20


async def test_a_mistyped_model_name_is_called_unknown_with_the_close_matches():
    app = MagimacApp("magistral-smal")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, MissingModel)
        text = app.screen.query_one(Markdown).source
        assert "Unknown model" in text and "unknown model 'magistral-smal'" in text
        assert "did you mean magistral-small-" in text
        assert "No model to chat with" not in text and "pull demo" not in text
        assert app.session is None and app.is_running


async def test_the_missing_model_screen_opens_at_once_and_asks_the_planner_off_the_ui_thread(monkeypatch):
    gate = threading.Event()
    asked = []

    def slow_plan() -> list[str]:  # `magimac plan` takes seconds (it imports MLX, in a subprocess)
        asked.append(threading.current_thread() is threading.main_thread())
        gate.wait(10)
        return ["`magimac pull magistral-small-2509 --quant 5bit`: fits"]

    monkeypatch.setattr("magimac.tui.screens.plan_recommendations", slow_plan)
    app = MagimacApp("magistral-small-2509")  # a known model, not installed
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, MissingModel) and asked)
        screen = app.screen
        assert screen.recommendations is None and asked == [False]
        assert "asking `magimac plan`" in screen.query_one(Markdown).source
        assert "magimac pull magistral-small-2509" in screen.query_one(Markdown).source
        gate.set()
        await wait_until(pilot, lambda: screen.recommendations is not None)
        await pilot.pause()
        text = screen.query_one(Markdown).source
        assert "--quant 5bit`: fits" in text and "asking" not in text and "pull demo" not in text


async def test_the_demo_says_what_it_can_do_and_how_to_get_magistral(fake_engine, scripted_checkpoint):
    app = MagimacApp(None, engine_factory=lambda _path: fake_engine)  # nothing installed: the demo
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: app.loaded is not None)
        hint = str(app.chat.query_one(".empty-hint").render())
        assert "Ask Magistral anything" not in hint
        assert DEMO_SCOPE in hint and "magimac pull magistral-small-2509" in hint and "magimac plan" in hint
    app = app_for(fake_engine, scripted_checkpoint)  # any other model: the usual hint
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: app.loaded is not None)
        assert DEMO_SCOPE not in str(app.chat.query_one(".empty-hint").render())


async def test_an_answer_killed_while_reasoning_reopens_with_its_reasoning_token_count(scripted_checkpoint, monkeypatch):
    monkeypatch.setattr("magimac.tui.sending.SAVE_INTERVAL_S", 0.0)  # save with every batch
    endless = FakeEngine(endless=True, delay_s=0.002)
    app = app_for(endless, scripted_checkpoint)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: app.loaded is not None)
        app.composer.text = "Think forever"
        await pilot.press("enter")

        def on_disk():  # what a kill leaves: the row as saved while it streams
            return History().messages(app.conversation.id)[-1] if app.conversation else None

        await wait_until(pilot, lambda: app.ui_updates >= 3 and (on_disk().stats or {}).get("reasoning_tokens"))
        killed = on_disk()
        assert killed.finish_reason is None and killed.reasoning.count(" more") == killed.stats["reasoning_tokens"]
        conversation = app.conversation.id
    # closed while it streamed: kept with the count as far as it got
    stored = History().messages(conversation)[-1]
    assert stored.finish_reason == "cancelled" and stored.stats["reasoning_tokens"] >= killed.stats["reasoning_tokens"]
    assert stored.stats["reasoning_tokens"] == stored.reasoning.count(" more")
    reopened = app_for(FakeEngine(), scripted_checkpoint)
    async with reopened.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: reopened.conversation is not None)
        title = str(reopened.chat.query(AssistantMessage).last().reasoning.title)
        assert title.endswith(f" · {stored.stats['reasoning_tokens']} tokens") and " 0 tokens" not in title


async def test_a_custom_system_prompt_keeps_the_reasoning_instructions_unless_switched_off(
        fake_engine, scripted_checkpoint):
    """The settings' custom prompt reaches the engine with the model's reasoning instructions
    kept by default; the switch sends it alone."""
    from textual.widgets import Select, Switch, TextArea

    app = app_for(fake_engine, scripted_checkpoint)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: app.loaded is not None)
        for alone in (False, True):
            await pilot.press("f2")
            await wait_until(pilot, lambda: isinstance(app.screen, SettingsScreen))
            app.screen.query_one("#system_prompt_mode", Select).value = "custom"
            app.screen.query_one("#system_prompt", TextArea).text = "You are a terse assistant."
            app.screen.query_one("#reasoning_instructions", Switch).value = not alone
            await pilot.press("ctrl+s")
            await wait_until(pilot, lambda: not isinstance(app.screen, SettingsScreen))
            await send(pilot, "Hi")
            settings = fake_engine.settings[-1]
            assert settings.system_prompt == "You are a terse assistant."
            assert settings.reasoning_instructions is (not alone)
