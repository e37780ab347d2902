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
from dataclasses import dataclass

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
    log: str = ""

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
    for var in ("MAGIMAC_CONFIG_DIR", "MAGIMAC_DATA_DIR", "MAGIMAC_MODELS_DIR", "HF_HOME"):
        (home / var).mkdir(parents=True, exist_ok=True)
        env[var] = str(home / var)
    proc = subprocess.Popen([sys.executable, "-m", "magimac", "serve", "--model", str(model),
                             "--port", str(port), *map(str, extra)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return Server(proc, f"http://127.0.0.1:{port}")


def wait_ready(server: Server, timeout: float = 180) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if server.proc.poll() is not None:
            pytest.fail(f"magimac serve exited {server.proc.returncode}: {server.proc.stdout.read()}")
        try:
            if server.get("/health")["status"] == "ok":
                return
        except OSError:
            time.sleep(0.2)
    pytest.fail("magimac serve did not answer /health in time")


def stop(server: Server) -> None:
    server.proc.terminate()
    try:
        server.log = server.proc.communicate(timeout=20)[0]
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.log = server.proc.communicate()[0]


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
