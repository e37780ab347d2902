"""What `magimac chat` reads from a person (a conversation file, a system prompt file, stdin)
cannot exhaust the Mac: each has a limit, said in one line; and what it writes to a terminal
cannot drive the terminal."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import pytest

from magimac.cli.chat_output import TextPrinter
from magimac.cli.main import main
from magimac.core.events import AnswerDelta, Done, ReasoningDelta, ToolCall
from magimac.core.files import MAX_TEXT_BYTES
from magimac.session.turn import AnswerRecord

TITLE = "\x1b]0;TITLE\x07"  # sets a terminal's window title


def chat(capsys, monkeypatch, *args):
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    rc = main(["chat", *map(str, args)])
    return (rc, *capsys.readouterr())


def one_line_error(rc, out, err) -> str:
    assert rc == 1 and out == "" and err.startswith("magimac: ") and err.count("\n") == 1, err
    return err


def sparse(path, size=MAX_TEXT_BYTES + 1):
    with open(path, "wb") as f:
        f.truncate(size)
    return path


@pytest.mark.parametrize("option", ["--conversation", "--system-file"])
def test_a_file_that_never_ends_or_is_too_big_is_one_line(capsys, monkeypatch, tmp_path, option):
    err = one_line_error(*chat(capsys, monkeypatch, option, "/dev/zero", "Hi"))
    assert err == "magimac: /dev/zero: not a regular file (a pipe, socket or device); give a file\n"
    big = sparse(tmp_path / "big.txt")
    err = one_line_error(*chat(capsys, monkeypatch, option, big, "Hi"))
    assert err == f"magimac: {big}: too large (16.0 MB; the limit is 16.0 MB); give a smaller file\n"


def test_a_binary_system_file_is_one_line(capsys, monkeypatch, tmp_path):
    binary = tmp_path / "prompt.bin"
    binary.write_bytes(b"You are\xff\xfe\x00 helpful")
    err = one_line_error(*chat(capsys, monkeypatch, "--system-file", binary, "Hi"))
    assert err == f"magimac: {binary}: not UTF-8 text (byte 7 is 0xff); give a text file saved as UTF-8\n"


def test_a_conversation_nested_too_deep_is_not_a_valid_conversation(capsys, monkeypatch, tmp_path):
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000)
    err = one_line_error(*chat(capsys, monkeypatch, "--conversation", deep))
    assert err == f"magimac: {deep}: not a valid conversation (JSON nested too deep)\n"


@pytest.mark.parametrize("stdin", ["/dev/zero", "big"])
def test_a_prompt_on_stdin_that_never_ends_is_one_line(tmp_path, stdin):
    path = sparse(tmp_path / "big.txt") if stdin == "big" else stdin
    with open(path, "rb") as f:
        p = subprocess.run([sys.executable, "-m", "magimac", "chat"], stdin=f, capture_output=True, text=True,
                           timeout=120, env={**os.environ, "MAGIMAC_NO_SERVER": "1"})
    assert p.returncode == 1 and p.stdout == ""
    assert p.stderr == "magimac: stdin: too large (the limit is 16.0 MB); give a shorter prompt\n"


def test_a_key_on_stdin_that_never_ends_is_one_line():
    with open("/dev/zero", "rb") as f:
        p = subprocess.run([sys.executable, "-m", "magimac", "key", "set", "mistral"], stdin=f, capture_output=True,
                           text=True, timeout=120)
    assert p.returncode == 1 and p.stdout == ""
    assert p.stderr == "magimac: stdin: a line longer than 4,096 characters; give one short line\n"


def test_a_call_of_a_tool_not_offered_is_said_and_never_runs(capsys, monkeypatch, tool_checkpoint):
    rc, out, err = chat(capsys, monkeypatch, "--model", tool_checkpoint, "What is 6 x 7?")
    assert (rc, out) == (0, "")
    assert err.splitlines()[-1] == ("magimac: the model called python, a tool this conversation did not offer; "
                                    "it was not run (--tools offers tools)")
    rc, out, err = chat(capsys, monkeypatch, "--model", tool_checkpoint, "--json", "What is 6 x 7?")
    lines = [json.loads(line) for line in out.splitlines()]
    call, result = [d for d in lines if d["type"] in ("tool_call", "tool_result")]
    assert call["error"] == result["error"] == "not run: the conversation did not offer this tool"
    assert "output" not in result and lines[-1] == {"type": "done", "finish_reason": "stop"}


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("stream", [Terminal, io.StringIO])
def test_control_sequences_are_shown_on_a_terminal_and_kept_in_a_pipe(monkeypatch, stream):
    out, err = stream(), stream()
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(sys, "stderr", err)
    monkeypatch.setenv("NO_COLOR", "1")
    printer = TextPrinter()
    for ev in (ReasoningDelta(f"think{TITLE}"), AnswerDelta(f"Hi{TITLE}\r\n\tthere\x9b2J"),
               ToolCall("c00000001", "py\x1b[2Jthon", raw="{}", error="bad")):
        printer.show(ev)
    printer.finish(Done("stop"), AnswerRecord())
    if stream is Terminal:
        assert out.getvalue() == "Hi␛]0;TITLE␇\n\tthere\\x9b2J\n"
        assert err.getvalue() == "think␛]0;TITLE␇\n\n[py␛[2Jthon c00000001] {} (error: bad)\n"
    else:
        assert out.getvalue() == f"Hi{TITLE}\r\n\tthere\x9b2J\n"
