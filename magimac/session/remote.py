"""A running `magimac serve` as the engine of `magimac chat` (one copy of the weights on the Mac).

`RemoteEngine` has the engine's duck-typed interface (`magimac.session.model.ChatSession`:
``start``, ``load_events``, ``wait_loaded``, ``submit`` -> events, ``cancel``, ``close``,
``prompt_tokens``, ``count_tokens``, ``encode``) and speaks the server's OpenAI API: a turn
is one streamed ``POST /v1/chat/completions``; token counts come from the server's
``POST /magimac/v1/tokenize``.  Tools go as the request's ``tools``; the model's calls come
back as `ToolCall` events (the server runs none: the session's tool loop does, as locally).  `discover` finds a server on the default port that serves the
model asked for (by `model_key`, which does not show the model's path) and proves it was
started by the same person (`magimac.session.proof`).

Only the standard library's `urllib` is used: plain HTTP/1.1 and a line-by-line SSE reader
are all this needs.  Nothing leaves the machine unless the person names another host.
"""

from __future__ import annotations

import hashlib
import json
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Iterator

from magimac.core.conversation import Message
from magimac.core.events import Done, EngineError, Loaded, Stats
from magimac.engine.loading import EngineLoadError
from magimac.core.settings import DEFAULT, GenerationSettings
from magimac.session.proof import check_server
from magimac.text.openai_wire import delta_events, messages_json, read_usage, settings_json
from magimac.text.prompt import Prompt

DEFAULT_URL = "http://127.0.0.1:8080"
"""Where `discover` looks: `magimac serve`'s default address and port."""


def model_key(path: Path) -> str:
    """A model directory's identity that does not show its path: the first 16 hex digits of the
    SHA-256 of its resolved path (the server lists it; `discover` compares it)."""
    return hashlib.sha256(str(Path(path).resolve()).encode()).hexdigest()[:16]


def api_base(url: str) -> str:
    """``url`` without a trailing ``/`` or ``/v1``: ``http://127.0.0.1:8080/v1/`` -> ``http://127.0.0.1:8080``."""
    url = url.rstrip("/")
    return url[:-3] if url.endswith("/v1") else url


def discover(path: Path, url: str | None = None, timeout: float = 0.5) -> "RemoteEngine | None":
    """A `RemoteEngine` on the server at ``url`` (None: `DEFAULT_URL`) when it serves the model
    directory ``path`` and proves it is the person's own `magimac serve`
    (`magimac.session.proof.check_server`), else None (nothing listening, another model, not
    a magimac server).  Nothing but a random nonce is sent before that proof.  ``timeout``: seconds.

    Raises:
        UntrustedServer: a server there lists the model but cannot prove it is the person's own
            (one line to show; the model is then loaded here).
    """
    base = api_base(url or DEFAULT_URL)
    try:
        models = _get_json(base + "/v1/models", None, timeout)["data"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    key = model_key(path)
    for m in models if isinstance(models, list) else []:
        if isinstance(m, dict) and (m.get("magimac") or {}).get("key") == key:
            check_server(base, timeout)
            return RemoteEngine(base, m.get("id"))
    return None


def server_for(path: Path | None, url: str | None = None, no_server: bool = False,
               model_id: str | None = None) -> "RemoteEngine | None":
    """The server to use instead of loading the model here, or None (load it here).

    ``url`` (``--server URL``): that server, asking for ``model_id`` (None: the first it serves),
    with the key in ``MAGIMAC_API_KEY`` if set; it is checked when the engine loads.  Else,
    unless ``no_server`` (``--no-server``) or ``MAGIMAC_NO_SERVER=1``, the person's own server on
    `DEFAULT_URL` when it serves the model directory ``path`` (`discover`: at most 1 s).

    Raises:
        UntrustedServer: as `discover`.
    """
    import os

    if url is not None:
        return RemoteEngine(url, model_id, os.environ.get("MAGIMAC_API_KEY"))
    if no_server or os.environ.get("MAGIMAC_NO_SERVER") == "1" or path is None:
        return None
    return discover(path)


def _get_json(url: str, key: str | None, timeout: float | None, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers=_headers(key))
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())


def _headers(key: str | None) -> dict:
    h = {"Content-Type": "application/json"}
    if key:
        h["Authorization"] = f"Bearer {key}"
    return h


def _http_error(e: urllib.error.HTTPError) -> str:
    try:
        return json.loads(e.read())["error"]["message"]
    except Exception:
        return f"HTTP {e.code} {e.reason}"


class RemoteTurn:
    """The events of one turn streamed from the server; ``cancel`` closes the stream (the
    server then stops the turn within one token).  Done is always last."""

    def __init__(self, engine: "RemoteEngine", body: dict) -> None:
        self.engine, self.body = engine, body
        self.done: Done | None = None
        self._cancelled = threading.Event()
        self._response = None
        self._events = self._read()

    def __iter__(self) -> "RemoteTurn":
        return self

    def __next__(self):
        if self.done is not None:
            raise StopIteration
        ev = next(self._events)
        if isinstance(ev, Done):
            self.done = ev
        return ev

    def cancel(self) -> None:
        self._cancelled.set()
        r = self._response
        if r is not None:
            r.close()

    def _read(self) -> Iterator:
        req = urllib.request.Request(self.engine.base + "/v1/chat/completions",
                                     data=json.dumps(self.body).encode(), headers=_headers(self.engine.api_key))
        try:
            self._response = urllib.request.urlopen(req, timeout=self.engine.timeout)
        except urllib.error.HTTPError as e:
            yield Done("error", _http_error(e), rejected=e.code in (400, 404, 413))
            return
        except OSError as e:
            yield Done("error", f"{self.engine.base}: cannot reach the server ({e})")
            return
        finish, stats = "stop", Stats()
        try:
            for raw in self._response:
                line = raw.decode("utf-8").strip()
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    break
                chunk = json.loads(data)
                if "error" in chunk:
                    yield Done("error", chunk["error"].get("message", "the server failed"))
                    return
                if chunk.get("usage"):
                    stats = read_usage(chunk["usage"], self.engine.context_length or 0)
                for choice in chunk.get("choices") or []:
                    yield from delta_events(choice.get("delta") or {})
                    finish = choice.get("finish_reason") or finish
        except (OSError, ValueError, AttributeError):
            if not self._cancelled.is_set():
                yield Done("error", f"{self.engine.base}: the server closed the stream")
                return
        if self._cancelled.is_set():
            yield Done("cancelled", None, stats)
        else:
            yield Done(finish if finish in ("stop", "length") else "stop", None, stats)


class RemoteEngine:
    """The engine interface over `magimac serve` at ``url`` (see the module doc).

    Args:
        url: the server, ``http://HOST:PORT`` (a trailing ``/v1`` is allowed).
        model_id: the served model to ask for; None: the first one listed.
        api_key: sent as ``Authorization: Bearer KEY`` when given.
        timeout: seconds to wait for the server's first bytes and between bytes.
    """

    def __init__(self, url: str, model_id: str | None = None, api_key: str | None = None,
                 timeout: float = 600.0) -> None:
        self.base = api_base(url)
        self.model_id, self.api_key, self.timeout = model_id, api_key, timeout
        self.loaded: Loaded | None = None
        self.context_length: int | None = None
        self._turns: list[RemoteTurn] = []

    def start(self) -> None:
        """Nothing to start: the server holds the model."""

    def wait_loaded(self, timeout: float | None = None) -> Loaded:
        """The served model as a `Loaded` event (asked once).

        Raises:
            EngineLoadError: the server cannot be reached, or does not serve ``model_id``.
        """
        if self.loaded is not None:
            return self.loaded
        try:
            models = _get_json(self.base + "/v1/models", self.api_key, timeout or 10)["data"]
        except urllib.error.HTTPError as e:
            raise EngineLoadError(f"{self.base}: {_http_error(e)}") from None
        except (OSError, ValueError, KeyError) as e:
            raise EngineLoadError(f"{self.base}: no magimac server answers there ({e}); start one "
                                  "with `magimac serve`") from None
        chosen = [m for m in models if self.model_id in (None, m.get("id"))]
        if not chosen:
            raise EngineLoadError(f"{self.base} serves {', '.join(m.get('id', '?') for m in models)}, "
                                  f"not {self.model_id}")
        m = chosen[0]
        info = m.get("magimac") or {}
        self.model_id = m.get("id")
        self.context_length = int(info.get("context_length") or 0) or None
        self.loaded = Loaded(model=info.get("name", self.model_id), quantization=info.get("quantization", ""),
                             context_length=self.context_length or 0, vision=bool(info.get("vision")))
        return self.loaded

    def load_events(self) -> Iterator[Loaded | EngineError]:
        try:
            yield self.wait_loaded()
        except EngineLoadError as e:
            yield EngineError(str(e))

    def submit(self, messages: list[Message], settings: GenerationSettings | None = None) -> RemoteTurn:
        """Start a turn on the server; its events stream from the returned `RemoteTurn`.
        The request is written by `magimac.text.openai_wire`.

        Raises:
            SettingError: a number of ``settings`` out of its range (`magimac.core.settings.SETTINGS`).
            MagimacError: an image cannot be read."""
        settings = settings or GenerationSettings()
        self.wait_loaded()
        body = {"model": self.model_id, "messages": messages_json(messages, settings.system_prompt), "stream": True,
                "stream_options": {"include_usage": True}, **settings_json(settings)}
        turn = RemoteTurn(self, body)
        self._turns = [t for t in self._turns if t.done is None] + [turn]
        return turn

    def cancel(self) -> None:
        for t in self._turns:
            t.cancel()

    def close(self) -> None:
        self.cancel()

    def status(self) -> dict:
        """``{"running": this client's turns not yet done}`` (the server's own is its ``/status``)."""
        return {"running": sum(t.done is None for t in self._turns)}

    # ---- tokens: the server's tokenizer ---------------------------------------------------

    def encode(self, messages: list[Message], settings: GenerationSettings | None = None) -> Prompt:
        """The prompt the server would build for the messages' text (ids and text; images and
        documents are left out: the server opens no paths it is sent)."""
        settings = settings or GenerationSettings()
        bare = [{k: v for k, v in m.to_dict().items() if k not in ("images", "documents")} for m in messages]
        body = {"messages": bare, "keep_reasoning": settings.keep_reasoning}
        if settings.system_prompt is not DEFAULT:
            body["system_prompt"] = settings.system_prompt
        r = self._post("/magimac/v1/tokenize", body)
        return Prompt(tokens=list(r["tokens"]), text=r.get("text", ""))

    def prompt_tokens(self, messages: list[Message], settings: GenerationSettings | None = None) -> list[int]:
        return self.encode(messages, settings).tokens

    def count_tokens(self, text: str) -> int:
        return int(self._post("/magimac/v1/tokenize", {"text": text})["count"])

    def _post(self, path: str, body: dict) -> dict:
        from magimac.text.prompt import PromptError

        try:
            return _get_json(self.base + path, self.api_key, self.timeout, body)
        except urllib.error.HTTPError as e:
            raise PromptError(f"{self.base}: {_http_error(e)}") from None
        except (OSError, ValueError) as e:
            raise EngineLoadError(f"{self.base}: no magimac server answers there ({e})") from None
