"""`OnlineEngine`: a model on Mistral's API with the local engine's methods and events.

The session layer (`magimac.session.model.ChatSession`, `magimac.session.turn.TurnRun`) drives
it like `magimac.engine.worker.Engine`: ``submit`` returns a turn whose iteration gives
`ReasoningDelta` (from the thinking chunks), `AnswerDelta`, `Retrying` (a rate limit being
waited out), `Stats` and always a `Done` last; ``cancel`` ends it with ``Done("cancelled")``.

Each turn runs in a thread of its own that calls the official SDK (`mistralai`,
``client.chat.stream``, imported at the first turn) and puts the events on a queue, so a Ctrl-C
in the reading thread loses nothing and ``cancel`` from another thread closes the stream.

Rate limits: the SDK's own retries (``RetryConfig`` on HTTP 429, waiting as ``Retry-After``
says, for at most `RETRY_FOR_S`); an httpx response hook sees each 429 first and sends
`Retrying`, so the person is told while it waits.

Stats: ``ttft_s`` from sending the request to the first delta; ``decode_tps`` the API's
``usage.completion_tokens`` over the seconds from the first delta to the end; ``prompt_tokens``
the API's ``usage.prompt_tokens``. The API does not split its completion tokens, so
``reasoning_tokens`` / ``answer_tokens`` share ``completion_tokens`` in proportion to the
characters of each part (deltas counted when it sends no usage).
"""

from __future__ import annotations

import functools
import json
import os
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from magimac.core.errors import MagimacError
from magimac.core.events import Done, Loaded, ReasoningDelta, Retrying, Stats
from magimac.models.online import API_URL_ENV, SERVICE, OnlineModel
from magimac.online import failures, keys
from magimac.online.request import message_text, request_body
from magimac.online.deltas import content_events

RETRY_FOR_S = 120.0
"""Seconds the SDK keeps retrying a rate-limited request (HTTP 429) before the turn fails."""
TIMEOUT_S = 300.0
"""Seconds without a byte from the API before the turn fails (the SDK's default, 300 s)."""
FINISH = {"stop": "stop", "length": "length", "tool_calls": "stop"}


class _Quiet:
    """The SDK's debug logger, silenced: with ``MISTRAL_DEBUG`` set its default one logs every
    request (headers and body: the conversation) at DEBUG."""

    def debug(self, *args, **kwargs) -> None:
        pass


class _Cancelled(Exception):
    """Raised by the request hook of a cancelled turn, so the SDK does not retry it."""


@dataclass
class ApiPrompt:
    """What `OnlineEngine.encode` returns for ``--show-prompt``: ``tokens`` (Tekken ids of the
    messages' text, an estimate), ``text`` (the request body as JSON, images shortened; no key
    and no headers), ``images`` (none: they travel inside the messages)."""

    tokens: list[int]
    text: str
    images: list = field(default_factory=list)


def _shown(body: dict) -> dict:
    """``body`` with each image's base64 data shortened to its size."""
    def short(c):
        if isinstance(c, dict) and c.get("type") == "image_url":
            return {**c, "image_url": c["image_url"].split(",", 1)[0] + f",…({len(c['image_url'])} chars)"}
        return c

    messages = [{**m, "content": [short(c) for c in m["content"]]} if isinstance(m["content"], list) else m
                for m in body["messages"]]
    return {**body, "messages": messages}


@functools.lru_cache(maxsize=1)
def _tekken():
    """mistral-common's bundled Tekken tokenizer (the vocabulary of Mistral's current models),
    read once per process (about a second)."""
    import mistral_common  # noqa: PLC0415
    from mistral_common.tokens.tokenizers.tekken import Tekkenizer  # noqa: PLC0415

    return Tekkenizer.from_file(Path(mistral_common.__file__).parent / "data" / "tekken_240911.json")


class OnlineEngine:
    """A model of Mistral's API behind the engine interface (see the module doc).

    Args:
        model: the registry's `OnlineModel`.
        api_url: the API's base URL; default ``MAGIMAC_MISTRAL_API_URL``, else the entry's.
        retry_for_s / timeout_s: see `RETRY_FOR_S`, `TIMEOUT_S`.

    Nothing connects before `submit`; the key is read then (`keys.api_key`).
    """

    def __init__(self, model: OnlineModel, *, api_url: str | None = None, retry_for_s: float = RETRY_FOR_S,
                 timeout_s: float = TIMEOUT_S) -> None:
        self.model = model
        self.api_url = (api_url or os.environ.get(API_URL_ENV) or model.api_url).rstrip("/")
        self.retry_for_s, self.timeout_s = retry_for_s, timeout_s
        self.context_length = model.context_length
        self.loaded = Loaded(model.display_name, "API", model.context_length, model.vision, 0, SERVICE)
        self._turn: RemoteTurn | None = None

    def start(self) -> None:
        """Nothing to start: no model to load, no connection before a turn."""

    def load_events(self):
        """The `Loaded` event (at once)."""
        yield self.loaded

    def wait_loaded(self, timeout: float | None = None) -> Loaded:
        return self.loaded

    def submit(self, messages: list, settings=None) -> "RemoteTurn":
        """Start a turn answering ``messages`` (`magimac.core.conversation.Message`)."""
        self._turn = RemoteTurn(self, list(messages), settings)
        self._turn.start()
        return self._turn

    def cancel(self) -> None:
        """End the running turn with ``Done("cancelled")`` (its stream is closed)."""
        if self._turn is not None:
            self._turn.cancel()

    def close(self) -> None:
        self.cancel()

    def status(self) -> dict:
        """``{"running": 1 while a turn streams, else 0}``."""
        return {"running": int(self._turn is not None and not self._turn.finished)}

    def encode(self, messages: list, settings=None) -> ApiPrompt:
        """The request a turn would send, for ``--show-prompt`` (sends nothing).

        Raises:
            MagimacError: an image cannot be read.
        """
        body = request_body(messages, self.model, settings)
        return ApiPrompt(self._count(message_text(body)), json.dumps(_shown(body), ensure_ascii=False, indent=2))

    def prompt_tokens(self, messages: list, settings=None) -> list[int]:
        """Tekken ids of the request's message text: an estimate of what the API counts (its
        chat template adds a few control tokens per message)."""
        return self._count(message_text(request_body(messages, self.model, settings)))

    def count_tokens(self, text: str) -> int:
        return len(self._count(text))

    def _count(self, text: str) -> list[int]:
        return _tekken().encode(text, bos=False, eos=False)


class RemoteTurn:
    """One turn on the API: iterate it for its events (blocks until the next); iterating again
    after a `KeyboardInterrupt` continues where it stopped."""

    def __init__(self, engine: OnlineEngine, messages: list, settings) -> None:
        self.engine, self.messages, self.settings = engine, messages, settings
        self._events: queue.Queue = queue.Queue()
        self._cancel = threading.Event()
        self._stream = None
        self._done = False
        self.started_at = 0.0
        self._parts: dict = {"reasoning": 0, "answer": 0, "first": None, "usage": None, "finish": None}

    def start(self) -> None:
        threading.Thread(target=self._run, name="magimac-online", daemon=True).start()

    def __iter__(self) -> "RemoteTurn":
        return self

    def __next__(self):
        if self._done:
            raise StopIteration
        ev = self._events.get()
        self._done = isinstance(ev, Done)
        return ev

    @property
    def finished(self) -> bool:
        """Whether its ``Done`` was read."""
        return self._done

    def cancel(self) -> None:
        self._cancel.set()
        stream = self._stream
        if stream is not None:
            try:
                stream.close()
            except Exception:  # closing from another thread: the reader ends either way
                pass

    # the turn's thread -------------------------------------------------------------------
    def _run(self) -> None:
        self.started_at = time.monotonic()
        try:
            body = request_body(self.messages, self.engine.model, self.settings)
            key = keys.api_key()
            if self._cancel.is_set():
                raise _Cancelled()
            self._read(body, key)
            done = self._finished()
        except MagimacError as e:
            done = Done("cancelled") if self._cancel.is_set() else Done("error", str(e))
        except Exception as e:  # the SDK's and httpx's errors: one line each (`failures`)
            done = Done("cancelled") if self._cancel.is_set() else Done("error", failures.describe(
                e, self.engine.model, self.engine.api_url, time.monotonic() - self.started_at,
                answered=self._parts["first"] is not None))
        stats = self._stats()
        self._events.put(stats)
        self._events.put(Done(done.finish_reason, done.error, stats))

    def _client(self, key: str):
        import httpx2  # noqa: PLC0415  (the SDK's HTTP client)
        from mistralai.client import Mistral  # noqa: PLC0415  (only once an online model is used)
        from mistralai.client.utils import BackoffStrategy, RetryConfig  # noqa: PLC0415

        http = httpx2.Client(follow_redirects=True, event_hooks={"request": [self._on_request],
                                                                 "response": [self._on_response]})
        retries = RetryConfig("backoff", BackoffStrategy(1000, 60000, 1.5, int(self.engine.retry_for_s * 1000)),
                              retry_connection_errors=False, status_codes_override=["429"])
        client = Mistral(api_key=key, server_url=self.engine.api_url, client=http, retry_config=retries,
                         timeout_ms=int(self.engine.timeout_s * 1000), debug_logger=_Quiet())
        _ = client.chat  # the SDK loads its chat module at first use (0.5 s here): not part of TTFT
        return client, http

    def _read(self, body: dict, key: str) -> None:
        client, http = self._client(key)
        self.started_at = time.monotonic()  # the request goes now: TTFT counts from here
        try:
            self._stream = client.chat.stream(**body)
            with self._stream as events:
                for event in events:
                    if self._cancel.is_set():
                        break
                    self._take(event.data)
        finally:
            self._stream = None
            http.close()

    def _take(self, chunk) -> None:
        parts = self._parts
        if chunk.usage is not None:
            parts["usage"] = chunk.usage
        if not chunk.choices:
            return
        choice = chunk.choices[0]
        for ev in content_events(choice.delta.content):
            parts["first"] = parts["first"] or time.monotonic()
            parts["reasoning" if isinstance(ev, ReasoningDelta) else "answer"] += len(ev.text)
            self._events.put(ev)
        if choice.finish_reason:
            parts["finish"] = str(choice.finish_reason)

    def _finished(self) -> Done:
        finish = self._parts["finish"]
        if self._cancel.is_set():
            return Done("cancelled")
        if finish is None:
            return Done("error", failures.CUT)
        if finish not in FINISH:
            return Done("error", f"Mistral's API ended the answer with {finish!r}; what arrived is kept")
        return Done(FINISH[finish])

    def _stats(self) -> Stats:
        parts, end = self._parts, time.monotonic()
        first, usage = parts["first"], parts["usage"]
        completion = int(getattr(usage, "completion_tokens", 0) or 0)
        chars = parts["reasoning"] + parts["answer"]
        reasoning = round(completion * parts["reasoning"] / chars) if completion and chars else 0
        decode_s = end - first if first is not None else 0.0
        return Stats(prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
                     ttft_s=round(first - self.started_at, 3) if first is not None else 0.0,
                     decode_tps=round(completion / decode_s, 1) if completion and decode_s > 0 else 0.0,
                     reasoning_tokens=reasoning, answer_tokens=completion - reasoning,
                     context_length=self.engine.context_length)

    # httpx hooks (called by the SDK's client, in this turn's thread) ----------------------
    def _on_request(self, request) -> None:
        if self._cancel.is_set():
            raise _Cancelled()

    def _on_response(self, response) -> None:
        if response.status_code != 429:
            return
        if time.monotonic() - self.started_at > self.engine.retry_for_s:
            return  # the SDK gives up now: the turn ends with the 429's line
        raw = response.headers.get("retry-after")
        try:
            wait = float(raw) if raw is not None else None
        except ValueError:  # an HTTP date: the SDK reads it; say only that it waits
            wait = None
        when = f"in {wait:g} s (Retry-After)" if wait is not None else "shortly"
        self._events.put(Retrying(wait, f"Mistral's API is rate-limiting (HTTP 429): asking again {when}"))
