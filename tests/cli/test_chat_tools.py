"""`magimac chat --tools` on a scripted model that calls python, and `magimac tools` with a
small stdio MCP server written with the `mcp` SDK (`magimac.testing.mcp_server`)."""

from __future__ import annotations

import io
import json
import sys

import pytest

from magimac.cli.main import main
from magimac.core.events import ToolCall
from magimac.testing.checkpoint import Script, build_checkpoint
from magimac.testing.mcp_server import write_mcp_json
from magimac.tools.mcp_client import McpTools, ServerConfig
from magimac.tools.toolbox import Toolbox


def chat(capsys, monkeypatch, *args):
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    rc = main(["chat", *map(str, args)])
    out, err = capsys.readouterr()
    return rc, out, err


def lines(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines()]


def test_json_events_of_an_allowed_call(capsys, monkeypatch, tool_checkpoint):
    rc, out, err = chat(capsys, monkeypatch, "--model", tool_checkpoint, "--json", "--tools", "python",
                        "--allow-tools", "python", "What is 6 x 7?")
    assert rc == 0, err
    got = lines(out)
    call = next(d for d in got if d["type"] == "tool_call")
    result = next(d for d in got if d["type"] == "tool_result")
    assert call == {"type": "tool_call", "id": "c00000001", "name": "python", "arguments": {"code": "print(6*7)"}}
    assert (result["id"], result["output"]) == ("c00000001", "42") and result["seconds"] > 0
    assert "".join(d["text"] for d in got if d["type"] == "answer") == "Got it!"
    assert got[-1] == {"type": "done", "finish_reason": "stop"}


def test_without_a_terminal_calls_are_refused_and_the_model_is_told(capsys, monkeypatch, tool_checkpoint):
    rc, out, err = chat(capsys, monkeypatch, "--model", tool_checkpoint, "--tools", "python", "What is 6 x 7?")
    assert rc == 0 and out == "Got it!\n"
    assert "python call denied: no terminal to ask on (allow it with --allow-tools python)" in err
    assert "[python c00000001 · 0.0 s] error: the person did not allow this call" in err


def test_a_conversation_file_ending_with_a_tool_result_is_continued(capsys, monkeypatch, tool_checkpoint, tmp_path):
    conv = tmp_path / "conv.json"
    conv.write_text(json.dumps([
        {"role": "user", "content": "What is 6 x 7?"},
        {"role": "assistant", "content": "", "reasoning": "Multiply with python",
         "tool_calls": [{"id": "c00000001", "name": "python", "arguments": '{"code": "print(6*7)"}'}]},
        {"role": "tool", "tool_call_id": "c00000001", "name": "python", "content": "42"}]))
    rc, out, err = chat(capsys, monkeypatch, "--model", tool_checkpoint, "--tools", "python", "--conversation", conv)
    assert (rc, out) == (0, "Got it!\n"), err


def test_an_unknown_tool_name_is_one_line(capsys, monkeypatch, tool_checkpoint):
    rc, out, err = chat(capsys, monkeypatch, "--model", tool_checkpoint, "--tools", "pyhton", "Hi")
    assert rc == 1 and "--tools: no tool named 'pyhton'; there are: python, search_documents" in err


def test_a_call_of_a_tool_that_is_not_on_goes_back_as_an_error(capsys, monkeypatch, tmp_path):
    ckpt = build_checkpoint(tmp_path / "calc", vocab=20000, vision=False, layers=1, hidden=64, intermediate=64, script=Script(
        "Try a tool", tool_calls=(("calculator", '{"x": 1}'),), after_tools="Hmm!"))
    rc, out, err = chat(capsys, monkeypatch, "--model", ckpt, "--json", "--tools", "python", "Hi")
    result = next(d for d in lines(out) if d["type"] == "tool_result")
    assert result["error"] == "there is no tool named 'calculator' (tools on: python)" and rc == 0


@pytest.fixture
def mcp_json(isolated_dirs, tmp_path):
    return write_mcp_json(isolated_dirs / "config", tmp_path, sys.executable)


def test_magimac_tools_lists_builtin_and_mcp_tools_and_a_broken_server_is_one_line(capsys, mcp_json):
    assert main(["tools", "--json"]) == 0
    out, err = capsys.readouterr()
    data = json.loads(out)
    assert [(t["name"], t["source"]) for t in data["tools"]] == [
        ("python", "builtin"), ("search_documents", "builtin"), ("add", "mcp:sums")]
    assert len(data["notices"]) == 1 and data["notices"][0].startswith("mcp server broken: did not start (")


def test_an_mcp_tool_is_called(mcp_json):
    mcp = McpTools([ServerConfig("sums", sys.executable, (str(mcp_json),))])
    try:
        box = Toolbox(("add",), mcp=mcp)
        assert [t.name for t in box.specs()] == ["add"]
        result = box.run(ToolCall("c00000001", "add", {"a": 2, "b": 40}, '{"a": 2, "b": 40}'))
        assert (result.output, result.error) == ("42", None)
        bad = box.run(ToolCall("c00000002", "add", {"a": "x"}, '{"a": "x"}'))
        assert bad.output is None and bad.error.startswith("add: ")
    finally:
        mcp.close()


@pytest.mark.parametrize("reply, answer", [("o\n", "once"), ("a\n", "conversation"), ("\n", "deny"), ("x\n", "deny")])
def test_on_a_terminal_the_person_is_asked(reply, answer):
    from magimac.cli.chat_tools import terminal_ask

    err = io.StringIO()
    ask = terminal_ask(io.StringIO(reply), err)
    assert ask(ToolCall("c00000001", "python", {"code": "print(1)"}), "print(1)") == answer
    assert "the model wants to run python:\n    print(1)\nRun it? [o]nce, [a]lways" in err.getvalue()
