"""What the demo model learns beyond `problems`: calling ``python`` and saying what it can do.

- Products of a 3-digit and a 2-digit number (`sample_product`): with the ``python`` tool
  listed, the model reasons briefly, calls ``python`` with ``print(a * b)`` and answers with
  the number the tool returned (or, when the tool returned ``error: ...``, says in one
  sentence that it could not run it); without the tool it says what it can do (`CAN_DO`).
  Held out like `problems`: the MD5 split of ``("mul", a, b)`` (`problems.is_held_out`).
- Questions outside what it knows (`sample_out_of_scope`: facts, weather, chat, requests,
  arithmetic it cannot do, in English, French, German and Spanish): one sentence saying what
  it can do, in the language of the question, with or without tools.  The fillers in
  `HELD_OUT_FILLERS` never appear in training (``held_out=True`` draws only questions using
  them), so the tests ask questions the model never saw.

The tools are exactly the coordinator's fixed specs (``/work/TOOLSPEC.md`` of issue 16: names,
descriptions, parameters, python listed first), as mistral-common `Tool` objects, so the model
sees in training the tokens the engine sends.  Tool-result contents follow the same spec:
the program's stdout stripped, or ``"error: " + one line``.

The project adds this because no library generates tool-use training data in Magistral's
format; the token layout itself is mistral-common's (`magimac.demo.sequences`).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass

from mistral_common.protocol.instruct.tool_calls import Function, Tool

from magimac.demo.problems import is_held_out

PYTHON = Tool(function=Function(
    name="python",
    description="Run Python 3 code in a sandbox (no network, no files of the person's) and return what it prints.",
    parameters={"type": "object", "properties": {"code": {"type": "string",
                                                          "description": "Python code; print() what you need."}},
                "required": ["code"]}))
SEARCH = Tool(function=Function(
    name="search_documents",
    description="Search the documents attached to this conversation and return the matching passages, "
                "with file and page.",
    parameters={"type": "object", "properties": {"query": {"type": "string", "description": "What to look for."}},
                "required": ["query"]}))
TOOL_SETS = ((), (PYTHON,), (PYTHON, SEARCH))
"""The tool lists the demo trains with: none, python alone, python then search_documents."""

CAN_DO = {
    "en": "I am magimac's small demo model: I can only do arithmetic like 45 + 27 or, with the python tool, "
          "347 x 29; install Magistral Small 1.2 for anything else.",
    "fr": "Je suis le petit modèle de démonstration de magimac : je sais seulement calculer, comme 45 + 27 ou, "
          "avec l'outil python, 347 x 29 ; installez Magistral Small 1.2 pour tout le reste.",
    "de": "Ich bin das kleine Demo-Modell von magimac: Ich kann nur rechnen, etwa 45 + 27 oder, mit dem "
          "Python-Werkzeug, 347 x 29; installieren Sie Magistral Small 1.2 für alles andere.",
    "es": "Soy el pequeño modelo de demostración de magimac: solo sé hacer cuentas como 45 + 27 o, con la "
          "herramienta python, 347 x 29; instale Magistral Small 1.2 para todo lo demás.",
}
"""The one sentence the demo says for anything outside what it knows, by language."""

NOT_MINE = {"en": "Not arithmetic I can do.", "fr": "Pas un calcul que je sais faire.",
            "de": "Keine Rechnung, die ich kann.", "es": "No es una cuenta que sé hacer."}
"""The reasoning before `CAN_DO`, by language."""

_MUL_Q = {
    "en": ("What is {a} x {b}?", "What is {a} × {b}?", "Compute {a} * {b}.", "How much is {a} times {b}?",
           "{a} x {b} = ?", "Multiply {a} by {b}."),
    "fr": ("Combien font {a} x {b} ?", "Calcule {a} × {b}.", "Combien fait {a} fois {b} ?", "{a} x {b} = ?",
           "Multiplie {a} par {b}."),
}
_MUL_THINK = {"en": "{a}×{b}: a 3-digit by 2-digit product, I run it in python.",
              "fr": "{a}×{b} : un produit de 3 chiffres par 2 chiffres, je le calcule en python."}
FAILED = {"en": "I could not run the python code, so I have no result to give.",
          "fr": "Je n'ai pas pu exécuter le code python, donc je n'ai pas de résultat à donner."}
"""The one sentence after a tool error, by language (no number in it: nothing to get wrong)."""
TOOL_ERRORS = ("error: the person did not allow this call", "error: time limit of 10 s reached",
               "error: MemoryError", "error: output limit reached", "error: python could not start",
               "error: NameError: name 'x' is not defined", "error: SyntaxError: invalid syntax")
"""Tool results of a failed run (TOOLSPEC: ``"error: "`` + one line)."""


@dataclass(frozen=True)
class Product:
    """A 3-digit x 2-digit product and the texts of the model's tool turn.

    Attributes:
        a, b: the factors (100-999, 10-99); lang: ``"en"`` or ``"fr"``; question: what the user asks.
        reasoning: inside ``[THINK]`` before the call; code: the ``python`` call's ``code`` argument.
    """

    a: int
    b: int
    lang: str
    question: str

    @property
    def reasoning(self) -> str:
        return _MUL_THINK[self.lang].format(a=self.a, b=self.b)

    @property
    def code(self) -> str:
        return f"print({self.a} * {self.b})"

    @property
    def arguments(self) -> str:
        """The call's arguments JSON (TOOLSPEC: ``json.dumps`` defaults, ``ensure_ascii=False``)."""
        return json.dumps({"code": self.code}, ensure_ascii=False)

    def answer(self, result: str) -> str:
        """The reply after the tool returned ``result`` (its number, or one sentence on an error)."""
        if result.startswith("error:"):
            return FAILED[self.lang]
        return f"{self.a} × {self.b} = **{result}**"


def sample_product(rng: random.Random, held_out: bool = False, lang: str | None = None) -> Product:
    """A random 3-digit x 2-digit product from the training (or held-out) side of the split."""
    while True:
        a, b = rng.randint(100, 999), rng.randint(10, 99)
        if is_held_out("mul", a, b) == held_out:
            break
    lang = lang or rng.choice(("en", "fr"))
    return Product(a, b, lang, rng.choice(_MUL_Q[lang]).format(a=a, b=b))


def tool_result(rng: random.Random, p: Product, error_share: float = 0.25, other_share: float = 0.1) -> str:
    """What the python tool returns for ``p`` in training: mostly the product; an ``error_share``
    of errors; an ``other_share`` of other numbers (the model answers with what came back)."""
    r = rng.random()
    if r < error_share:
        return rng.choice(TOOL_ERRORS)
    if r < error_share + other_share:
        return str(rng.randint(1000, 99999))
    return str(p.a * p.b)


_FILLERS = {
    "work": ("Hamlet", "Don Quixote", "Faust", "Les Misérables", "War and Peace", "Macbeth", "Ulysses",
             "Moby Dick", "The Odyssey", "Candide", "Dracula", "Emma"),
    "place": ("Paris", "Italy", "London", "Spain", "Tokyo", "Berlin", "Canada", "Peru", "Lyon", "Madrid",
              "Egypt", "Norway"),
    "topic": ("quantum physics", "the French revolution", "black holes", "photosynthesis", "love", "jazz",
              "the stock market", "my code", "a recipe", "Python", "chess", "my homework"),
}
HELD_OUT_FILLERS = frozenset({"Hamlet", "Macbeth", "Italy", "Tokyo", "jazz", "chess"})
"""Fillers kept out of training: the tests ask about them (a question the model never saw)."""

_OUT_Q = {
    "en": ("Who wrote {work}?", "What's the weather in {place}?", "What's the weather like today?",
           "What is the capital of {place}?", "Tell me about {topic}.", "Can you help me with {topic}?",
           "Explain {topic} to me.", "Hello!", "Hi, how are you?", "Tell me a joke.", "Write a poem about {place}.",
           "What time is it?", "Who are you?", "Thanks!", "Summarize {work}.", "Translate {work} into German.",
           "What is {n}% of {m}?", "What is the square root of {m}?", "What is {m} divided by {n}?",
           "What is {k} + {k2}?"),
    "fr": ("Qui a écrit {work} ?", "Quel temps fait-il à {place} ?", "Quelle est la capitale de {place} ?",
           "Parle-moi de {topic}.", "Bonjour !", "Comment vas-tu ?", "Raconte-moi une blague.", "Qui es-tu ?",
           "Merci !", "Quelle heure est-il ?", "Résume {work}.", "Combien font {m} divisé par {n} ?",
           "Quelle est la racine carrée de {m} ?"),
    "de": ("Wer hat {work} geschrieben?", "Wie ist das Wetter in {place}?", "Was ist die Hauptstadt von {place}?",
           "Erzähl mir von {topic}.", "Hallo!", "Wie geht es dir?", "Erzähl mir einen Witz.", "Wer bist du?",
           "Wie spät ist es?"),
    "es": ("¿Quién escribió {work}?", "¿Qué tiempo hace en {place}?", "¿Cuál es la capital de {place}?",
           "Háblame de {topic}.", "¡Hola!", "¿Cómo estás?", "Cuéntame un chiste.", "¿Quién eres?",
           "¿Qué hora es?"),
}
_LANG_WEIGHTS = (5, 3, 1, 1)


@dataclass(frozen=True)
class OutOfScope:
    """A question the demo cannot answer; ``reasoning`` and ``response`` are its reply."""

    lang: str
    question: str

    @property
    def reasoning(self) -> str:
        return NOT_MINE[self.lang]

    @property
    def response(self) -> str:
        return CAN_DO[self.lang]


def sample_out_of_scope(rng: random.Random, held_out: bool = False) -> OutOfScope:
    """A random out-of-scope question; ``held_out=True``: only ones using `HELD_OUT_FILLERS`."""
    while True:
        lang = rng.choices(tuple(_OUT_Q), weights=_LANG_WEIGHTS)[0]
        template = rng.choice(_OUT_Q[lang])
        fill = {k: rng.choice(v) for k, v in _FILLERS.items()}
        uses = {v for k, v in fill.items() if "{" + k + "}" in template}
        if held_out == bool(uses & HELD_OUT_FILLERS) and (held_out or uses or rng.random() < 0.5):
            break
    q = template.format(n=rng.randint(2, 99), m=rng.randint(100, 9999), k=rng.randint(100, 9999),
                        k2=rng.randint(100, 9999), **fill)
    return OutOfScope(lang, q)
