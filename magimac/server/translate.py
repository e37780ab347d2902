"""An OpenAI chat-completions request -> the conversation and settings of one magimac turn.

Everything a request may carry is checked here, and each mistake is a `RequestError` naming
the field (``messages[2].content[1].image_url: ...``).  Decisions where the API leaves room:

- Roles: leading ``system``/``developer`` messages (joined by a blank line) replace the
  model's system prompt; the model's reasoning instructions stay before them
  (`GenerationSettings.reasoning_instructions`).  A system message after the first user
  message, or a conversation that does not end with a user message, is refused.
- Content: a string or a list of parts: ``text`` parts joined by newlines, ``image_url``
  parts with a ``data:`` URL (the server fetches nothing), in order after the text.  Earlier
  reasoning on assistant messages is read from ``reasoning_content``, ``reasoning`` or
  Mistral-style ``thinking`` parts; the prompt keeps or drops it as ``keep_reasoning`` says.
- ``max_completion_tokens`` (else ``max_tokens``) counts reasoning and answer together.
- ``stop`` ends the answer (the reasoning is scratch paper: a stop string does not end it).
- ``reasoning_effort``: ``"none"`` answers without reasoning (a budget of 0 tokens); the
  others are budgets from `magimac.text.openai_wire.REASONING_BUDGETS`.
- Sampling: each number of the one settings table (`magimac.core.settings.SETTINGS`) under its
  ``openai`` field (OpenAI's, or magimac's own ``top_k``, ``min_p``, ``repetition_penalty``,
  ``reasoning_budget``, which vLLM reads too), refused outside the table's range.
- Fields not listed here (``user``, ``metadata``, ``store``, ...) are ignored; fields the
  server cannot honour (``n`` > 1, ``logprobs``, penalties, a JSON ``response_format``) are
  refused rather than silently dropped.
- Tools (`magimac.server.tools`): the client's ``tools`` are offered to the model, its calls
  are returned to the client, never run; assistant ``tool_calls`` and ``tool`` messages carry
  them back.  The conversation ends with a user message or with tool results.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from magimac.core.conversation import Message
from magimac.core.settings import GenerationSettings
from magimac.server.errors import RequestError
from magimac.server.tools import request_tools
from magimac.text.openai_wire import WireError, read_messages, read_settings, typed

MAX_STOPS = 4  # OpenAI's limit on ``stop`` strings


@dataclass
class ChatRequest:
    """A checked request.

    Attributes:
        model: the requested model id; messages: the conversation (images as temp file paths).
        settings: the turn's `GenerationSettings`; stream / include_usage: SSE options.
        stop: strings that end the answer (at most 4).
    """

    model: str
    messages: list[Message]
    settings: GenerationSettings
    stream: bool = False
    include_usage: bool = False
    stop: list[str] = field(default_factory=list)


def parse_chat(body: Any, image_dir: Path, keep_reasoning: bool = False) -> ChatRequest:
    """Check ``body`` (the decoded JSON) and translate it (the wire format:
    `magimac.text.openai_wire`).

    Args:
        image_dir: where the request's images are written (one file each; the caller deletes it).
        keep_reasoning: keep earlier reasoning in the prompt (the server's setting).

    Raises:
        RequestError: the first problem found, naming its field.
    """
    try:
        return _parse(body, image_dir, keep_reasoning)
    except WireError as e:
        raise RequestError(str(e), e.param) from None


def _parse(body: Any, image_dir: Path, keep_reasoning: bool) -> ChatRequest:
    if not isinstance(body, dict):
        raise RequestError("the request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise RequestError("model: required, the id of a model from GET /v1/models", "model")
    _unsupported(body)
    tools, tool_choice = request_tools(body)
    stream = typed(body, "stream", bool, False)
    options = typed(body, "stream_options", dict, None)
    if options is not None and not stream:
        raise RequestError("stream_options: only with \"stream\": true", "stream_options")
    include_usage = bool(options and typed(options, "include_usage", bool, False, "stream_options."))
    system, messages = read_messages(body.get("messages"), image_dir)
    settings = read_settings(body, system, keep_reasoning)
    settings.tools, settings.tool_choice = tools, tool_choice
    return ChatRequest(model, messages, settings, stream, include_usage, _stops(body))


def _unsupported(body: dict) -> None:
    n = typed(body, "n", int, 1)
    if n != 1:
        raise RequestError(f"n: magimac serve gives one choice per request, got n={n}: send n=1 "
                           "or several requests", "n")
    if typed(body, "logprobs", bool, False) or body.get("top_logprobs") is not None:
        raise RequestError("logprobs: not supported by magimac serve; leave it out", "logprobs")
    for key in ("presence_penalty", "frequency_penalty"):
        if typed(body, key, (int, float), 0) != 0:
            raise RequestError(f"{key}: not supported by magimac serve (repetition_penalty is); leave it "
                               "out or send 0", key)
    fmt = typed(body, "response_format", dict, None)
    if fmt is not None and fmt.get("type", "text") != "text":
        raise RequestError(f"response_format: only {{\"type\": \"text\"}} is supported, got "
                           f"{fmt.get('type')!r}", "response_format")


def _stops(body: dict) -> list[str]:
    v = body.get("stop")
    if v is None:
        return []
    stops = [v] if isinstance(v, str) else v
    if (not isinstance(stops, list) or not all(isinstance(x, str) and x for x in stops)
            or len(stops) > MAX_STOPS):
        raise RequestError(f"stop: a non-empty string or a list of at most {MAX_STOPS} of them", "stop")
    return list(stops)
