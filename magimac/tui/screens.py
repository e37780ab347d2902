"""Small screens: help, rename, confirm, missing model, attach an image."""

from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, DirectoryTree, Input, Label, Markdown, Static

from magimac.documents import SUPPORTED_SUFFIXES

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp"}

HELP = """\
# magimac — keys

| Key | Action |
|---|---|
| Enter | send the message |
| Ctrl+J (or Shift+Enter) | new line in the message |
| Esc | stop the answer (the part written so far is kept, marked stopped) |
| Ctrl+R | regenerate the last answer |
| Ctrl+L | edit and resend your last message |
| Ctrl+T | open / fold the last answer's reasoning (or click its title) |
| F5 | copy the last answer |
| F6 | copy the last code block |
| Ctrl+S | export the conversation to Markdown (current directory) |
| Ctrl+N | new conversation |
| Ctrl+B | show / hide the sidebar |
| Ctrl+F | search all conversations |
| r / Delete | rename / delete the conversation highlighted in the sidebar |
| F2 | conversation settings (model, system prompt, sampling, reasoning) |
| F3 | attach an image (or type `/image PATH` in the message) |
| Ctrl+P | command palette: every action by name |
| F1 | this help |
| Ctrl+Q | quit |
"""


class HelpScreen(ModalScreen[None]):
    """The list of keys."""

    BINDINGS = [Binding("escape,f1,q", "dismiss", "Close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help", classes="dialog"):
            yield Markdown(HELP)
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
    """A yes/no question; dismisses with True on Yes / y."""

    BINDINGS = [Binding("escape,n", "dismiss(False)", "No"), Binding("y", "dismiss(True)", "Yes")]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog small"):
            yield Label(self.question)
            with Horizontal(classes="buttons"):
                yield Button("Yes (y)", id="yes", variant="error")
                yield Button("No (n)", id="no")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")


class MissingModel(ModalScreen[None]):
    """No model to load: say how to get one; the app stays open for reading history."""

    BINDINGS = [Binding("escape", "dismiss", "Continue"), Binding("ctrl+q", "app.quit", "Quit")]

    def __init__(self, problem: str, recommendations: list[str] | None = None) -> None:
        super().__init__()
        self.problem = problem
        self.recommendations = recommendations or []

    def compose(self) -> ComposeResult:
        text = [
            "# No model to chat with",
            "",
            self.problem,
            "",
            "Get one from a terminal:",
            "",
            "```sh",
            "magimac pull magistral-small-2509  # text + images",
            "magimac pull demo                  # tiny, to try",
            "magimac plan                       # what fits",
            "```",
            "",
        ]
        if self.recommendations:
            text += ["For this Mac (`magimac plan`):", ""] + [f"- {r}" for r in self.recommendations] + [""]
        text += ["Then start `magimac` again, or `magimac --model DIR` for a converted directory."]
        with VerticalScroll(id="missing-model", classes="dialog"):
            yield Markdown("\n".join(text))
            yield Static("Esc: read your history without a model · Ctrl+Q: quit", classes="dialog-hint")


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
