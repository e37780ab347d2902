"""`magimac serve` as real processes on 127.0.0.1, started once for the module that uses them.

`servers` starts two at once (their loading overlaps): ``plain`` on the scripted checkpoint
with a 1024-token context, ``keyed`` on the random-weights checkpoint (it writes until stopped)
with an API key.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from typing import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

API_KEY = "test-key-17"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    proc: subprocess.Popen
    url: str  # http://127.0.0.1:PORT
    home: Path  # its MAGIMAC_*_DIR folders (MAGIMAC_RUNTIME_DIR holds its proof secret) and serve.log

    @property
    def log(self) -> str:
        """What it printed so far (stdout and stderr)."""
        return (self.home / "serve.log").read_text()

    @property
    def v1(self) -> str:
        return self.url + "/v1"

    def get(self, path: str, key: str | None = None) -> dict:
        req = urllib.request.Request(self.url + path, headers={"Authorization": f"Bearer {key}"} if key else {})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())


def start(model, home, *extra) -> Server:
    port = free_port()
    env = dict(os.environ, HF_HUB_OFFLINE="1", MAGIMAC_NO_SERVER="1")
    for var in ("MAGIMAC_CONFIG_DIR", "MAGIMAC_DATA_DIR", "MAGIMAC_MODELS_DIR", "MAGIMAC_RUNTIME_DIR", "HF_HOME"):
        (home / var).mkdir(parents=True, exist_ok=True)
        env[var] = str(home / var)
    with open(home / "serve.log", "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "magimac", "serve", "--model", str(model),
                                 "--port", str(port), *map(str, extra)],
                                env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
    return Server(proc, f"http://127.0.0.1:{port}", home)


def found_by_discovery(server: Server, monkeypatch) -> None:
    """Let `magimac chat` and the app find ``server`` by themselves: its address as the default
    one, its secret in this test's runtime folder, ``MAGIMAC_NO_SERVER`` unset."""
    monkeypatch.setattr("magimac.session.remote.DEFAULT_URL", server.url)
    monkeypatch.setenv("MAGIMAC_RUNTIME_DIR", str(server.home / "MAGIMAC_RUNTIME_DIR"))
    monkeypatch.delenv("MAGIMAC_NO_SERVER")


def wait_ready(server: Server, timeout: float = 180) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if server.proc.poll() is not None:
            pytest.fail(f"magimac serve exited {server.proc.returncode}: {server.log}")
        try:
            if server.get("/health")["status"] == "ok":
                return
        except OSError:
            time.sleep(0.2)
    pytest.fail("magimac serve did not answer /health in time")


def stop(server: Server) -> None:
    server.proc.terminate()
    try:
        server.proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.proc.wait()


@contextmanager
def running(model, home, *extra) -> Iterator[Server]:
    """`start`, `wait_ready`, and `stop` at the end (a module's own server)."""
    server = start(model, home, *extra)
    try:
        wait_ready(server)
        yield server
    finally:
        stop(server)


@pytest.fixture(scope="module")
def servers(scripted_checkpoint, random_checkpoint, tmp_path_factory):
    home = tmp_path_factory.mktemp("serve-home")
    plain = start(scripted_checkpoint, home / "plain", "--context-length", 1024)
    keyed = start(random_checkpoint, home / "keyed", "--api-key", API_KEY)
    try:
        wait_ready(plain)
        wait_ready(keyed)
        yield {"plain": plain, "keyed": keyed}
    finally:
        stop(plain)
        stop(keyed)
