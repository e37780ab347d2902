"""The project's one error base.

Every error meant for a person (bad input, a missing model, a file that cannot be read, a
model that does not fit) derives from `MagimacError`, and its ``str()`` is one line that names
the file or value and says what to do. Front-ends catch this base once at their edge: the CLI
prints ``magimac: <message>`` and exits 1 (`magimac.cli.main`), the app shows it in place.
Anything else that escapes is a bug and keeps its traceback.

This module imports nothing, so every layer (and the `quantize` library) can raise these.
"""

from __future__ import annotations


class MagimacError(Exception):
    """An error caused by the person's input or environment; its message is one line."""


def one_line(e: BaseException, limit: int = 300) -> str:
    """``e``'s message as one line for people: whitespace and line breaks collapsed to single
    spaces, at most ``limit`` characters (cut ones end in "..."); an exception group (anyio's,
    from the `mcp` SDK) gives its first cause's; an empty message gives the type's name."""
    while isinstance(getattr(e, "exceptions", None), (list, tuple)) and e.exceptions:
        e = e.exceptions[0]
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."
