"""One range per setting, everywhere: for every row of the one settings table
(`magimac.core.settings.SETTINGS`), `magimac chat`'s options, the app's settings form,
`magimac serve` (in-process, on a fake engine) and the clients that write requests
(`RemoteEngine`'s OpenAI request, the online engine's Mistral request) accept the bounds and
refuse a value just outside them, each with one line naming the setting."""

from __future__ import annotations

import argparse
import asyncio
import json
import math

import pytest

from magimac.cli import chat
from magimac.core.errors import MagimacError
from magimac.core.settings import SETTINGS, GenerationSettings, Setting, SettingError
from magimac.models.online import OnlineModel
from magimac.online.request import request_body
from magimac.server.app import Served, create_app
from magimac.session.model import ModelChoice, open_model
from magimac.testing.fake_engine import FakeEngine
from magimac.text.openai_wire import settings_json
from magimac.tui.settings_screen import number_error


def inside(row: Setting) -> list:
    """The values at (or, for an open bound, next to) each end of the row's range."""
    step = (lambda x, to: x + (1 if to > x else -1)) if row.whole else math.nextafter
    low = row.low if row.low_ok else step(row.low, math.inf)
    high = 10**12 if math.isinf(row.high) else row.high if row.high_ok else step(row.high, -math.inf)
    return [int(v) if row.whole else float(v) for v in (low, high)]


def outside(row: Setting) -> list:
    """The values just outside each end of the range (only the low end when the high one is open)."""
    step = (lambda x, to: x + (1 if to > x else -1)) if row.whole else math.nextafter
    values = [step(row.low, -math.inf) if row.low_ok else row.low]
    if not math.isinf(row.high):
        values.append(step(row.high, math.inf) if row.high_ok else row.high)
    return [int(v) if row.whole else float(v) for v in values]


ONLINE = OnlineModel("m", "M", "m", vision=False, context_length=128_000)
CASES = [(name, v, ok) for name, row in SETTINGS.items()
         for ok, values in ((True, inside(row)), (False, outside(row))) for v in values]


def chat_settings(row: Setting, value) -> GenerationSettings:
    p = argparse.ArgumentParser()
    chat.add_arguments(p)
    return chat.build_settings(p.parse_args([f"{row.flag}={value!r}", "Hi"]))


async def post(app, body: dict) -> tuple[int, dict]:
    """POST ``body`` to /v1/chat/completions of the ASGI ``app`` in this process."""
    raw = json.dumps(body).encode()
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
             "scheme": "http", "path": "/v1/chat/completions", "raw_path": b"/v1/chat/completions",
             "query_string": b"", "root_path": "", "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8080),
             "headers": [(b"host", b"127.0.0.1:8080"), (b"content-type", b"application/json"),
                         (b"content-length", str(len(raw)).encode())]}
    incoming = [{"type": "http.request", "body": raw, "more_body": False}]
    status, chunks = [0], []

    async def receive():
        if incoming:
            return incoming.pop()
        await asyncio.sleep(3600)  # no disconnect: the answer is read whole

    async def send(message):
        if message["type"] == "http.response.start":
            status[0] = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return status[0], json.loads(b"".join(chunks))


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """`magimac serve`'s app in this process, on a `FakeEngine` (which records each turn's settings)."""
    engine = FakeEngine()
    path = tmp_path_factory.mktemp("fake-model")
    session = open_model(choice=ModelChoice(path), engine_factory=lambda p, **_: engine)
    session.wait_loaded()
    return create_app(Served(session=session, model_id="fake")), engine


@pytest.mark.parametrize("name, value, ok", CASES, ids=[f"{n}={v!r}" for n, v, _ in CASES])
def test_each_setting_has_one_range_in_the_cli_the_app_the_server_and_the_clients(served, name, value, ok):
    row = SETTINGS[name]
    app, engine = served
    form = number_error(name, repr(value))
    status, answer = asyncio.run(post(app, {"model": "fake", "messages": [{"role": "user", "content": "Hi"}],
                                            row.openai: value}))
    given = GenerationSettings(**{name: value})
    if ok:
        assert getattr(chat_settings(row, value), name) == value
        assert form is None
        assert status == 200, answer
        assert getattr(engine.settings[-1], name) == value  # reached the engine as sent
        sent = None if value == row.default else value  # a default is not sent
        assert settings_json(given).get(row.openai) == sent
        assert request_body([], ONLINE, given).get(row.mistral) == (None if row.mistral is None else sent)
        return
    with pytest.raises(MagimacError, match="^" + row.flag + " must be ") as cli:
        chat_settings(row, value)
    assert "\n" not in str(cli.value)
    assert form is not None and form.startswith(row.label + ": must be ") and "\n" not in form
    error = answer["error"]
    assert status == 400 and error["param"] == row.openai and error["message"].startswith(row.openai + ": must be ")
    for write in (settings_json, lambda s: request_body([], ONLINE, s)):
        with pytest.raises(SettingError, match=f"^{name} must be "):
            write(given)
