"""Control characters in untrusted text (model output, tool output, document text, file names),
made harmless before a terminal sees them.

A model's answer can hold ``ESC ] 0 ; TITLE BEL`` (sets the window title), ``ESC [ 2 J``
(clears the screen), a lone carriage return that overwrites a line, or a C1 control such as
U+009B (CSI).  Written to a terminal as they are, the terminal executes them.  The rule, one
for every front-end that draws on a terminal:

- Kept: newline and tab.  ``CR LF`` becomes ``LF``.
- Shown (`show_controls`, for a stream: `magimac chat` and `magimac library` on a terminal):
  every other C0 control and DEL as its Unicode control picture (ESC as U+241B ``␛``, BEL as
  ``␇``, a lone CR as ``␍``), and each C1 control (U+0080-U+009F) as ``\\x9b``-style text.
- Dropped (`drop_controls`, for the app, whose widgets laid the text out with controls taking
  no cells): the same characters removed, so ``␛]0;TITLE␇`` there reads ``]0;TITLE``.

``--json`` output and pipes keep the text as it is (JSON escapes C0 controls itself).
"""

from __future__ import annotations

import re

CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
"""Characters never written to a terminal as they are (all C0 but tab and newline, DEL, C1)."""

_SHOW = ({c: chr(0x2400 + c) for c in range(0x20) if c not in (0x09, 0x0A)} | {0x7F: "\u2421"}
         | {c: f"\\x{c:02x}" for c in range(0x80, 0xA0)})
_DROP = dict.fromkeys(_SHOW)


def show_controls(text: str) -> str:
    """``text`` with every control but newline and tab shown (see the module doc)."""
    return text.replace("\r\n", "\n").translate(_SHOW) if CONTROL.search(text) else text


def drop_controls(text: str) -> str:
    """``text`` with every control but newline and tab removed (see the module doc)."""
    return text.translate(_DROP) if CONTROL.search(text) else text
