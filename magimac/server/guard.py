"""What `magimac serve` refuses before a route runs, and how it reads a body.

A keyless server on 127.0.0.1 is reachable from every web page the person opens: a page may
POST ``text/plain`` to it without asking first (cross-site request forgery), and a page whose
name is made to point at 127.0.0.1 talks to it as its own site (DNS rebinding).  `Guard`
refuses, each with one line in OpenAI's error shape:

- 403 a ``Host`` that is not this server's, when it is bound to loopback: ``localhost``,
  ``127.0.0.1``, ``[::1]`` and the bound host pass, with any port;
- 403 a browser ``Origin`` not allowed: by default pages of ``localhost``, ``127.0.0.1`` and
  ``[::1]`` only; more with ``--allow-origin`` or ``MAGIMAC_ORIGINS`` (comma list, ``*`` a
  wildcard, as Ollama's ``OLLAMA_ORIGINS``);
- 415 a ``POST`` whose ``Content-Type`` is not ``application/json`` (what a page cannot send
  to another site without a CORS preflight, which only allowed origins pass).

Starlette's ``CORSMiddleware`` answers the preflights and adds the headers of allowed origins;
``TrustedHostMiddleware`` is not used because it answers 400 in plain text.

`read_json` reads a body in a bounded way: the declared ``Content-Length`` first, then the
bytes as they arrive (a chunked body has none), at most `MAX_BODY_BYTES`; then JSON nested
at most `MAX_JSON_DEPTH` deep.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
import urllib.parse
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse

from magimac.server.errors import RequestError, error_body

MAX_BODY_BYTES = 16 * 1024 * 1024
"""The largest request body, bytes (16 MiB: a long conversation and a few photos as base64);
a larger one answers 413 before the rest of it is read."""
MAX_JSON_DEPTH = 64
"""How deep arrays and objects of a request body may nest."""
TOO_DEEP = f"the request body nests arrays or objects more than {MAX_JSON_DEPTH} deep"
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
LOCAL_ORIGINS = r"https?://(localhost|127\.0\.0\.1|\[::1\])(:\d+)?"
"""Browser origins allowed by default: pages served from this Mac's loopback names."""

log = logging.getLogger("uvicorn.error")


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only (``localhost``, 127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def origin_pattern(extra: list[str]) -> re.Pattern:
    """The origins allowed: `LOCAL_ORIGINS` and each of ``extra`` (``*`` matches anything, so
    ``"*"`` allows every page, ``"https://*.example.com"`` one site's)."""
    wild = [re.escape(o).replace(r"\*", ".*") for o in extra]
    return re.compile("|".join(f"(?:{p})" for p in [LOCAL_ORIGINS, *wild]))


def origins_from(value: str | None) -> list[str]:
    """``MAGIMAC_ORIGINS`` (a comma list) as a list of patterns."""
    return [o.strip() for o in (value or "").split(",") if o.strip()]


class Guard:
    """ASGI middleware refusing foreign hosts, origins and non-JSON bodies (see the module doc).

    Args:
        app: the app inside.
        hosts: the host names answered (lower case, IPv6 without brackets); None: any
            (a server bound beyond loopback, which needs its API key anyway).
        origins: the allowed browser origins (`origin_pattern`).
    """

    def __init__(self, app, hosts: frozenset[str] | None, origins: re.Pattern) -> None:
        self.app, self.hosts, self.origins = app, hosts, origins

    async def __call__(self, scope, receive, send) -> None:
        problem = self.refusal(scope) if scope["type"] == "http" else None
        if problem is None:
            await self.app(scope, receive, send)
            return
        status, message = problem
        await JSONResponse(error_body(message, code="forbidden" if status == 403 else None),
                           status_code=status)(scope, receive, send)

    def refusal(self, scope) -> tuple[int, str] | None:
        """(status, one line) when the request is refused, else None."""
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers") or []}
        host = headers.get("host", "")
        if self.hosts is not None and _host_name(host) not in self.hosts:
            return 403, (f"the Host {host[:100]!r} is not this server's (localhost, 127.0.0.1, [::1]): "
                         "refused, as a web page may point its own name here")
        origin = headers.get("origin")
        if origin is not None and not self.origins.fullmatch(origin):
            return 403, (f"the browser origin {origin[:100]!r} is not allowed: start magimac serve with "
                         f"--allow-origin {origin[:100]} (or MAGIMAC_ORIGINS) to let its pages in")
        kind = headers.get("content-type", "").split(";")[0].strip().lower()
        if scope["method"] == "POST" and kind != "application/json":
            return 415, f"Content-Type must be application/json, got {kind or 'none'!r}"
        return None


def _host_name(host: str) -> str | None:
    """The name in a ``Host`` header (``[::1]:8080`` -> ``::1``), None when malformed."""
    try:
        return urllib.parse.urlsplit("//" + host).hostname
    except ValueError:
        return None


async def read_json(request: Request) -> Any:
    """The request's body as JSON, read at most `MAX_BODY_BYTES`.

    Raises:
        RequestError: 413 over the limit (declared or counted); 400 not JSON, nested deeper than
            `MAX_JSON_DEPTH`, or the client went away mid-body (logged as one line).
    """
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise _too_large(int(declared))
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise _too_large(None)
            chunks.append(chunk)
    except ClientDisconnect:
        log.warning("a client went away before its request body arrived (%s %s)", request.method, request.url.path)
        raise RequestError("the client went away before its body arrived") from None
    try:
        body = json.loads(b"".join(chunks))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RequestError(f"the request body is not valid JSON ({getattr(e, 'msg', e)})") from None
    except RecursionError:
        raise RequestError(TOO_DEEP) from None
    if not _nests_within(body, MAX_JSON_DEPTH):
        raise RequestError(TOO_DEEP)
    return body


def _too_large(size: int | None) -> RequestError:
    """413 for a body of ``size`` bytes (None: counted past the limit, size unknown)."""
    said = "over the limit" if size is None else f"{size:,} bytes"
    return RequestError(f"the request body is {said}: magimac serve reads at most {MAX_BODY_BYTES:,} bytes "
                        f"({MAX_BODY_BYTES // 2**20} MiB); send fewer or smaller images", status=413)


def _nests_within(value: Any, limit: int) -> bool:
    """Whether arrays and objects in ``value`` nest at most ``limit`` deep (no recursion)."""
    stack = [(value, 1)]
    while stack:
        v, depth = stack.pop()
        if isinstance(v, (list, dict)):
            if depth > limit:
                return False
            stack.extend((x, depth + 1) for x in (v.values() if isinstance(v, dict) else v))
    return True
