"""`magimac serve` stops a request whose client left while its long prompt was being read: the
client is asked after at each prefill chunk (`Prefill` event), not only once the first token came."""

from __future__ import annotations

import asyncio

from magimac.core.events import AnswerDelta, Done, Prefill
from magimac.server.completions import Completion


class Pump:
    """A `TurnPump` stand-in: the engine's events, and its cancel recorded."""

    def __init__(self) -> None:
        self.events: asyncio.Queue = asyncio.Queue()
        self.cancelled_at: int | None = None
        self.seen = 0

    async def next_event(self):
        ev = await self.events.get()
        self.seen += 1
        return ev

    def cancel(self) -> None:
        if self.cancelled_at is None:  # the engine ends the turn before the next chunk
            self.cancelled_at = self.seen
            self.events = asyncio.Queue()
            self.events.put_nowait(Done("cancelled"))


async def test_a_client_gone_during_the_prefill_cancels_it_at_the_next_chunk():
    pump = Pump()
    for ev in (Prefill(0, 40_000), Prefill(256, 40_000), Prefill(512, 40_000), AnswerDelta("never")):
        pump.events.put_nowait(ev)
    asked = []

    async def disconnected() -> bool:
        asked.append(pump.seen)
        return len(asked) >= 2  # the client leaves during the second chunk

    first = await Completion(None, pump).first(disconnected)
    assert pump.cancelled_at == 2 and asked == [1, 2]
    assert first == Done("cancelled")
