"""Progress of `magimac bench` on stderr: each long step (a conversion, the reference
log-probs, each variant's speed and quality) with how far it is and an estimate of the time
left. On a terminal a live rich bar; elsewhere (a log, a pipe) one plain line when a step
starts and one per unit of work, so a long step never goes quiet.
"""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)


def _eta(done: int, total: int, elapsed_s: float) -> str:
    """``"about 40 s left"`` from the rate so far (nothing before the first unit is done)."""
    if done <= 0 or done >= total:
        return ""
    left = elapsed_s / done * (total - done)
    return f", about {left:.0f} s left" if left < 120 else f", about {left / 60:.0f} min left"


class Steps:
    """A context manager: ``with Steps(console) as steps: steps.start("measuring 4bit", 12);
    steps.advance() ...``. Units are whatever the step counts (chunks, prompt lengths)."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.live = self.console.is_terminal
        self._progress: Progress | None = None
        self._task = None
        self.description, self.total, self.done, self._t0 = "", 0, 0, 0.0

    def __enter__(self) -> Steps:
        if self.live:
            self._progress = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn(),
                console=self.console)
            self._progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)

    def start(self, description: str, total: int = 1) -> None:
        """Begin a step of ``total`` units (>= 1)."""
        self.description, self.total, self.done = description, max(total, 1), 0
        self._t0 = time.perf_counter()
        if self._progress is not None:
            if self._task is not None:
                self._progress.remove_task(self._task)
            self._task = self._progress.add_task(description, total=self.total)
        else:
            self.console.print(f"magimac bench: {description}", highlight=False)

    def advance(self, unit: str = "") -> None:
        """One unit of the current step done; ``unit`` names it in the plain line."""
        self.done = min(self.done + 1, self.total)
        if self._progress is not None:
            self._progress.advance(self._task)
            return
        eta = _eta(self.done, self.total, time.perf_counter() - self._t0)
        what = f" {unit}" if unit else ""
        self.console.print(f"magimac bench: {self.description}: {self.done}/{self.total}{what}{eta}",
                           highlight=False)

    def note(self, line: str) -> None:
        """A line above the bar (or a plain line)."""
        self.console.print(f"magimac bench: {line}", highlight=False)
