"""Task accuracy for `magimac bench --tasks N`: problems with known answers, judged on the
answer part only.

The problems and the checker come from the demo problem set (`magimac.demo.problems`:
`make_problems(n, seed, held_out=True)` -> ``(question, expected answer)`` pairs and
`check_answer(text, answer)`); any other source of ``(question, answer)`` pairs with a
``check(answer_text, answer) -> bool`` plugs in the same way. Prompts are laid out as the chat
does (`magimac.text.prompt.encode` with the model's system prompt); generation is mlx-lm's
`generate_step`, greedy (temperature 0, so a run is reproducible), until ``</s>`` or
``max_tokens``. The reply is split at the closing reasoning marker: only the text after it is
checked, and the number of reasoning tokens is reported beside the accuracy.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

Problems = list[tuple[str, str]]
Checker = Callable[[str, str], bool]


def load_problems(n: int, seed: int = 0) -> tuple[Problems, Checker]:
    """``n`` held-out demo problems and their checker.

    Raises:
        ImportError: the demo problem set is not part of this build.
    """
    from magimac.demo.problems import check_answer, make_problems

    return make_problems(n, seed=seed, held_out=True), check_answer


def split_reply(tokens: list[int], open_id: int | None,
                close_id: int | None) -> tuple[list[int], list[int], bool]:
    """``(reasoning tokens, answer tokens, closed)`` of a generated reply.

    Reasoning is what lies between a leading ``open_id`` (not counted) and the first
    ``close_id``. Without a closing marker (or ``close_id`` None) the whole reply is the answer
    part and ``closed`` is False: a reply cut off while reasoning is judged on what it wrote.
    """
    if close_id is not None and close_id in tokens:
        i = tokens.index(close_id)
        start = 1 if tokens and tokens[0] == open_id else 0
        return tokens[start:i], tokens[i + 1 :], True
    return [], tokens, False


def accuracy(model, tokenizer, model_dir: Path, problems: Problems, check: Checker, *,
             max_tokens: int, advance: Callable[[], None] = lambda: None) -> dict:
    """Answer every problem and judge the answer part.

    Args:
        model / tokenizer: from `mlx_lm.load`; model_dir: its directory (tekken.json and
            SYSTEM_PROMPT.txt are read from it).
        max_tokens: generation limit per problem (tokens).

    Returns:
        ``{"problems", "correct", "accuracy", "mean_reasoning_tokens", "mean_answer_tokens",
        "unfinished"}`` (unfinished: replies that hit ``max_tokens``).
    """
    import mlx.core as mx
    from mlx_lm.generate import generate_step

    from magimac.text import prompt, reasoning
    from magimac.core.conversation import Message

    mt = prompt.load_tokenizer(model_dir)
    markers = reasoning.markers_for(mt.instruct_tokenizer.tokenizer)
    system = prompt.default_system_prompt(model_dir, markers)
    eos = set(tokenizer.eos_token_ids)
    correct = unfinished = reasoning_tokens = answer_tokens = 0
    for question, expected in problems:
        ids = prompt.encode(mt, [Message("user", question)], markers, system, vision=False).tokens
        out: list[int] = []
        for tok, _ in generate_step(mx.array(ids), model, max_tokens=max_tokens):
            if tok in eos:
                break
            out.append(tok)
        else:
            unfinished += 1
        think, answer, _closed = split_reply(out, markers.open_id, markers.close_id)
        text = tokenizer.decode(answer)
        if markers.kind == "text" and markers.close_text in text:
            think_text, text = text.split(markers.close_text, 1)
            think = tokenizer.encode(think_text, add_special_tokens=False)
        correct += bool(check(text, expected))
        reasoning_tokens += len(think)
        answer_tokens += len(answer)
        advance()
    n = max(len(problems), 1)
    return {"problems": len(problems), "correct": correct, "accuracy": correct / n,
            "mean_reasoning_tokens": reasoning_tokens / n, "mean_answer_tokens": answer_tokens / n,
            "unfinished": unfinished}
