"""How `magimac chat` shows a turn: JSON Lines, or answer on stdout and reasoning on stderr.

Each printer takes the events of a `magimac.session.turn.TurnRun` one by one (`show`) and
closes the turn (`finish`), so that a turn cut short by Ctrl-C still ends with its numbers and
its last line (``{"type": "done", ...}`` in JSON mode).
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict

from magimac.core.events import AnswerDelta, Done, Prefill, ReasoningDelta, Retrying, Stats, ToolCall, ToolResult
from magimac.core.units import format_bytes
from magimac.session.turn import AnswerRecord, DocumentsUsed
from magimac.text.controls import show_controls
from magimac.text.tools import NOT_OFFERED

DIM, RESET = "\x1b[2m", "\x1b[0m"
ERASE_LINE = "\r\x1b[K"


def json_line(obj: dict) -> None:
    """One JSON Lines record on stdout, flushed."""
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def online_source(session) -> dict | None:
    """Where an online model's answer comes from (``session``: a `magimac.session.model.ChatSession`):
    ``{"service": "Mistral's API", "model": "mistral-medium-latest", "display_name", "api_url"}``,
    None for a local model.  `JsonPrinter` puts it in the ``done`` line as ``online``."""
    online = session.choice.online
    if online is None:
        return None
    return {"service": "Mistral's API", "model": online.name, "display_name": online.display_name,
            "api_url": session.api_url}


def online_line(source: dict) -> str:
    """The stderr line after an online answer: the model and that Mistral's API answered."""
    return (f"magimac: this answer came from Mistral's API ({source['api_url']}): {source['display_name']} "
            f"({source['model']}), not this Mac")


def stats_line(s: Stats) -> str:
    """The ``--stats`` line: ``[N prompt tokens (M cached), TTFT 0.12 s, ...]`` (no newline);
    ``(M cached, D from disk)`` when the prompt cache on disk gave D of them."""
    disk = f", {s.disk_tokens} from disk" if s.disk_tokens else ""
    parts = [f"{s.prompt_tokens} prompt tokens ({s.cached_tokens} cached{disk})"]
    if s.ttft_s or s.decode_tps:  # a server's turn reports counts, not times: none shown then
        parts += [f"TTFT {s.ttft_s:.2f} s", f"prefill {s.prefill_tps:.1f} tok/s", f"decode {s.decode_tps:.1f} tok/s"]
    parts.append(f"{s.reasoning_tokens} reasoning + {s.answer_tokens} answer tokens")
    if s.peak_memory_bytes:
        parts.append(f"peak {format_bytes(s.peak_memory_bytes)}")
    return "[" + ", ".join(parts) + "]"


def final_stats(answer: AnswerRecord) -> Stats | None:
    """The turn's `Stats` with the token counts as far as the text got (a cancelled turn's
    engine numbers may stop before its last tokens)."""
    if answer.stats is None and not (answer.reasoning_tokens or answer.answer_tokens):
        return None
    s = answer.stats or Stats()
    return Stats(**{**asdict(s), "reasoning_tokens": s.reasoning_tokens or answer.reasoning_tokens,
                    "answer_tokens": s.answer_tokens or answer.answer_tokens})


class JsonPrinter:
    """``{"type": "documents"|"reasoning"|"answer"|"retry"|"stats"|"done", ...}`` lines; ``stats``
    comes once, before ``done``, which is always last."""

    def __init__(self, hide_reasoning: bool = False, online: dict | None = None) -> None:
        self.hide_reasoning, self.online = hide_reasoning, online
        self._stats_sent = False

    def show(self, ev) -> None:
        if isinstance(ev, DocumentsUsed):
            json_line(ev.report)
        elif isinstance(ev, ReasoningDelta) and not self.hide_reasoning:
            json_line({"type": "reasoning", "text": ev.text})
        elif isinstance(ev, AnswerDelta):
            json_line({"type": "answer", "text": ev.text})
        elif isinstance(ev, Stats):
            self._stats_sent = True
            json_line({"type": "stats", **asdict(ev)})
        elif isinstance(ev, Retrying):
            json_line({"type": "retry", "wait_s": ev.wait_s, "reason": ev.reason})
        elif isinstance(ev, ToolCall):
            json_line({"type": "tool_call", "id": ev.id, "name": ev.name, "arguments": ev.arguments}
                      | ({"error": ev.error, "raw": ev.raw} if ev.error else {}))
        elif isinstance(ev, ToolResult):
            json_line({"type": "tool_result", "id": ev.id, "name": ev.name}
                      | ({"error": ev.error} if ev.error is not None else {"output": ev.output})
                      | {"seconds": ev.seconds})

    def finish(self, done: Done, answer: AnswerRecord) -> None:
        if not self._stats_sent and (s := final_stats(answer)) is not None:
            json_line({"type": "stats", **asdict(s)})
        d = {"type": "done", "finish_reason": done.finish_reason}
        if done.error:
            d["error"] = done.error
        if self.online is not None:
            d["online"] = self.online
        json_line(d)


def tool_line(ev: ToolCall | ToolResult) -> str:
    """A call or result as one stderr line: ``[python c00000001] {"code": ...}`` /
    ``[python c00000001 · 0.4 s] 10063`` (first line of the output, up to 200 characters)."""
    if isinstance(ev, ToolCall):
        return f"[{ev.name} {ev.id}] {ev.raw or '{}'}" + (f" (error: {ev.error})" if ev.error else "")
    first = (ev.content.splitlines() or [""])[0][:200]
    return f"[{ev.name} {ev.id} · {ev.seconds:.1f} s] {first}"


def for_terminal(stream):
    """`show_controls` when ``stream`` is a terminal (the text is untrusted: an ESC in it would
    run there), else the text as it is (a pipe, a file)."""
    return show_controls if stream.isatty() else str


def not_offered_line(call: ToolCall) -> str:
    """The notice for a call of a tool the turn did not offer (`magimac.text.tools.NOT_OFFERED`)."""
    return (f"magimac: the model called {call.name[:60]}, a tool this conversation did not offer; it was not run "
            "(--tools offers tools)")


def prefill_line(ev: Prefill) -> str:
    """The progress of a long prompt: ``reading the prompt: 12,288 of 42,000 tokens (29%), Ctrl-C stops``."""
    share = ev.done_tokens / ev.total_tokens if ev.total_tokens else 1.0
    return (f"magimac: reading the prompt: {ev.done_tokens:,} of {ev.total_tokens:,} tokens ({share:.0%}), "
            "Ctrl-C stops")


class TextPrinter:
    """The answer on stdout; the reasoning on stderr (dimmed on a terminal unless
    ``NO_COLOR``); with ``stats``, the `stats_line` on stderr on a line of its own; with
    ``online`` (`online_source`), the `online_line` on stderr after the answer.  On a terminal,
    control characters of the text are shown, not run (`show_controls`); a call the turn did
    not offer is one notice line (`not_offered_line`).  A long prompt's progress is one line on
    stderr, rewritten in place and erased when the model starts writing (only on a terminal)."""

    def __init__(self, hide_reasoning: bool = False, stats: bool = False, online: dict | None = None) -> None:
        self.hide_reasoning, self.stats, self.online = hide_reasoning, stats, online
        self.out, self.err = sys.stdout, sys.stderr
        self.shown_out, self.shown_err = for_terminal(self.out), for_terminal(self.err)
        self.tty = self.err.isatty()
        self.dim = self.tty and not os.environ.get("NO_COLOR")
        self.in_reasoning = False
        self.answer_end = "\n"
        self.progress_shown = False

    def show(self, ev) -> None:
        if isinstance(ev, Prefill):
            self._progress(ev)
            return
        if self.progress_shown:
            self._progress(None)
        if isinstance(ev, (DocumentsUsed, Retrying)):
            print(self.shown_err(ev.summary if isinstance(ev, DocumentsUsed) else f"magimac: {ev.reason}"),
                  file=self.err)
        elif isinstance(ev, ReasoningDelta) and not self.hide_reasoning:
            if not self.in_reasoning and self.dim:
                self.err.write(DIM)
            self.in_reasoning = True
            self.err.write(self.shown_err(ev.text))
            self.err.flush()
        elif isinstance(ev, AnswerDelta):
            if self.in_reasoning:
                self._end_reasoning("\n\n")
            self.out.write(self.shown_out(ev.text))
            self.out.flush()
            self.answer_end = ev.text[-1:] or self.answer_end
        elif isinstance(ev, (ToolCall, ToolResult)) and not (isinstance(ev, ToolResult) and ev.error == NOT_OFFERED):
            if self.in_reasoning:
                self._end_reasoning("\n")
            line = not_offered_line(ev) if ev.error == NOT_OFFERED else tool_line(ev)
            print(self.shown_err(line), file=self.err)

    def _progress(self, ev: Prefill | None) -> None:
        """Write ``ev``'s `prefill_line` over the last one (None: erase it)."""
        if not self.tty:
            return
        self.err.write(ERASE_LINE + (prefill_line(ev) if ev is not None else ""))
        self.err.flush()
        self.progress_shown = ev is not None

    def _end_reasoning(self, gap: str) -> None:
        self.err.write((RESET if self.dim else "") + gap)
        self.err.flush()
        self.in_reasoning = False

    def finish(self, done: Done, answer: AnswerRecord) -> None:
        if self.progress_shown:
            self._progress(None)
        if self.in_reasoning:
            self._end_reasoning("\n")
        if self.answer_end != "\n":
            self.out.write("\n")
        self.out.flush()
        if self.online is not None and (answer.content or answer.reasoning):
            print(online_line(self.online), file=self.err)
        if self.stats and (s := final_stats(answer)) is not None:
            print(stats_line(s), file=self.err)
        if answer.stats is not None and answer.stats.cache_notice:
            print(f"magimac: {answer.stats.cache_notice}", file=self.err)
        if done.finish_reason == "length" and done.error:
            print(f"magimac: stopped: {done.error} (raise --max-tool-rounds)", file=self.err)
        elif done.finish_reason == "length":
            print("magimac: stopped at the token limit (raise --max-tokens or --context-length)", file=self.err)
