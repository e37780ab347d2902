"""Split a model's output into reasoning, answer and tool calls, at the token level, streaming.

Magistral (Tekken v11+) calls a tool with ``[TOOL_CALLS]name[ARGS]{json}``, repeated for
several calls in one message, after its reasoning, then ``</s>``.  ``[TOOL_CALLS]`` and
``[ARGS]`` are control tokens (ids read from the tokenizer: 9 and 32 in v13), so the split is
on ids and never on text: a model writing the characters "[ARGS]" in its answer writes text.
Why our own: mistral-common encodes calls but has no streaming parser, and the parsers of
mlx-lm / LM Studio drop parallel calls or garble ``[ARGS]`` while streaming (mlx-lm #1448,
Rapid-MLX #579).

Everything outside a call goes through `ReasoningSplitter`.  A call is sent as one
`ToolCall` event when it is complete: at the next ``[TOOL_CALLS]`` or at the end of the turn
(`flush`).  Arguments that are not one JSON object give a `ToolCall` with ``error`` set (the
session hands that error back to the model as the result), never an exception.  The older
JSON-list form (``[TOOL_CALLS][{"name": ..., "arguments": {...}}, ...]`` without ``[ARGS]``)
is read too.
"""

from __future__ import annotations

import json

from mistral_common.tokens.tokenizers.tekken import Tekkenizer

from magimac.core.events import AnswerDelta, ReasoningDelta, ToolCall
from magimac.text.reasoning import ANSWER, ReasoningMarkers, ReasoningSplitter
from magimac.text.tools import call_id

Delta = ReasoningDelta | AnswerDelta | ToolCall


def tool_call_ids(tekken: Tekkenizer) -> tuple[int, int] | None:
    """The ids of ``[TOOL_CALLS]`` and ``[ARGS]`` in this tokenizer, or None when it lacks them."""
    try:
        return tekken.get_special_token("[TOOL_CALLS]"), tekken.get_special_token("[ARGS]")
    except Exception:  # mistral-common raises a bare error for an unknown control token
        return None


class OutputSplitter:
    """Feed generated token ids; get ReasoningDelta / AnswerDelta / ToolCall events.

    Args:
        markers / tekken: as `ReasoningSplitter`.
        first_call: the number of this turn's first call (`magimac.text.tools.calls_in` of the
            conversation + 1); ids count on from it.

    Attributes:
        calls: the `ToolCall`s sent so far.
        reasoning_tokens / answer_tokens: as `ReasoningSplitter`'s; tool_tokens: tokens inside
            calls (the control tokens included).
    """

    def __init__(self, markers: ReasoningMarkers, tekken: Tekkenizer, first_call: int = 1) -> None:
        self._text = ReasoningSplitter(markers, tekken)
        self._tekken = tekken
        self._ids = tool_call_ids(tekken)
        self._next = first_call
        self._name: list[int] | None = None  # tokens of the call being read; None: not in a call
        self._args: list[int] | None = None  # after [ARGS]; None: still in the name
        self.calls: list[ToolCall] = []
        self.tool_tokens = 0

    @property
    def reasoning_tokens(self) -> int:
        return self._text.reasoning_tokens

    @property
    def answer_tokens(self) -> int:
        return self._text.answer_tokens

    def feed(self, token_id: int) -> list[Delta]:
        """One generated token id -> zero or more events."""
        if self._ids is None:
            return self._text.feed(token_id)
        open_id, args_id = self._ids
        if token_id == open_id:
            out = self._end_call() if self._name is not None else self._text.flush()
            self._text.state = ANSWER  # a call ends any reasoning
            self._name, self._args = [], None
            self.tool_tokens += 1
            return out
        if self._name is None:
            return self._text.feed(token_id)
        self.tool_tokens += 1
        if token_id == args_id and self._args is None:
            self._args = []
        else:
            (self._name if self._args is None else self._args).append(token_id)
        return []

    def flush(self) -> list[Delta]:
        """End of the turn: the call being read (complete or not), or the text held back."""
        if self._name is not None:
            return self._end_call()
        return self._text.flush()

    def _decode(self, ids: list[int]) -> str:
        return self._tekken.decode(ids) if ids else ""

    def _end_call(self) -> list[Delta]:
        name, args = self._decode(self._name or []).strip(), self._args
        self._name = self._args = None
        if args is None and name.startswith("["):
            return [self._call(n, a) for n, a in _list_form(name)]
        return [self._call(name, self._decode(args or []).strip() if args is not None else None)]

    def _call(self, name: str, raw: str | dict | None) -> ToolCall:
        """A `ToolCall` with the next id; ``raw``: the arguments' text (or an already parsed
        object from the list form; None: the model wrote no ``[ARGS]``)."""
        cid = call_id(self._next)
        self._next += 1
        if isinstance(raw, dict):
            call = ToolCall(cid, name, raw, json.dumps(raw, ensure_ascii=False))
        else:
            args, error = parse_arguments(raw)
            call = ToolCall(cid, name, args, raw or "", error if name else "the call has no tool name")
        self.calls.append(call)
        return call


def parse_arguments(raw: str | None) -> tuple[dict, str | None]:
    """A call's arguments text -> (arguments, None), or ({}, one-line reason) when they are
    not one JSON object."""
    if raw is None:
        return {}, "the call has no [ARGS]"
    try:
        value = json.loads(raw or "{}")
    except json.JSONDecodeError as e:
        return {}, f"the arguments are not valid JSON ({e.msg} at character {e.pos})"
    if not isinstance(value, dict):
        return {}, "the arguments must be a JSON object"
    return value, None


def _list_form(text: str) -> list[tuple[str, str | dict]]:
    """``[{"name": ..., "arguments": {...}}, ...]`` -> (name, arguments) pairs; text that is
    not that list gives one nameless call whose error the model gets back."""
    try:
        items = json.loads(text)
    except json.JSONDecodeError:
        return [("", text)]
    pairs: list[tuple[str, str | dict]] = []
    for it in items if isinstance(items, list) else [items]:
        if not isinstance(it, dict) or not isinstance(it.get("name"), str):
            return [("", text)]
        args = it.get("arguments", {})
        pairs.append((it["name"], args if isinstance(args, dict) else str(args)))
    return pairs
