"""A process listening on the default port first cannot stand in for the person's `magimac serve`:
`magimac chat` finds only a server that proves it holds the secret `serve` wrote
(`magimac.session.proof`).  (The real `serve` still found: tests/server/test_serve.py and
tests/tui/test_tui_server.py.)"""

from __future__ import annotations

import io
import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from magimac.cli.main import main
from magimac.session import proof
from magimac.session.remote import discover, model_key
from magimac.testing.checkpoint import DEFAULT_SCRIPT_ANSWER as ANSWER

SECRET_TEXT = "the vault code is 7319-KESTREL"


class StandIn(BaseHTTPRequestHandler):
    """Lists the model with the key anyone can compute; answers every challenge with a guess
    and every chat with a stream; records what it was sent."""

    key = ""
    seen: list[bytes] = []

    def do_GET(self) -> None:
        self.seen.append(self.requestline.encode())
        if self.path.startswith("/v1/models"):
            self.answer({"data": [{"id": "ckpt", "object": "model", "magimac": {"key": self.key}}]})
        else:
            self.answer({"proof": "0" * 64})

    def do_POST(self) -> None:
        self.seen.append(self.requestline.encode() + self.rfile.read(int(self.headers["Content-Length"])))
        self.answer({"choices": [{"delta": {"content": "stand-in"}, "finish_reason": "stop"}]})

    def answer(self, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def stand_in(scripted_checkpoint, monkeypatch):
    """The stand-in on a free port of 127.0.0.1, as the address `magimac chat` looks at."""
    StandIn.key, StandIn.seen = model_key(scripted_checkpoint), []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), StandIn)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}"
    monkeypatch.setattr("magimac.session.remote.DEFAULT_URL", url)
    monkeypatch.delenv("MAGIMAC_NO_SERVER")
    yield url
    httpd.shutdown()
    httpd.server_close()


def test_a_stand_in_server_gets_nothing_of_the_document_and_the_person_is_told_once(
        stand_in, scripted_checkpoint, tmp_path, capsys, monkeypatch):
    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET_TEXT + "\n")
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    rc = main(["chat", "--model", str(scripted_checkpoint), "--file", str(secret), "What is the code?"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert ANSWER in out  # answered here, by the model loaded in this process
    assert not any(b"KESTREL" in r for r in StandIn.seen)
    assert all(r.startswith(b"GET /v1/models") or r.startswith(b"GET /magimac/identify?nonce=") for r in StandIn.seen)
    notices = [line for line in err.splitlines() if stand_in in line]
    missing = proof.secret_file(int(stand_in.rsplit(":", 1)[1]))
    assert notices == [f"magimac: the server at {stand_in} could not prove it is a `magimac serve` of yours "
                       f"(no {missing}): "
                       f"ignored, the model loads here (--server {stand_in} uses it anyway)"]


def test_a_wrong_answer_to_the_challenge_or_a_secret_others_can_read_proves_nothing(stand_in, scripted_checkpoint):
    port = int(stand_in.rsplit(":", 1)[1])
    proof.write_secret(port)  # as if a `magimac serve` of this person's had used the port before
    with pytest.raises(proof.UntrustedServer, match=r"\(its answer to the challenge is wrong\)"):
        discover(scripted_checkpoint)
    os.chmod(proof.secret_file(port), 0o644)
    with pytest.raises(proof.UntrustedServer, match=r"serve-\d+\.secret can be read by others \(chmod 600 it\)"):
        discover(scripted_checkpoint)
    assert not any(r.startswith(b"POST") for r in StandIn.seen)


def test_the_secret_is_written_for_its_owner_only_and_proves_the_nonce(tmp_path):
    secret = proof.write_secret(8123)
    path = proof.secret_file(8123)
    assert len(secret) == 64 and path.read_text() == secret and path.stat().st_mode & 0o777 == 0o600
    assert proof.read_secret(8123) == secret
    assert proof.proof(secret, "ab" * 32) != proof.proof(proof.write_secret(8123), "ab" * 32)
    proof.remove_secret(8123, secret)  # another secret was written since: kept
    assert path.exists()
    proof.remove_secret(8123, path.read_text())
    assert not path.exists()
