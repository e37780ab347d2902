"""`magimac serve` driven by the official `openai` client: a real process on 127.0.0.1."""

from __future__ import annotations

import base64
import io
import json
import threading
import time
import urllib.error
import urllib.request

import openai
import pytest
from mistral_common.tokens.tokenizers.tekken import Tekkenizer
from PIL import Image

from magimac.testing.checkpoint import DEFAULT_SCRIPT_ANSWER as ANSWER
from magimac.testing.checkpoint import DEFAULT_SCRIPT_REASONING as REASONING
from magimac.testing.checkpoint import Script, script_tokens
from tests.server.conftest import API_KEY, found_by_discovery

HI = [{"role": "user", "content": "Hi"}]


@pytest.fixture(scope="module")
def plain(servers):
    return servers["plain"]


@pytest.fixture(scope="module")
def client(plain):
    return openai.OpenAI(base_url=plain.v1, api_key="unused", max_retries=0)


@pytest.fixture(scope="module")
def model(client):
    return client.models.list().data[0].id


def reasoning_of(message) -> tuple[str | None, str | None]:
    extra = message.model_extra or {}
    return extra.get("reasoning_content"), extra.get("reasoning")


def collect_stream(stream) -> dict:
    out = {"reasoning_content": "", "reasoning": "", "content": "", "finish": None, "usage": None}
    for chunk in stream:
        if chunk.usage is not None:
            out["usage"] = chunk.usage
        for choice in chunk.choices:
            d = choice.delta
            extra = d.model_extra or {}
            out["reasoning_content"] += extra.get("reasoning_content") or ""
            out["reasoning"] += extra.get("reasoning") or ""
            out["content"] += d.content or ""
            out["finish"] = choice.finish_reason or out["finish"]
    return out


def png_data_url(color=(200, 30, 30), size=(28, 28)) -> str:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def test_models_lists_the_served_model_with_its_context(client, scripted_checkpoint):
    models = client.models.list().data
    assert [m.id for m in models] == [scripted_checkpoint.name]
    info = models[0].model_extra["magimac"]
    assert info["context_length"] == 1024 and info["vision"] is True


def test_a_whole_answer_has_the_reasoning_in_both_fields(client, model):
    r = client.chat.completions.create(model=model, messages=HI)
    assert r.choices[0].message.content == ANSWER
    assert reasoning_of(r.choices[0].message) == (REASONING, REASONING)
    assert r.choices[0].finish_reason == "stop"
    assert r.usage.completion_tokens_details.reasoning_tokens > 0
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_a_stream_sends_reasoning_then_answer_then_usage(client, model):
    out = collect_stream(client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Stream it"}], stream=True,
        stream_options={"include_usage": True}))
    assert (out["reasoning_content"], out["reasoning"], out["content"]) == (REASONING, REASONING, ANSWER)
    assert out["finish"] == "stop"
    assert out["usage"].prompt_tokens > 0 and out["usage"].completion_tokens > 0


def test_the_second_request_of_a_conversation_prefills_only_what_is_new(client, model):
    first_messages = [{"role": "user", "content": "Tell me something about foxes"}]
    first = client.chat.completions.create(model=model, messages=first_messages)
    # another client talks in between
    client.chat.completions.create(model=model, messages=[{"role": "user", "content": "Unrelated"}])
    history = first_messages + [
        {"role": "assistant", "content": first.choices[0].message.content,
         "reasoning_content": reasoning_of(first.choices[0].message)[0]},
        {"role": "user", "content": "And about owls?"}]
    second = client.chat.completions.create(model=model, messages=history)
    assert second.choices[0].message.content == ANSWER
    assert second.usage.prompt_tokens_details.cached_tokens == first.usage.prompt_tokens


def test_images_go_in_as_data_urls_and_their_prefix_is_cached(client, model):
    messages = [{"role": "user", "content": [
        {"type": "text", "text": "What colour is this?"},
        {"type": "image_url", "image_url": {"url": png_data_url()}}]}]
    text_only = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "What colour is this?"}])
    r = client.chat.completions.create(model=model, messages=messages)
    assert r.choices[0].message.content == ANSWER
    assert r.usage.prompt_tokens > text_only.usage.prompt_tokens  # the image's tokens
    again = client.chat.completions.create(model=model, messages=messages)
    assert again.usage.prompt_tokens_details.cached_tokens == again.usage.prompt_tokens - 1
    other = messages[0]["content"][:1] + [{"type": "image_url", "image_url": {"url": png_data_url((0, 90, 0))}}]
    r3 = client.chat.completions.create(model=model, messages=[{"role": "user", "content": other}])
    assert r3.usage.prompt_tokens_details.cached_tokens < r.usage.prompt_tokens - 1  # not the red image's KV


def test_four_clients_at_once_each_get_their_own_exact_answer(client, model, scripted_checkpoint):
    ids = script_tokens(scripted_checkpoint / "tekken.json", Script())
    tekken = Tekkenizer.from_file(scripted_checkpoint / "tekken.json")
    asks = {
        "whole": dict(stream=True),
        "five tokens": dict(max_tokens=5),
        "stop": dict(stop=["Ça"], stream=True),
        "no reasoning": dict(reasoning_effort="none"),
    }
    want = {
        "whole": (REASONING, ANSWER, "stop"),
        "five tokens": (tekken.decode(ids[1:5]), "", "length"),
        "stop": (REASONING, ANSWER.split("Ça")[0], "stop"),
        "no reasoning": ("", ANSWER, "stop"),
    }
    got: dict = {}
    start = threading.Barrier(len(asks))

    def ask(name, options):
        start.wait()
        r = client.chat.completions.create(model=model, messages=[{"role": "user", "content": name}], **options)
        if options.get("stream"):
            out = collect_stream(r)
            got[name] = (out["reasoning_content"], out["content"], out["finish"])
        else:
            rc = reasoning_of(r.choices[0].message)[0] or ""
            got[name] = (rc, r.choices[0].message.content, r.choices[0].finish_reason)

    threads = [threading.Thread(target=ask, args=item) for item in asks.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert got == want


def raw_post(url: str, body: bytes, key: str | None = None) -> tuple[int, dict]:
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=body, headers=headers), timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def not_an_image() -> str:
    return "data:image/png;base64," + base64.b64encode(b"this is not a picture").decode()


BAD = [
    ("malformed json", b'{"model": "x", "messages": [', 400, None, "not valid JSON"),
    ("wrong type", {"messages": HI, "temperature": "hot"}, 400, "temperature", "must be a number"),
    ("unknown model", {"model": "gpt-9", "messages": HI}, 404, "model", "not served here"),
    ("n > 1", {"messages": HI, "n": 2}, 400, "n", "one choice per request"),
    ("no messages", {"messages": []}, 400, "messages", "non-empty array"),
    ("too long", {"messages": [{"role": "user", "content": "fox " * 1500}]}, 400, None, "the context holds 1024"),
    ("not an image", {"messages": [{"role": "user", "content": [
        {"type": "text", "text": "look"}, {"type": "image_url", "image_url": {"url": not_an_image()}}]}]},
     400, "messages[0].content[1].image_url", "not an image"),
    ("remote image", {"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]}]},
     400, "messages[0].content[0].image_url", "only data: URLs"),
    ("functions", {"messages": HI, "functions": [{"name": "f"}]}, 400, "functions", "deprecated by OpenAI"),
    ("ends with assistant", {"messages": HI + [{"role": "assistant", "content": "x"}]}, 400, "messages",
     "last message must be a user message or a tool result"),
]


@pytest.mark.parametrize("name, body, status, param, words", BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_a_4xx_in_the_openai_error_shape(plain, model, name, body, status, param, words):
    raw = body if isinstance(body, bytes) else json.dumps({"model": model, **body}).encode()
    code, answer = raw_post(plain.v1 + "/chat/completions", raw)
    assert code == status, answer
    error = answer["error"]
    assert words in error["message"] and "\n" not in error["message"]
    assert error["param"] == param and error["type"] == "invalid_request_error"


def test_the_openai_client_raises_its_own_error_class(client, model):
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=model, messages=HI, top_p=7)
    assert "top_p" in e.value.message
    assert client.chat.completions.create(model=model, messages=HI).choices[0].message.content == ANSWER


def test_a_key_is_asked_for_and_checked(servers):
    keyed = servers["keyed"]
    assert keyed.get("/health") == {"status": "ok"}
    for key in (None, "wrong"):
        with pytest.raises(urllib.error.HTTPError) as e:
            keyed.get("/v1/models", key)
        assert e.value.code == 401
        assert "API key" in json.loads(e.value.read())["error"]["message"]
    assert keyed.get("/v1/models", API_KEY)["data"][0]["object"] == "model"


def test_a_client_that_disconnects_mid_stream_stops_only_its_own_turn(servers):
    keyed = servers["keyed"]
    client = openai.OpenAI(base_url=keyed.v1, api_key=API_KEY, max_retries=0)
    model = client.models.list().data[0].id
    endless = client.chat.completions.create(model=model, messages=HI, stream=True, temperature=0)
    other = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "Other"}],
                                           stream=True, max_tokens=40, temperature=0)
    for i, _ in enumerate(endless):
        if i == 3:
            break
    endless.close()  # the client goes away: its turn (no token limit) must stop
    end = time.monotonic() + 60
    while time.monotonic() < end:
        status = keyed.get("/magimac/v1/status", API_KEY)
        if status["ended"].get("cancelled"):
            break
        time.sleep(0.1)
    assert status["ended"].get("cancelled") == 1, status
    assert collect_stream(other)["finish"] == "length"  # the other stream went on to its end
    assert client.chat.completions.create(model=model, messages=HI, max_tokens=3).choices[0].finish_reason == "length"
    final = keyed.get("/magimac/v1/status", API_KEY)
    assert final["running"] == 0 and final["ended"].get("cancelled") == 1


def test_magimac_chat_uses_a_running_server_as_its_model(plain, capsys, monkeypatch):
    """`magimac chat --server URL` loads nothing itself (no MLX in this process for it)."""
    import io
    import sys

    from magimac.cli.main import main

    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    rc = main(["chat", "--server", plain.url, "--json", "Hi there"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    lines = [json.loads(x) for x in out.splitlines()]
    assert "".join(d["text"] for d in lines if d["type"] == "reasoning") == REASONING
    assert "".join(d["text"] for d in lines if d["type"] == "answer") == ANSWER
    assert lines[-1] == {"type": "done", "finish_reason": "stop"}
    assert lines[-2]["type"] == "stats" and lines[-2]["prompt_tokens"] > 0


def test_magimac_chat_finds_the_server_that_has_its_model(plain, scripted_checkpoint, monkeypatch):
    from magimac.session.proof import UntrustedServer
    from magimac.session.remote import discover

    with pytest.raises(UntrustedServer, match="could not prove it is a `magimac serve` of yours"):
        discover(scripted_checkpoint, plain.url)  # its secret is not where this person's are
    found_by_discovery(plain, monkeypatch)
    found = discover(scripted_checkpoint)
    assert found is not None and found.wait_loaded().context_length == 1024
    assert discover(scripted_checkpoint.parent) is None  # another model: load it here
    assert discover(scripted_checkpoint, "http://127.0.0.1:9") is None  # nothing listens


def test_magimac_chat_says_when_the_server_is_not_there(capsys, monkeypatch):
    import io
    import sys

    from magimac.cli.main import main

    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    assert main(["chat", "--server", "http://127.0.0.1:9", "Hi"]) == 1
    err = capsys.readouterr().err
    assert "no magimac server answers there" in err and "magimac serve" in err


def test_a_remote_engine_counts_tokens_with_the_server_tokenizer(plain, scripted_checkpoint):
    from magimac.core.conversation import Message
    from magimac.engine.worker import Engine
    from magimac.session.remote import RemoteEngine

    remote, local = RemoteEngine(plain.url), Engine(scripted_checkpoint)  # local: its tokenizer only
    conversation = [Message("user", "Hi"), Message("assistant", "Hello", reasoning="think"), Message("user", "Again")]
    assert remote.prompt_tokens(conversation) == local.prompt_tokens(conversation)
    assert remote.count_tokens("a few words here") == local.count_tokens("a few words here")
