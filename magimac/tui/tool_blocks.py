"""Tool calls in the app: the folded block of a call and its result, and the permission dialog.

A call is a `ToolBlock` in the answer, folded like the reasoning: ``Running python…`` while it
runs, then ``Ran python · 0.4 s`` (``python failed · 0.1 s``, ``python not allowed``); opened, it
shows the code (highlighted by rich's `Syntax`) or the arguments, and the output.  Before a tool
runs, `PermissionScreen` shows what will run and asks: allow once, allow for this
conversation, deny (Esc).
"""

from __future__ import annotations

import json

from rich.syntax import Syntax
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Collapsible, Label, Static

from magimac.core.events import ToolCall, ToolResult
from magimac.session.tool_loop import ALLOW_CONVERSATION, ALLOW_ONCE, DENY
from magimac.text.history import StoredMessage
from magimac.text.tools import result_title


def call_view(name: str, arguments: dict, raw: str = ""):
    """What a call runs, for people: python's code highlighted, else the arguments as JSON."""
    code = arguments.get("code") if name == "python" else None
    if isinstance(code, str):
        return Syntax(code, "python", theme="ansi_dark", word_wrap=True)
    return Syntax(json.dumps(arguments, ensure_ascii=False, indent=2) if arguments else raw or "{}", "json",
                  theme="ansi_dark", word_wrap=True)


class ToolBlock(Collapsible):
    """One call and its result, folded (click the title, or Enter on it, to open).

    Live: made from the `ToolCall` (``Running NAME…``), then `finish` with the `ToolResult`.
    From history: made from the stored ``tool`` row (`from_row`).
    """

    def __init__(self, name: str, arguments: dict, raw: str = "", *, message: StoredMessage | None = None) -> None:
        self.message = message  # the stored tool row (search hits reveal it), None while live
        self.tool_name = name
        self.output = Static("", classes="tool-output", markup=False)
        self.output.display = False
        super().__init__(Static(call_view(name, arguments, raw), classes="tool-call"), self.output,
                         title=f"Running {name}…", collapsed=True, classes="tool message" if message else "tool")

    @classmethod
    def from_row(cls, row: StoredMessage) -> "ToolBlock":
        s = row.stats or {}
        try:
            args = json.loads(s.get("arguments") or "{}")
        except json.JSONDecodeError:
            args = {}
        block = cls(s.get("name") or "tool", args if isinstance(args, dict) else {}, s.get("arguments", ""),
                    message=row)
        block.show_result(row.content, s.get("seconds"))
        return block

    def finish(self, result: ToolResult) -> None:
        """The result arrived: title and output."""
        self.show_result(result.content, result.seconds)

    def show_result(self, content: str, seconds: float | None) -> None:
        self.title = result_title(self.tool_name, content, seconds)
        self.output.update("→ " + (content or "(no output)"))
        self.output.display = True


class PermissionScreen(ModalScreen[str]):
    """Ask before a tool runs; dismisses with ``"once"``, ``"conversation"`` or ``"deny"``."""

    BINDINGS = [Binding("escape", "answer('deny')", "Deny"), Binding("o", "answer('once')", "Allow once"),
                Binding("a", "answer('conversation')", "Allow for this conversation"),
                Binding("d", "answer('deny')", "Deny")]

    def __init__(self, call: ToolCall, note: str = "") -> None:
        super().__init__()
        self.call = call
        self.note = note

    def compose(self) -> ComposeResult:
        with Vertical(id="permission", classes="dialog"):
            yield Label(f"Magistral wants to run {self.call.name}", classes="dialog-title")
            yield Static(call_view(self.call.name, self.call.arguments, self.call.raw), id="permission-call")
            if self.note:
                yield Static(self.note, classes="note", markup=False)
            with Horizontal(classes="buttons"):
                yield Button("Allow once (o)", id="once", variant="primary")
                yield Button("This conversation (a)", id="conversation")
                yield Button("Deny (d)", id="deny", variant="error")

    def on_mount(self) -> None:
        self.query_one("#deny", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id)

    def action_answer(self, answer: str) -> None:
        self.dismiss(answer if answer in (ALLOW_ONCE, ALLOW_CONVERSATION, DENY) else DENY)
