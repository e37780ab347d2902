"""OpenAI's chat-completion wire format, both ways: what `magimac serve` reads and writes
(`magimac.server.translate`, `magimac.server.completions`) and what `RemoteEngine`
(`magimac.session.remote`) writes and reads, so the two ends cannot drift apart.

- Messages: ``content`` a string or a list of parts (``text``; ``image_url`` with a ``data:``
  URL: nothing is fetched); earlier reasoning in ``reasoning_content`` (``reasoning`` and
  Mistral-style ``thinking`` parts are read too); ``tool_calls`` on an assistant message and
  ``tool`` messages with their ``tool_call_id``.
- Settings: every number of the one settings table (`magimac.core.settings.SETTINGS`) under
  its ``openai`` field, checked against its range; ``reasoning_effort`` (`REASONING_BUDGETS`),
  ``keep_reasoning``, ``tools`` and ``tool_choice``.
- Streams: deltas of ``reasoning_content`` and ``reasoning`` (both sent, either read:
  shared/MAGISTRAL.md), ``content`` and whole ``tool_calls``; ``usage`` with cached and reasoning
  tokens.

Reading raises `WireError` (one line naming the field); the server answers it as HTTP 400.
"""

from __future__ import annotations

import base64
import binascii
import mimetypes
from pathlib import Path
from typing import Any

from magimac.core.conversation import Message
from magimac.core.errors import MagimacError
from magimac.core.events import AnswerDelta, ReasoningDelta, Stats, ToolCall
from magimac.core.settings import DEFAULT, SETTINGS, GenerationSettings, SettingError, wire_fields
from magimac.text.images import ImageTooLarge, open_image

REASONING_BUDGETS: dict[str, int | None] = {
    "none": 0, "minimal": 512, "low": 2048, "medium": 8192, "high": 32768, "xhigh": None,
}
"""``reasoning_effort`` -> reasoning budget, tokens (None: unlimited).  The names are OpenAI's;
the numbers are magimac's choice: Magistral's quality may degrade beyond about 40K tokens
(model card), so "high" stops at 32K and only "xhigh" lets it run to the context limit."""

IMAGE_TYPES = ("png", "jpeg", "jpg", "webp", "gif")


class WireError(MagimacError, ValueError):
    """A request that does not follow the format; ``param`` names the field at fault."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


def typed(d: dict, key: str, kind: type | tuple, default: Any, where: str = "") -> Any:
    """``d[key]`` when it is of ``kind`` (None or absent: ``default``).

    Raises:
        WireError: another JSON type (``true`` is no number).
    """
    v = d.get(key)
    if v is None:
        return default
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(v, kinds) or (isinstance(v, bool) and bool not in kinds):
        names = "a number" if float in kinds else " or ".join(_TYPE_NAMES.get(k, k.__name__) for k in kinds)
        raise WireError(f"{where}{key}: must be {names}, got {_json_type(v)}", where + key)
    return v


_TYPE_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string",
               dict: "an object", list: "an array"}


def _json_type(v: Any) -> str:
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "an array",
            dict: "an object"}.get(type(v), type(v).__name__)


# ---- data URLs ----------------------------------------------------------------------------

def data_url(path: str | Path) -> str:
    """``data:image/png;base64,...`` for an image file (its type guessed from its name).

    Raises:
        MagimacError: the file cannot be read (one line naming it).
    """
    try:
        data = Path(path).expanduser().read_bytes()
    except OSError as e:
        raise MagimacError(f"image {path}: cannot read ({e.strerror})") from None
    mime = mimetypes.guess_type(str(path))[0] or "image/png"
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def image_from_data_url(value: Any, where: str, stem: Path) -> str:
    """An ``image_url`` (``{"url": "data:image/...;base64,..."}``) written to ``stem`` plus its
    extension, checked to be an image of at most `MAX_IMAGE_PIXELS`; returns the path.

    Raises:
        WireError: not a base64 data URL of an image.
    """
    url = value.get("url") if isinstance(value, dict) else value
    if not isinstance(url, str):
        raise WireError(f"{where}: must be an object with a \"url\"", where)
    head, sep, data = url.partition(",")
    if not head.startswith("data:"):
        raise WireError(f"{where}: only data: URLs are accepted (the server fetches nothing); "
                        "send the image as data:image/png;base64,...", where)
    kind = head[5:].split(";")[0].lower()
    if not sep or ";base64" not in head or not kind.startswith("image/"):
        raise WireError(f"{where}: a data URL of the form data:image/png;base64,... is expected", where)
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise WireError(f"{where}: the data URL is not valid base64", where) from None
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
        raise WireError(f"{where}: {e}", where) from None
    except (UnidentifiedImageError, OSError, ValueError) as e:
        reason = "not an image" if isinstance(e, UnidentifiedImageError) else f"unreadable image ({e})"
        raise WireError(f"{where}: {reason}; send PNG, JPEG, WebP or GIF", where) from None


# ---- messages -----------------------------------------------------------------------------

def messages_json(messages: list[Message], system_prompt: Any = DEFAULT) -> list[dict]:
    """The conversation as OpenAI ``messages``: images as data URLs, reasoning in
    ``reasoning_content``; a ``system_prompt`` other than `DEFAULT` as a leading system message
    (unless the conversation starts with one)."""
    out: list[dict] = []
    if system_prompt is not DEFAULT and not (messages and messages[0].role == "system"):
        out.append({"role": "system", "content": system_prompt or ""})
    for m in messages:
        d: dict[str, Any] = {"role": m.role, "content": m.content}
        if m.images:
            d["content"] = [{"type": "text", "text": m.content}] + [
                {"type": "image_url", "image_url": {"url": data_url(p)}} for p in m.images]
        if m.reasoning is not None:
            d["reasoning_content"] = m.reasoning
        if m.tool_calls:
            d["tool_calls"] = [call_json(c["id"], c["name"], c["arguments"]) for c in m.tool_calls]
        if m.role == "tool":
            d["tool_call_id"] = m.tool_call_id
        out.append(d)
    return out


def read_messages(raw: Any, image_dir: Path) -> tuple[str | None, list[Message]]:
    """(the system prompt of the leading system/developer messages or None, the others);
    images are written under ``image_dir``.

    Raises:
        WireError: the first problem, naming its field (``messages[1].content[0].image_url``).
    """
    if not isinstance(raw, list) or not raw:
        raise WireError("messages: required, a non-empty array of messages", "messages")
    system: list[str] = []
    out: list[Message] = []
    for i, m in enumerate(raw):
        where = f"messages[{i}]"
        if not isinstance(m, dict):
            raise WireError(f"{where}: must be an object with \"role\" and \"content\"", where)
        role = m.get("role")
        if role in ("system", "developer"):
            if out:
                raise WireError(f"{where}: a {role} message may only come before the others", where)
            system.append(_text_only(m.get("content"), where))
        elif role == "user":
            out.append(_user(m, where, image_dir / f"image-{i}"))
        elif role == "assistant":
            out.append(_assistant(m, where))
        elif role == "tool":
            out.append(_tool_result(m, where, out))
        else:
            raise WireError(f"{where}.role: must be system, developer, user, assistant or tool, got {role!r}",
                            f"{where}.role")
    if not out or out[-1].role not in ("user", "tool"):
        raise WireError("messages: the last message must be a user message or a tool result", "messages")
    return ("\n\n".join(system) if system else None), out


def _parts(content: Any, where: str) -> list[dict]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if content is None:
        return []
    if not isinstance(content, list):
        raise WireError(f"{where}.content: must be a string or an array of parts", f"{where}.content")
    for j, p in enumerate(content):
        if not isinstance(p, dict) or not isinstance(p.get("type"), str):
            raise WireError(f"{where}.content[{j}]: must be an object with a \"type\"", f"{where}.content[{j}]")
        if p["type"] == "text" and not isinstance(p.get("text"), str):
            raise WireError(f"{where}.content[{j}].text: must be a string", f"{where}.content[{j}].text")
    return content


def _text_only(content: Any, where: str) -> str:
    texts = []
    for j, p in enumerate(_parts(content, where)):
        if p["type"] != "text":
            raise WireError(f"{where}.content[{j}]: only text parts here, got {p['type']!r}", f"{where}.content[{j}]")
        texts.append(p["text"])
    return "\n".join(texts)


def _user(m: dict, where: str, stem: Path) -> Message:
    texts, images = [], []
    for j, p in enumerate(_parts(m.get("content"), where)):
        here = f"{where}.content[{j}]"
        if p["type"] == "text":
            texts.append(p["text"])
        elif p["type"] == "image_url":
            images.append(image_from_data_url(p.get("image_url"), f"{here}.image_url",
                                              stem.with_name(f"{stem.name}-{j}")))
        else:
            raise WireError(f"{here}.type: must be \"text\" or \"image_url\", got {p['type']!r}", f"{here}.type")
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
            raise WireError(f"{where}.content[{j}].type: must be \"text\" on an assistant message",
                            f"{where}.content[{j}].type")
    reasoning = None
    for key in ("reasoning_content", "reasoning"):
        v = typed(m, key, str, None, f"{where}.")
        reasoning = reasoning if reasoning is not None else v
    if reasoning is None and thinking:
        reasoning = "".join(thinking)
    return Message("assistant", "".join(texts), reasoning=reasoning, tool_calls=_assistant_calls(m, where))


# ---- tool calls ---------------------------------------------------------------------------

def call_json(call_id: str, name: str, arguments: str, index: int | None = None) -> dict:
    """A tool call in OpenAI's shape (``arguments``: the JSON text; ``index``: for a streamed
    ``delta.tool_calls`` entry)."""
    out = {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
    return out if index is None else {"index": index, **out}


def _assistant_calls(m: dict, where: str) -> list[dict]:
    """An assistant message's ``tool_calls`` as `Message.tool_calls` (``{"id", "name", "arguments"}``)."""
    calls = []
    for j, c in enumerate(typed(m, "tool_calls", list, [], f"{where}.")):
        here = f"{where}.tool_calls[{j}]"
        f = c.get("function") if isinstance(c, dict) else None
        if (not isinstance(f, dict) or not isinstance(c.get("id"), str) or not isinstance(f.get("name"), str)
                or not isinstance(f.get("arguments"), str)):
            raise WireError(f"{here}: must be {{\"id\", \"type\": \"function\", \"function\": {{\"name\", "
                            "\"arguments\": a JSON string}}}}", here)
        calls.append({"id": c["id"], "name": f["name"], "arguments": f["arguments"]})
    return calls


def _tool_result(m: dict, where: str, earlier: list[Message]) -> Message:
    """A ``tool`` message as ours; its tool name is the call's."""
    cid = m.get("tool_call_id")
    if not isinstance(cid, str) or not cid:
        raise WireError(f"{where}.tool_call_id: required, the id of the call this answers", f"{where}.tool_call_id")
    names = {c["id"]: c["name"] for e in earlier for c in e.tool_calls}
    if cid not in names:
        raise WireError(f"{where}.tool_call_id: no earlier assistant message made the call {cid!r}",
                        f"{where}.tool_call_id")
    return Message("tool", _text_only(m.get("content"), where), tool_call_id=cid, name=names[cid])


# ---- settings -----------------------------------------------------------------------------

def settings_json(s: GenerationSettings) -> dict:
    """The request fields for ``s``: the set numbers under their ``openai`` names
    (`magimac.core.settings.wire_fields`), ``keep_reasoning``, ``tools``, ``tool_choice``.

    Raises:
        SettingError: a number out of range.
    """
    out = wire_fields(s, "openai")
    if s.keep_reasoning:
        out["keep_reasoning"] = True
    if s.tools:
        out["tools"] = [{"type": "function", "function": {
            "name": t.name, "description": t.description, "parameters": t.parameters}} for t in s.tools]
    if s.tool_choice != "auto":
        out["tool_choice"] = s.tool_choice
    return out


def read_settings(body: dict, system: str | None, keep_reasoning: bool) -> GenerationSettings:
    """The `GenerationSettings` of a request: each row of `SETTINGS` read from its ``openai``
    field (an older alias first, so the newer name wins), then ``reasoning_effort`` and
    ``keep_reasoning`` (``reasoning_budget`` wins over ``reasoning_effort``).

    Raises:
        WireError: a wrong type or a value out of range, naming the field.
    """
    s = GenerationSettings(keep_reasoning=typed(body, "keep_reasoning", bool, keep_reasoning),
                           system_prompt=DEFAULT if system is None else system)
    effort = typed(body, "reasoning_effort", str, None)
    if effort is not None:
        if effort not in REASONING_BUDGETS:
            raise WireError(f"reasoning_effort: must be one of {', '.join(REASONING_BUDGETS)}, got {effort!r}",
                            "reasoning_effort")
        s.reasoning_budget = REASONING_BUDGETS[effort]
    for row in SETTINGS.values():
        for key in (*row.openai_aliases, row.openai):
            v = typed(body, key, int if row.whole else (int, float), None)
            if v is None:
                continue
            try:
                row.check(v, f"{key}:")
            except SettingError as e:
                raise WireError(str(e), key) from None
            setattr(s, row.name, v if row.whole else float(v))
    return s


# ---- answers ------------------------------------------------------------------------------

def usage_json(stats: Stats) -> dict:
    """OpenAI's ``usage`` object from a turn's `Stats` (completion = reasoning + answer + tool
    call tokens)."""
    completion = stats.reasoning_tokens + stats.answer_tokens + stats.tool_tokens
    return {
        "prompt_tokens": stats.prompt_tokens,
        "completion_tokens": completion,
        "total_tokens": stats.prompt_tokens + completion,
        "prompt_tokens_details": {"cached_tokens": stats.cached_tokens},
        "completion_tokens_details": {"reasoning_tokens": stats.reasoning_tokens},
    }


def read_usage(u: dict, context_length: int = 0) -> Stats:
    """`Stats` from a ``usage`` object (tool-call tokens count as answer tokens)."""
    reasoning = (u.get("completion_tokens_details") or {}).get("reasoning_tokens") or 0
    return Stats(prompt_tokens=u.get("prompt_tokens", 0),
                 cached_tokens=(u.get("prompt_tokens_details") or {}).get("cached_tokens") or 0,
                 reasoning_tokens=reasoning, answer_tokens=u.get("completion_tokens", 0) - reasoning,
                 context_length=context_length)


def delta_json(event: ReasoningDelta | AnswerDelta | ToolCall, index: int = 0) -> dict:
    """The ``delta`` of a stream chunk for an event (``index``: a tool call's, counted from 0)."""
    if isinstance(event, ReasoningDelta):
        return {"reasoning_content": event.text, "reasoning": event.text}
    if isinstance(event, AnswerDelta):
        return {"content": event.text}
    return {"tool_calls": [call_json(event.id, event.name, event.raw, index)]}


def delta_events(delta: dict) -> list:
    """The events of a stream chunk's ``delta`` (`delta_json` backwards; ``reasoning`` is read
    when ``reasoning_content`` is absent)."""
    from magimac.text.tool_calls import parse_arguments  # mistral-common's tokenizer: not at the start

    events: list = []
    reasoning = delta.get("reasoning_content") or delta.get("reasoning")
    if reasoning:
        events.append(ReasoningDelta(reasoning))
    if delta.get("content"):
        events.append(AnswerDelta(delta["content"]))
    for entry in delta.get("tool_calls") or []:  # each call whole, as `magimac serve` sends it
        f = entry.get("function") or {}
        raw = f.get("arguments") or ""
        arguments, error = parse_arguments(raw)
        events.append(ToolCall(entry.get("id", ""), f.get("name", ""), arguments, raw, error))
    return events
