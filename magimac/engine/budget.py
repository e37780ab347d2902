"""The reasoning budget: logits processors that end the reasoning after N tokens; and
`OpeningBan`, which keeps the reasoning from beginning with given texts.

mlx-lm calls a logits processor as ``processor(tokens, logits) -> logits`` before sampling each
token, ``tokens`` being the ids fed so far (an MLX array) and ``logits`` shaped [1, vocabulary].
"""

from __future__ import annotations

from typing import Callable

import mlx.core as mx

from magimac.text.reasoning import ReasoningMarkers


def budget_processor(markers: ReasoningMarkers, tekken, budget: int) -> Callable:
    """The processor that lets at most ``budget`` reasoning tokens through, then forces the
    closing marker: `ControlBudget` for ``[THINK]`` control tokens, else `TextBudget`.

    Args:
        markers: the model's reasoning markers (`magimac.text.reasoning.markers_for`).
        tekken: the model's mistral-common Tekkenizer (to encode and decode text markers).
        budget: reasoning tokens allowed, >= 0.
    """
    if markers.kind == "control":
        return ControlBudget(markers.open_id, markers.close_id, budget)
    return TextBudget(tekken, markers, budget)


class ControlBudget:
    """Logits processor: after ``budget`` tokens inside ``[THINK]``, only ``[/THINK]`` may come.

    The state is kept in lazy MLX scalars, so no per-token sync is added.  It sees the last fed
    token (``tokens[-1]``): ``[THINK]`` opens, ``[/THINK]`` closes.
    """

    def __init__(self, open_id: int, close_id: int, budget: int) -> None:
        self.open_id, self.close_id, self.budget = open_id, close_id, budget
        self.inside = mx.array(False)
        self.count = mx.array(0)

    def __call__(self, tokens, logits):
        last = tokens[-1]
        self.inside = mx.where(last == self.open_id, True, mx.where(last == self.close_id, False, self.inside))
        self.count = mx.where(self.inside, self.count + 1, 0)
        force = self.inside & (self.count > self.budget)  # count includes the [THINK] itself
        only_close = mx.where(mx.arange(logits.shape[-1]) == self.close_id, 0.0, -float("inf")).astype(logits.dtype)
        return mx.where(force, only_close, logits)


class TextBudget:
    """Logits processor for ``<think>`` text markers: after ``budget`` tokens since the opening
    marker, force the tokens of ``</think>`` one by one.  Syncs on the last token (1.0 only).
    Only a short tail of the text is kept, enough to spot a marker split across tokens."""

    def __init__(self, tekken, markers: ReasoningMarkers, budget: int) -> None:
        self.tekken, self.markers, self.budget = tekken, markers, budget
        self.tail = ""
        self.count = 0
        self.inside = False
        self.forcing: list[int] = []
        self.done = False

    def __call__(self, tokens, logits):
        if self.done:
            return logits
        m = self.markers
        self.tail = (self.tail + self.tekken.decode([int(tokens[-1].item())]))[-4 * len(m.close_text):]
        if not self.inside:
            if m.open_text in self.tail:
                self.inside = True
                self.tail = self.tail.split(m.open_text, 1)[1]
        elif not self.forcing:
            self.count += 1
            if m.close_text in self.tail:
                self.done = True
                return logits
            if self.count >= self.budget:
                self.forcing = self.tekken.encode(m.close_text, bos=False, eos=False)
        if self.forcing:
            want = self.forcing.pop(0)
            self.done = not self.forcing
            only = mx.where(mx.arange(logits.shape[-1]) == want, 0.0, -float("inf"))
            return mx.broadcast_to(only.astype(logits.dtype), logits.shape)
        return logits


class OpeningBan:
    """Logits processor: the reasoning never begins with one of ``openings`` (token id lists):
    when the last fed ids are ``[THINK]`` and all but the last id of an opening, that last id
    gets no probability.  It looks at the first few tokens of the turn only (one sync each).
    """

    def __init__(self, open_id: int, openings: list[list[int]]) -> None:
        self.open_id = open_id
        self.openings = [o for o in openings if o]
        self.longest = max((len(o) for o in self.openings), default=0)
        self.calls_left = self.longest + 1  # [THINK] comes first, then the openings' tokens

    def __call__(self, tokens, logits):
        if self.calls_left <= 0:
            return logits
        self.calls_left -= 1
        tail = tokens[-self.longest:].tolist()
        banned = [o[-1] for o in self.openings if tail[-len(o):] == [self.open_id, *o[:-1]]]
        if not banned:
            return logits
        hit = mx.any(mx.arange(logits.shape[-1])[:, None] == mx.array(banned)[None, :], axis=1)
        return mx.where(hit, mx.array(-float("inf"), logits.dtype), logits)


def opening_ban(markers: ReasoningMarkers, tekken, openings: tuple[str, ...]) -> Callable | None:
    """The `OpeningBan` for ``openings`` (texts, encoded with ``tekken``); None for a model whose
    reasoning markers are text, or for no openings."""
    if markers.kind != "control" or not openings:
        return None
    return OpeningBan(markers.open_id, [tekken.encode(t, bos=False, eos=False) for t in openings])
