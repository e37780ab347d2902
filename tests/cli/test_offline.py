"""Offline by design: once a model is installed, nothing touches the network.

The network is made unreachable: HF_HUB_OFFLINE is unset, HF_ENDPOINT points at a closed
port on 127.0.0.1, and every TCP connect in this process fails (and is recorded).
"""

from __future__ import annotations

import errno
import json
import os
import socket

import pytest
from magimac.testing.checkpoint import Script

from magimac.core import paths

from magimac.models import store
from magimac.cli.main import main


@pytest.fixture
def no_network(monkeypatch):
    """Unset offline mode, point the hub at a closed port, and refuse every TCP connect."""
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    attempts: list = []
    real_connect = socket.socket.connect

    def connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6):
            attempts.append(address)
            raise OSError(errno.ENETUNREACH, "network is unreachable (test)")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    return attempts


@pytest.fixture(scope="module")
def installed_source(scripted_checkpoint, tmp_path_factory):
    """The scripted checkpoint converted to 4-bit (copied into each test's models dir)."""
    from magimac.quantize.convert import convert

    return convert(scripted_checkpoint, tmp_path_factory.mktemp("offline") / "scripted-4bit", bits=4,
                   progress=False, log=lambda s: None)


@pytest.fixture
def installed(installed_source):
    import shutil

    d = paths.models_dir() / "scripted-4bit"
    shutil.copytree(installed_source, d)
    return d


def test_chat_on_an_installed_model_works_without_network(installed, no_network, capsys):
    pytest.importorskip("magimac.cli.chat")
    assert main(["chat", "--model", "scripted-4bit", "--json", "--seed", "0", "Bonjour !"]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    answer = "".join(e["text"] for e in events if e["type"] == "answer")
    reasoning = "".join(e["text"] for e in events if e["type"] == "reasoning")
    assert answer.strip() == Script().answer and reasoning.strip() == Script().reasoning
    assert events[-1]["type"] == "done" and events[-1]["finish_reason"] == "stop"
    assert no_network == []
    assert os.environ["HF_HUB_OFFLINE"] == "1"


def test_models_plan_doctor_rm_stay_offline(installed, no_network, capsys):
    assert main(["models", "--json"]) == 0
    assert "scripted-4bit" in capsys.readouterr().out
    assert main(["plan", str(installed), "--json"]) == 0
    assert main(["doctor", "--json"]) == 0
    assert store.resolve_model("scripted-4bit") == installed
    assert main(["rm", "scripted-4bit", "--yes"]) == 0
    assert no_network == []


def test_pull_is_the_command_that_goes_online(no_network, capsys):
    assert main(["pull", "magistral-small-2509"]) == 1
    err = capsys.readouterr().err
    assert "goes online" in err and "cannot reach the hub" in err
    assert no_network, "pull tried the network"
