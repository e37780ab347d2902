"""The language of the demo's "I can't do that" reply, chosen from the question by code.

The demo answers a question outside what it knows with one sentence in the question's language
(`tooldata.CAN_DO`, after the reasoning `tooldata.NOT_MINE`), and its first reasoning token
picks the language: ``N`` English ("Not ...") or Spanish ("No es ..."), ``P`` French, ``K``
German.  A 3 MB model tells languages apart poorly once the prompt is unlike its training (a
tools list, library passages or an image before a question such as "What is in this
picture?"): it then often starts in German.  So the session tells the engine which openings
the reasoning may not take (`GenerationSettings.banned_openings`): those of the other
languages, when the question's language is clear from its words (`question_language`).
Arithmetic reasoning starts with a digit and is never touched.

The lasting fix is in the model: retraining with such prompts (`magimac.demo.train`).
"""

from __future__ import annotations

import re

_WORDS = {
    "en": {"the", "is", "are", "what", "who", "how", "which", "why", "where", "when", "you", "me", "my", "this",
           "that", "of", "in", "an", "to", "about", "can", "tell", "it", "does", "do", "and", "for", "with",
           "please", "picture", "image", "say", "hello", "hi", "thanks"},
    "fr": {"le", "la", "les", "est", "qui", "quel", "quelle", "quels", "combien", "des", "du", "un", "une",
           "je", "tu", "vous", "ce", "cette", "que", "qu", "et", "pour", "avec", "sur", "dans", "mon", "ma",
           "moi", "bonjour", "merci", "font", "fait", "parle"},
    "de": {"der", "die", "das", "ist", "wer", "wie", "was", "welche", "ein", "eine", "ich", "du", "mir",
           "mich", "und", "zu", "von", "mit", "für", "auf", "dem", "den", "bitte", "hallo", "erzähl", "geht"},
    "es": {"el", "los", "las", "es", "qué", "quién", "cómo", "cuál", "una", "yo", "tú", "y", "para", "con",
           "por", "mi", "hola", "háblame", "cuéntame", "eres", "estás"},
}

OPENINGS_BANNED = {
    "en": ("K", "P", "No"),  # not German, French nor Spanish ("No es ..." shares its "N")
    "fr": ("K", "N"),        # not German, English nor Spanish
    "de": ("P", "N"),
    "es": ("K", "P", "Not"),
}
"""Question language -> the texts the demo's reasoning may not begin with (the other languages'
`tooldata.NOT_MINE` openings, cut where their tokens part)."""


def question_language(text: str) -> str | None:
    """``"en"``, ``"fr"``, ``"de"`` or ``"es"``: the language whose common words ``text`` uses
    most (``¿``/``¡`` count for Spanish); None when no word is known or two languages tie."""
    words = re.findall(r"[^\W\d_]+", text.lower())
    scores = {lang: sum(w in known for w in words) for lang, known in _WORDS.items()}
    scores["es"] += text.count("¿") + text.count("¡")
    best = max(scores.values())
    leaders = [lang for lang, n in scores.items() if n == best]
    return leaders[0] if best > 0 and len(leaders) == 1 else None


def banned_openings(question: str) -> tuple[str, ...]:
    """What the demo's reasoning may not begin with for ``question`` (() when its language is unclear)."""
    lang = question_language(question)
    return OPENINGS_BANNED[lang] if lang else ()


__all__ = ["OPENINGS_BANNED", "banned_openings", "question_language"]
