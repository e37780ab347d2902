"""The bundled demo model and the tool loop together (issue 16): `magimac chat --tools python`
reasons, calls python with the product, runs it and answers with what came back."""

from __future__ import annotations

import io
import json
import sys

from magimac.cli.main import main

ASK = ["chat", "--seed", "1", "--tools", "python", "--allow-tools", "python", "What is 347 x 29?"]


def run(capsys, monkeypatch, *extra: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))  # no terminal: only --allow-tools runs
    rc = main([*ASK[:1], *extra, *ASK[1:]])
    out, err = capsys.readouterr()
    return rc, out, err


def test_the_demo_answers_347_x_29_through_python(capsys, monkeypatch):
    rc, out, err = run(capsys, monkeypatch)
    assert rc == 0, err
    assert out.strip() == "347 × 29 = **10063**"
    assert "using the bundled demo model" in err and "with the python tool" in err
    assert "347×29: a 3-digit by 2-digit product, I run it in python." in err  # the reasoning
    assert '[python c00000001] {"code": "print(347 * 29)"}' in err
    assert "] 10063" in err  # the result as it came back from the sandbox


def test_the_demo_json_events_of_the_round(capsys, monkeypatch):
    rc, out, err = run(capsys, monkeypatch, "--json")
    assert rc == 0, err
    got = [json.loads(line) for line in out.splitlines()]
    kinds = [d["type"] for d in got]
    assert kinds.index("reasoning") < kinds.index("tool_call") < kinds.index("tool_result") < kinds.index("answer")
    call = next(d for d in got if d["type"] == "tool_call")
    result = next(d for d in got if d["type"] == "tool_result")
    assert call == {"type": "tool_call", "id": "c00000001", "name": "python", "arguments": {"code": "print(347 * 29)"}}
    assert (result["id"], result["output"]) == ("c00000001", "10063")
    assert "".join(d["text"] for d in got if d["type"] == "answer") == "347 × 29 = **10063**"
    second = [d for d in got if d["type"] == "stats"][-1]
    assert second["prompt_tokens"] - second["cached_tokens"] < 10  # only the result is prefilled
    assert got[-1] == {"type": "done", "finish_reason": "stop"}
