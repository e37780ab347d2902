"""How a long prompt is read: in chunks of about a second each, with progress and cancel.

mlx-lm prefills a prompt in chunks (``prefill_step_size`` of `generate_step` and of
`BatchGenerator`) and reports each one (``prompt_progress_callback``, the prompt responses of
`BatchGenerator.next`).  Its default chunk of 2048 tokens takes several seconds on Magistral
Small (a few hundred tokens/s), and a cancel can only take effect between chunks; `PrefillPace`
sizes the chunks from the prefill speed measured so far, so that one takes about
`CHUNK_SECONDS`.  `PrefillReport` turns the callbacks of one turn into `Prefill` events, times
its chunks for the pace, and stops a cancelled turn between chunks.

No MLX here: the numbers come from the engine's runners (`generate`, `batch`).
"""

from __future__ import annotations

import math
import time
from typing import Callable

from magimac.core.events import Prefill

CHUNK_SECONDS = 1.0
"""The time one prefill chunk should take, seconds: how soon a cancel takes effect."""
FIRST_STEP, MIN_STEP, MAX_STEP = 256, 128, 2048
"""Tokens per chunk before any speed is known, and the bounds (2048: mlx-lm's default)."""
SHOWN_AFTER_CHUNKS = 2
"""A prefill of more chunks than this sends `Prefill` events (a short one sends none)."""


class PrefillCancelled(Exception):
    """Raised from the progress callback to stop a cancelled turn between two chunks."""


class PrefillPace:
    """Tokens per prefill chunk, from the speed measured so far (worker thread only).

    Args:
        step: tokens per chunk until a speed is measured; low / high: the bounds of ``step``.
    """

    def __init__(self, step: int = FIRST_STEP, low: int = MIN_STEP, high: int = MAX_STEP) -> None:
        self.step, self.low, self.high = step, low, high

    def measure(self, tokens: int, seconds: float) -> None:
        """``tokens`` were prefilled in ``seconds``: the next chunks hold what takes about
        `CHUNK_SECONDS` at that speed (a power of two within the bounds)."""
        if tokens <= 0 or seconds <= 0:
            return
        fit = tokens / seconds * CHUNK_SECONDS
        self.step = max(self.low, min(self.high, 2 ** int(math.log2(max(fit, 1.0)))))

    def shows(self, total: int, step: int | None = None) -> bool:
        """Whether a prefill of ``total`` tokens in chunks of ``step`` (default: the current
        step) is long enough to report its progress."""
        return total > SHOWN_AFTER_CHUNKS * (step or self.step)


class PrefillReport:
    """The progress callback of one turn's prefill (mlx-lm's ``prompt_progress_callback``).

    Called with (tokens done, tokens in all): raises `PrefillCancelled` when ``cancelled()``
    before the prefill ended, sends ``Prefill`` events to ``put`` when the prefill is long
    (`PrefillPace.shows`), and gives the pace the speed of each whole chunk.
    """

    def __init__(self, pace: PrefillPace, step: int, put: Callable, cancelled: Callable[[], bool]) -> None:
        self.pace, self.step, self.put, self.cancelled = pace, step, put, cancelled
        self._last: tuple[int, float] | None = None

    def __call__(self, done: int, total: int) -> None:
        if done < total and self.cancelled():
            raise PrefillCancelled
        now = time.perf_counter()
        if self._last is not None and done < total:  # a whole chunk (the last one also samples)
            self.pace.measure(done - self._last[0], now - self._last[1])
        self._last = (done, now)
        if self.pace.shows(total, self.step):
            self.put(Prefill(done, total))


__all__ = ["CHUNK_SECONDS", "PrefillCancelled", "PrefillPace", "PrefillReport", "SHOWN_AFTER_CHUNKS"]
