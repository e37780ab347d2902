"""`magimac serve`: the loaded model behind an OpenAI-compatible HTTP API, for every other app.

    magimac serve [--model NAME_OR_DIR] [--host 127.0.0.1] [--port 8080] [--api-key KEY]

Serves ``GET /v1/models`` and ``POST /v1/chat/completions`` (`magimac.server`); many clients
at once share the one copy of the weights (`magimac.engine.batch.BatchEngine`).  It binds to
127.0.0.1 unless told otherwise, and any address other than a loopback one needs an API key
(``--api-key`` or the ``MAGIMAC_API_KEY`` variable, which keeps the key out of the process
list).  Prints one line once it serves; Ctrl-C stops it (and every turn running).

Web pages: only pages of this Mac's own loopback names may call it (``--allow-origin`` or
``MAGIMAC_ORIGINS`` allow more), and on loopback only its own host names are answered
(`magimac.server.guard`).  Request bodies: JSON, at most 16 MiB.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
from pathlib import Path

from magimac.core.errors import MagimacError
from magimac.core.units import SizeError, parse_size
from magimac.server.guard import MAX_BODY_BYTES, is_loopback
from magimac.text.images import MAX_IMAGE_PIXELS

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
"""The port `magimac chat` looks for a running server on (mlx_lm.server's and llama.cpp's default)."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of `magimac serve` (see the module doc)."""
    p.epilog = (f"Requests: JSON bodies (Content-Type: application/json) of at most {MAX_BODY_BYTES // 2**20} MiB, "
                f"images of at most {MAX_IMAGE_PIXELS // 10**6} million pixels.")
    p.add_argument("--model", help="registry name, hub id or converted model directory (default: the default model)")
    p.add_argument("--host", default=DEFAULT_HOST, help=f"address to bind (default {DEFAULT_HOST}; others need --api-key)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    p.add_argument("--api-key", help="clients must send 'Authorization: Bearer KEY' (default: $MAGIMAC_API_KEY)")
    p.add_argument("--allow-origin", action="append", default=[], metavar="ORIGIN",
                   help="let web pages of ORIGIN call the server ('*' a wildcard; repeatable; also "
                        "$MAGIMAC_ORIGINS, a comma list); by default only pages of localhost")
    p.add_argument("--context-length", type=int, metavar="TOKENS", help="context limit of each conversation")
    p.add_argument("--max-streams", type=int, default=None, metavar="N",
                   help="conversations decoded together (default 8; more wait for a place)")
    p.add_argument("--cache-gb", metavar="GB",
                   help="memory for the conversations' KV prefixes, in GB of 10^9 bytes as `magimac cache "
                        "--budget` (e.g. 8 or 500MB; default: one whole context)")
    p.add_argument("--keep-reasoning", action="store_true", help="keep earlier answers' reasoning in prompts")
    p.add_argument("--no-disk-cache", action="store_true",
                   help="keep prompts' KV in memory only (default: also on disk, read back after a restart)")
    p.add_argument("--force", action="store_true", help="load even if the model looks too large for this machine")


def check_args(args: argparse.Namespace) -> str | None:
    """The API key to ask for (None: none); checks the numbers and the address.

    Raises:
        MagimacError: a bad port or number, or a non-loopback address without a key.
    """
    key = args.api_key or os.environ.get("MAGIMAC_API_KEY") or None
    if not 0 <= args.port <= 65535:
        raise MagimacError(f"--port must be from 0 to 65535, got {args.port}")
    if args.context_length is not None and args.context_length < 1:
        raise MagimacError(f"--context-length must be a positive number of tokens, got {args.context_length}")
    if args.max_streams is not None and args.max_streams < 1:
        raise MagimacError(f"--max-streams must be at least 1, got {args.max_streams}")
    cache_bytes(args)
    if not is_loopback(args.host) and not key:
        raise MagimacError(f"--host {args.host} lets other machines in: give --api-key KEY (or set "
                           "MAGIMAC_API_KEY), or bind to 127.0.0.1")
    return key


def cache_bytes(args: argparse.Namespace) -> int | None:
    """Bytes of ``--cache-gb`` (decimal GB, as `magimac cache --budget`: `parse_size`), or None.

    Raises:
        MagimacError: not a size >= 0.
    """
    if args.cache_gb is None:
        return None
    try:
        return parse_size(str(args.cache_gb), decimal=True, zero=True)
    except SizeError as e:
        raise MagimacError(f"--cache-gb: {e}") from None


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host``:``port``.

    Raises:
        MagimacError: the address is taken or cannot be bound (one line, with what to do).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise MagimacError(f"cannot listen on {host}:{port} ({e.strerror}): pick another --port or --host") from None
    sock.listen(128)
    return sock


def run(args: argparse.Namespace) -> int:
    """Load the model, then serve until interrupted; returns the exit status."""
    from magimac.session.model import batch_engine_factory, choose_model, open_model

    key = check_args(args)
    choice = choose_model(args.model)
    if choice.notice:
        print(f"magimac: {choice.notice}", file=sys.stderr)
    sock = bind(args.host, args.port)
    options = {"context_length": args.context_length, "force": args.force}
    if args.no_disk_cache:
        from magimac.core.settings import DiskCacheSettings

        options["disk_cache"] = DiskCacheSettings(enabled=False)
    if args.max_streams is not None:
        options["max_streams"] = args.max_streams
    if args.cache_gb is not None:
        options["cache_bytes"] = cache_bytes(args)
    session = open_model(choice=choice, engine_factory=batch_engine_factory, **options)
    try:
        print(f"magimac serve: loading {choice.name} ...", file=sys.stderr, flush=True)
        session.wait_loaded()
        return _serve(session, args, key, sock)
    finally:
        sock.close()
        session.close()


def _serve(session, args: argparse.Namespace, key: str | None, sock: socket.socket) -> int:
    """Serve until Ctrl-C; on a loopback address with the secret that proves to `magimac chat`
    and the app that this person started it (`magimac.session.proof`), deleted at exit."""
    from magimac.server.app import Served, run
    from magimac.server.guard import origins_from
    from magimac.session import proof

    named = args.model and not Path(args.model).expanduser().exists()  # a name, not a directory
    model_id = args.model if named else ("demo" if session.choice.is_demo else session.path.name)
    origins = (*origins_from(os.environ.get("MAGIMAC_ORIGINS")), *args.allow_origin)
    port = sock.getsockname()[1]
    secret = proof.write_secret(port) if is_loopback(args.host) else None
    served = Served(session, model_id, key, args.keep_reasoning, args.host, origins, secret)
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"magimac serve: {served.model_id} at http://{host}:{port}/v1"
          f"{' (API key required)' if key else ''}; Ctrl-C stops", flush=True)
    try:
        run(served, sock)
    finally:
        if secret is not None:
            proof.remove_secret(port, secret)
    return 0
