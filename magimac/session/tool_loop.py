"""The tool loop of a turn: call -> permission -> run -> result -> the model continues.

A `TurnRun` given a `ToolUse` offers its tools to the model.  When an engine round ends with
``</s>`` after tool calls, each call is settled in order: a call that cannot run (unknown tool,
unreadable arguments) gets its error at once; otherwise the tool runs if the person allowed it
(``ask`` is the front-end's callback: allow once, allow for this conversation, deny), and a
denial is the result ``"error: the person did not allow this call"``.  The results go back as
``tool`` messages and the engine runs the next round on the conversation so far, which starts
with what its KV cache holds, so only the results are prefilled.  At most ``max_rounds``
rounds of calls per turn (default 8): a model that calls again after that ends the turn with
``Done("length", ...)``.  A cancel stops the loop between calls, stops a running python tool,
and ends the turn with ``Done("cancelled")``.

A turn that offers no tools never runs one: a call the model makes anyway (the tokens are in
its vocabulary) comes out with the error `NOT_OFFERED`, followed by a `ToolResult` with the same
error (`not_offered`), and the turn ends as the model ended it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from typing import Callable

from magimac.core.conversation import Message
from magimac.core.events import Done, ToolCall, ToolResult
from magimac.text.tools import DENIED, NOT_OFFERED, dump_arguments, tool_message
from magimac.tools.toolbox import Toolbox

ALLOW_ONCE, ALLOW_CONVERSATION, DENY = "once", "conversation", "deny"
ANSWERS = (ALLOW_ONCE, ALLOW_CONVERSATION, DENY)
MAX_ROUNDS = 8


@dataclass
class ToolUse:
    """What a front-end gives a turn so that the model may use tools.

    Attributes:
        toolbox: the tools on.
        ask: ``ask(call, shown) -> "once" | "conversation" | "deny"``, called (in the thread that
            iterates the turn) before a tool runs that is not in ``allowed``; ``shown`` is what
            will run (`Toolbox.describe`).  None: such calls are denied.
        allowed: tool names allowed without asking (``--allow-tools``, or "allow for this
            conversation"; the front-end keeps this set with the conversation).
        max_rounds: most rounds of tool calls in one turn.
    """

    toolbox: Toolbox
    ask: Callable[[ToolCall, str], str] | None = None
    allowed: set[str] = field(default_factory=set)
    max_rounds: int = MAX_ROUNDS

    def settle(self, call: ToolCall, documents: list[str], cancel: threading.Event) -> ToolResult:
        """Ask (when needed) and run one call; returns its result."""
        runnable = not call.error and call.name in {t.name for t in self.toolbox.specs()}
        if runnable and call.name not in self.allowed:
            answer = self.ask(call, self.toolbox.describe(call)) if self.ask is not None else DENY
            if answer == ALLOW_CONVERSATION:
                self.allowed.add(call.name)
            elif answer != ALLOW_ONCE:
                return ToolResult(call.id, call.name, error=DENIED)
        return self.toolbox.run(call, documents, cancel)


def not_offered(call: ToolCall, settings) -> tuple[ToolCall, ToolResult] | None:
    """A call made in a turn without a `ToolUse`, when ``settings.tools`` (what the prompt
    offered; a server's client runs those) does not hold its name: the call with `NOT_OFFERED`
    as its error and its result, so every front-end shows that nothing ran; else None."""
    if call.name in {t.name for t in getattr(settings, "tools", None) or ()}:
        return None
    return replace(call, error=NOT_OFFERED), ToolResult(call.id, call.name, error=NOT_OFFERED)


class ToolRounds:
    """The loop's state inside one `TurnRun`.

    Attributes:
        steps: the messages the loop added: per round an assistant message with its reasoning,
            text and ``tool_calls``, then one ``tool`` message per call.
        rounds: rounds of calls so far.
    """

    def __init__(self, use: ToolUse, documents: list[str]) -> None:
        self.use = use
        self.documents = documents
        self.steps: list[Message] = []
        self.rounds = 0
        self.calls: list[ToolCall] = []
        self.cancel = threading.Event()
        self._marks = (0, 0)  # answer.content / answer.reasoning lengths at the round's start

    def see(self, ev) -> None:
        """Note an event of the engine's round (its calls)."""
        if isinstance(ev, ToolCall):
            self.calls.append(ev)

    def finish_round(self, done: Done, answer) -> tuple[list[ToolResult], Done | None]:
        """The round ended with ``done`` after calls: record them and settle each.

        Returns:
            (results, None) to continue with a new round, or ([...], a `Done` ending the turn).
        """
        calls, self.calls = self.calls, []
        self.steps.append(self.round_message(answer, calls))
        if done.finish_reason != "stop" or self.cancel.is_set():
            return [], done
        if self.rounds >= self.use.max_rounds:
            return [], Done("length", f"the model called tools in {self.rounds} rounds, the limit for one turn",
                            done.stats)
        self.rounds += 1
        results = []
        for call in calls:
            if self.cancel.is_set():
                return results, Done("cancelled", None, done.stats)
            r = self.use.settle(call, self.documents, self.cancel)
            results.append(r)
            self.steps.append(tool_message(r.id, r.name, r.content, r.seconds))
        if self.cancel.is_set():
            return results, Done("cancelled", None, done.stats)
        return results, None

    def round_message(self, answer, calls: list[ToolCall] = ()) -> Message:
        """The assistant message of the round that just ended: the text and reasoning since
        the round began, and its calls."""
        c0, r0 = self._marks
        self._marks = (len(answer.content), len(answer.reasoning))
        return Message("assistant", answer.content[c0:], reasoning=answer.reasoning[r0:] or None,
                       tool_calls=[{"id": c.id, "name": c.name,
                                    "arguments": c.raw if c.error else dump_arguments(c.arguments)}
                                   for c in calls])
