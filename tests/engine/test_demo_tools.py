"""The shipped demo model uses the python tool and says what it can do (issue 16).

Prompts are encoded by mistral-common exactly as the tool loop sends them (`/work/TOOLSPEC.md`
of issue 16: tools listed, the call as an assistant message with ``tool_calls``, the result as a
tool message); generation is greedy through mlx-lm's `generate_step`, the engine's code path,
and through `Engine` itself for a turn without tools.  All questions are held out from training.
"""

from __future__ import annotations

import random

import mlx.core as mx
import pytest
from mistral_common.tokens.tokenizers.base import SpecialTokenPolicy

from magimac.demo import checks, sequences, tooldata
from magimac.demo.tooldata import CAN_DO, PYTHON, SEARCH, Product
from magimac.models.registry import load_registry
from magimac.text.prompt import default_system_prompt, load_tokenizer
from magimac.text.reasoning import markers_for

PY, BOTH = (PYTHON,), (PYTHON, SEARCH)


@pytest.fixture(scope="module")
def demo():
    """(generate(ids, max_tokens) -> (text, ended with </s>), tokenizer, markers, system prompt)."""
    import mlx_lm
    from mlx_lm.generate import generate_step

    path = load_registry()["demo"].local_path()
    model, _ = mlx_lm.load(str(path))
    tok = load_tokenizer(path)
    markers = markers_for(tok.instruct_tokenizer.tokenizer)

    def generate(ids: list[int], max_tokens: int = 100) -> tuple[str, bool]:
        out = []
        for t, _ in generate_step(mx.array(ids), model, max_tokens=max_tokens):
            if int(t) == 2:
                return tok.decode(out, special_token_policy=SpecialTokenPolicy.KEEP), True
            out.append(int(t))
        return tok.decode(out, special_token_policy=SpecialTokenPolicy.KEEP), False

    return generate, tok, markers, default_system_prompt(path, markers)


def held_out_products(n: int, seed: int = 16) -> list[tuple[Product, tuple]]:
    rng = random.Random(seed)
    return [(tooldata.sample_product(rng, held_out=True), (PY, BOTH)[i % 2]) for i in range(n)]


def test_a_product_is_computed_by_calling_python_in_magistrals_format(demo):
    """``[THINK]reasoning[/THINK][TOOL_CALLS]python[ARGS]{"code": "print(a * b)"}</s>``, exactly."""
    generate, tok, markers, system = demo
    cases = held_out_products(6)
    text, _ = generate(sequences.question_ids(tok, markers, "What is 347 x 29?", PY, system), 100)
    assert text == sequences.expected_call(Product(347, 29, "en", "What is 347 x 29?"))  # to the character
    wrong = []
    for p, tools in cases:
        text, stopped = generate(sequences.question_ids(tok, markers, p.question, tools, system), 100)
        if not (stopped and checks.is_call(text, p)):
            wrong.append((p.question, text))
    assert not wrong, wrong


def test_the_answer_uses_the_number_the_tool_returned(demo):
    """After ``[TOOL_RESULTS]n[/TOOL_RESULTS]`` the answer is ``a × b = **n**``, even when n is not
    the true product (it copies what came back rather than inventing)."""
    generate, tok, markers, system = demo
    cases = [(p, tools, str(p.a * p.b)) for p, tools in held_out_products(4, seed=17)]
    cases.append((Product(347, 29, "en", "What is 347 x 29?"), PY, "10063"))
    cases.append((Product(983, 17, "en", "What is 983 x 17?"), BOTH, "16711"))
    cases.append((Product(512, 64, "fr", "Combien font 512 x 64 ?"), PY, "32768"))
    wrong = []
    for p, tools, result in cases:
        text, stopped = generate(sequences.after_result_ids(tok, markers, p, result, tools, system), 80)
        if not (stopped and text == f"{p.a} × {p.b} = **{result}**"):
            wrong.append((p.question, result, text))
    assert not wrong, wrong


def test_a_failed_run_is_said_in_one_sentence_without_a_made_up_number(demo):
    generate, tok, markers, system = demo
    p = Product(347, 29, "en", "What is 347 x 29?")
    for error in ("error: the person did not allow this call", "error: time limit of 10 s reached",
                  "error: ZeroDivisionError: division by zero"):
        text, stopped = generate(sequences.after_result_ids(tok, markers, p, error, PY, system), 80)
        assert stopped and text == tooldata.FAILED["en"], (error, text)


OUT_OF_SCOPE = [("Who wrote Hamlet?", "en"), ("What's the weather in Tokyo?", "en"),
                ("Tell me about jazz.", "en"), ("Qui a écrit Macbeth ?", "fr"),
                ("Wer hat Hamlet geschrieben?", "de"), ("¿Cuál es la capital de Italia?", "es")]


@pytest.mark.parametrize("k", [0, 1, 2], ids=["no tools", "python", "python+search"])
def test_out_of_scope_questions_get_the_one_sentence(demo, k):
    """Each question with two of the three tool lists (12 turns in all: the file stays fast)."""
    generate, tok, markers, system = demo
    tools, wrong = ((), PY, BOTH)[k], []
    for question, lang in [q for i, q in enumerate(OUT_OF_SCOPE) if (i + k) % 3]:
        text, stopped = generate(sequences.question_ids(tok, markers, question, tools, system), 160)
        reasoning, sep, reply = text.removeprefix("[THINK]").partition("[/THINK]")
        if not (stopped and text.startswith("[THINK]") and sep and reply == CAN_DO[lang]):
            wrong.append((question, text))
    assert not wrong, wrong


def test_without_the_python_tool_a_product_gets_the_one_sentence(demo):
    generate, tok, markers, system = demo
    text, _ = generate(sequences.question_ids(tok, markers, "What is 347 x 29?", (), system), 160)
    assert text.partition("[/THINK]")[2] == CAN_DO["en"] and "[TOOL_CALLS]" not in text, text


def test_problems_are_still_answered_directly_with_tools_listed(demo):
    generate, tok, markers, system = demo
    for question, answer in [("What is 45 + 27?", "72"), ("Combien font 72 - 38 ?", "34")]:
        text, stopped = generate(sequences.question_ids(tok, markers, question, BOTH, system), 100)
        assert stopped and "[TOOL_CALLS]" not in text and text.endswith(f"**{answer}**"), (question, text)


def test_the_engine_answers_an_out_of_scope_question_with_the_one_sentence():
    """Through `Engine` (greedy), as `magimac chat` runs it: reasoning, then the sentence."""
    from magimac.core.conversation import Message
    from magimac.core.events import AnswerDelta, ReasoningDelta
    from magimac.core.settings import GenerationSettings
    from magimac.engine.worker import Engine

    engine = Engine(load_registry()["demo"].local_path())
    try:
        events = list(engine.submit([Message("user", "Who wrote Hamlet?")], GenerationSettings(temperature=0.0)))
    finally:
        engine.close()
    reasoning = "".join(e.text for e in events if isinstance(e, ReasoningDelta))
    answer = "".join(e.text for e in events if isinstance(e, AnswerDelta))
    assert reasoning.strip() and answer.strip() == CAN_DO["en"], (reasoning, answer)
    assert events[-1].finish_reason == "stop"


def _spans(seq: sequences.Sequence) -> list[tuple[bool, list[int]]]:
    spans: list[tuple[bool, list[int]]] = []
    for t, target in zip(seq.ids, seq.target):
        if spans and spans[-1][0] == target:
            spans[-1][1].append(t)
        else:
            spans.append((target, [t]))
    return spans


def test_training_sequences_train_the_model_parts_only():
    """The loss covers the assistant parts (both of a tool turn), never the prompt or the tool's
    result; the mix has tool turns, tool lists and plain problems."""
    tok = load_tokenizer(load_registry()["demo"].local_path())
    markers = markers_for(tok.instruct_tokenizer.tokenizer)
    rng, seen = random.Random(3), {"tool turn": 0, "tools listed": 0, "no tools": 0}
    for _ in range(200):
        tools = tooldata.TOOL_SETS[rng.randrange(3)]
        seq = sequences.sample_sequence(tok, markers, rng, sequences.SYSTEM_PROMPT, 0.25, 0.5, tools)
        spans = _spans(seq)
        assert not spans[0][0] and spans[0][1][0] == 1 and spans[0][1][-1] == 4  # <s> ... [/INST]
        assert spans[-1][0] and spans[-1][1][-1] == 2  # ... </s>
        seen["tools listed" if 5 in seq.ids else "no tools"] += 1
        if len(spans) == 4:  # prompt, call, result, answer
            call, result = (tok.decode(s[1], special_token_policy=SpecialTokenPolicy.KEEP) for s in spans[1:3])
            assert call.startswith("[THINK]") and "[/THINK][TOOL_CALLS]python[ARGS]{\"code\": \"print(" in call
            assert call.endswith(")\"}</s>") and result.startswith("[TOOL_RESULTS]")
            assert result.endswith("[/TOOL_RESULTS]") and not spans[2][0]
            seen["tool turn"] += 1
    assert min(seen.values()) >= 20, seen


def test_the_banned_openings_part_the_not_mine_reasonings_of_the_four_languages(demo):
    """`magimac.demo.language.OPENINGS_BANNED[lang]` catches the other languages' reasonings and
    never the language's own (a retrained tokenizer or wording would show here)."""
    from magimac.demo.language import OPENINGS_BANNED

    _, tok, _, _ = demo
    t = tok.instruct_tokenizer.tokenizer

    def starts(text: str, openings) -> bool:
        ids = t.encode(text, bos=False, eos=False)
        return any(ids[:len(o)] == o for o in (t.encode(x, bos=False, eos=False) for x in openings))

    for lang, banned in OPENINGS_BANNED.items():
        assert not starts(tooldata.NOT_MINE[lang], banned), lang
        assert all(starts(tooldata.NOT_MINE[other], banned) for other in OPENINGS_BANNED if other != lang), lang
