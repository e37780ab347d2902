"""`magimac chat` shows a long prompt's progress as one line on a terminal's stderr, rewritten in
place and erased when the model writes; a pipe gets none of it."""

from __future__ import annotations

import io
import sys

from magimac.cli.chat_output import ERASE_LINE, TextPrinter
from magimac.core.events import AnswerDelta, Done, Prefill, ReasoningDelta
from magimac.session.turn import AnswerRecord


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def printed(monkeypatch, err: io.StringIO, events) -> tuple[str, str]:
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(sys, "stderr", err)
    monkeypatch.setenv("NO_COLOR", "1")
    printer = TextPrinter()
    for ev in events:
        printer.show(ev)
    printer.finish(Done("stop"), AnswerRecord())
    return out.getvalue(), err.getvalue()


EVENTS = [Prefill(0, 42_000), Prefill(2_048, 42_000), Prefill(42_000, 42_000),
          ReasoningDelta("think"), AnswerDelta("74")]


def test_a_terminal_sees_one_line_rewritten_then_erased(monkeypatch):
    out, err = printed(monkeypatch, Terminal(), EVENTS)
    assert out == "74\n"
    lines = err.split(ERASE_LINE)
    assert lines[1:] == ["magimac: reading the prompt: 0 of 42,000 tokens (0%), Ctrl-C stops",
                         "magimac: reading the prompt: 2,048 of 42,000 tokens (5%), Ctrl-C stops",
                         "magimac: reading the prompt: 42,000 of 42,000 tokens (100%), Ctrl-C stops",
                         "think\n\n"]
    assert "\n" not in "".join(lines[:-1])  # one line, written over


def test_a_pipe_gets_no_progress(monkeypatch):
    out, err = printed(monkeypatch, io.StringIO(), EVENTS)
    assert out == "74\n" and err == "think\n\n"
