"""The reasoning budget: logits processors that end the reasoning after N tokens.

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
