"""The reasoning block: streams the model's thinking live, folds when the answer starts."""

from __future__ import annotations

from textual.widgets import Collapsible, Static


def thinking_title(tokens: int, seconds: float) -> str:
    """Title while the model reasons: ``Thinking… 312 tokens · 8 s``."""
    return f"Thinking… {tokens} tokens · {seconds:.0f} s"


def thought_title(tokens: int, seconds: float | None) -> str:
    """Title once reasoning ended: ``Thought for 12 s · 812 tokens`` (no time when unknown)."""
    if seconds is None:
        return f"Thought · {tokens} tokens"
    return f"Thought for {seconds:.0f} s · {tokens} tokens"


class ReasoningBlock(Collapsible):
    """A `Collapsible` holding reasoning text; click its title (or Enter on it) to open/fold.

    Live: `append` adds text and updates the "Thinking…" title; `finish` folds it under
    "Thought for S s · N tokens".
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
            self.body.update(self._text)
        self.title = thinking_title(tokens, seconds)

    def finish(self, tokens: int, seconds: float | None, text: str | None = None) -> None:
        """Fold under the final title; ``text`` replaces the streamed text when given."""
        if text is not None and text != self._text:
            self._text = text
            self.body.update(text)
        self.title = thought_title(tokens, seconds)
        self.collapsed = True
