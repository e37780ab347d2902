"""One turn's events carried from the session layer's blocking iterator to the event loop,
with ``stop`` strings applied to the answer.

`TurnPump` iterates a `magimac.session.turn.TurnRun` in a thread of its own and hands each
event to the asyncio loop; `StopFilter` holds back the tail of the answer that could begin a
stop string, so a stop string never reaches the client.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Callable

from magimac.core.events import AnswerDelta, Done


class StopFilter:
    """Cut the answer at the first of ``stops``.

    ``feed(text)`` returns the text that is safe to send; once a stop string is seen,
    ``stopped`` is True and nothing more is returned.  ``flush()`` returns what was held back.
    """

    def __init__(self, stops: list[str]) -> None:
        self.stops = [s for s in stops if s]
        self.hold = max((len(s) for s in self.stops), default=1) - 1
        self.stopped = False
        self._buf = ""

    def feed(self, text: str) -> str:
        if self.stopped:
            return ""
        if not self.stops:
            return text
        self._buf += text
        cut = min((i for i in (self._buf.find(s) for s in self.stops) if i >= 0), default=-1)
        if cut >= 0:
            self.stopped = True
            out, self._buf = self._buf[:cut], ""
            return out
        keep = min(self.hold, len(self._buf))
        out, self._buf = self._buf[: len(self._buf) - keep], self._buf[len(self._buf) - keep:]
        return out

    def flush(self) -> str:
        out, self._buf = ("" if self.stopped else self._buf), ""
        return out


class TurnPump:
    """Run ``turn_run`` (a `TurnRun`) in a daemon thread; ``await next_event()`` gives its events.

    Args:
        turn_run: the turn; its ``Done`` is always the last event.
        stops: stop strings for the answer (`StopFilter`): the turn is cancelled at the first,
            and its ``Done`` then reads ``"stop"``.
        on_end: called in the thread once the turn ended (e.g. to delete its images).
    """

    def __init__(self, turn_run, stops: list[str], on_end: Callable[[], None] | None = None) -> None:
        self.run = turn_run
        self.filter = StopFilter(stops)
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue = asyncio.Queue()
        self._on_end = on_end
        self._thread = threading.Thread(target=self._pump, name="magimac-serve-turn", daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        try:
            for ev in self.run:
                if not self._hand_over(ev):
                    break
        except Exception as e:  # the session layer ends turns with Done; this is a last resort
            self._hand_over(Done("error", str(e)))
        finally:
            if self._on_end is not None:
                self._on_end()

    def _hand_over(self, ev: Any) -> bool:
        """Queue ``ev`` on the loop; False (and the turn cancelled) once the loop has closed."""
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, ev)
            return True
        except RuntimeError:  # "Event loop is closed": the server stopped, nobody reads on
            self.run.cancel()
            return False

    async def next_event(self) -> Any:
        """The next event, answer text filtered (an `AnswerDelta` may become empty); a turn cut
        by a stop string ends with ``Done("stop")`` keeping the engine's stats."""
        ev = await self._queue.get()
        if isinstance(ev, AnswerDelta):
            text = self.filter.feed(ev.text)
            if self.filter.stopped:
                self.run.cancel()
            return AnswerDelta(text)
        if isinstance(ev, Done):
            rest = self.filter.flush()
            if self.filter.stopped and ev.finish_reason == "cancelled":
                ev = Done("stop", None, ev.stats)
            if rest:
                self._queue.put_nowait(ev)
                return AnswerDelta(rest)
        return ev

    def cancel(self) -> None:
        """Stop the turn (the client went away); its remaining events are dropped."""
        self.run.cancel()
