"""The demo model's training sequences: token ids and which of them the loss covers.

Every sequence is what the engine sends, encoded by mistral-common's `encode_chat_completion`
(the system prompt mapped as `magimac.text.prompt.build_request` maps it, tools listed with
``tools=`` as `/work/TOOLSPEC.md` of issue 16 fixes them), followed by the model's part:

- a problem (`problems`) or an out-of-scope question (`tooldata.sample_out_of_scope`):
  ``[THINK]reasoning[/THINK]answer</s>``;
- a 3-digit x 2-digit product with ``python`` listed: ``[THINK]reasoning[/THINK][TOOL_CALLS]
  python[ARGS]{"code": "print(a * b)"}</s>`` then ``[TOOL_RESULTS]result[/TOOL_RESULTS]``
  then ``answer</s>`` (an `AssistantMessage` with a `ThinkChunk` and ``tool_calls``, a
  `ToolMessage`, and the answer); without python: the out-of-scope sentence.

The loss covers the model's parts only (both assistant parts of a tool turn, not the tool
result nor the prompt).  Earlier exchanges of a chat come first in a ``multi_turn`` share of
sequences, their reasoning dropped as the engine drops it (a tool turn there keeps its call and
result, as mistral-common encodes an assistant message with ``tool_calls`` and no content).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
from mistral_common.protocol.instruct.chunk import ThinkChunk
from mistral_common.protocol.instruct.messages import AssistantMessage, ToolMessage, UserMessage
from mistral_common.protocol.instruct.request import ChatCompletionRequest
from mistral_common.protocol.instruct.tool_calls import FunctionCall, ToolCall

from magimac.demo import tooldata
from magimac.demo.problems import sample_problem
from magimac.text.prompt import build_request

MAX_EARLIER = 3
"""Most earlier exchanges before the question in a multi-turn training conversation."""
SYSTEM_PROMPT = "Think step by step:[THINK]…[/THINK]then give the answer in the language of the question."
"""The demo's own SYSTEM_PROMPT.txt (`magimac.demo.train` writes it; here so that code without
PyTorch can build training sequences)."""

PAD = 11

KIND_SHARES = {"problem": 0.55, "product": 0.25, "out": 0.20}
"""Share of each kind of question in training (the last question of a sequence)."""
TOOL_SET_SHARES = (0.4, 0.35, 0.25)
"""Share of sequences with no tools, [python], [python, search_documents] (`tooldata.TOOL_SETS`)."""
EARLIER_SHARES = {"problem": 0.7, "product": 0.15, "out": 0.15}


@dataclass
class Sequence:
    """One training sequence: ``ids`` (ints) and ``target`` (bool per id: the loss predicts it)."""

    ids: list[int]
    target: list[bool]

    def add(self, ids: list[int], target: bool) -> None:
        self.ids += ids
        self.target += [target] * len(ids)


def call_id(n: int) -> str:
    """The n-th call id of a turn, ``"c" + 8 digits`` (TOOLSPEC; mistral-common wants 9 chars)."""
    return f"c{n:08d}"


def tool_turn(p: tooldata.Product, result: str, n: int = 1, reasoning: str | None = None) -> list:
    """The assistant call of ``p`` (with ``reasoning`` in a `ThinkChunk`, or none) and its result."""
    call = ToolCall(id=call_id(n), function=FunctionCall(name="python", arguments=p.arguments))
    content = [ThinkChunk(thinking=reasoning)] if reasoning else None
    return [AssistantMessage(content=content, tool_calls=[call]), ToolMessage(content=result, tool_call_id=call_id(n))]


def encode(tok, messages: list, tools: tuple) -> list[int]:
    """mistral-common's encoding of ``messages`` with ``tools`` listed (none: no tool block)."""
    request = ChatCompletionRequest(messages=messages, tools=list(tools) or None)
    return list(tok.encode_chat_completion(request).tokens)


def text_ids(tok, text: str) -> list[int]:
    return tok.instruct_tokenizer.tokenizer.encode(text, bos=False, eos=False)


def reply_ids(tok, reasoning: str, response: str) -> list[int]:
    """``[THINK] reasoning [/THINK] response </s>`` as ids (Magistral's turn format)."""
    t = tok.instruct_tokenizer.tokenizer
    return [t.get_special_token("[THINK]"), *text_ids(tok, reasoning), t.get_special_token("[/THINK]"),
            *text_ids(tok, response), t.eos_id]


def head(markers, system_prompt: str | None) -> list:
    """The system message(s) the engine sends first (`build_request`'s mapping)."""
    return list(build_request([], markers, system_prompt)[0].messages)


def _kind(rng: random.Random, shares: dict) -> str:
    return rng.choices(tuple(shares), weights=tuple(shares.values()))[0]


def earlier_exchange(rng: random.Random, tools: tuple, held_out: bool = False) -> list:
    """One earlier exchange as mistral-common messages, reasoning dropped."""
    kind = _kind(rng, EARLIER_SHARES)
    if kind == "problem":
        p = sample_problem(rng, held_out=held_out)
        return [UserMessage(content=p.question), AssistantMessage(content=p.response)]
    if kind == "out":
        o = tooldata.sample_out_of_scope(rng, held_out=held_out)
        return [UserMessage(content=o.question), AssistantMessage(content=o.response)]
    m = tooldata.sample_product(rng, held_out=held_out)
    if tooldata.PYTHON not in tools:
        return [UserMessage(content=m.question), AssistantMessage(content=tooldata.CAN_DO[m.lang])]
    result = tooldata.tool_result(rng, m)
    return [UserMessage(content=m.question), *tool_turn(m, result), AssistantMessage(content=m.answer(result))]


def sample_sequence(tok, markers, rng: random.Random, system_prompt: str, no_system: float,
                    multi_turn: float, tools: tuple) -> Sequence:
    """One training sequence of the mix (`KIND_SHARES`, module docstring) with ``tools`` listed."""
    messages = head(markers, None if rng.random() < no_system else system_prompt)
    for _ in range(rng.randint(1, MAX_EARLIER) if rng.random() < multi_turn else 0):
        messages += earlier_exchange(rng, tools)
    kind = _kind(rng, KIND_SHARES)
    if kind == "product":
        m = tooldata.sample_product(rng)
        messages.append(UserMessage(content=m.question))
        prompt = encode(tok, messages, tools)
        seq = Sequence([], [])
        seq.add(prompt, False)
        if tooldata.PYTHON not in tools:
            seq.add(reply_ids(tok, tooldata.NOT_MINE[m.lang], tooldata.CAN_DO[m.lang]), True)
            return seq
        result = tooldata.tool_result(rng, m)
        full = encode(tok, messages + tool_turn(m, result, reasoning=m.reasoning), tools)
        assert full[: len(prompt)] == prompt, "mistral-common's tool turn does not extend the prompt"
        end = full.index(tok.instruct_tokenizer.tokenizer.eos_id, len(prompt)) + 1
        seq.add(full[len(prompt): end], True)  # [THINK]..[/THINK][TOOL_CALLS]python[ARGS]{..}</s>
        seq.add(full[end:], False)  # [TOOL_RESULTS]result[/TOOL_RESULTS]
        seq.add(text_ids(tok, m.answer(result)) + [tok.instruct_tokenizer.tokenizer.eos_id], True)
        return seq
    q = sample_problem(rng) if kind == "problem" else tooldata.sample_out_of_scope(rng)
    messages.append(UserMessage(content=q.question))
    seq = Sequence([], [])
    seq.add(encode(tok, messages, tools), False)
    seq.add(reply_ids(tok, q.reasoning, q.response), True)
    return seq


def make_batches(tok, markers, rng: random.Random, batch: int, system_prompt: str, no_system: float,
                 multi_turn: float = 0.0, pool: int = 8) -> list[tuple[np.ndarray, np.ndarray]]:
    """``pool`` batches of `sample_sequence` sequences (tools drawn per sequence by
    `TOOL_SET_SHARES`), bucketed by length (a tool list is 140 to 260 tokens: sorting cuts the
    padding by about a third) and padded with ``<pad>`` (id 11), in random order.

    Returns:
        [(inputs [B, T] int64, targets [B, T] int64 with -100 where the loss does not look)], numpy.
    """
    seqs = [sample_sequence(tok, markers, rng, system_prompt, no_system, multi_turn,
                            rng.choices(tooldata.TOOL_SETS, weights=TOOL_SET_SHARES)[0])
            for _ in range(batch * pool)]
    seqs.sort(key=lambda s: len(s.ids))
    out = [_pad(seqs[i: i + batch]) for i in range(0, len(seqs), batch)]
    rng.shuffle(out)
    return out


def _pad(seqs: list[Sequence]) -> tuple[np.ndarray, np.ndarray]:
    width = max(len(s.ids) for s in seqs) - 1
    inputs = np.full((len(seqs), width), PAD, np.int64)
    targets = np.full((len(seqs), width), -100, np.int64)
    for i, s in enumerate(seqs):
        ids = np.asarray(s.ids, np.int64)
        inputs[i, : len(ids) - 1] = ids[:-1]
        targets[i, : len(ids) - 1] = np.where(np.asarray(s.target[1:]), ids[1:], -100)
    return inputs, targets


def question_ids(tok, markers, question: str, tools: tuple, system_prompt: str | None) -> list[int]:
    """The prompt for one ``question`` with ``tools`` listed (as the engine sends it)."""
    return encode(tok, head(markers, system_prompt) + [UserMessage(content=question)], tools)


def after_result_ids(tok, markers, p: tooldata.Product, result: str, tools: tuple,
                     system_prompt: str | None) -> list[int]:
    """The prompt after the model's expected call for ``p`` and the tool's ``result``: the model
    goes on with its answer."""
    messages = head(markers, system_prompt) + [UserMessage(content=p.question)]
    return encode(tok, messages + tool_turn(p, result, reasoning=p.reasoning), tools)


def expected_call(p: tooldata.Product) -> str:
    """The model's call for ``p`` as decoded text, ``</s>`` left out."""
    return f"[THINK]{p.reasoning}[/THINK][TOOL_CALLS]python[ARGS]{p.arguments}"
