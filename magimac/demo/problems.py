"""Synthetic word problems for the demo model, each with its step-by-step reasoning.

Kinds: addition and subtraction of two-digit numbers, worked column by column with the
carry / borrow; comparison of two numbers of 2-3 digits; unit conversions to a
smaller metric unit (km -> m, m -> cm, kg -> g, ...).  Each is phrased in English or in
French, and the reasoning and answer are in the language of the question (as Magistral's
system prompt asks).

Held-out split: a problem is *held out* (never used for training) when the MD5 of its kind
and operands falls in the lowest tenth (`is_held_out`), so the split is by operand pair,
independent of wording and language.

The project adds this because no library generates worked arithmetic in Magistral's
`[THINK]` format; `magimac bench` uses `make_problems` + `check_answer` for task accuracy.
"""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass

KINDS = ("add", "sub", "cmp", "unit")
KIND_WEIGHTS = (4, 4, 2, 1)  # the column-arithmetic kinds need the most examples
HELD_OUT_PERCENT = 10

# (from unit, to unit, factor, English name of the target unit, French name)
UNITS = (
    ("km", "m", 1000, "meters", "mètres"),
    ("m", "cm", 100, "centimeters", "centimètres"),
    ("cm", "mm", 10, "millimeters", "millimètres"),
    ("kg", "g", 1000, "grams", "grammes"),
    ("L", "mL", 1000, "milliliters", "millilitres"),
)

_ADD_Q = {
    "en": ("What is {a} + {b}?", "Compute {a} + {b}.", "How much is {a} plus {b}?", "{a} + {b} = ?"),
    "fr": ("Combien font {a} + {b} ?", "Calcule {a} + {b}.", "Combien fait {a} plus {b} ?", "{a} + {b} = ?"),
}
_SUB_Q = {
    "en": ("What is {a} - {b}?", "Compute {a} - {b}.", "How much is {a} minus {b}?", "{a} - {b} = ?"),
    "fr": ("Combien font {a} - {b} ?", "Calcule {a} - {b}.", "Combien fait {a} moins {b} ?", "{a} - {b} = ?"),
}
_CMP_Q = {
    "en": ("Which is larger, {a} or {b}?", "Which number is bigger: {a} or {b}?", "Is {a} larger than {b}?"),
    "fr": ("Quel est le plus grand : {a} ou {b} ?", "Quel nombre est le plus grand, {a} ou {b} ?",
           "{a} est-il plus grand que {b} ?"),
}
_UNIT_Q = {
    "en": ("Convert {x} {u} to {v}.", "How many {vname} are in {x} {u}?", "What is {x} {u} in {v}?"),
    "fr": ("Convertis {x} {u} en {v}.", "Combien de {vname} dans {x} {u} ?", "Combien font {x} {u} en {v} ?"),
}
_COLUMNS = {
    "en": ("Units", "Tens", "Hundreds", "Thousands"),
    "fr": ("Unités", "Dizaines", "Centaines", "Milliers"),
}


@dataclass(frozen=True)
class Problem:
    """One problem: the question, the model's reasoning and answer texts, and the answer.

    Attributes:
        kind: one of `KINDS`; lang: ``"en"`` or ``"fr"``.
        question: what the user asks.
        reasoning: the worked steps (what goes inside ``[THINK]`` ... ``[/THINK]``).
        response: the reply after ``[/THINK]`` (Markdown).
        answer: the expected number, as decimal digits (for `check_answer`).
    """

    kind: str
    lang: str
    question: str
    reasoning: str
    response: str
    answer: str


def _digits(n: int) -> list[int]:
    """Digits of ``n`` from the units up."""
    return [int(c) for c in reversed(str(n))]


def _add(a: int, b: int, lang: str, q: str) -> Problem:
    cols, x, y = _COLUMNS[lang], _digits(a), _digits(b)
    carry_word, so = ("carry", "So") if lang == "en" else ("retenue", "Donc")
    s1 = x[0] + y[0]
    steps = [f"{cols[0]}: {x[0]} + {y[0]} = {s1}, {carry_word} {s1 // 10}.",
             f"{cols[1]}: {x[1]} + {y[1]} + {s1 // 10} = {x[1] + y[1] + s1 // 10}."]
    reasoning = f"{a} + {b}.\n" + "\n".join(steps) + f"\n{so} {a} + {b} = {a + b}."
    return Problem("add", lang, q, reasoning, f"{a} + {b} = **{a + b}**", str(a + b))


def _sub(a: int, b: int, lang: str, q: str) -> Problem:
    cols, x, y = _COLUMNS[lang], _digits(a), _digits(b)
    borrow_word, so = ("borrow", "So") if lang == "en" else ("emprunt", "Donc")
    if x[0] < y[0]:
        first, borrow = f"{cols[0]}: 1{x[0]} - {y[0]} = {10 + x[0] - y[0]}, {borrow_word} 1.", 1
    else:
        first, borrow = f"{cols[0]}: {x[0]} - {y[0]} = {x[0] - y[0]}, {borrow_word} 0.", 0
    steps = [first, f"{cols[1]}: {x[1]} - {y[1]} - {borrow} = {x[1] - y[1] - borrow}."]
    reasoning = f"{a} - {b}.\n" + "\n".join(steps) + f"\n{so} {a} - {b} = {a - b}."
    return Problem("sub", lang, q, reasoning, f"{a} - {b} = **{a - b}**", str(a - b))


def _cmp(a: int, b: int, lang: str, q: str) -> Problem:
    en = lang == "en"
    big = max(a, b)
    rel = ">" if a > b else "<"
    la, lb = len(str(a)), len(str(b))
    digits_word = "digits" if en else "chiffres"
    steps = [f"{a} has {la} {digits_word}, {b} has {lb} {digits_word}." if en
             else f"{a} a {la} {digits_word}, {b} a {lb} {digits_word}."]
    if la == lb:
        cols = _COLUMNS[lang]
        for i in reversed(range(la)):
            x, y = _digits(a)[i], _digits(b)[i]
            if x == y:
                steps.append(f"{cols[i]}: {x} = {y}.")
            else:
                steps.append(f"{cols[i]}: {x} {'>' if x > y else '<'} {y}.")
                break
    so = "So" if en else "Donc"
    reasoning = f"Compare {a} and {b}.\n" if en else f"Je compare {a} et {b}.\n"
    reasoning += "\n".join(steps) + f"\n{so} {a} {rel} {b}."
    response = (f"{a} {rel} {b}, so **{big}** is larger." if en
                else f"{a} {rel} {b}, donc **{big}** est le plus grand.")
    return Problem("cmp", lang, q, reasoning, response, str(big))


def _unit(x: int, unit: tuple, lang: str, q: str) -> Problem:
    u, v, f, _, _ = unit
    so = "So" if lang == "en" else "Donc"
    reasoning = f"1 {u} = {f} {v}.\n{x} × {f} = {x * f}.\n{so} {x} {u} = {x * f} {v}."
    return Problem("unit", lang, q, reasoning, f"{x} {u} = **{x * f} {v}**", str(x * f))


def _operands(kind: str, rng: random.Random) -> tuple[int, int]:
    if kind == "unit":
        return rng.randrange(len(UNITS)), rng.choice((rng.randint(1, 9), rng.randint(10, 99), rng.randint(100, 999)))
    if kind in ("add", "sub"):
        a, b = rng.randint(10, 99), rng.randint(10, 99)
        return (max(a, b), min(a, b)) if kind == "sub" else (a, b)
    la = rng.randint(2, 3)
    lb = la if rng.random() < 0.5 else 5 - la  # same length half the time: digit by digit
    a = rng.randint(10 ** (la - 1), 10 ** la - 1)
    b = rng.randint(10 ** (lb - 1), 10 ** lb - 1)
    return (a, b) if a != b else (a, b + 1 if b < 10 ** lb - 1 else b - 1)


def is_held_out(kind: str, a: int, b: int) -> bool:
    """Whether the problem (kind, operands) belongs to the held-out tenth (MD5 split)."""
    h = int.from_bytes(hashlib.md5(f"{kind}:{a}:{b}".encode()).digest()[:4], "big")
    return h % 100 < HELD_OUT_PERCENT


def sample_problem(rng: random.Random, held_out: bool = False, lang: str | None = None) -> Problem:
    """One random problem from the training side (``held_out=False``) or the held-out side.

    Args:
        rng: the random source (seed it for reproducible data).
        held_out: draw from the held-out split instead of the training split.
        lang: ``"en"``, ``"fr"``, or None for either (equal odds).
    """
    while True:
        kind = rng.choices(KINDS, weights=KIND_WEIGHTS)[0]
        a, b = _operands(kind, rng)
        if is_held_out(kind, a, b) == held_out:
            break
    lang = lang or rng.choice(("en", "fr"))
    if kind == "unit":
        unit = UNITS[a]
        template = rng.choice(_UNIT_Q[lang])
        q = template.format(x=b, u=unit[0], v=unit[1], vname=unit[3] if lang == "en" else unit[4])
        return _unit(b, unit, lang, q)
    table = {"add": _ADD_Q, "sub": _SUB_Q, "cmp": _CMP_Q}[kind]
    q = rng.choice(table[lang]).format(a=a, b=b)
    return {"add": _add, "sub": _sub, "cmp": _cmp}[kind](a, b, lang, q)


def make_problems(n: int, seed: int = 0, held_out: bool = True) -> list[tuple[str, str]]:
    """``n`` problems as (question, expected answer digits), reproducible from ``seed``.

    With ``held_out=True`` (the default) every problem comes from the split the demo model
    never saw in training (`is_held_out`).
    """
    rng = random.Random(seed)
    return [(p.question, p.answer) for p in (sample_problem(rng, held_out) for _ in range(n))]


_NUMBER = re.compile(r"\d+")


def check_answer(text: str, answer: str) -> bool:
    """Whether a model's reply gives ``answer``: the last whole number in ``text`` equals it.

    ``text`` is the answer part (after ``[/THINK]``); a reply with reasoning still inside it
    is judged on its final number too.  Digit group separators are not accepted.
    """
    numbers = _NUMBER.findall(text)
    return bool(numbers) and numbers[-1] == answer
