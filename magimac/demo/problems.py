"""Synthetic word problems for the demo model, each with its step-by-step reasoning.

Kinds: addition and subtraction of two-digit numbers, worked column by column with the
carry / borrow; comparison of two two-digit numbers; conversion of 1-99 of a metric unit to
a smaller one (km -> m, m -> cm, kg -> g, ...).  The reasoning first copies the operands,
then works one digit at a time, so a tiny model learns to copy before it learns to compute.  Each is phrased in English or in
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
_WORDS = {  # column names and step words, by language
    "en": dict(units="units", tens="tens", write="write", carry="carry", borrow="borrow", so="So"),
    "fr": dict(units="unités", tens="dizaines", write="j'écris", carry="retenue", borrow="emprunt", so="Donc"),
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


def _add(a: int, b: int, lang: str, q: str) -> Problem:
    """``39+11: units 9+1=10, write 0 carry 1; tens 3+1+1=5. So 39+11=50.``"""
    w, (a1, a0), (b1, b0) = _WORDS[lang], divmod(a, 10), divmod(b, 10)
    s0 = a0 + b0
    reasoning = (f"{a}+{b}: {w['units']} {a0}+{b0}={s0}, {w['write']} {s0 % 10} {w['carry']} {s0 // 10}; "
                 f"{w['tens']} {a1}+{b1}+{s0 // 10}={a1 + b1 + s0 // 10}. {w['so']} {a}+{b}={a + b}.")
    return Problem("add", lang, q, reasoning, f"{a} + {b} = **{a + b}**", str(a + b))


def _sub(a: int, b: int, lang: str, q: str) -> Problem:
    """``72-38: units 12-8=4 borrow 1; tens 7-3-1=3. So 72-38=34.`` (``a >= b``)"""
    w, (a1, a0), (b1, b0) = _WORDS[lang], divmod(a, 10), divmod(b, 10)
    borrow = int(a0 < b0)
    top = a0 + 10 * borrow
    reasoning = (f"{a}-{b}: {w['units']} {top}-{b0}={top - b0} {w['borrow']} {borrow}; "
                 f"{w['tens']} {a1}-{b1}-{borrow}={a1 - b1 - borrow}. {w['so']} {a}-{b}={a - b}.")
    return Problem("sub", lang, q, reasoning, f"{a} - {b} = **{a - b}**", str(a - b))


def _cmp(a: int, b: int, lang: str, q: str) -> Problem:
    """``47 ? 52: tens 4<5. So 47<52.`` (units compared when the tens are equal)"""
    w, (a1, a0), (b1, b0) = _WORDS[lang], divmod(a, 10), divmod(b, 10)
    rel = ">" if a > b else "<"
    if a1 != b1:
        steps = f"{w['tens']} {a1}{'>' if a1 > b1 else '<'}{b1}"
    else:
        steps = f"{w['tens']} {a1}={b1}; {w['units']} {a0}{'>' if a0 > b0 else '<'}{b0}"
    reasoning = f"{a} ? {b}: {steps}. {w['so']} {a}{rel}{b}."
    big = max(a, b)
    response = (f"{a} {rel} {b}, so **{big}** is larger." if lang == "en"
                else f"{a} {rel} {b}, donc **{big}** est le plus grand.")
    return Problem("cmp", lang, q, reasoning, response, str(big))


def _unit(x: int, unit: tuple, lang: str, q: str) -> Problem:
    """``1 km=1000 m; 37×1000=37000. So 37 km=37000 m.``"""
    u, v, f, _, _ = unit
    reasoning = f"1 {u}={f} {v}; {x}×{f}={x * f}. {_WORDS[lang]['so']} {x} {u}={x * f} {v}."
    return Problem("unit", lang, q, reasoning, f"{x} {u} = **{x * f} {v}**", str(x * f))


def _operands(kind: str, rng: random.Random) -> tuple[int, int]:
    if kind == "unit":
        return rng.randrange(len(UNITS)), rng.randint(1, 99)
    a, b = rng.randint(10, 99), rng.randint(10, 99)
    if kind == "sub":
        return max(a, b), min(a, b)
    if kind == "cmp" and a == b:
        return a, b + 1 if b < 99 else b - 1
    return a, b


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
