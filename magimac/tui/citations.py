"""Library passages in the app: ``/library NAME`` lines, the cited passages above an answer,
and the screen that opens one (file path, page and text).

The passages come from the turn's ``documents`` report (`magimac.text.library.context.
library_report`), kept with the answer in history, so an answer's ``[1]`` can be opened again
after a restart.
"""

from __future__ import annotations

import re

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Static


def take_library_lines(text: str) -> tuple[str, list[str]]:
    """Split ``/library NAME`` lines from a message: returns (the rest of the text, names)."""
    keep, names = [], []
    for line in text.splitlines():
        command, _, name = line.strip().partition(" ")
        if command == "/library" and name.strip():
            names.append(name.strip())
        else:
            keep.append(line)
    return "\n".join(keep).strip(), names


_CITE = re.compile(r"(?<![\w!\\])\[(\d{1,3})\](?![(:])")
_CODE = re.compile(r"(```.*?```|~~~.*?~~~|`[^`\n]*`)", re.S)  # left as typed


def _numbered(documents: dict | None) -> dict[int, dict]:
    return {p["n"]: p for p in (documents or {}).get("passages", []) if p.get("n") and p.get("file")}


def link_citations(markdown: str, documents: dict | None) -> str:
    """``[1]`` in an answer as a Markdown link ``[\\[1\\]](cite:1)`` for each number a
    library passage of ``documents`` (the answer's stored report) carries; code spans and
    blocks, and other text, as they are."""
    numbered = _numbered(documents)
    if not numbered:
        return markdown

    def link(m: re.Match) -> str:
        n = m.group(1)
        return f"[\\[{n}\\]](cite:{n})" if int(n) in numbered else m.group(0)

    parts = _CODE.split(markdown)  # odd items are code
    return "".join(part if i % 2 else _CITE.sub(link, part) for i, part in enumerate(parts))


def open_citation(app, href: str, documents: dict | None) -> bool:
    """Open passage N for a ``cite:N`` link (`PassageScreen`); False for any other link."""
    if not href.startswith("cite:") or not href[5:].isdigit():
        return False
    passage = _numbered(documents).get(int(href[5:]))
    if passage is not None:
        app.push_screen(PassageScreen(passage))
    return True


def passage_label(p: dict) -> str:
    """``[1] report.pdf p.12 · 0.0325`` for a passage of the report."""
    page = f" p.{p['page']}" if p.get("page") else ""
    return f"[{p.get('n', '?')}] {p['document']}{page} · {p.get('score', 0):.4g}"


class Citations(Horizontal):
    """One button per numbered library passage; pressing one opens `PassageScreen`."""

    DEFAULT_CSS = """
    Citations { height: auto; margin: 0 0 0 2; }
    Citations Button { margin: 0 2 0 0; }
    """

    def __init__(self, passages: list[dict]) -> None:
        super().__init__(classes="citations")
        self.passages = [p for p in passages if p.get("n") and p.get("file")]

    def compose(self) -> ComposeResult:
        for i, p in enumerate(self.passages):
            yield Button(passage_label(p), id=f"cite-{i}", classes="cite", compact=True)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        index = int((event.button.id or "cite-0").removeprefix("cite-"))
        self.app.push_screen(PassageScreen(self.passages[index]))


class PassageScreen(ModalScreen[None]):
    """A cited passage: its number, file path, page and text (Esc closes)."""

    BINDINGS = [Binding("escape", "dismiss", "Close")]
    DEFAULT_CSS = """
    PassageScreen { align: center middle; }
    PassageScreen > Vertical { width: 90%; height: 80%; border: round $accent; background: $surface; padding: 1 2; }
    PassageScreen #passage-text { height: 1fr; }
    """

    def __init__(self, passage: dict) -> None:
        super().__init__()
        self.passage = passage

    def compose(self) -> ComposeResult:
        p = self.passage
        where = p["file"] + (f", page {p['page']}" if p.get("page") else "")
        with Vertical():
            yield Static(f"[{p.get('n')}] {where}", id="passage-where", markup=False)
            with VerticalScroll(id="passage-text"):
                yield Static(p.get("text", ""), markup=False)
            yield Button("Close", id="passage-close")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(None)

    def action_dismiss(self) -> None:
        self.dismiss(None)
