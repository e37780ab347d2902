"""The app on a running `magimac serve` (one copy of the weights): ``--server URL``, and the
server on the default port found by itself when it serves the model asked for."""

from __future__ import annotations

import pytest

from magimac.session.remote import RemoteEngine
from magimac.testing.checkpoint import DEFAULT_SCRIPT_ANSWER as ANSWER
from magimac.testing.checkpoint import DEFAULT_SCRIPT_REASONING as REASONING
from magimac.text.history import History
from magimac.tui.app import MagimacApp
from tests.server.conftest import found_by_discovery, start, stop, wait_ready
from tests.tui.pilot_helpers import answers, send


@pytest.fixture(scope="module")
def server(scripted_checkpoint, tmp_path_factory):
    s = start(scripted_checkpoint, tmp_path_factory.mktemp("tui-serve"), "--context-length", 1024)
    try:
        wait_ready(s)
        yield s
    finally:
        stop(s)


async def answered_by_server(app: MagimacApp, server) -> None:
    before = server.get("/magimac/v1/status")["ended"].get("stop", 0)
    async with app.run_test(size=(100, 30)) as pilot:
        await send(pilot, "Hi")
        [answer] = answers(app)
        assert (answer.message.reasoning, answer.message.content) == (REASONING, ANSWER)
        assert isinstance(app.session.engine, RemoteEngine)
    assert server.get("/magimac/v1/status")["ended"].get("stop", 0) == before + 1  # the server ran it


async def test_the_app_answers_through_the_server_it_is_given(server, tmp_path):
    app = MagimacApp(None, server=server.url, history=History(tmp_path / "h.db"))
    await answered_by_server(app, server)
    assert app.status.model != "no model"


async def test_the_app_finds_the_server_that_has_its_model_unless_told_not_to(
        server, scripted_checkpoint, tmp_path, monkeypatch):
    found_by_discovery(server, monkeypatch)
    app = MagimacApp(str(scripted_checkpoint), history=History(tmp_path / "h.db"))
    await answered_by_server(app, server)
    from magimac.session.remote import server_for

    assert server_for(scripted_checkpoint, no_server=True) is None
    monkeypatch.setenv("MAGIMAC_NO_SERVER", "1")
    assert server_for(scripted_checkpoint) is None
