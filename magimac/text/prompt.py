"""Conversation -> prompt tokens, through `mistral-common` (Magistral's reference).

The project adds only the mapping of our `Message`s to mistral-common's request objects;
the tokens come from `MistralTokenizer.encode_chat_completion`, so they equal the reference
by construction.  Mapping (decisions recorded here):

- System prompt: `DEFAULT` -> the model's `SYSTEM_PROMPT.txt`, else for text-marker models
  (Magistral 1.0) the built-in `data/system_prompt_text.txt`, else none.  For control-marker
  models (1.1/1.2) the literal ``[THINK]``...``[/THINK]`` in a system prompt becomes a
  `ThinkChunk` between `TextChunk`s, as in Mistral's own usage; a ``system`` message at the
  head of the conversation overrides the setting.
- User messages: the text is a `TextChunk` (so ``[INST]``/``[THINK]`` typed by a person stay
  text), followed by one `ImageChunk` per attached image, in order.  ``documents`` are not
  read here: the documents helper puts their text into ``content`` before the turn.
- Assistant messages: the answer; with ``keep_reasoning`` and a reasoning, a `ThinkChunk`
  first (control kind) or ``<think>`` + reasoning + ``</think>`` text before the answer
  (text kind, as the model wrote it).  Reasoning is dropped by default; an assistant message
  left with nothing (a turn cancelled while thinking) is left out, and mistral-common joins
  the user messages around it.
- Tools (`magimac.text.tools`): the specs go in the request's ``tools``; an assistant's
  ``tool_calls`` go on its `AssistantMessage` (its content may then be empty); a ``tool``
  message is a `ToolMessage`.  The assistant messages of the turn in progress (after the last
  user message: the rounds of a tool loop) keep their reasoning, as the model wrote it, so the
  next round's prompt starts with the tokens already in the KV cache.  A conversation may end
  with tool messages: the model then continues its turn after ``[/TOOL_RESULTS]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from mistral_common.protocol.instruct.chunk import ImageChunk, TextChunk, ThinkChunk
from mistral_common.protocol.instruct.messages import AssistantMessage, SystemMessage, UserMessage
from mistral_common.protocol.instruct.request import ChatCompletionRequest
from mistral_common.tokens.tokenizers.base import SpecialTokenPolicy
from mistral_common.tokens.tokenizers.mistral import MistralTokenizer

from magimac.core.conversation import Message
from magimac.core.errors import MagimacError, one_line
from magimac.core.files import read_file_bytes, read_text_file
from magimac.text.images import ImageTooLarge, open_image
from magimac.text.reasoning import ReasoningMarkers
from magimac.text.tools import ToolSpec, mistral_tool_calls, mistral_tool_message


class PromptError(MagimacError, ValueError):
    """A conversation cannot become a prompt (bad image, wrong roles, ...); one line."""


MAX_IMAGE_BYTES = 64_000_000
"""Largest image file read, bytes (64 MB; a bigger one is refused before it is read)."""


@dataclass
class Prompt:
    """An encoded conversation.

    Attributes:
        tokens: prompt token ids (starting with ``<s>``), ints.
        images: one float32 array [3, H, W] per image, normalized by mistral-common for
            the model's vision encoder (Pixtral: patch 14, ``max_image_size`` from tekken.json).
        image_keys: one content hash (hex) per image, in order (for prompt-cache matching).
        text: the prompt as text with control tokens shown.
    """

    tokens: list[int]
    images: list[Any] = field(default_factory=list)
    image_keys: list[str] = field(default_factory=list)
    text: str = ""


def load_tokenizer(model_dir: Path) -> MistralTokenizer:
    """The model's `MistralTokenizer` from ``model_dir/tekken.json``.

    Raises:
        PromptError: no tekken.json (a model converted without its tokenizer).
    """
    path = Path(model_dir) / "tekken.json"
    if not path.is_file():
        raise PromptError(f"{model_dir}: no tekken.json; convert the model with `magimac quantize` again")
    return MistralTokenizer.from_file(str(path))


def builtin_system_prompt(kind: str) -> str | None:
    """The system prompt shipped with magimac for text-marker (Magistral 1.0) models, else None."""
    if kind != "text":
        return None
    return (resources.files("magimac") / "data" / "system_prompt_text.txt").read_text(encoding="utf-8")


def default_system_prompt(model_dir: Path, markers: ReasoningMarkers) -> str | None:
    """The model's own SYSTEM_PROMPT.txt, else the built-in one for its marker kind, else None."""
    path = Path(model_dir) / "SYSTEM_PROMPT.txt"
    if path.is_file():
        return read_text_file(path, error=PromptError)
    return builtin_system_prompt(markers.kind)


def with_reasoning_instructions(custom: str, instructions: str | None, markers: ReasoningMarkers) -> str:
    """A person's own system prompt that keeps the model reasoning.

    Magistral reasons because its system prompt shows the thinking template (a ``[THINK]`` ...
    ``[/THINK]`` block); a custom prompt without one silently switches the reasoning off (the
    fault LM Studio #699 and koboldcpp #1745 report). So when ``custom`` has no thinking block
    and the model's own prompt ``instructions`` has one, the result is ``instructions``, a blank
    line, then ``custom``; otherwise ``custom`` unchanged (a prompt with its own template, a
    model without one, or the model's own text sent again).
    """
    if not instructions or markers.open_text in custom or markers.open_text not in instructions:
        return custom
    if custom.strip() == instructions.strip():
        return custom
    return instructions.rstrip() + "\n\n" + custom.strip()


def system_chunks(text: str, markers: ReasoningMarkers) -> str | list:
    """A system prompt as mistral-common content: for control markers, each literal
    ``[THINK]``...``[/THINK]`` span becomes a `ThinkChunk`; otherwise the plain string."""
    if markers.kind != "control" or markers.open_text not in text:
        return text
    chunks: list = []
    rest = text
    while markers.open_text in rest:
        before, after = rest.split(markers.open_text, 1)
        thinking, sep, rest = after.partition(markers.close_text)
        if before:
            chunks.append(TextChunk(text=before))
        chunks.append(ThinkChunk(thinking=thinking, closed=bool(sep)))
    if rest:
        chunks.append(TextChunk(text=rest))
    return chunks


def _image_bytes(path: str) -> bytes:
    """The bytes of an image file, at most `MAX_IMAGE_BYTES` (`read_file_bytes`)."""
    return read_file_bytes(path, MAX_IMAGE_BYTES, PromptError, "give a smaller image")


def _open_image(path: str):
    import io

    from PIL import Image, UnidentifiedImageError

    try:
        with open_image(io.BytesIO(_image_bytes(path))) as im:
            im.load()
            return im.convert("RGB")
    except ImageTooLarge as e:
        raise PromptError(f"image {path}: {e}") from None
    except UnidentifiedImageError:
        raise PromptError(f"image {path}: not an image format Pillow can read (use PNG, JPEG, WebP, GIF)") from None
    except (OSError, Image.DecompressionBombError) as e:
        raise PromptError(f"image {path}: cannot read ({e})") from None


def _image_key(path: str) -> str:
    import hashlib

    return hashlib.sha256(_image_bytes(path)).hexdigest()


def build_request(
    messages: list[Message],
    markers: ReasoningMarkers,
    system_prompt: str | None,
    keep_reasoning: bool = False,
    vision: bool = True,
    instructions: str | None = None,
    tools: tuple[ToolSpec, ...] = (),
) -> tuple[ChatCompletionRequest, list[str]]:
    """Map messages to a `ChatCompletionRequest`; returns it and the image paths in order.

    Args:
        messages: the conversation; a leading ``system`` message overrides ``system_prompt``.
        markers: the model's reasoning markers (`reasoning.markers_for`).
        system_prompt: text of the system prompt, or None for none.
        keep_reasoning: keep earlier assistant reasoning.
        vision: whether the model takes images.
        instructions: the model's own system prompt, to keep before a custom one that has no
            thinking block (`with_reasoning_instructions`); None: send custom prompts as they are.
        tools: the tools offered to the model, in order.

    Raises:
        PromptError: a system message not first, an unknown role, images on a model
            without vision or on a non-user message, an unreadable image file.
    """
    msgs = list(messages)
    if msgs and msgs[0].role == "system":
        system_prompt = msgs.pop(0).content or None
    if system_prompt:
        system_prompt = with_reasoning_instructions(system_prompt, instructions, markers)
    out: list = []
    if system_prompt:
        out.append(SystemMessage(content=system_chunks(system_prompt, markers)))
    paths: list[str] = []
    last_user = max((i for i, m in enumerate(msgs) if m.role == "user"), default=-1)
    for i, m in enumerate(msgs):
        if m.role == "user":
            out.append(_user_message(i, m, vision, paths))
        elif m.role == "assistant":
            if m.images:
                raise PromptError(f"message {i}: images go on user messages only")
            content = _assistant_content(m, markers, keep_reasoning or i > last_user)
            if content or m.tool_calls:  # empty: e.g. a turn cancelled while thinking
                out.append(AssistantMessage(content=content or None, tool_calls=mistral_tool_calls(m) or None))
        elif m.role == "tool":
            out.append(mistral_tool_message(m))
        else:
            raise PromptError(f"message {i}: a {m.role!r} message may only come first")
    return ChatCompletionRequest(messages=out, tools=[t.to_mistral() for t in tools] or None), paths


def _user_message(i: int, m: Message, vision: bool, paths: list[str]) -> UserMessage:
    """Message ``i`` as a `UserMessage`: its text, then one `ImageChunk` per image (whose path is
    appended to ``paths``)."""
    if m.images and not vision:
        raise PromptError(f"message {i}: this model does not take images (it has no vision encoder)")
    if not m.images:
        return UserMessage(content=m.content)
    chunks: list = [TextChunk(text=m.content)] if m.content else []
    for p in m.images:
        chunks.append(ImageChunk(image=_open_image(p)))
        paths.append(p)
    return UserMessage(content=chunks)


def _assistant_content(m: Message, markers: ReasoningMarkers, keep_reasoning: bool) -> Any:
    """An earlier answer as mistral-common content: with ``keep_reasoning`` its reasoning first
    (a `ThinkChunk`, or the text markers for text-marker models); else the answer alone."""
    if not (keep_reasoning and m.reasoning):
        return m.content
    if markers.kind != "control":
        return markers.open_text + m.reasoning + markers.close_text + m.content
    content: list = [ThinkChunk(thinking=m.reasoning)]
    if m.content:
        content.append(TextChunk(text=m.content))
    return content


def encode(
    tokenizer: MistralTokenizer,
    messages: list[Message],
    markers: ReasoningMarkers,
    system_prompt: str | None,
    keep_reasoning: bool = False,
    vision: bool = True,
    instructions: str | None = None,
    tools: tuple[ToolSpec, ...] = (),
) -> Prompt:
    """Encode a conversation ending with a user message (or with tool results, which the model
    continues) into a `Prompt` (``instructions``, ``tools``: as `build_request`).

    Raises:
        PromptError: see `build_request`; also a conversation that does not end with a user
            message or a tool message, or one mistral-common rejects (its message, on one line).
    """
    if not messages or messages[-1].role not in ("user", "tool"):
        raise PromptError("the conversation must end with a user message")
    request, paths = build_request(messages, markers, system_prompt, keep_reasoning, vision, instructions,
                                   tools)
    try:
        tokenized = tokenizer.encode_chat_completion(request)
    except Exception as e:  # mistral-common's validation errors
        raise PromptError(f"cannot encode the conversation: {one_line(e)}") from None
    return Prompt(
        tokens=list(tokenized.tokens),
        images=list(tokenized.images),
        image_keys=[_image_key(p) for p in paths],
        text=tokenizer.decode(list(tokenized.tokens), special_token_policy=SpecialTokenPolicy.KEEP),
    )
