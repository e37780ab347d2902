"""Tool calls in the text layer: prompts with tools equal mistral-common's, and the streaming
splitter reads ``[TOOL_CALLS]name[ARGS]{json}`` on token ids (one, several, malformed, list form)."""

from __future__ import annotations

import pytest
from mistral_common.protocol.instruct.chunk import ThinkChunk
from mistral_common.protocol.instruct.messages import AssistantMessage, ToolMessage, UserMessage
from mistral_common.protocol.instruct.request import ChatCompletionRequest
from mistral_common.protocol.instruct.tool_calls import FunctionCall, ToolCall as MToolCall
from mistral_common.tokens.tokenizers.mistral import MistralTokenizer

from magimac.core.conversation import Message, conversation_from_json
from magimac.core.events import AnswerDelta, ReasoningDelta, ToolCall
from magimac.core.settings import GenerationSettings
from magimac.testing.tekken import write_tekken
from magimac.text.reasoning import markers_for
from magimac.text.tool_calls import OutputSplitter
from magimac.text.tools import BUILTIN_TOOLS, PYTHON, call_id, tool_message

ARGS = '{"code": "print(347 * 29)"}'


@pytest.fixture(scope="module")
def tok(tmp_path_factory) -> MistralTokenizer:
    return MistralTokenizer.from_file(str(write_tekken(tmp_path_factory.mktemp("tk"))))


def tool_round() -> list[Message]:
    return [
        Message("user", "What is 347 x 29?"),
        Message("assistant", "", reasoning="Let me run it",
                tool_calls=[{"id": call_id(1), "name": "python", "arguments": ARGS}]),
        tool_message(call_id(1), "python", "10063", 0.4),
    ]


def test_prompt_with_tools_and_results_equals_mistral_common(engine, tok):
    settings = GenerationSettings(system_prompt=None, tools=BUILTIN_TOOLS)
    ours = engine.prompt_tokens(tool_round(), settings)
    ref = tok.encode_chat_completion(ChatCompletionRequest(
        tools=[t.to_mistral() for t in BUILTIN_TOOLS],
        messages=[UserMessage(content="What is 347 x 29?"),
                  AssistantMessage(content=[ThinkChunk(thinking="Let me run it")],  # the turn's own reasoning is kept
                                   tool_calls=[MToolCall(id="c00000001",
                                                         function=FunctionCall(name="python", arguments=ARGS))]),
                  ToolMessage(content="10063", tool_call_id="c00000001")])).tokens
    assert ours == ref
    text = tok.decode(ours, special_token_policy="keep")
    assert text.startswith('<s>[AVAILABLE_TOOLS][{"type": "function", "function": {"name": "python"')
    assert text.endswith('[TOOL_CALLS]python[ARGS]{"code": "print(347 * 29)"}</s>[TOOL_RESULTS]10063[/TOOL_RESULTS]')


def test_an_earlier_turns_tool_round_drops_its_reasoning(engine, tok):
    msgs = tool_round() + [Message("assistant", "It is 10063."), Message("user", "Thanks")]
    text = tok.decode(engine.prompt_tokens(msgs, GenerationSettings(system_prompt=None, tools=(PYTHON,))),
                      special_token_policy="keep")
    assert "Let me run it" not in text and "[TOOL_RESULTS]10063[/TOOL_RESULTS]It is 10063.</s>[INST]Thanks" in text


def test_conversation_json_round_trips_tool_messages():
    msgs = tool_round()
    back = conversation_from_json([m.to_dict() for m in msgs])
    assert back == msgs and back[2].to_dict() == {"role": "tool", "content": "10063", "tool_call_id": "c00000001",
                                                  "name": "python", "seconds": 0.4}


def split(tok, ids) -> list:
    tk = tok.instruct_tokenizer.tokenizer
    s = OutputSplitter(markers_for(tk), tk, first_call=3)
    out = [ev for t in ids for ev in s.feed(t)]
    return out + s.flush()


def enc(tok, text: str) -> list[int]:
    return tok.instruct_tokenizer.tokenizer.encode(text, bos=False, eos=False)


def test_several_calls_after_reasoning_each_with_its_own_id(tok):
    ids = [34, *enc(tok, "two calls"), 35, 9, *enc(tok, "python"), 32, *enc(tok, ARGS),
           9, *enc(tok, "search_documents"), 32, *enc(tok, '{"query": "café [ARGS]"}')]
    events = split(tok, ids)
    assert "".join(e.text for e in events if isinstance(e, ReasoningDelta)) == "two calls"
    assert not any(isinstance(e, AnswerDelta) for e in events)
    calls = [e for e in events if isinstance(e, ToolCall)]
    assert [(c.id, c.name, c.arguments, c.error) for c in calls] == [
        ("c00000003", "python", {"code": "print(347 * 29)"}, None),
        ("c00000004", "search_documents", {"query": "café [ARGS]"}, None)]  # "[ARGS]" as text stays text


def test_call_without_reasoning_and_answer_text_before_it(tok):
    events = split(tok, [*enc(tok, "Sure."), 9, *enc(tok, "python"), 32, *enc(tok, '{"code": "1"}')])
    assert "".join(e.text for e in events if isinstance(e, AnswerDelta)) == "Sure." and events[-1].name == "python" and events[-1].error is None


@pytest.mark.parametrize("args, error", [
    ('{"code": print(1', "the arguments are not valid JSON"),
    ('["print(1)"]', "the arguments must be a JSON object"),
])
def test_malformed_arguments_become_an_error_not_a_crash(tok, args, error):
    (call,) = split(tok, [9, *enc(tok, "python"), 32, *enc(tok, args)])
    assert call.error.startswith(error) and call.arguments == {} and call.raw == args


def test_the_older_json_list_form_is_read(tok):
    ids = [9, *enc(tok, '[{"name": "python", "arguments": {"code": "1"}}, {"name": "x", "arguments": {}}]')]
    assert [(c.name, c.arguments) for c in split(tok, ids)] == [("python", {"code": "1"}), ("x", {})]
