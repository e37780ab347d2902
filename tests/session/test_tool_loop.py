"""The tool loop in the session layer: permission, results back to the model, rounds limit,
cancel; on the fake engine (calls as the engine's splitter sends them) and on a scripted model."""

from __future__ import annotations

from magimac.core.conversation import Message
from magimac.core.events import AnswerDelta, Done, ToolCall, ToolResult
from magimac.session.model import open_model
from magimac.session.tool_loop import ALLOW_CONVERSATION, ALLOW_ONCE, DENY, ToolUse
from magimac.testing.fake_engine import FakeEngine
from magimac.tools.toolbox import Toolbox

PY = ("python", '{"code": "print(6*7)"}')


def turn(engine, tools: ToolUse, text="What is 6 x 7?"):
    session = open_model(choice=_choice(), engine_factory=lambda p, **k: engine)
    run = session.turn([Message("user", text)], None, tools)
    events = list(run)
    return run, events


def _choice():
    from magimac.session.model import ModelChoice
    from pathlib import Path

    return ModelChoice(Path("fake"))


def use(*names, ask=None, **kw) -> ToolUse:
    return ToolUse(Toolbox(tuple(names)), ask, **kw)


def test_one_call_allowed_once_runs_and_the_model_continues():
    asked = []
    engine = FakeEngine(answer="It is 42.", tool_rounds=[[PY]])
    run, events = turn(engine, use("python", ask=lambda call, shown: asked.append(shown) or ALLOW_ONCE))
    assert asked == ["print(6*7)"]
    (result,) = [e for e in events if isinstance(e, ToolResult)]
    assert (result.id, result.output, result.error) == ("c00000001", "42", None)
    assert "".join(e.text for e in events if isinstance(e, AnswerDelta)) == "It is 42."
    assert isinstance(events[-1], Done) and events[-1].finish_reason == "stop"
    second = engine.submitted[1]  # the next round saw the call and its result
    assert second[-2].tool_calls[0]["name"] == "python" and second[-1].to_dict()["content"] == "42"
    msgs = run.new_messages()
    assert [m.role for m in msgs] == ["assistant", "tool", "assistant"] and msgs[-1].content == "It is 42."
    assert engine.settings[0].tools[0].name == "python"


def test_denied_call_gives_the_denial_back_and_allow_for_conversation_is_remembered():
    engine = FakeEngine(tool_rounds=[[PY], [PY]])
    _, events = turn(engine, use("python", ask=lambda c, s: DENY))
    assert [e.content for e in events if isinstance(e, ToolResult)] == ["error: the person did not allow this call"] * 2
    answers = iter([ALLOW_CONVERSATION])
    tools = use("python", ask=lambda c, s: next(answers))  # asked once: the second call runs unasked
    _, events = turn(FakeEngine(tool_rounds=[[PY], [PY]]), tools)
    assert [e.output for e in events if isinstance(e, ToolResult)] == ["42", "42"] and tools.allowed == {"python"}


def test_several_calls_unknown_tool_and_malformed_arguments_each_get_a_result():
    engine = FakeEngine(tool_rounds=[[PY, ("calculator", "{}"), ("python", '{"code": print(1')]])
    _, events = turn(engine, use("python", allowed={"python"}))
    calls = [e for e in events if isinstance(e, ToolCall)]
    results = {e.id: e.content for e in events if isinstance(e, ToolResult)}
    assert [c.id for c in calls] == ["c00000001", "c00000002", "c00000003"]
    assert results["c00000001"] == "42"
    assert results["c00000002"] == "error: there is no tool named 'calculator' (tools on: python)"
    assert results["c00000003"].startswith("error: the arguments are not valid JSON")
    assert events[-1].finish_reason == "stop"


def test_without_a_way_to_ask_calls_are_denied():
    _, events = turn(FakeEngine(tool_rounds=[[PY]]), use("python"))
    assert [e.error for e in events if isinstance(e, ToolResult)] == ["the person did not allow this call"]


def test_rounds_are_limited():
    engine = FakeEngine(tool_rounds=[[PY]] * 5)
    _, events = turn(engine, use("python", allowed={"python"}, max_rounds=2))
    assert sum(isinstance(e, ToolResult) for e in events) == 2
    assert events[-1].finish_reason == "length" and "2 rounds" in events[-1].error


def test_cancel_while_asking_stops_the_turn():
    holder = {}

    def ask(call, shown):
        holder["run"].cancel()
        return ALLOW_ONCE

    engine = FakeEngine(tool_rounds=[[PY]])
    session = open_model(choice=_choice(), engine_factory=lambda p, **k: engine)
    run = holder["run"] = session.turn([Message("user", "x")], None, use("python", ask=ask))
    events = list(run)
    assert events[-1].finish_reason == "cancelled" and len(engine.submitted) == 1


def test_the_scripted_model_calls_python_and_answers(tool_engine):
    session = open_model(choice=_choice(), engine_factory=lambda p, **k: tool_engine, owns_engine=False)
    run = session.turn([Message("user", "What is 6 x 7?")], None, use("python", allowed={"python"}))
    events = list(run)
    (result,) = [e for e in events if isinstance(e, ToolResult)]
    assert result.output == "42" and run.answer.finish_reason == "stop"
    assert run.new_messages()[-1].content == "Got it!"
    stats = run.done.stats
    # only the result is prefilled (less when the shared engine's disk cache met this turn before)
    assert 0 < stats.prompt_tokens - stats.cached_tokens <= 2 + tool_engine.count_tokens("42")


def test_a_call_of_a_tool_not_offered_never_runs_and_says_so(tool_engine):
    """The scripted model calls python in a turn that offers no tools: the call comes with the
    NOT_OFFERED error, then its result with the same error; nothing ran, the turn ends as the
    model ended it.  A tool the prompt offered (a server's client runs it) passes as it is."""
    from dataclasses import replace

    from magimac.core.settings import GenerationSettings
    from magimac.text.tools import NOT_OFFERED, PYTHON

    session = open_model(choice=_choice(), engine_factory=lambda p, **k: tool_engine, owns_engine=False)
    events = list(session.turn([Message("user", "What is 6 x 7?")], None, None))
    call, result = [e for e in events if isinstance(e, (ToolCall, ToolResult))]
    assert (call.name, call.error) == ("python", NOT_OFFERED)
    assert (result.id, result.output, result.error, result.seconds) == (call.id, None, NOT_OFFERED, 0.0)
    assert events[-1].finish_reason == "stop"
    offered = replace(GenerationSettings(), tools=(PYTHON,))
    events = list(session.turn([Message("user", "What is 6 x 7?")], offered, None))
    (call,) = [e for e in events if isinstance(e, (ToolCall, ToolResult))]
    assert call.name == "python" and call.error is None

def test_thinking_time_leaves_out_the_wait_for_permission(monkeypatch):
    """"Thought for N s" counts the model's time only: the permission dialog waits 100 s here,
    on a clock that also ticks a second per event read."""
    now = [0.0]

    def clock() -> float:
        now[0] += 1.0
        return now[0]

    def ask(call, shown):
        now[0] += 100.0  # the person reads the dialog
        return DENY

    engine = FakeEngine(reasoning="Let me use python.", answer="It is 42.", tool_rounds=[[PY]])
    session = open_model(choice=_choice(), engine_factory=lambda p, **k: engine)
    run = session.turn([Message("user", "What is 6 x 7?")], None, use("python", ask=ask))
    monkeypatch.setattr("magimac.session.turn.time.monotonic", clock)
    events = list(run)
    assert any(isinstance(e, ToolResult) for e in events) and run.answer.content == "It is 42."
    assert 0 < run.answer.thinking_s < 10  # the reasoning and the next round, not the 100 s wait
    assert run.answer.stored_stats()["thinking_s"] == run.answer.thinking_s
