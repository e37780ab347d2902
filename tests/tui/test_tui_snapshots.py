"""Snapshots (pytest-textual-snapshot) of the app's main screens at 80x24 and larger.

Update after an intended change with ``pytest tests/test_tui_snapshots.py --snapshot-update``
and look at the SVGs. Kept deterministic: the conversation comes from history with fixed
stats, and the memory figure is pinned.
"""

from __future__ import annotations


from magimac.text.history import Attachment, History
from magimac.tui.app import MagimacApp

ANSWER = r"""The area of a circle is $A = \pi r^{2}$, and

$$\int_0^1 x^2\,dx = \frac{1}{3}$$

```python
def area(r: float) -> float:
    return 3.14159 * r ** 2
```
"""


def stored_conversation() -> None:
    h = History()
    h.new_conversation("Older chat about LaTeX")
    c = h.new_conversation("Circle area")
    h.add_message(c.id, "user", "What is the area of a circle?", attachments=[Attachment("image", "/tmp/circle.png")])
    h.add_message(c.id, "assistant", ANSWER, reasoning="Area of a disc: pi r squared. Give the integral too.",
                  stats={"prompt_tokens": 512, "reasoning_tokens": 14, "answer_tokens": 60, "ttft_s": 0.25,
                         "decode_tps": 21.5, "thinking_s": 3.0}, finish_reason="stop")
    h.add_message(c.id, "user", "And for r = 2?")
    h.add_message(c.id, "assistant", "It is $4\\pi$", reasoning="pi times 4",
                  stats={"reasoning_tokens": 3, "thinking_s": 1.0}, finish_reason="cancelled")
    h.close()


def pinned(*keys: str):
    async def run_before(pilot) -> None:
        app = pilot.app
        for _ in range(400):
            if app.loaded is not None or app.status.load_state == "load failed" or app.session is None:
                break
            await pilot.pause(0.05)
        app.memory_timer.stop()
        app.status.memory_bytes = 1_234_000_000
        if keys:
            await pilot.press(*keys)
        for _ in range(400):  # the missing-model screen: until `magimac plan` answered
            if getattr(app.screen, "recommendations", []) is not None:
                break
            await pilot.pause(0.05)
        await pilot.pause(0.2)

    return run_before


def test_empty_app_80x24(snap_compare, engine, scripted_checkpoint):
    app = MagimacApp(str(scripted_checkpoint), engine_factory=lambda _p: engine)
    assert snap_compare(app, terminal_size=(80, 24), run_before=pinned())


def test_conversation_80x24(snap_compare, engine, scripted_checkpoint):
    stored_conversation()
    app = MagimacApp(str(scripted_checkpoint), engine_factory=lambda _p: engine)
    assert snap_compare(app, terminal_size=(80, 24), run_before=pinned())


def test_conversation_reasoning_open_200x50(snap_compare, engine, scripted_checkpoint):
    stored_conversation()
    app = MagimacApp(str(scripted_checkpoint), engine_factory=lambda _p: engine)
    assert snap_compare(app, terminal_size=(200, 50), run_before=pinned("ctrl+t"))


def test_help_screen(snap_compare, engine, scripted_checkpoint):
    app = MagimacApp(str(scripted_checkpoint), engine_factory=lambda _p: engine)
    assert snap_compare(app, terminal_size=(80, 24), run_before=pinned("f1"))


def test_settings_screen(snap_compare, engine, scripted_checkpoint):
    app = MagimacApp(str(scripted_checkpoint), engine_factory=lambda _p: engine)
    assert snap_compare(app, terminal_size=(100, 40), run_before=pinned("f2"))


def test_settings_screen_80x24(snap_compare, engine, scripted_checkpoint):
    """Issue 14: every input shows its box, and the switch's label is not cut."""
    app = MagimacApp(str(scripted_checkpoint), engine_factory=lambda _p: engine)
    assert snap_compare(app, terminal_size=(80, 24), run_before=pinned("f2"))


def test_missing_model_screen(snap_compare, pinned_plan):
    """An unknown name: said so, with the close matches (issue 14; was "No model ... pull demo")."""
    assert snap_compare(MagimacApp("magistral-smal"), terminal_size=(80, 24), run_before=pinned())


def test_model_not_installed_screen(snap_compare, pinned_plan):
    assert snap_compare(MagimacApp("magistral-small-2509"), terminal_size=(80, 24), run_before=pinned())
