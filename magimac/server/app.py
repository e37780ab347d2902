"""The ASGI app of `magimac serve` (Starlette): the OpenAI routes over one opened model.

Routes: ``GET /v1/models``, ``POST /v1/chat/completions`` (`magimac.server.completions`),
``POST /magimac/v1/tokenize`` (prompt token ids for `magimac.session.remote.RemoteEngine`,
so a client sizes its documents with the server's tokenizer), ``GET /magimac/v1/status``
(turns running, turns ended by finish reason, prefix-cache bytes: `BatchEngine.status`) and
``GET /magimac/identify?nonce=HEX`` (HMAC-SHA256 of the nonce with the secret `magimac serve`
wrote for its port: `magimac.session.proof`) and ``GET /health`` (no key).

Why Starlette with uvicorn: a small, well-kept ASGI stack whose `StreamingResponse` notices a
client that disconnects and cancels its stream (the turn then stops within one token); the
validation FastAPI would add is done by hand in `magimac.server.translate`, because OpenAI's
API wants its own error shape and one-line messages naming the field.

Every error is JSON in OpenAI's shape (`magimac.server.errors`); a failure inside the server
answers 500 and the server keeps serving.  `magimac.server.guard` refuses foreign hosts,
origins and non-JSON bodies first, and reads bodies in a bounded way.  With an API key, every route but ``/health`` asks
for ``Authorization: Bearer KEY`` (401 otherwise).
"""

from __future__ import annotations

import hmac
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from magimac.core.conversation import Message
from magimac.core.errors import one_line
from magimac.core.events import Done
from magimac.server.completions import Completion, TurnStream
from magimac.server.errors import RequestError, error_body
from magimac.server.guard import LOOPBACK_NAMES, Guard, is_loopback, origin_pattern, read_json
from magimac.server.turn_pump import TurnPump
from magimac.server.translate import parse_chat
from magimac.session.proof import proof
from magimac.session.remote import model_key

GRACE_S = 5.0
"""Seconds connections get to close once the server is told to stop (its turns are cancelled first)."""


@dataclass
class Served:
    """What the app serves.

    Attributes:
        session: the opened `magimac.session.model.ChatSession` (loaded).
        model_id: the id clients send (``--model`` as given, else the directory name).
        api_key: the key clients must send, or None.
        keep_reasoning: keep earlier reasoning in prompts (else dropped).
        host: the address bound; on a loopback one only its names are answered (`Guard`).
        origins: browser origins allowed besides this Mac's own (``--allow-origin``).
        secret: what ``GET /magimac/identify`` proves holding (`magimac.session.proof`), or None.
    """

    session: Any
    model_id: str
    api_key: str | None = None
    keep_reasoning: bool = False
    host: str = "127.0.0.1"
    origins: tuple[str, ...] = ()
    secret: str | None = None

    def accepts(self, name: str) -> bool:
        return name.lower() in {self.model_id.lower(), self.session.path.name.lower()}

    def model_object(self) -> dict:
        loaded = self.session.loaded
        info = {"key": model_key(self.session.path)}
        if loaded is not None:
            info.update(name=loaded.model, quantization=loaded.quantization,
                        context_length=loaded.context_length, vision=loaded.vision)
        return {"id": self.model_id, "object": "model", "created": int(self.session.path.stat().st_mtime),
                "owned_by": "magimac", "magimac": info}


def create_app(served: Served) -> Starlette:
    """The Starlette app for ``served``."""

    async def models(request: Request) -> JSONResponse:
        return JSONResponse({"object": "list", "data": [served.model_object()]})

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def status(request: Request) -> JSONResponse:
        return JSONResponse(served.session.status())

    async def chat(request: Request):
        body = await read_json(request)
        image_dir = Path(tempfile.mkdtemp(prefix="magimac-serve-"))
        try:
            req = parse_chat(body, image_dir, served.keep_reasoning)
            if not served.accepts(req.model):
                raise RequestError(f"model: {req.model!r} is not served here; GET /v1/models lists "
                                   f"{served.model_id!r}", "model", status=404, code="model_not_found")
        except BaseException:
            shutil.rmtree(image_dir, ignore_errors=True)
            raise
        run = served.session.turn(req.messages, req.settings)
        pump = TurnPump(run, req.stop, on_end=lambda: shutil.rmtree(image_dir, ignore_errors=True))
        completion = Completion(req, pump)
        try:
            first = await completion.first(request.is_disconnected)
        except BaseException:
            pump.cancel()
            raise
        if isinstance(first, Done) and first.finish_reason == "error":
            return completion.failed(first)
        if req.stream:
            return TurnStream(completion.events(first), pump)
        try:
            return await completion.whole(first, request.is_disconnected)
        finally:
            pump.cancel()

    async def tokenize(request: Request) -> JSONResponse:
        body = await read_json(request)
        session = served.session
        if isinstance(body, dict) and isinstance(body.get("text"), str):
            return JSONResponse({"count": session.count_tokens(body["text"])})
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            raise RequestError("the body must be {\"messages\": [...]} or {\"text\": \"...\"}")
        if any(isinstance(m, dict) and (m.get("images") or m.get("documents")) for m in body["messages"]):
            raise RequestError("messages: no images or documents here (the server opens no paths it is sent)",
                               "messages")
        try:
            messages = [Message.from_dict(m, f"messages[{i}]") for i, m in enumerate(body["messages"])]
            prompt = session.encode(messages, _settings_of(body))
        except ValueError as e:  # ConversationError / PromptError
            raise RequestError(str(e), "messages") from None
        return JSONResponse({"tokens": prompt.tokens, "text": prompt.text})

    async def identify(request: Request) -> JSONResponse:
        nonce = request.query_params.get("nonce", "")
        if served.secret is None:
            raise RequestError("this server has no secret to prove (it is not on a loopback address)", status=404)
        if not re.fullmatch(r"[0-9a-f]{32,128}", nonce):
            raise RequestError("nonce: 32 to 128 lower-case hex digits are expected", "nonce")
        return JSONResponse({"proof": proof(served.secret, nonce)})

    routes = [Route("/v1/models", models), Route("/v1/chat/completions", chat, methods=["POST"]),
              Route("/magimac/v1/tokenize", tokenize, methods=["POST"]), Route("/magimac/v1/status", status),
              Route("/magimac/identify", identify), Route("/health", health)]
    return Starlette(routes=routes, middleware=_middleware(served), exception_handlers={
        RequestError: _request_error, HTTPException: _http_error, Exception: _server_error})


def run(served: Served, sock) -> None:
    """Serve `create_app` on the listening socket ``sock`` until Ctrl-C or SIGTERM; then every
    turn is cancelled (each stream ends with its finish chunk and ``[DONE]``) and connections
    get at most `GRACE_S` seconds to close."""
    config = uvicorn.Config(create_app(served), log_level="warning", access_log=False,
                            timeout_graceful_shutdown=GRACE_S)
    _StoppingServer(config, served.session.cancel).run(sockets=[sock])


class _StoppingServer(uvicorn.Server):
    """uvicorn's server that calls ``on_stop`` (cancel every turn) before it waits for its
    connections: otherwise it waits for each stream to reach its token limit."""

    def __init__(self, config: uvicorn.Config, on_stop) -> None:
        super().__init__(config)
        self.on_stop = on_stop

    async def shutdown(self, sockets=None) -> None:
        self.on_stop()
        await super().shutdown(sockets)


def _middleware(served: Served) -> list[Middleware]:
    """`Guard` outside, then CORS (its preflights need no key), then the key check."""
    hosts = frozenset([*LOOPBACK_NAMES, served.host.lower()]) if is_loopback(served.host) else None
    origins = origin_pattern(list(served.origins))
    stack = [Middleware(Guard, hosts=hosts, origins=origins),
             Middleware(CORSMiddleware, allow_origin_regex=origins.pattern, allow_methods=["GET", "POST"],
                        allow_headers=["Authorization", "Content-Type"])]
    if served.api_key:
        stack.append(Middleware(_KeyCheck, key=served.api_key))
    return stack


def _settings_of(body: dict):
    """`GenerationSettings` of a tokenize request (``keep_reasoning``, ``system_prompt``)."""
    from magimac.core.settings import DEFAULT, GenerationSettings

    system = body.get("system_prompt", DEFAULT)
    return GenerationSettings(keep_reasoning=bool(body.get("keep_reasoning")),
                              system_prompt=system if system is None or isinstance(system, str) else DEFAULT)


async def _request_error(request: Request, exc: RequestError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status)


async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
    message = {404: f"no route {request.url.path}", 405: f"{request.method} is not allowed on {request.url.path}"}
    return JSONResponse(error_body(message.get(exc.status_code, str(exc.detail))), status_code=exc.status_code)


async def _server_error(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse(error_body(f"the server failed: {one_line(exc)}", "server_error"), status_code=500)


class _KeyCheck:
    """ASGI middleware: 401 unless ``Authorization: Bearer KEY`` (compared in constant time)."""

    def __init__(self, app, key: str) -> None:
        self.app, self.key = app, key.encode()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope["path"] != "/health":
            headers = dict(scope.get("headers") or [])
            given = headers.get(b"authorization", b"")
            scheme, _, token = given.partition(b" ")
            if scheme.lower() != b"bearer" or not hmac.compare_digest(token.strip(), self.key):
                what = "missing" if not given else "wrong"
                body = error_body(f"the API key is {what}: send Authorization: Bearer KEY (magimac serve --api-key)",
                                  code="invalid_api_key")
                await JSONResponse(body, status_code=401)(scope, receive, send)
                return
        await self.app(scope, receive, send)
