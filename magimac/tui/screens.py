"""Small screens: help, rename, confirm, missing model, attach an image."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from rich.table import Table
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, DirectoryTree, Input, Label, Markdown, Static

from magimac.core.units import format_bytes
from magimac.text.documents import SUPPORTED_SUFFIXES
from magimac.tui.messages import PlanAdvice

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp"}

# (key, action): one row each, short enough that the whole list fits at 80x24.
HELP_KEYS: list[tuple[str, str]] = [
    ("Enter", "send the message"),
    ("Ctrl+J / Shift+Enter", "new line in the message"),
    ("Esc", "stop the answer (what it wrote is kept)"),
    ("Ctrl+R", "regenerate the last answer"),
    ("Ctrl+L", "edit and resend your last message"),
    ("Ctrl+T / F8", "fold the last reasoning / reasoning off, on"),
    ("PageUp / PageDown", "scroll the conversation (also while typing)"),
    ("F5 / F6", "copy the last answer / its last code block"),
    ("Ctrl+S", "export to Markdown (data folder/exports)"),
    ("Ctrl+N", "new conversation"),
    ("Ctrl+B / Ctrl+F", "hide or show the sidebar / search all chats"),
    ("r / Delete", "rename / delete the chat picked in the sidebar"),
    ("F2", "settings: model, prompt, sampling, reasoning"),
    ("F3", "attach an image or a document (file picker)"),
    ("/image PATH", "a line of your message: attach an image"),
    ("/file PATH", "a line: a document; /library NAME: a library"),
    ("Ctrl+P", "command palette: every action by name"),
    ("F1 / Ctrl+Q", "this help / quit"),
]


def help_table() -> Table:
    """`HELP_KEYS` as a two-column Rich table without rules (one terminal row per key)."""
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    for key, action in HELP_KEYS:
        table.add_row(key, action)
    return table


class HelpScreen(ModalScreen[None]):
    """The list of keys; scrolls when the terminal is shorter than 24 rows."""

    BINDINGS = [Binding("escape,f1,q", "dismiss", "Close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help", classes="dialog") as box:
            box.border_title = "magimac — keys"
            yield Static(help_table(), id="help-keys")
            yield Static("Esc closes", classes="dialog-hint")


class TextPrompt(ModalScreen[str | None]):
    """Ask for one line of text (rename); dismisses with the text, or None on Esc."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, question: str, value: str = "") -> None:
        super().__init__()
        self.question, self.value = question, value

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog small"):
            yield Label(self.question)
            yield Input(self.value, id="prompt-input")
            yield Static("Enter saves · Esc cancels", classes="dialog-hint")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip() or None)


class Confirm(ModalScreen[bool]):
    """A yes/no question (wrapped to the dialog's width); dismisses with True on Yes / y."""

    BINDINGS = [Binding("escape,n", "dismiss(False)", "No"), Binding("y", "dismiss(True)", "Yes")]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog small"):
            yield Static(self.question, id="question", markup=False)
            with Horizontal(classes="buttons"):
                yield Button("Yes (y)", id="yes", variant="error")
                yield Button("No (n)", id="no")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")


PLAN_TIMEOUT_S = 60


def plan_lines(plan: dict) -> list[str]:
    """The recommendation of a `magimac plan --json` document as lines for people."""
    rec = plan.get("recommendation")
    if rec is None:
        return ["`magimac plan` finds no quantization of the default model that fits this machine."]
    command = rec.get("pull_command") or f"magimac pull {rec['model']} --quant {rec['level']}"
    return [f"`{command}`: {rec['reason']}",
            f"weights {format_bytes(rec['weights_bytes'])} + KV cache {format_bytes(rec['kv_bytes'])} "
            f"for {rec['context']} tokens at {rec['kv_bits']}-bit KV"]


def plan_recommendations() -> list[str]:
    """What `magimac plan` recommends for this machine (default model), as lines; [] when the
    planner cannot say (it must never stop the app from explaining how to get a model).

    Runs ``python -m magimac plan --json`` in a subprocess (seconds: the planner imports MLX,
    which the app never does); call it from a thread worker.
    """
    try:
        done = subprocess.run([sys.executable, "-m", "magimac", "plan", "--json"], capture_output=True,
                              text=True, timeout=PLAN_TIMEOUT_S, stdin=subprocess.DEVNULL)
        return plan_lines(json.loads(done.stdout)) if done.returncode == 0 else []
    except (OSError, subprocess.SubprocessError, ValueError, KeyError, TypeError):
        return []


class MissingModel(ModalScreen[None]):
    """No model to load: say why (``problem``, one line) and how to get one; the app stays
    open for reading history.

    ``recommendations`` is None until a thread worker has asked `magimac plan` (then a list of
    lines, [] when it could not say). For an unknown name (``unknown_name``) the screen says
    so and lists the close matches the problem names, instead of the commands to pull a model.
    """

    BINDINGS = [Binding("escape", "dismiss", "Continue"), Binding("ctrl+q", "app.quit", "Quit")]

    def __init__(self, problem: str, *, unknown_name: bool = False) -> None:
        super().__init__()
        self.problem = problem
        self.unknown_name = unknown_name
        self.recommendations: list[str] | None = None

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="missing-model", classes="dialog"):
            yield Markdown(self.text())
            yield Static("Esc: read your history without a model · Ctrl+Q: quit", classes="dialog-hint")

    def on_mount(self) -> None:
        if not self.unknown_name:
            self._plan_worker()

    def text(self) -> str:
        """The screen's Markdown."""
        if self.unknown_name:
            return "\n".join(["# Unknown model", "", self.problem, "",
                               "`magimac models` lists the models installed and the names to pull; "
                               "start `magimac --model NAME` with one of them, or `magimac --model DIR` "
                               "for a converted directory."])
        text = ["# No model to chat with", "", self.problem, "", "Get one from a terminal:", "", "```sh",
                "magimac pull magistral-small-2509  # text + images",
                "magimac plan                       # what fits",
                "magimac --model demo               # tiny demo, to try", "```", ""]
        if self.recommendations is None:
            text += ["For this Mac: asking `magimac plan`…", ""]
        elif self.recommendations:
            text += ["For this Mac (`magimac plan`):", ""] + [f"- {r}" for r in self.recommendations] + [""]
        text += ["Then start `magimac` again, or `magimac --model DIR` for a converted directory."]
        return "\n".join(text)

    @work(thread=True, group="plan", exit_on_error=False)
    def _plan_worker(self) -> None:
        self.post_message(PlanAdvice(plan_recommendations()))

    async def on_plan_advice(self, message: PlanAdvice) -> None:
        self.recommendations = message.lines
        await self.query_one(Markdown).update(self.text())


class _ImageTree(DirectoryTree):
    def filter_paths(self, paths):
        return [p for p in paths if not p.name.startswith(".")
                and (p.is_dir() or p.suffix.lower() in IMAGE_SUFFIXES | SUPPORTED_SUFFIXES)]


class AttachImage(ModalScreen[Path | None]):
    """Pick an image file (tree of the current directory) or type its path."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, start: Path | None = None) -> None:
        super().__init__()
        self.start = start or Path.cwd()

    def compose(self) -> ComposeResult:
        with Vertical(id="attach", classes="dialog"):
            yield Label("Attach an image or a document: pick one, or type a path and press Enter")
            yield Input(placeholder="path/to/image.png", id="attach-path")
            yield _ImageTree(self.start, id="attach-tree")
            yield Static("Esc cancels", classes="dialog-hint")

    def _choose(self, raw: str) -> None:
        path = Path(raw).expanduser()
        if not path.is_file():
            self.notify(f"{path}: no such file", severity="error")
            return
        self.dismiss(path.resolve())

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self._choose(event.value.strip())

    def on_directory_tree_file_selected(self, event: DirectoryTree.FileSelected) -> None:
        self._choose(str(event.path))
