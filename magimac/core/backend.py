"""The engine contract: what every backend provides to the session layer.

A backend runs a model's turns: the local engine (`magimac.engine.worker.Engine`), the batched
engine behind `magimac serve` (`magimac.engine.batch.BatchEngine`), a running server
(`magimac.session.remote.RemoteEngine`), Mistral's API (`magimac.online.engine.OnlineEngine`)
and the tests' fake (`magimac.testing.fake_engine.FakeEngine`). Each satisfies `Backend`
(`tests/core/test_backend_protocol.py` checks every one, names and parameters); the session layer
types its engine as `Backend` and front-ends never hold one (they call `ChatSession`).

Patterned on simonw/llm's ``Model`` base: one small surface every backend implements, errors
converted once at its edge (a turn ends with ``Done("error", one line)``; loading raises a
`magimac.core.errors.MagimacError`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol, runtime_checkable

from magimac.core.conversation import Message
from magimac.core.events import EngineError, Event, Loaded, LoadProgress
from magimac.core.settings import GenerationSettings


@runtime_checkable
class TurnStream(Protocol):
    """One turn's events, in order, ending with `magimac.core.events.Done`; iterating blocks
    until the next event arrives. ``cancel`` ends this turn alone (its last event is then
    ``Done("cancelled")``)."""

    def __iter__(self) -> Iterator[Event]: ...

    def __next__(self) -> Event: ...

    def cancel(self) -> None: ...


@runtime_checkable
class EncodedPrompt(Protocol):
    """A prompt as the backend sends it: ``tokens`` (the ids, or [] where the backend cannot
    know them, as Mistral's API) and ``text`` (the same, readable)."""

    tokens: list[int]
    text: str


@runtime_checkable
class Backend(Protocol):
    """What runs a model's turns (module doc). Times are in seconds; counts are tokens."""

    def start(self) -> None:
        """Begin loading (or connecting) in the background; returns at once."""

    def wait_loaded(self, timeout: float | None = None) -> Loaded:
        """Block until ready. Raises a `MagimacError` (one line) when it failed or timed out."""

    def load_events(self) -> Iterator[LoadProgress | Loaded | EngineError]:
        """Loading progress from the start, ending with `Loaded` or `EngineError`."""

    def submit(self, messages: list[Message], settings: GenerationSettings | None = None) -> TurnStream:
        """Queue a turn answering ``messages``; a bad conversation ends it with ``Done("error")``."""

    def cancel(self) -> None:
        """End every running and queued turn (each ends with ``Done("cancelled")``)."""

    def close(self) -> None:
        """Cancel what runs and free the model or the connection; safe to call twice."""

    def encode(self, messages: list[Message], settings: GenerationSettings | None = None) -> EncodedPrompt:
        """The prompt ``submit`` would send for ``messages``."""

    def prompt_tokens(self, messages: list[Message], settings: GenerationSettings | None = None) -> list[int]:
        """``encode(...).tokens``."""

    def count_tokens(self, text: str) -> int:
        """Tokens of plain ``text`` in the model's tokenizer (an estimate where it is remote)."""

    def status(self) -> dict[str, Any]:
        """A snapshot for ``/health``-like reports: at least ``{"running": turns queued or
        running}``; backends add what they know (a batch engine its prefix cache)."""
