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
  others are budgets from `REASONING_BUDGETS`.
- Fields not listed here (``user``, ``metadata``, ``store``, ...) are ignored; fields the
  server cannot honour (``n`` > 1, ``logprobs``, penalties, a JSON ``response_format``) are
  refused rather than silently dropped.
- Tools (`magimac.server.tools`): the client's ``tools`` are offered to the model, its calls
  are returned to the client, never run; assistant ``tool_calls`` and ``tool`` messages carry
  them back.  The conversation ends with a user message or with tool results.
"""

from __future__ import annotations

import base64
import binascii
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from magimac.core.conversation import Message
from magimac.core.settings import DEFAULT, GenerationSettings, setting_error
from magimac.server.errors import RequestError
from magimac.server.tools import assistant_calls, request_tools, tool_result
from magimac.text.images import ImageTooLarge, open_image

REASONING_BUDGETS: dict[str, int | None] = {
    "none": 0, "minimal": 512, "low": 2048, "medium": 8192, "high": 32768, "xhigh": None,
}
"""``reasoning_effort`` -> reasoning budget, tokens (None: unlimited).  The names are OpenAI's;
the numbers are magimac's choice: Magistral's quality may degrade beyond about 40K tokens
(model card), so "high" stops at 32K and only "xhigh" lets it run to the context limit."""

EXTENSIONS: dict[str, type | tuple] = {
    "top_k": int, "min_p": (int, float), "repetition_penalty": (int, float), "reasoning_budget": int,
    "keep_reasoning": bool,
}
"""magimac's own request fields (`GenerationSettings` names; vLLM takes the first three too);
``reasoning_budget`` (tokens) wins over ``reasoning_effort``."""

MAX_STOPS = 4  # OpenAI's limit on ``stop`` strings
IMAGE_TYPES = ("png", "jpeg", "jpg", "webp", "gif")


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
    """Check ``body`` (the decoded JSON) and translate it.

    Args:
        image_dir: where the request's images are written (one file each; the caller deletes it).
        keep_reasoning: keep earlier reasoning in the prompt (the server's setting).

    Raises:
        RequestError: the first problem found, naming its field.
    """
    if not isinstance(body, dict):
        raise RequestError("the request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise RequestError("model: required, the id of a model from GET /v1/models", "model")
    _unsupported(body)
    tools, tool_choice = request_tools(body)
    stream = _typed(body, "stream", bool, False)
    options = _typed(body, "stream_options", dict, None)
    if options is not None and not stream:
        raise RequestError("stream_options: only with \"stream\": true", "stream_options")
    include_usage = bool(options and _typed(options, "include_usage", bool, False, "stream_options."))
    system, messages = _messages(body.get("messages"), image_dir)
    settings = _settings(body, system, keep_reasoning)
    settings.tools, settings.tool_choice = tools, tool_choice
    return ChatRequest(model, messages, settings, stream, include_usage, _stops(body))


def _typed(d: dict, key: str, kind: type | tuple, default: Any, where: str = "") -> Any:
    """``d[key]`` when it is of ``kind`` (None or absent: ``default``); else a RequestError."""
    v = d.get(key)
    if v is None:
        return default
    kinds = _as_tuple(kind)
    if not isinstance(v, kinds) or (isinstance(v, bool) and bool not in kinds):  # JSON true is no number
        names = "a number" if float in kinds else " or ".join(_TYPE_NAMES.get(k, k.__name__) for k in kinds)
        raise RequestError(f"{where}{key}: must be {names}, got {_json_type(v)}", where + key)
    return v


_TYPE_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string",
               dict: "an object", list: "an array"}


def _as_tuple(kind) -> tuple:
    return kind if isinstance(kind, tuple) else (kind,)


def _json_type(v: Any) -> str:
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "an array",
            dict: "an object"}.get(type(v), type(v).__name__)


def _unsupported(body: dict) -> None:
    n = _typed(body, "n", int, 1)
    if n != 1:
        raise RequestError(f"n: magimac serve gives one choice per request, got n={n}: send n=1 "
                           "or several requests", "n")
    if _typed(body, "logprobs", bool, False) or body.get("top_logprobs") is not None:
        raise RequestError("logprobs: not supported by magimac serve; leave it out", "logprobs")
    for key in ("presence_penalty", "frequency_penalty"):
        if _typed(body, key, (int, float), 0) != 0:
            raise RequestError(f"{key}: not supported by magimac serve; leave it out or send 0", key)
    fmt = _typed(body, "response_format", dict, None)
    if fmt is not None and fmt.get("type", "text") != "text":
        raise RequestError(f"response_format: only {{\"type\": \"text\"}} is supported, got "
                           f"{fmt.get('type')!r}", "response_format")


def _settings(body: dict, system: str | None, keep_reasoning: bool) -> GenerationSettings:
    s = GenerationSettings(keep_reasoning=keep_reasoning,
                           system_prompt=DEFAULT if system is None else system)
    s.temperature = _number(body, "temperature")
    s.top_p = _number(body, "top_p")
    seed = _typed(body, "seed", int, None)
    if seed is not None:
        s.seed = _checked("seed", seed, "seed")
    for key in ("max_tokens", "max_completion_tokens"):  # the newer name wins when both are given
        v = _typed(body, key, int, None)
        if v is not None:
            s.max_tokens = _checked("max_tokens", v, key)
    effort = _typed(body, "reasoning_effort", str, None)
    if effort is not None:
        if effort not in REASONING_BUDGETS:
            raise RequestError(f"reasoning_effort: must be one of {', '.join(REASONING_BUDGETS)}, "
                               f"got {effort!r}", "reasoning_effort")
        s.reasoning_budget = REASONING_BUDGETS[effort]
    for key, kind in EXTENSIONS.items():
        v = _typed(body, key, kind, None)
        if v is not None:
            setattr(s, key, v if kind is bool else _checked(key, v, key))
    return s


def _number(body: dict, key: str) -> float | None:
    v = _typed(body, key, (int, float), None)
    if v is None:
        return None
    if not math.isfinite(v) or (key == "temperature" and v > 2):
        raise RequestError(f"{key}: must be a number from 0 to 2, got {v}", key)
    return _checked(key, float(v), key)


def _checked(name: str, value, param: str):
    problem = setting_error(name, value)
    if problem:
        raise RequestError(f"{param}: {problem}, got {value}", param)
    return value


def _stops(body: dict) -> list[str]:
    v = body.get("stop")
    if v is None:
        return []
    stops = [v] if isinstance(v, str) else v
    if (not isinstance(stops, list) or not all(isinstance(x, str) and x for x in stops)
            or len(stops) > MAX_STOPS):
        raise RequestError(f"stop: a non-empty string or a list of at most {MAX_STOPS} of them", "stop")
    return list(stops)


# ---- messages -----------------------------------------------------------------------------

def _messages(raw: Any, image_dir: Path) -> tuple[str | None, list[Message]]:
    """(system prompt from leading system/developer messages or None, the other messages)."""
    if not isinstance(raw, list) or not raw:
        raise RequestError("messages: required, a non-empty array of messages", "messages")
    system: list[str] = []
    out: list[Message] = []
    for i, m in enumerate(raw):
        where = f"messages[{i}]"
        if not isinstance(m, dict):
            raise RequestError(f"{where}: must be an object with \"role\" and \"content\"", where)
        role = m.get("role")
        if role in ("system", "developer"):
            if out:
                raise RequestError(f"{where}: a {role} message may only come before the others", where)
            system.append(_text_only(m.get("content"), where))
        elif role == "user":
            out.append(_user(m, where, image_dir / f"image-{i}"))
        elif role == "assistant":
            out.append(_assistant(m, where))
        elif role == "tool":
            out.append(tool_result(m, where, out, _text_only(m.get("content"), where)))
        else:
            raise RequestError(f"{where}.role: must be system, developer, user, assistant or tool, got {role!r}",
                               f"{where}.role")
    if not out or out[-1].role not in ("user", "tool"):
        raise RequestError("messages: the last message must be a user message or a tool result", "messages")
    return ("\n\n".join(system) if system else None), out


def _parts(content: Any, where: str) -> list[dict]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if content is None:
        return []
    if not isinstance(content, list):
        raise RequestError(f"{where}.content: must be a string or an array of parts", f"{where}.content")
    for j, p in enumerate(content):
        if not isinstance(p, dict) or not isinstance(p.get("type"), str):
            raise RequestError(f"{where}.content[{j}]: must be an object with a \"type\"", f"{where}.content[{j}]")
        if p["type"] == "text" and not isinstance(p.get("text"), str):
            raise RequestError(f"{where}.content[{j}].text: must be a string", f"{where}.content[{j}].text")
    return content


def _text_only(content: Any, where: str) -> str:
    texts = []
    for j, p in enumerate(_parts(content, where)):
        if p["type"] != "text":
            raise RequestError(f"{where}.content[{j}]: only text parts here, got {p['type']!r}",
                               f"{where}.content[{j}]")
        texts.append(p["text"])
    return "\n".join(texts)


def _user(m: dict, where: str, stem: Path) -> Message:
    texts, images = [], []
    for j, p in enumerate(_parts(m.get("content"), where)):
        here = f"{where}.content[{j}]"
        if p["type"] == "text":
            texts.append(p["text"])
        elif p["type"] == "image_url":
            images.append(_image(p.get("image_url"), f"{here}.image_url", stem.with_name(f"{stem.name}-{j}")))
        else:
            raise RequestError(f"{here}.type: must be \"text\" or \"image_url\", got {p['type']!r}", f"{here}.type")
    return Message("user", "\n".join(texts), images=images)


def _assistant(m: dict, where: str) -> Message:
    texts, thinking = [], []
    for j, p in enumerate(_parts(m.get("content"), where)):
        if p["type"] == "text":
            texts.append(p["text"])
        elif p["type"] == "thinking":  # Mistral's API sends earlier thinking as content parts
            inner = p.get("thinking")
            thinking.append(inner if isinstance(inner, str) else _text_only(inner, f"{where}.content[{j}].thinking"))
        else:
            raise RequestError(f"{where}.content[{j}].type: must be \"text\" on an assistant message",
                               f"{where}.content[{j}].type")
    reasoning = None
    for key in ("reasoning_content", "reasoning"):
        v = m.get(key)
        if v is not None and not isinstance(v, str):
            raise RequestError(f"{where}.{key}: must be a string", f"{where}.{key}")
        reasoning = reasoning if reasoning is not None else v
    if reasoning is None and thinking:
        reasoning = "".join(thinking)
    return Message("assistant", "".join(texts), reasoning=reasoning, tool_calls=assistant_calls(m, where))


def _image(value: Any, where: str, stem: Path) -> str:
    """A ``data:image/...;base64,`` URL written to ``stem`` + its extension; returns the path."""
    url = value.get("url") if isinstance(value, dict) else value
    if not isinstance(url, str):
        raise RequestError(f"{where}: must be an object with a \"url\"", where)
    head, sep, data = url.partition(",")
    if not head.startswith("data:"):
        raise RequestError(f"{where}: only data: URLs are accepted (the server fetches nothing); "
                           "send the image as data:image/png;base64,...", where)
    kind = head[5:].split(";")[0].lower()
    if not sep or ";base64" not in head or not kind.startswith("image/"):
        raise RequestError(f"{where}: a data URL of the form data:image/png;base64,... is expected", where)
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise RequestError(f"{where}: the data URL is not valid base64", where) from None
    path = stem.with_suffix("." + (kind[6:] if kind[6:] in IMAGE_TYPES else "img"))
    path.write_bytes(raw)
    _check_image(path, where)
    return str(path)


def _check_image(path: Path, where: str) -> None:
    from PIL import UnidentifiedImageError

    try:
        with open_image(path) as im:
            im.load()
    except ImageTooLarge as e:
        raise RequestError(f"{where}: {e}", where) from None
    except (UnidentifiedImageError, OSError, ValueError) as e:
        reason = "not an image" if isinstance(e, UnidentifiedImageError) else f"unreadable image ({e})"
        raise RequestError(f"{where}: {reason}; send PNG, JPEG, WebP or GIF", where) from None
