"""Tool calls through `magimac serve` with the official `openai` client: the model's call comes
back to the client (never run by the server), whole and streamed, and the follow-up request
with the tool's result prefills only the result."""

from __future__ import annotations

import json

import openai
import pytest
from mistral_common.tokens.tokenizers.tekken import Tekkenizer

from tests.conftest import TOOL_SCRIPT
from tests.server.conftest import running

PYTHON = {"type": "function", "function": {
    "name": "python", "description": "Run Python code and return what it prints.",
    "parameters": {"type": "object", "properties": {"code": {"type": "string"}}, "required": ["code"]}}}
ASK = [{"role": "user", "content": "What is 6 x 7?"}]
(NAME, ARGS), = TOOL_SCRIPT.tool_calls
CALL = {"id": "c00000001", "type": "function", "function": {"name": NAME, "arguments": ARGS}}


@pytest.fixture(scope="module")
def tool_server(tool_checkpoint, tmp_path_factory):
    with running(tool_checkpoint, tmp_path_factory.mktemp("serve-tools"), "--context-length", 1024) as server:
        yield server


@pytest.fixture(scope="module")
def client(tool_server):
    return openai.OpenAI(base_url=tool_server.v1, api_key="unused", max_retries=0)


@pytest.fixture(scope="module")
def model(client):
    return client.models.list().data[0].id


def test_a_tool_call_is_returned_to_the_client_not_run(client, model, tool_checkpoint):
    r = client.chat.completions.create(model=model, messages=ASK, tools=[PYTHON])
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert [c.model_dump() for c in choice.message.tool_calls] == [CALL]
    assert json.loads(choice.message.tool_calls[0].function.arguments) == {"code": "print(6*7)"}
    assert choice.message.content is None
    assert choice.message.model_extra["reasoning_content"] == TOOL_SCRIPT.reasoning
    call_tokens = 3 + len(Tekkenizer.from_file(tool_checkpoint / "tekken.json").encode(ARGS, bos=False, eos=False))
    assert r.usage.completion_tokens >= r.usage.completion_tokens_details.reasoning_tokens + call_tokens


def test_a_streamed_tool_call_arrives_as_one_indexed_delta(client, model):
    calls, finish, reasoning = [], None, ""
    for chunk in client.chat.completions.create(model=model, messages=ASK, tools=[PYTHON], stream=True):
        for choice in chunk.choices:
            calls += [c.model_dump(exclude_none=True) for c in choice.delta.tool_calls or []]
            reasoning += (choice.delta.model_extra or {}).get("reasoning_content") or ""
            finish = choice.finish_reason or finish
    assert calls == [{"index": 0, **CALL}]
    assert (finish, reasoning) == ("tool_calls", TOOL_SCRIPT.reasoning)


def test_the_result_continues_the_turn_and_only_it_is_prefilled(client, model, tool_checkpoint):
    first = client.chat.completions.create(model=model, messages=ASK, tools=[PYTHON]).choices[0].message
    history = ASK + [first.model_dump(exclude_none=True),
                     {"role": "tool", "tool_call_id": first.tool_calls[0].id, "content": "42"}]
    r = client.chat.completions.create(model=model, messages=history, tools=[PYTHON],
                                       stream=True, stream_options={"include_usage": True})
    chunks = list(r)
    content = "".join(c.delta.content or "" for ch in chunks for c in ch.choices)
    finish = [c.finish_reason for ch in chunks for c in ch.choices if c.finish_reason]
    usage = chunks[-1].usage
    tk = Tekkenizer.from_file(tool_checkpoint / "tekken.json")
    result_tokens = 2 + len(tk.encode("42", bos=False, eos=False))  # [TOOL_RESULTS] 42 [/TOOL_RESULTS]
    assert (content, finish) == (TOOL_SCRIPT.after_tools, ["stop"])
    assert usage.prompt_tokens - usage.prompt_tokens_details.cached_tokens == result_tokens


def test_tool_choice_none_keeps_the_model_from_calling(client, model):
    r = client.chat.completions.create(model=model, messages=ASK, tools=[PYTHON], tool_choice="none",
                                       max_tokens=8)
    assert r.choices[0].message.tool_calls is None
    assert r.choices[0].finish_reason == "length"


@pytest.mark.parametrize("extra, message", [
    ({"tool_choice": "required"}, 'tool_choice: "required" is not supported'),
    ({"tool_choice": {"type": "function", "function": {"name": "python"}}}, "tool_choice: a named function"),
    ({"tools": [{"type": "function", "function": {"name": "no spaces"}}]}, "tools[0].function.name: 1 to 64"),
    ({"messages": ASK + [{"role": "tool", "tool_call_id": "c00000009", "content": "1"}]},
     "messages[1].tool_call_id: no earlier assistant message made the call 'c00000009'"),
])
def test_tool_requests_it_cannot_serve_are_refused_in_one_line(client, model, extra, message):
    body = {"model": model, "messages": ASK, "tools": [PYTHON], **extra}
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(**body)
    assert e.value.status_code == 400 and e.value.body["message"].startswith(message)
    assert "\n" not in e.value.body["message"]


def test_the_session_tool_loop_on_the_server_runs_the_call_here_and_continues(tool_server, tool_checkpoint):
    """What the app and `magimac chat` do on a server: the call comes back, runs here once
    allowed, and the model continues after its result, prefilling only that."""
    from magimac.core.conversation import Message
    from magimac.core.events import AnswerDelta, ToolCall, ToolResult
    from magimac.session.model import ModelChoice, open_model
    from magimac.session.remote import RemoteEngine
    from magimac.session.tool_loop import ALLOW_ONCE, ToolUse
    from magimac.tools.toolbox import Toolbox

    engine = RemoteEngine(tool_server.url)
    session = open_model(choice=ModelChoice(tool_checkpoint), engine_factory=lambda p, **k: engine)
    asked = []
    run = session.turn([Message("user", "What is 6 x 7?")], None,
                       ToolUse(Toolbox(("python",)), lambda call, shown: asked.append(call) or ALLOW_ONCE))
    events = list(run)
    (call,) = [e for e in events if isinstance(e, ToolCall)]
    (result,) = [e for e in events if isinstance(e, ToolResult)]
    assert (call.id, call.name, call.arguments, len(asked)) == ("c00000001", NAME, {"code": "print(6*7)"}, 1)
    assert result.output.strip() == "42"
    assert "".join(e.text for e in events if isinstance(e, AnswerDelta)).endswith(TOOL_SCRIPT.after_tools)
    stats = run.done.stats
    assert run.done.finish_reason == "stop" and 0 < stats.prompt_tokens - stats.cached_tokens < 10
