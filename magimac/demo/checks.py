"""What the demo model must do, as checks on any greedy generator (the trainer's PyTorch loop,
the tests' engine): held-out problems right, the ``python`` call for 3-digit x 2-digit
products exactly in Magistral's format, the returned number in the answer after the tool's
result, and one sentence (`tooldata.CAN_DO`) for questions outside what it knows.

``generate(ids, max_tokens) -> text``: the continuation of prompt ``ids`` (ints) up to
``</s>`` (left out), decoded with control tokens shown (``[THINK]``, ``[TOOL_CALLS]``...).
"""

from __future__ import annotations

import random
from typing import Callable

from magimac.core.conversation import Message
from magimac.demo import sequences, tooldata
from magimac.demo.problems import check_answer, sample_problem
from magimac.demo.sequences import MAX_EARLIER
from magimac.text.prompt import encode

Generate = Callable[[list[int], int], str]


def conversation(rng: random.Random, question: str, earlier: int, held_out: bool = False) -> list[Message]:
    """``earlier`` exchanges (random problems, each answered with its reasoning, which the
    engine drops from earlier turns by default) and then ``question``, as the app sends them."""
    messages = []
    for _ in range(earlier):
        e = sample_problem(rng, held_out=held_out)
        messages += [Message("user", e.question), Message("assistant", e.response, reasoning=e.reasoning)]
    return messages + [Message("user", question)]


def prompt_tokens(tok, markers, question: str | list[Message], system_prompt: str | None) -> list[int]:
    """The engine's prompt (`magimac.text.prompt.encode`) for one user question or a conversation."""
    messages = [Message("user", question)] if isinstance(question, str) else question
    return encode(tok, messages, markers, system_prompt).tokens


def answered(text: str, answer: str) -> bool:
    """Whether ``text`` reasons in a ``[THINK]`` block and then gives ``answer`` (`check_answer`)."""
    return text.startswith("[THINK]") and "[/THINK]" in text and check_answer(text.split("[/THINK]", 1)[-1], answer)


def held_out_accuracy(generate: Generate, tok, markers, system_prompt: str, n: int, seed: int,
                      show: int = 0, first_only: bool = False) -> float:
    """Share of ``n`` held-out problems answered right without tools (a quarter without system
    prompt; unless ``first_only``, every other one after 1 to `MAX_EARLIER` earlier held-out exchanges)."""
    rng, ok = random.Random(seed), 0
    for i in range(n):
        prob = sample_problem(rng, held_out=True)
        earlier = 1 + i % MAX_EARLIER if i % 2 and not first_only else 0
        text = generate(prompt_tokens(tok, markers, conversation(rng, prob.question, earlier, held_out=True),
                                      system_prompt if i % 4 else None), 120)
        good = answered(text, prob.answer)
        ok += good
        if not good and show > 0:
            show -= 1
            print(f"  BAD {prob.question!r} -> {text!r}", flush=True)
    return ok / n


def is_call(text: str, p: tooldata.Product) -> bool:
    """Whether ``text`` is reasoning and then exactly the python call for ``p``:
    ``[THINK]...[/THINK][TOOL_CALLS]python[ARGS]{"code": "print(a * b)"}`` (the reasoning's
    language may differ from `sequences.expected_call`'s where the question reads alike in both,
    e.g. ``832 x 37 = ?``)."""
    reasoning, sep, call = text.removeprefix("[THINK]").partition("[/THINK]")
    return (text.startswith("[THINK]") and bool(sep and reasoning.strip())
            and call == f"[TOOL_CALLS]python[ARGS]{p.arguments}")


def tool_checks(generate: Generate, tok, markers, system_prompt: str, n: int, seed: int,
                show: int = 0) -> tuple[float, float, float]:
    """On ``n`` held-out cases each: (share of products whose output is the call
    (`is_call`), share of answers after the tool's result that give the returned
    number and nothing else, share of out-of-scope questions answered with `tooldata.CAN_DO`).
    Tools alternate between [python] and [python, search_documents] (none too for out of scope)."""
    rng, calls, answers, scope = random.Random(seed), 0, 0, 0
    for i in range(n):
        tools, system = tooldata.TOOL_SETS[1 + i % 2], system_prompt if i % 4 else None
        p = tooldata.sample_product(rng, held_out=True)
        call = generate(sequences.question_ids(tok, markers, p.question, tools, system), 100)
        calls += is_call(call, p)
        result = str(p.a * p.b)
        reply = generate(sequences.after_result_ids(tok, markers, p, result, tools, system), 80)
        answers += reply == p.answer(result)
        o = tooldata.sample_out_of_scope(rng, held_out=True)
        text = generate(sequences.question_ids(tok, markers, o.question, tooldata.TOOL_SETS[i % 3], system), 160)
        scope += text.startswith("[THINK]") and text.partition("[/THINK]")[2] == o.response
        if show > 0 and not (is_call(call, p) and text.endswith(o.response)):
            show -= 1
            print(f"  BAD {p.question!r} -> {call!r} / {o.question!r} -> {text!r}", flush=True)
    return calls / n, answers / n, scope / n
