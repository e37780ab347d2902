"""One turn for any front-end: documents attached, the engine's events streamed, the answer
record built as it streams.

What this adds to the engine's own `Turn`: the documents step (`magimac.text.retrieval.
attach_for_engine`) and its report as an event, errors before the turn (a document that cannot
be read, a model that failed to load) turned into the same ``Done("error", ...)`` the engine
sends, an iterator that a Ctrl-C does not end (the interrupted front-end cancels and keeps
reading to the ``Done``), and the record a front-end stores (`AnswerRecord`), kept up to date
as the text streams so that a killed answer keeps its reasoning and its token counts.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any

from magimac.core.conversation import Message
from magimac.core.errors import MagimacError
from magimac.core.events import AnswerDelta, Done, ReasoningDelta, Stats, ToolCall, ToolResult
from magimac.session.tool_loop import not_offered


@dataclass(frozen=True)
class DocumentsUsed:
    """The documents part of the turn, sent before its first token.

    Attributes:
        summary: one line for people (`magimac.text.retrieval.context_summary`).
        report: JSON-ready data (`magimac.text.retrieval.context_report`: ``whole``, ``tokens``,
            ``passages`` with ``document``, ``page``, ``score``, ``tokens`` and, for chosen
            passages, ``text``).
    """

    summary: str
    report: dict


@dataclass
class ThinkingClock:
    """The seconds a turn's model spent reasoning: from its first reasoning token to its first
    answer token, less the time from each tool call to its result (a permission asked, the tool
    running: the person's and the tool's time, not the model's).

    Feed it every event of the turn with the time it came (`see`); ``seconds`` is set when the
    answer starts, `elapsed` gives the reasoning time so far.
    """

    start: float | None = None
    seconds: float | None = None
    _paused_at: float | None = None
    _paused_s: float = 0.0

    def see(self, ev: Any, now: float) -> None:
        """Take one event of the turn, ``now`` in seconds (any monotonic clock)."""
        if isinstance(ev, ReasoningDelta) and self.start is None:
            self.start = now
        elif isinstance(ev, ToolCall) and self._paused_at is None:
            self._paused_at = now
        elif isinstance(ev, ToolResult) and self._paused_at is not None:
            self._paused_s += now - self._paused_at
            self._paused_at = None
        elif isinstance(ev, AnswerDelta) and self.start is not None and self.seconds is None:
            self.seconds = self.elapsed(now)

    def elapsed(self, now: float) -> float:
        """Seconds of reasoning up to ``now`` (0 before the first reasoning token)."""
        if self.start is None:
            return 0.0
        end = self._paused_at if self._paused_at is not None else now
        return max(0.0, end - self.start - self._paused_s)


@dataclass
class AnswerRecord:
    """What to store for the answer, filled in as the events arrive.

    Attributes:
        content / reasoning: the answer and reasoning text so far.
        reasoning_tokens / answer_tokens: tokens generated in each part (one per delta, the
            engine's final `Stats` when it sends them).
        finish_reason: one of `magimac.core.events.FINISH_REASONS` once the turn ended, else None.
        error: the one-line error of a failed turn.
        stats: the engine's `Stats` (the last one received).
        documents: ``{"summary", "passages"}`` of the documents sent (passage text left out).
        thinking_s: seconds the model spent reasoning (`ThinkingClock`: to the first answer
            token, or to the end of the turn when it stopped while reasoning; time waiting for a
            tool left out).
        model: the label of the model that answered (``Magistral Small 1.2 · 4bit``).
        service: where it ran when not on this machine (``"Mistral API"``), else None.
    """

    content: str = ""
    reasoning: str = ""
    reasoning_tokens: int = 0
    answer_tokens: int = 0
    finish_reason: str | None = None
    error: str | None = None
    stats: Stats | None = None
    documents: dict | None = None
    thinking_s: float | None = None
    model: str | None = None
    service: str | None = None
    _thinking: ThinkingClock = field(default_factory=ThinkingClock, repr=False)

    def add(self, ev: Any, now: float | None = None) -> None:
        """Take one event of the turn (``now``: `time.monotonic` seconds, for thinking_s)."""
        now = time.monotonic() if now is None else now
        self._thinking.see(ev, now)
        if isinstance(ev, ReasoningDelta):
            self.reasoning += ev.text
            self.reasoning_tokens += 1
        elif isinstance(ev, AnswerDelta):
            if self.thinking_s is None and self._thinking.seconds is not None:
                self.thinking_s = round(self._thinking.seconds, 2)
            self.content += ev.text
            self.answer_tokens += 1
        elif isinstance(ev, Stats):
            self.stats = ev
        elif isinstance(ev, DocumentsUsed):
            # attached documents' passages without their text (the files are there); library
            # passages keep theirs, so a citation [n] opens again from history
            passages = [p if p.get("n") else {k: v for k, v in p.items() if k != "text"}
                        for p in ev.report["passages"]]
            self.documents = {"summary": ev.summary, "passages": passages}
        elif isinstance(ev, Done):
            self.finish_reason, self.error = ev.finish_reason, ev.error
            if self.thinking_s is None and self._thinking.start is not None and not self.answer_tokens:
                self.thinking_s = round(self._thinking.elapsed(now), 2)  # it stopped while reasoning
            if ev.stats != Stats():
                self.stats = ev.stats

    def stored_stats(self) -> dict:
        """The stats dict kept with the message in history (`magimac.text.history`): the
        engine's `Stats` fields, token counts as far as the text got, ``thinking_s``,
        ``error``, ``documents``, ``model`` and ``service`` where known."""
        stats = dataclasses.asdict(self.stats or Stats())
        stats["reasoning_tokens"] = stats.get("reasoning_tokens") or self.reasoning_tokens
        stats["answer_tokens"] = stats.get("answer_tokens") or self.answer_tokens
        extra = {"thinking_s": self.thinking_s, "error": self.error, "documents": self.documents,
                 "model": self.model, "service": self.service}
        stats.update({k: v for k, v in extra.items() if v is not None})
        return stats


def model_label(loaded) -> str:
    """A loaded model as the status bar and exports name it: ``Magistral Small 1.2 · 4bit``."""
    return f"{loaded.model} · {loaded.quantization}" if loaded.quantization else loaded.model


class TurnRun:
    """The events of one turn: `DocumentsUsed` (when documents are attached), then the engine's
    `ReasoningDelta` / `AnswerDelta` / `Stats`, and always a `Done` last.  With ``tools`` (a
    `magimac.session.tool_loop.ToolUse`) also `ToolCall` and `ToolResult`, round after round
    (`tool_loop`); `new_messages` is then what to store.  Without ``tools``, a call of a tool the
    prompt did not offer comes with its `tool_loop.NOT_OFFERED` result, and nothing runs.

    Iterating blocks until the next event. A `KeyboardInterrupt` raised while waiting leaves the
    run intact: call `cancel` and iterate again to receive the rest, down to ``Done("cancelled")``.

    Attributes:
        messages: the conversation as sent (documents put into the text) once prepared.
        answer: the `AnswerRecord`, updated with every event.
        done: the `Done` event once received.
    """

    def __init__(self, session, messages: list[Message], settings=None, tools=None, libraries=()) -> None:
        self.session = session
        self.messages = messages
        self.settings = settings
        self.tools = None  # a `magimac.session.tool_loop.ToolRounds` when the model may use tools
        if tools is not None:
            from magimac.core.settings import GenerationSettings
            from magimac.session.tool_loop import ToolRounds

            self.settings = dataclasses.replace(settings or GenerationSettings(), tools=tools.toolbox.specs())
            self.tools = ToolRounds(tools, [d for m in messages for d in m.documents])
        self._hide_reasoning = False
        if session.choice.is_demo:
            from magimac.session.demo import demo_settings

            self.settings, self._hide_reasoning = demo_settings(self.settings, messages)
        self.libraries = list(libraries)
        self.answer = AnswerRecord()
        self.done: Done | None = None
        self._engine_turn = None
        self._events = None
        self._queued: list = []
        self._cancelled = False

    def prepare(self) -> DocumentsUsed | None:
        """Wait for the model and put the attached documents into the messages (once).

        Raises:
            MagimacError: the model failed to load, a document cannot be read, the prompt is bad.
        """
        from magimac.text.retrieval import attach_for_engine, context_report, context_summary

        engine = self.session.engine
        had_documents = any(m.documents for m in self.messages)
        self.messages, ctx = attach_for_engine(engine, self.messages, self.settings)
        loaded = self.session.wait_loaded()
        self.answer.model = model_label(loaded) if loaded is not None else None
        self.answer.service = (loaded.service or None) if loaded is not None else None
        if self.libraries:
            return self._prepare_libraries(ctx if had_documents or ctx.passages else None)
        if had_documents or ctx.passages:
            return DocumentsUsed(context_summary(ctx), context_report(ctx))
        return None

    def _prepare_libraries(self, attached) -> DocumentsUsed:
        """The libraries' passages into the last message; the report lists them first, then
        the attached documents' passages (``attached``: their Context, or None)."""
        from magimac.session.library import attach_libraries
        from magimac.text.retrieval import context_report, context_summary

        self.messages, summary, report = attach_libraries(self.session.engine, self.messages,
                                                          self.settings, self.libraries)
        if attached is not None:
            summary = f"{summary}\n{context_summary(attached)}"
            report["passages"] += context_report(attached)["passages"]
            report["tokens"] += attached.tokens
        return DocumentsUsed(summary, report)

    def cancel(self) -> None:
        """Stop the turn within a token; the events still to come end with ``Done("cancelled")``."""
        self._cancelled = True
        if self.tools is not None:
            self.tools.cancel.set()
        if self._engine_turn is not None:
            self._cancel_engine_turn()

    def _cancel_engine_turn(self) -> None:
        """This turn's own cancel (`magimac.core.backend.TurnStream`: an engine running many
        turns at once ends only this one)."""
        self._engine_turn.cancel()

    def __iter__(self) -> "TurnRun":
        return self

    def __next__(self):
        if self.done is not None:
            raise StopIteration
        if self._engine_turn is None:
            self._start()
        ev = self._pull()
        while self._hide_reasoning and isinstance(ev, ReasoningDelta):
            ev = self._pull()
        self.answer.add(ev)
        if isinstance(ev, Done):
            self.done = ev
        return ev

    def _pull(self):
        """The next event: a queued one, else the engine's (a round with tool calls settled)."""
        if self._queued:
            return self._queued.pop(0)
        try:
            ev = next(self._events)
        except KeyboardInterrupt:
            self._events = iter(self._engine_turn)  # that generator is spent; the queue is not
            raise
        except StopIteration:
            ev = Done("error", "the engine ended the turn without finishing it")
        if self.tools is not None:
            self.tools.see(ev)
            if isinstance(ev, Done) and self.tools.calls:
                ev = self._tool_round(ev)
        elif isinstance(ev, ToolCall) and (refused := not_offered(ev, self.settings)):
            ev, result = refused
            self._queued.append(result)
        return ev

    def _start(self) -> None:
        try:
            documents = None if self._cancelled else self.prepare()
        except MagimacError as e:
            self._fail(str(e))
            return
        if self._cancelled:
            self._fail(None, "cancelled")
            return
        self._engine_turn = self.session.engine.submit(self.messages, self.settings)
        self._events = iter(self._engine_turn)
        if self._cancelled:  # cancelled from another thread while this one was submitting
            self._cancel_engine_turn()
        if documents is not None:
            self._queued.append(documents)

    def new_messages(self) -> list[Message]:
        """What the turn adds to the conversation: the tool loop's steps (assistant calls, tool
        results), then the answer (the text and reasoning of its last round)."""
        if self.tools is None:
            return [Message("assistant", self.answer.content, reasoning=self.answer.reasoning or None)]
        return [*self.tools.steps, self.tools.round_message(self.answer)]

    def _tool_round(self, done: Done):
        """An engine round ended after tool calls: settle them (`ToolRounds.finish_round`), queue
        their results and start the next round; returns the next event to give."""
        results, end = self.tools.finish_round(done, self.answer)
        self._queued.extend(results)
        if end is not None:
            self._queued.append(end)
        else:
            self._engine_turn = self.session.engine.submit(self.messages + self.tools.steps, self.settings)
            self._events = iter(self._engine_turn)
        return self._queued.pop(0)  # never empty: a result per call, or the ending Done

    def _fail(self, error: str | None, reason: str = "error") -> None:
        """End the run before it reached the engine: its only event is this `Done`."""
        self._engine_turn = ()
        self._events = iter(())
        self._queued.append(Done(reason, error))
