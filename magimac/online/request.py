"""What an online turn sends: the conversation as Mistral API messages, and the request body.

Built its own way (no tokens, no chat template: the API applies the model's), following
Mistral's platform docs:

- a user message with images: a list of chunks, ``{"type": "text"}`` then one
  ``{"type": "image_url", "image_url": "data:<mime>;base64,..."}`` per image;
- an earlier answer with reasoning: ``[{"type": "thinking", "thinking": [{"type": "text",
  "text": reasoning}]}, {"type": "text", "text": answer}]``; the docs ask clients to send the
  thinking back, so it is sent whatever ``keep_reasoning`` says (that setting is about the local
  prompt's context);
- the system prompt: only a custom one (`GenerationSettings.system_prompt` a string, or a
  leading system message); `DEFAULT` (Magistral's SYSTEM_PROMPT.txt, written for the local
  model's control tokens) is not sent, as the API models bring their own.

Sampling: each number of the one settings table (`magimac.core.settings.SETTINGS`) that has a
``mistral`` field and is set (``temperature``, ``top_p``, ``max_tokens``, ``seed`` as
``random_seed``), checked against its range; the API's defaults otherwise.  The table marks
top-k, min-p, the repetition penalty and a reasoning budget in tokens as local only: they are
not sent. ``reasoning_budget = 0`` asks a model that takes ``reasoning_effort`` for ``"none"``.
"""

from __future__ import annotations

from magimac.core.conversation import Message
from magimac.core.errors import MagimacError
from magimac.core.settings import wire_fields
from magimac.models.online import OnlineModel
from magimac.text.openai_wire import data_url


def image_chunk(path: str) -> dict:
    """``{"type": "image_url", "image_url": "data:image/png;base64,..."}`` for an image file
    (`magimac.text.openai_wire.data_url`).

    Raises:
        MagimacError: the file cannot be read (one line naming it).
    """
    return {"type": "image_url", "image_url": data_url(path)}


def _message(m: Message, model: OnlineModel) -> dict:
    if m.role == "user" and m.images:
        if not model.vision:
            raise MagimacError(f"{model.name} takes no images: remove them, or pick a model that does")
        chunks = [{"type": "text", "text": m.content}] if m.content else []
        return {"role": "user", "content": chunks + [image_chunk(p) for p in m.images]}
    if m.role == "assistant" and m.reasoning:
        thinking = {"type": "thinking", "thinking": [{"type": "text", "text": m.reasoning}]}
        return {"role": "assistant", "content": [thinking, {"type": "text", "text": m.content}]}
    return {"role": m.role, "content": m.content}


def api_messages(messages: list[Message], model: OnlineModel, settings=None) -> list[dict]:
    """The conversation as the API's ``messages`` (see the module doc).

    Raises:
        MagimacError: an image cannot be read, or the model takes none.
    """
    out = [_message(m, model) for m in messages]
    system = getattr(settings, "system_prompt", None)
    if isinstance(system, str) and system.strip() and not (out and out[0]["role"] == "system"):
        out.insert(0, {"role": "system", "content": system})
    return out


def request_body(messages: list[Message], model: OnlineModel, settings=None) -> dict:
    """The keyword arguments of ``client.chat.stream`` (JSON-ready; no key, no headers): the
    settings' numbers under their ``mistral`` names in the one settings table.

    Raises:
        SettingError: a number out of its range (`magimac.core.settings.SETTINGS`).
        MagimacError: an image cannot be read, or the model takes none.
    """
    body: dict = {"model": model.api_model, "messages": api_messages(messages, model, settings)}
    if settings is not None:
        body.update(wire_fields(settings, "mistral"))
    if model.reasoning_effort:
        budget = getattr(settings, "reasoning_budget", None)
        body["reasoning_effort"] = "none" if budget == 0 else model.reasoning_effort
    return body


def message_text(body: dict) -> str:
    """The text of a request's messages, one per line (thinking and answer text included,
    images left out): what `magimac.online.engine.OnlineEngine.count_tokens` counts."""
    parts = []
    for m in body["messages"]:
        content = m["content"]
        if isinstance(content, str):
            parts.append(content)
            continue
        for c in content:
            if c["type"] == "text":
                parts.append(c["text"])
            elif c["type"] == "thinking":
                parts.extend(t["text"] for t in c["thinking"])
    return "\n".join(parts)
