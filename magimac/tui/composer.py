"""The composer: a multi-line text box where Enter sends and Ctrl+J adds a new line."""

from __future__ import annotations

from textual import events
from textual.message import Message
from textual.widgets import TextArea


class Composer(TextArea):
    """`TextArea` that posts `Composer.Submitted` on Enter.

    Ctrl+J (and Shift+Enter, in terminals that report it) inserts a new line; PageUp/PageDown
    post `Composer.PageScroll` (the app scrolls the conversation, as chat apps do) instead of
    moving the cursor by a page in a message that is rarely that long.
    """

    NEWLINE_KEYS = ("ctrl+j", "shift+enter")

    class Submitted(Message):
        """The person pressed Enter; ``text`` is the composer's content."""

        def __init__(self, composer: "Composer", text: str) -> None:
            super().__init__()
            self.composer = composer
            self.text = text

    class PageScroll(Message):
        """PageUp (``pages`` -1) or PageDown (+1) in the composer."""

        def __init__(self, pages: int) -> None:
            super().__init__()
            self.pages = pages

    PAGE_KEYS = {"pageup": -1, "pagedown": 1}

    def __init__(self, **kwargs) -> None:
        super().__init__(soft_wrap=True, show_line_numbers=False, tab_behavior="focus",
                         compact=True, highlight_cursor_line=False, **kwargs)

    async def _on_key(self, event: events.Key) -> None:
        # Handled here, not as bindings: a binding runs after the key bubbles up, by which
        # time the next typed characters may already be in (seen with tmux send-keys).
        if event.key == "enter":
            event.stop()
            event.prevent_default()
            self.post_message(self.Submitted(self, self.text))
            return
        if event.key in self.PAGE_KEYS:
            event.stop()
            event.prevent_default()
            self.post_message(self.PageScroll(self.PAGE_KEYS[event.key]))
            return
        if event.key in self.NEWLINE_KEYS:
            event.stop()
            event.prevent_default()
            self._replace_via_keyboard("\n", *self.selection)  # as TextArea does for Enter
            return
        await super()._on_key(event)
