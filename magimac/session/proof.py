"""Proof that a local `magimac serve` was started by the person running the client.

Anyone on the Mac can listen on 127.0.0.1:8080 first, and the model key a server lists
(`magimac.session.remote.model_key`) is a hash anyone can compute.  So `magimac serve` on a
loopback address writes a random secret to `secret_file` (one per port, in the user's runtime
directory, mode 0600, removed at exit), and a client that found a server by itself sends
nothing private before the server proved it holds that secret without showing it: the client
sends a random nonce to ``GET /magimac/identify?nonce=HEX`` and compares the answer with
HMAC-SHA256(secret, nonce) (`check_server`).  A secret file that is not the person's own, or
that others can read, proves nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import stat
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from magimac.core.errors import MagimacError
from magimac.core.paths import runtime_dir
from magimac.core.staging import write_error

NONCE_HEX = 64
"""Hex digits of the client's nonce (32 random bytes); the server accepts 32 to 128."""


class UntrustedServer(MagimacError):
    """A server claims to be the person's `magimac serve` but cannot prove it; one line."""


def secret_file(port: int) -> Path:
    """Where `magimac serve` on ``port`` keeps its secret."""
    return runtime_dir() / f"serve-{port}.secret"


def write_secret(port: int) -> str:
    """A new random secret (64 hex digits) for the server on ``port``, written to `secret_file`
    (created 0600 by `tempfile.mkstemp` and renamed into place; the directory is made 0700).

    Raises:
        WriteError: the runtime directory cannot be written (one line).
    """
    directory, secret = runtime_dir(), secrets.token_hex(32)
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".serve-", suffix=".tmp")
    except OSError as e:
        raise write_error(directory, e, "set MAGIMAC_RUNTIME_DIR to a folder of yours") from None
    try:
        with os.fdopen(fd, "w") as f:
            f.write(secret)
        os.replace(tmp, secret_file(port))
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return secret


def remove_secret(port: int, secret: str) -> None:
    """Delete `secret_file` of ``port`` if it still holds ``secret``."""
    path = secret_file(port)
    try:
        if path.read_text() == secret:
            path.unlink()
    except OSError:
        pass


def proof(secret: str, nonce: str) -> str:
    """HMAC-SHA256 of ``nonce`` keyed with ``secret``, as hex."""
    return hmac.new(secret.encode(), nonce.encode(), hashlib.sha256).hexdigest()


def read_secret(port: int) -> str:
    """The secret of the person's own server on ``port``.

    Raises:
        UntrustedServer: no secret file, or one (or its directory) not owned by this user, or
            readable by others.
    """
    path = secret_file(port)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        raise UntrustedServer(f"no {path}") from None
    with os.fdopen(fd) as f:
        st = os.fstat(f.fileno())
        if os.getuid() != st.st_uid or os.getuid() != path.parent.stat().st_uid:
            raise UntrustedServer(f"{path} belongs to another user")
        if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise UntrustedServer(f"{path} can be read by others (chmod 600 it)")
        return f.read(200).strip()


def check_server(base: str, timeout: float) -> None:
    """Check that the server at ``base`` (``http://127.0.0.1:PORT``) holds this person's secret
    for its port; only a random nonce is sent.  ``timeout``: seconds.

    Raises:
        UntrustedServer: it does not prove it (one line: why, and that it is ignored).
    """
    port = urllib.parse.urlsplit(base).port or 80
    try:
        secret = read_secret(port)
        nonce = secrets.token_hex(NONCE_HEX // 2)
        url = f"{base}/magimac/identify?nonce={nonce}"
        with urllib.request.urlopen(url, timeout=timeout) as r:
            answer = json.loads(r.read(1000)).get("proof")
        if not isinstance(answer, str) or not hmac.compare_digest(answer, proof(secret, nonce)):
            raise UntrustedServer("its answer to the challenge is wrong")
    except (OSError, ValueError, AttributeError, UntrustedServer) as e:
        why = str(e) if isinstance(e, UntrustedServer) else "it answers no challenge"
        raise UntrustedServer(f"the server at {base} could not prove it is a `magimac serve` of yours "
                              f"({why}): ignored, the model loads here (--server {base} uses it anyway)") from None
