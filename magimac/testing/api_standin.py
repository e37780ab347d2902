"""A stand-in for Mistral's chat API on 127.0.0.1 (a real HTTP server in a thread).

``POST /v1/chat/completions`` with ``"stream": true`` answers Server-Sent Events in the format
of Mistral's platform docs: ``data: {chat.completion.chunk}`` lines, the thinking as a list
holding a thinking chunk, one event carrying the end of the thinking and the first text chunk,
then plain-string content, a last event with ``finish_reason`` and ``usage``, and
``data: [DONE]``. Each request is recorded (path, headers, JSON body).

What it answers is a queue of `Reply` objects (the default reply when it is empty): a stream,
an HTTP error with headers (401, 404, 429 with ``Retry-After``), a stream cut before its end,
or one malformed event.

The pytest fixtures `api` (the stand-in, with ``MAGIMAC_MISTRAL_API_URL`` and ``MISTRAL_API_KEY``
pointing at it; the key is `KEY`) and `memory_keyring` (keyring's backend swapped for a dict)
are imported by the conftest files of the tests that use them.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

KEY = "sk-standin-SECRET-4f7a9c"
"""The test key: it must reach the stand-in's Authorization header, and nothing else."""
REASONING = ["The person ", "says hello. ", "I greet them back."]
ANSWER = ["Hello", "! How can ", "I help?"]


@dataclass
class Reply:
    """One answer: ``status`` (200: a stream), ``headers``, ``body`` (for errors),
    ``reasoning`` / ``answer`` (the streamed parts), ``cut_after`` (close the connection after
    this many events, without the end), ``malformed`` (send a broken event after the first),
    ``delay_s`` (seconds between events: a slow stream to stop)."""

    status: int = 200
    headers: dict = field(default_factory=dict)
    body: str = ""
    reasoning: list[str] = field(default_factory=lambda: list(REASONING))
    answer: list[str] = field(default_factory=lambda: list(ANSWER))
    cut_after: int | None = None
    malformed: bool = False
    delay_s: float = 0.0


def chunk(content, finish=None, usage=None) -> dict:
    d = {"id": "cmpl-standin", "object": "chat.completion.chunk", "created": 0, "model": "standin",
         "choices": [{"index": 0, "delta": {"role": "assistant", "content": content}, "finish_reason": finish}]}
    if usage:
        d["usage"] = usage
    return d


def thinking(text: str) -> dict:
    return {"type": "thinking", "thinking": [{"type": "text", "text": text}]}


def events(reply: Reply) -> list[dict]:
    """The stream's chunks: thinking parts, the last one with the first text chunk, then strings."""
    r, a = reply.reasoning, reply.answer
    out = [chunk([thinking(t)]) for t in r[:-1]]
    out.append(chunk(([thinking(r[-1])] if r else []) + ([{"type": "text", "text": a[0]}] if a else [])))
    out += [chunk(t) for t in a[1:]]
    usage = {"prompt_tokens": 21, "completion_tokens": 12, "total_tokens": 33}
    out.append(chunk("", "stop", usage))
    return out


@dataclass
class ApiStandIn:
    replies: list[Reply] = field(default_factory=list)
    requests: list[dict] = field(default_factory=list)
    url: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def next_reply(self, record: dict) -> Reply:
        with self._lock:
            self.requests.append(record)
            return self.replies.pop(0) if self.replies else Reply()

    def bodies(self) -> list[dict]:
        return [r["body"] for r in self.requests]


def _handler(state: ApiStandIn):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # quiet
            pass

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("content-length", 0)))
            reply = state.next_reply({"path": self.path, "headers": dict(self.headers),
                                      "body": json.loads(raw or b"{}")})
            if reply.status != 200:
                body = (reply.body or json.dumps({"message": "standin error", "code": reply.status})).encode()
                self.send_response(reply.status)
                for k, v in {"content-type": "application/json", **reply.headers}.items():
                    self.send_header(k, v)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            try:
                self._stream(reply)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client stopped reading (it gave up on a malformed event): as a server would

        def _stream(self, reply: Reply) -> None:
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.end_headers()
            for i, ev in enumerate(events(reply)):
                if reply.cut_after is not None and i == reply.cut_after:
                    return  # HTTP/1.0: closing the connection ends the body, without [DONE]
                self.wfile.write(b"data: " + json.dumps(ev).encode() + b"\n\n")
                if reply.malformed and i == 0:
                    self.wfile.write(b'data: {"choices": "not a list"}\n\n')
                self.wfile.flush()
                time.sleep(reply.delay_s)
            self.wfile.write(b"data: [DONE]\n\n")

    return Handler


def serve(state: ApiStandIn):
    """Start the server on 127.0.0.1 (a free port); returns (server, thread); ``state.url`` set."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    return server, t


@pytest.fixture
def api(monkeypatch):
    """The stand-in on 127.0.0.1, with MAGIMAC_MISTRAL_API_URL and MISTRAL_API_KEY pointing at it."""
    state = ApiStandIn()
    server, thread = serve(state)
    monkeypatch.setenv("MAGIMAC_MISTRAL_API_URL", state.url)
    monkeypatch.setenv("MISTRAL_API_KEY", KEY)
    yield state
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture
def closed_port_url() -> str:
    """An http URL on 127.0.0.1 where nothing listens."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


@pytest.fixture
def memory_keyring():
    """keyring's backend swapped for a dict for the test (restored after)."""
    import keyring
    from keyring.backend import KeyringBackend
    from keyring.errors import PasswordDeleteError

    class Memory(KeyringBackend):
        priority = 1
        store: dict = {}

        def get_password(self, service, username):
            return self.store.get((service, username))

        def set_password(self, service, username, password):
            self.store[(service, username)] = password

        def delete_password(self, service, username):
            if self.store.pop((service, username), None) is None:
                raise PasswordDeleteError("not saved")

    before = keyring.get_keyring()
    mem = Memory()
    mem.store = {}
    keyring.set_keyring(mem)
    yield mem.store
    keyring.set_keyring(before)
