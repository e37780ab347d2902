"""The app never sends a control character of its text to the terminal.

Textual writes a widget's text as it is, less BEL, BS, VT, FF and CR: an ESC in a model's
answer, a tool's output or a document's passage (``ESC ] 0 ; TITLE``, ``ESC [ 2 J``) would
reach the terminal and run there.  `DropControls`, a Textual line filter that the app adds to
its own (`MagimacApp.get_line_filters`), takes every control out of each line drawn
(`magimac.text.controls.drop_controls`), whichever widget drew it.
"""

from __future__ import annotations

from rich.segment import Segment
from textual.color import Color
from textual.filter import LineFilter

from magimac.text.controls import drop_controls


class DropControls(LineFilter):
    """A line filter that drops control characters from the text of every segment."""

    def apply(self, segments: list[Segment], background: Color) -> list[Segment]:
        return [s if s.control else Segment(drop_controls(s.text), s.style) for s in segments]
