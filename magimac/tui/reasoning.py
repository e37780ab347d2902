"""The reasoning block: streams the model's thinking live, folds when the answer starts."""

from __future__ import annotations

from textual.widgets import Collapsible, Static


def tokens_label(n: int) -> str:
    """``1 token``, ``812 tokens``."""
    return f"{n} token" if n == 1 else f"{n} tokens"


def thinking_title(tokens: int, seconds: float) -> str:
    """Title while the model reasons: ``Thinking… 312 tokens · 8 s``."""
    return f"Thinking… {tokens_label(tokens)} · {seconds:.0f} s"


def thought_title(tokens: int, seconds: float | None) -> str:
    """Title once reasoning ended: ``Thought for 12 s · 812 tokens`` (no time when unknown)."""
    if seconds is None:
        return f"Thought · {tokens_label(tokens)}"
    return f"Thought for {seconds:.0f} s · {tokens_label(tokens)}"


LIVE_TAIL_CHARS = 2000
"""While streaming, the block shows the last this many characters of the reasoning (so each
update costs the same however long the reasoning grows); all of it once finished."""


def live_tail(text: str) -> str:
    """The end of ``text`` shown while reasoning streams, cut at a line or word boundary."""
    if len(text) <= LIVE_TAIL_CHARS:
        return text
    tail = text[-LIVE_TAIL_CHARS:]
    cut = max(tail.find("\n"), tail.find(" "))
    return "… " + (tail[cut + 1:] if 0 <= cut < 200 else tail)


class ReasoningBlock(Collapsible):
    """A `Collapsible` holding reasoning text; click its title (or Enter on it) to open/fold.

    Live: `append` adds text (showing its last `LIVE_TAIL_CHARS`) and updates the "Thinking…"
    title; `finish` shows all of it and folds it under "Thought for S s · N tokens".
    """

    def __init__(self, reasoning: str = "", *, title: str = "Thinking…", collapsed: bool = False,
                 **kwargs) -> None:
        self._text = reasoning
        self.body = Static(reasoning, classes="reasoning-text", markup=False)
        super().__init__(self.body, title=title, collapsed=collapsed, **kwargs)

    @property
    def text(self) -> str:
        """The reasoning shown so far."""
        return self._text

    def append(self, text: str, tokens: int, seconds: float) -> None:
        """Add streamed reasoning; ``tokens`` and ``seconds`` so far."""
        if text:
            self._text += text
            self.body.update(live_tail(self._text))
        self.title = thinking_title(tokens, seconds)

    def finish(self, tokens: int, seconds: float | None, text: str | None = None) -> None:
        """Fold under the final title; ``text`` replaces the streamed text when given."""
        if text is not None:
            self._text = text
        self.body.update(self._text)
        self.title = thought_title(tokens, seconds)
        self.collapsed = True
