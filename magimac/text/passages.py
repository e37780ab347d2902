"""Passages of a document and their BM25 rank against a question.

Splitting packs paragraphs up to a size (never across a page); ranking is SQLite's FTS5
``bm25()`` in an in-memory database (no downloaded model, nothing leaves the machine). The
project adds the splitting and the query built from the question; `magimac.text.retrieval`
chooses what fits the context.
"""

from __future__ import annotations

import re
import sqlite3
import textwrap

#: Most distinct question words used as the BM25 query (a pasted text makes a long question).
MAX_QUERY_WORDS = 256


def split_passages(text: str, max_chars: int) -> list[str]:
    """Split one page's text into passages of at most ``max_chars`` characters.

    Paragraphs (separated by blank lines) are packed together while they fit; a longer
    paragraph is split at line ends, and a longer line at spaces (`textwrap`). Blank input
    gives no passages.
    """
    units: list[tuple[str, str]] = []  # (separator before it, text)
    for para in re.split(r"\n\s*\n", text):
        para = para.strip("\n")
        if not para.strip():
            continue
        if len(para) <= max_chars:
            units.append(("\n\n", para))
            continue
        sep = "\n\n"
        for line in para.split("\n"):
            for piece in [line] if len(line) <= max_chars else textwrap.wrap(
                    line, max_chars, break_on_hyphens=False):
                if piece.strip():
                    units.append((sep, piece))
                sep = " " if len(line) > max_chars else "\n"
            sep = "\n"
    out: list[str] = []
    for sep, unit in units:
        if out and len(out[-1]) + len(sep) + len(unit) <= max_chars:
            out[-1] += sep + unit
        else:
            out.append(unit)
    return out


def fts_query(question: str) -> str:
    """The FTS5 query for a question: its distinct words (Unicode letters and digits; the first
    `MAX_QUERY_WORDS`), each quoted, OR-ed; '' when it has no words."""
    words = list(dict.fromkeys(w.lower() for w in re.findall(r"\w+", question)))[:MAX_QUERY_WORDS]
    return " OR ".join('"' + w.replace('"', '""') + '"' for w in words)


def rank(question: str, passages: list[str]) -> dict[int, float]:
    """Score passages against a question with SQLite FTS5 BM25.

    The query is every distinct word of the question (Unicode letters and digits; the first
    `MAX_QUERY_WORDS`), OR-ed;
    FTS5's ``porter`` tokenizer (over ``unicode61`` with diacritics removed) stems English
    words, so "prices" matches "price".

    Returns:
        ``{index into passages: -bm25}`` for the passages matching at least one word (higher is
        better); empty when none match or the question has no words.
    """
    query = fts_query(question)
    if not query or not passages:
        return {}
    con = sqlite3.connect(":memory:")
    try:
        con.execute("CREATE VIRTUAL TABLE p USING fts5(body, tokenize='porter unicode61 remove_diacritics 2')")
        con.executemany("INSERT INTO p(rowid, body) VALUES (?, ?)", enumerate(passages))
        rows = con.execute("SELECT rowid, bm25(p) FROM p WHERE p MATCH ? ORDER BY bm25(p)", (query,))
        return {int(i): -float(s) for i, s in rows}
    finally:
        con.close()
