"""`magimac chat` on an online model, against the API stand-in on 127.0.0.1: what a person (or
a script reading ``--json``) sees, and what reached the API."""

from __future__ import annotations

import base64
import io
import json
import sys

import pytest

from magimac.cli.main import main
from magimac.testing.api_standin import ANSWER, KEY, REASONING, Reply

MODEL = "mistral-medium-latest"
SOURCE = {"service": "Mistral's API", "model": MODEL, "display_name": "Mistral Medium 3.5"}


def chat(capsys, monkeypatch, *args, stdin: str = ""):
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    rc = main(["chat", *map(str, args)])
    out, err = capsys.readouterr()
    lines = [json.loads(line) for line in out.splitlines()] if "--json" in args else []
    return rc, lines, out, err


def texts(lines, kind):
    return "".join(d["text"] for d in lines if d["type"] == kind)


def test_reasoning_and_answer_arrive_split_and_exact(api, capsys, monkeypatch):
    rc, lines, _, err = chat(capsys, monkeypatch, "--model", MODEL, "--online", "--json", "Hi")
    assert rc == 0, err
    assert texts(lines, "reasoning") == "".join(REASONING) and texts(lines, "answer") == "".join(ANSWER)
    stats, done = lines[-2], lines[-1]
    assert done == {"type": "done", "finish_reason": "stop", "online": {**SOURCE, "api_url": api.url}}
    assert stats["type"] == "stats" and stats["prompt_tokens"] == 21
    assert stats["reasoning_tokens"] + stats["answer_tokens"] == 12  # the API's completion_tokens
    assert stats["ttft_s"] > 0 and stats["decode_tps"] > 0
    [request] = api.requests
    assert request["path"] == "/v1/chat/completions" and request["headers"]["Authorization"] == f"Bearer {KEY}"
    body = request["body"]
    assert body["model"] == "mistral-medium-latest" and body["stream"] is True
    assert body["reasoning_effort"] == "high" and body["messages"] == [{"role": "user", "content": "Hi"}]


def test_an_online_answer_says_on_stderr_that_it_came_from_mistral_api(api, capsys, monkeypatch):
    rc, _, out, err = chat(capsys, monkeypatch, "--model", MODEL, "--online", "Hi")
    assert rc == 0 and out == "".join(ANSWER) + "\n"
    assert err.splitlines()[-1] == (f"magimac: this answer came from Mistral's API ({api.url}): "
                                    "Mistral Medium 3.5 (mistral-medium-latest), not this Mac")


def test_history_goes_back_with_thinking_chunks_and_images_as_image_chunks(api, capsys, monkeypatch, tmp_path):
    from PIL import Image

    img = tmp_path / "red.png"
    Image.new("RGB", (8, 8), "red").save(img)
    conv = tmp_path / "conv.json"
    conv.write_text(json.dumps([
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello", "reasoning": "be nice"},
        {"role": "user", "content": "What colour?", "images": [str(img)]},
    ]))
    rc, lines, _, err = chat(capsys, monkeypatch, "--model", MODEL, "--online", "--json", "--conversation", conv,
                             "--system", "Be brief.")
    assert rc == 0, err
    messages = api.bodies()[0]["messages"]
    assert messages[0] == {"role": "system", "content": "Be brief."}
    assert messages[2]["role"] == "assistant" and messages[2]["content"] == [
        {"type": "thinking", "thinking": [{"type": "text", "text": "be nice"}]}, {"type": "text", "text": "Hello"}]
    text, image = messages[3]["content"]
    assert text == {"type": "text", "text": "What colour?"} and image["type"] == "image_url"
    assert image["image_url"] == "data:image/png;base64," + base64.b64encode(img.read_bytes()).decode()


def test_without_online_nothing_is_sent(api, capsys, monkeypatch):
    rc, lines, _, err = chat(capsys, monkeypatch, "--model", MODEL, "--json", "Hi")
    assert rc == 1 and api.requests == []
    assert err.strip() == (f"magimac: {MODEL} runs on Mistral's API (https://api.mistral.ai): nothing was sent; "
                           "add --online to send this conversation there")
    assert lines[-1]["finish_reason"] == "error"


def test_a_retired_model_names_its_date_and_successor(api, capsys, monkeypatch):
    rc, _, out, err = chat(capsys, monkeypatch, "--model", "magistral-medium-2509", "--online", "Solve x^2 = 2")
    assert (rc, out, api.requests) == (1, "", [])
    assert err == ("magimac: magistral-medium-2509 (Magistral Medium 1.2) was retired from Mistral's API on "
                   "2026-07-31: its successor is mistral-medium-latest (Mistral Medium 3.5); pick it with "
                   "`--model mistral-medium-latest`\n")


FAILURES = {
    "401": (Reply(status=401), "magimac: Mistral's API refused the key (HTTP 401): check MISTRAL_API_KEY, "
                               "or save a new one with `magimac key set mistral`"),
    "404": (Reply(status=404), "magimac: Mistral's API does not serve 'mistral-medium-latest' (HTTP 404: "
                               "retired or unknown); `magimac models` lists the online models"),
    "cut": (Reply(cut_after=4), "magimac: the connection to Mistral's API was cut mid-answer; what arrived is kept"),
    "malformed": (Reply(malformed=True), "magimac: Mistral's API sent an event magimac cannot read (not a "
                                         "completion chunk); what arrived is kept"),
}


@pytest.mark.parametrize("case", sorted(FAILURES))
def test_each_failure_is_one_line(case, api, capsys, monkeypatch):
    reply, line = FAILURES[case]
    api.replies.append(reply)
    rc, lines, _, err = chat(capsys, monkeypatch, "--model", MODEL, "--online", "--json", "Hi")
    assert rc == 1 and err.strip() == line and KEY not in err
    assert lines[-1] == {"type": "done", "finish_reason": "error", "error": line.removeprefix("magimac: "),
                         "online": {**SOURCE, "api_url": api.url}}
    if case == "cut":  # the stream stopped after two answer chunks: that much is kept
        assert texts(lines, "reasoning") == "".join(REASONING) and texts(lines, "answer") == "".join(ANSWER[:2])


def test_no_key_and_no_network_are_one_line(api, capsys, monkeypatch, closed_port_url):
    monkeypatch.delenv("MISTRAL_API_KEY")
    rc, _, _, err = chat(capsys, monkeypatch, "--model", MODEL, "--online", "Hi")
    assert rc == 1 and api.requests == []
    assert err == "magimac: no Mistral API key: set MISTRAL_API_KEY, or save one with `magimac key set mistral`\n"
    monkeypatch.setenv("MISTRAL_API_KEY", KEY)
    monkeypatch.setenv("MAGIMAC_MISTRAL_API_URL", closed_port_url)
    rc, _, _, err = chat(capsys, monkeypatch, "--model", MODEL, "--online", "Hi")
    host = closed_port_url.removeprefix("http://")
    assert rc == 1 and err == (f"magimac: cannot reach Mistral's API at {host} (Connection refused): check the "
                               "network, then send again\n")


def test_a_rate_limit_is_waited_out_as_retry_after_says_and_shown(api, capsys, monkeypatch):
    api.replies.append(Reply(status=429, headers={"Retry-After": "1"}))
    rc, lines, _, err = chat(capsys, monkeypatch, "--model", MODEL, "--online", "--json", "Hi")
    assert rc == 0, err
    assert lines[0] == {"type": "retry", "wait_s": 1.0,
                        "reason": "Mistral's API is rate-limiting (HTTP 429): asking again in 1 s (Retry-After)"}
    assert texts(lines, "answer") == "".join(ANSWER) and len(api.requests) == 2
    api.replies.append(Reply(status=429, headers={"Retry-After": "1"}))
    rc, _, out, err = chat(capsys, monkeypatch, "--model", MODEL, "--online", "Hi")
    assert rc == 0 and out == "".join(ANSWER) + "\n"
    assert "magimac: Mistral's API is rate-limiting (HTTP 429): asking again in 1 s (Retry-After)\n" in err


def test_still_rate_limited_after_the_retries_is_one_line(api):
    from magimac.core.conversation import Message
    from magimac.online.engine import OnlineEngine
    from magimac.session.model import open_model

    api.replies += [Reply(status=429, headers={"Retry-After": "1"})] * 2
    session = open_model(MODEL, online_factory=lambda m, **_: OnlineEngine(m, retry_for_s=0.5))
    run = session.turn([Message("user", "Hi")])
    events = list(run)
    assert run.done.finish_reason == "error" and len(api.requests) == 2
    assert run.done.error.startswith("Mistral's API is still rate-limiting (HTTP 429) after 1 s of retries")
    assert [type(e).__name__ for e in events].count("Retrying") == 1  # the last 429 is not retried


def test_the_key_never_reaches_output_logs_or_show_prompt(api, capsys, monkeypatch, caplog):
    caplog.set_level("DEBUG")
    monkeypatch.setenv("MISTRAL_DEBUG", "1")  # the SDK's own switch for logging request headers
    for args in (["--json"], ["--stats"], ["--show-prompt"], ["--show-prompt", "--json"]):
        rc, _, out, err = chat(capsys, monkeypatch, "--model", MODEL, "--online", *args, "Hi")
        assert rc == 0 and KEY not in out + err
    shown = json.loads(out)
    assert shown["type"] == "prompt" and json.loads(shown["text"])["messages"] == [{"role": "user", "content": "Hi"}]
    assert len(api.requests) == 2  # --show-prompt sent nothing
    assert KEY not in caplog.text and "reasoning_effort" not in caplog.text  # nor the request body


def test_cancel_stops_the_stream_and_keeps_what_arrived(api):
    from magimac.core.conversation import Message
    from magimac.core.events import ReasoningDelta
    from magimac.session.model import open_model

    api.replies.append(Reply(delay_s=0.5))
    session = open_model(MODEL)
    run = session.turn([Message("user", "Hi")])
    assert isinstance(next(run), ReasoningDelta)
    run.cancel()
    rest = list(run)
    assert run.done.finish_reason == "cancelled" and run.answer.reasoning.startswith(REASONING[0])
    assert len(rest) <= 3 and run.answer.content == ""  # stopped within an event, not at the end
