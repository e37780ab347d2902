"""An engine without a model, for front-end tests that do not test the model itself.

`FakeEngine` meets the engine contract (`magimac.core.backend.Backend`) and answers every turn with
a fixed reasoning and answer, one word per delta, without MLX, in microseconds. ``endless=True``
reasons until `cancel` (a long answer to stop, or an app to close while it streams).

Tokens here are whitespace-separated words: ``count_tokens("a b c") == 3``.

``tool_rounds=[[("python", '{"code": "print(1)"}')], ...]``: the k-th round of a turn (k
counted by the assistant messages with tool calls after the last user message) reasons, then
sends those calls as `ToolCall` events (ids and argument errors as the engine's splitter makes
them) and stops; once the rounds are used up it answers as usual.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Iterator

from magimac.core.events import AnswerDelta, Done, Loaded, LoadProgress, ReasoningDelta, Stats

REASONING = "The person greets me. A short friendly reply will do."
ANSWER = "Hello! How can I help you today?"


@dataclass
class FakePrompt:
    """What `FakeEngine.encode` returns: ``tokens`` (one id per word), ``text``, ``images`` (none)."""

    tokens: list[int]
    text: str
    images: list = field(default_factory=list)


def _words(text: str) -> list[str]:
    """``text`` split into deltas that join back to it: ``["Hello!", " How", ...]``."""
    parts = text.split(" ")
    return [parts[0]] + [" " + p for p in parts[1:]] if text else []


class FakeTurn:
    """One fake turn: its events as they are read; ``cancel`` ends it at the next delta."""

    def __init__(self, events: Iterator, cancel: threading.Event) -> None:
        self._events, self._cancel = events, cancel

    def __iter__(self) -> "FakeTurn":
        return self

    def __next__(self):
        return next(self._events)

    def cancel(self) -> None:
        self._cancel.set()


class FakeEngine:
    """A stand-in for `Engine`: loads at once, answers ``reasoning`` then ``answer``.

    Args:
        reasoning / answer: the text of every turn (one `ReasoningDelta` / `AnswerDelta` a word).
        model / quantization / context_length / vision: what `Loaded` reports.
        endless: reason until cancelled (``Done("cancelled")``), one word every ``delay_s``.
        delay_s: seconds between deltas (0: as fast as the consumer reads).
        load_error: when set, loading fails with this one-line message (`EngineError`).

    Attributes:
        submitted: the messages of every turn, in order (what a front-end sent).
        settings: the `GenerationSettings` of every turn, in the same order.
    """

    def __init__(self, reasoning: str = REASONING, answer: str = ANSWER, *, model: str = "fake model",
                 quantization: str = "bf16", context_length: int = 4096, vision: bool = False,
                 endless: bool = False, delay_s: float = 0.0, load_error: str | None = None,
                 tool_rounds: list[list[tuple[str, str]]] | None = None) -> None:
        self.reasoning, self.answer = reasoning, answer
        self.tool_rounds = tool_rounds or []
        self.context_length = context_length
        self.loaded = Loaded(model, quantization, context_length, vision)
        self.endless, self.delay_s, self.load_error = endless, delay_s, load_error
        self.submitted: list[list] = []
        self.settings: list = []
        self._cancel = threading.Event()
        self.started = self.closed = False

    def start(self) -> None:
        """Nothing to start (kept for `Engine`'s interface)."""
        self.started = True

    def load_events(self) -> Iterator:
        """`LoadProgress`, then `Loaded` (or `EngineError` with ``load_error``)."""
        from magimac.core.events import EngineError

        yield LoadProgress(0.5, "loading")
        yield EngineError(self.load_error) if self.load_error else self.loaded

    def wait_loaded(self, timeout: float | None = None) -> Loaded:
        """The `Loaded` event at once.

        Raises:
            magimac.engine.loading.EngineLoadError: ``load_error`` was given.
        """
        if self.load_error:
            from magimac.engine.loading import EngineLoadError

            raise EngineLoadError(self.load_error)
        return self.loaded

    def submit(self, messages: list, settings=None) -> "FakeTurn":
        """The events of one turn answering ``messages`` (recorded in ``submitted``)."""
        self.submitted.append(list(messages))
        self.settings.append(settings)
        self._cancel.clear()
        return FakeTurn(self._turn(messages), self._cancel)

    def status(self) -> dict:
        """``{"running": 0}``: a fake turn runs as it is read."""
        return {"running": 0}

    def _turn(self, messages: list) -> Iterator:
        prompt = self.prompt_tokens(messages)
        n_reasoning = n_answer = 0
        after_tools = bool(messages) and getattr(messages[-1], "role", "") == "tool"  # no new reasoning (Magistral)
        reasoning = iter(lambda: " more", None) if self.endless else iter([] if after_tools else _words(self.reasoning))
        for text in reasoning:
            if self._cancel.is_set():
                break
            n_reasoning += 1
            yield ReasoningDelta(text)
            if self.delay_s:
                time.sleep(self.delay_s)
        calls = self._calls(messages)
        for text in [] if self._cancel.is_set() or calls else _words(self.answer):
            n_answer += 1
            yield AnswerDelta(text)
        yield from [] if self._cancel.is_set() else calls
        stats = Stats(prompt_tokens=len(prompt), ttft_s=0.01, decode_tps=100.0, reasoning_tokens=n_reasoning,
                      answer_tokens=n_answer, context_length=self.context_length)
        yield stats
        yield Done("cancelled" if self._cancel.is_set() else "stop", None, stats)

    def _calls(self, messages: list) -> list:
        """The `ToolCall`s of this round (`tool_rounds`), or [] when they are used up."""
        from magimac.core.events import ToolCall
        from magimac.text.tool_calls import parse_arguments
        from magimac.text.tools import call_id, calls_in

        last_user = max((i for i, m in enumerate(messages) if m.role == "user"), default=-1)
        k = sum(1 for m in messages[last_user + 1:] if getattr(m, "tool_calls", None))
        if k >= len(self.tool_rounds):
            return []
        calls = []
        for name, raw in self.tool_rounds[k]:
            args, error = parse_arguments(raw)
            calls.append(ToolCall(call_id(calls_in(messages) + len(calls) + 1), name, args, raw, error))
        return calls

    def cancel(self) -> None:
        """End the running turn at its next delta with ``Done("cancelled")``."""
        self._cancel.set()

    def close(self) -> None:
        """Cancel what runs; nothing else to free."""
        self.cancel()
        self.closed = True

    def encode(self, messages: list, settings=None) -> FakePrompt:
        """A `FakePrompt` of the messages' text (one token per word)."""
        text = "\n".join(getattr(m, "content", "") or "" for m in messages)
        return FakePrompt(list(range(len(text.split()))), text)

    def prompt_tokens(self, messages: list, settings=None) -> list[int]:
        """One id per word of the messages' text."""
        return self.encode(messages, settings).tokens

    def count_tokens(self, text: str) -> int:
        """Words in ``text``."""
        return len(text.split())
