"""The engine on scripted checkpoints that call tools: the call streams as one `ToolCall`, the
turn stops at ``</s>``, and the next round prefills only the tool result (the KV cache holds the
rest)."""

from __future__ import annotations

import pytest
from mistral_common.tokens.tokenizers.tekken import Tekkenizer

from magimac.core.conversation import Message
from magimac.core.events import AnswerDelta, Done, ReasoningDelta, ToolCall
from magimac.core.settings import GenerationSettings
from magimac.text.tools import BUILTIN_TOOLS, tool_message

SETTINGS = GenerationSettings(tools=BUILTIN_TOOLS)


def round_(engine, messages):
    """One engine turn -> (its ToolCalls, its reasoning + answer text, its Done)."""
    events = list(engine.submit(messages, SETTINGS))
    assert isinstance(events[-1], Done)
    text = "".join(e.text for e in events if isinstance(e, (ReasoningDelta, AnswerDelta)))
    return [e for e in events if isinstance(e, ToolCall)], text, events[-1]


def test_a_call_then_the_result_prefilled_alone(tool_engine, tool_checkpoint):
    msgs = [Message("user", "What is 6 x 7?")]
    calls, text, done = round_(tool_engine, msgs)
    assert [(c.id, c.name, c.arguments, c.error) for c in calls] == [("c00000001", "python", {"code": "print(6*7)"}, None)]
    assert done.finish_reason == "stop"
    first_prompt = done.stats.prompt_tokens
    msgs += [Message("assistant", "", reasoning="Multiply with python",
                     tool_calls=[{"id": calls[0].id, "name": "python", "arguments": calls[0].raw}]),
             tool_message(calls[0].id, "python", "42")]
    calls, text, done = round_(tool_engine, msgs)
    assert (calls, text, done.finish_reason) == ([], "Got it!", "stop")
    stats = done.stats
    tk = Tekkenizer.from_file(tool_checkpoint / "tekken.json")
    result_tokens = 2 + len(tk.encode("42", bos=False, eos=False))  # [TOOL_RESULTS] 42 [/TOOL_RESULTS]
    assert stats.prompt_tokens - stats.cached_tokens == result_tokens
    assert stats.cached_tokens > first_prompt  # the prompt, the reasoning and the call were kept


def test_without_tools_offered_the_prompt_has_no_tool_list(tool_engine):
    text = tool_engine.encode([Message("user", "Hi")], GenerationSettings()).text
    assert "[AVAILABLE_TOOLS]" not in text
    assert '[AVAILABLE_TOOLS][{"type": "function"' in tool_engine.encode([Message("user", "Hi")], SETTINGS).text


def test_malformed_arguments_from_the_model_are_an_error_call_not_a_crash(tmp_path):
    from magimac.engine.worker import Engine
    from magimac.testing.checkpoint import Script, build_checkpoint

    ckpt = build_checkpoint(tmp_path / "bad", vocab=20000, vision=False, layers=1, hidden=64, intermediate=64, script=Script(
        "Bad call", tool_calls=(("python", '{"code": print(1'),), after_tools="Sorry!"))
    engine = Engine(ckpt)
    try:
        calls, text, done = round_(engine, [Message("user", "Hi")])
        assert done.finish_reason == "stop" and text == "Bad call"
        (call,) = calls
        assert call.error.startswith("the arguments are not valid JSON") and call.raw == '{"code": print(1'
    finally:
        engine.close()
