"""The passages a library search found, as the document part of a user message.

Each passage is numbered and labelled with its file and page, ``[1] contract.pdf, page 12``,
and the header asks the model to cite them by number, so an answer's ``[1]`` points at a
passage the person can open (the ``documents`` report carries file, page and text).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable

from magimac.core.conversation import Message
from magimac.text.library.search import Hit, Results
from magimac.text.retrieval import Context, Passage

#: Opening line of the library part of a message.
LIBRARY_HEADER = ("Passages from the person's document library, most relevant first, each numbered "
                  "and labelled with its file and page. Cite the passages you use as [1], [2], ...:")


def hit_label(n: int, hit: Hit) -> str:
    """``[n] name, page P`` (page left out for files without pages)."""
    return f"[{n}] {hit.name}, page {hit.page}" if hit.paged else f"[{n}] {hit.name}"


def library_context(results: Results, budget_tokens: int, count_tokens: Callable[[str], int]) -> Context:
    """The hits of ``results`` that fit ``budget_tokens`` (best first, numbered from 1).

    Returns:
        A `Context` whose ``passages`` carry ``path`` (the file), ``page``, ``score`` and
        ``tokens``; ``whole`` False; text '' when nothing fits or nothing was found.
    """
    remaining = budget_tokens - count_tokens(LIBRARY_HEADER) - 1
    blocks, passages = [LIBRARY_HEADER], []
    for hit in results.hits:
        block = f"{hit_label(len(passages) + 1, hit)}\n{hit.text}"
        n = count_tokens(block) + 2
        if n > remaining:
            continue
        blocks.append(block)
        passages.append(Passage(hit.name, hit.page, hit.text, hit.score, n, path=hit.file))
        remaining -= n
    if not passages:
        return Context(text="", passages=[], whole=False, tokens=0)
    text = "\n\n".join(blocks)
    return Context(text=text, passages=passages, whole=False, tokens=count_tokens(text))


def with_library(messages: list[Message], ctx: Context) -> list[Message]:
    """``messages`` with the library passages of ``ctx`` before the last message's text."""
    if not ctx.text or not messages:
        return list(messages)
    out = list(messages)
    out[-1] = replace(out[-1], content=f"{ctx.text}\n\n{out[-1].content}")
    return out


def library_report(results: Results, ctx: Context, libraries: list[str]) -> dict:
    """The ``documents`` event of a library turn: ``{"type": "documents", "whole": false,
    "tokens", "libraries", "mode" ("hybrid" | "bm25"), "notes", "passages": [{"n", "document",
    "file", "page", "score", "tokens", "text"}]}``; ``n`` is the number the answer cites."""
    return {"type": "documents", "whole": False, "tokens": ctx.tokens, "libraries": libraries,
            "mode": results.mode, "notes": list(results.notes),
            "passages": [{"n": i, "document": p.doc_name, "file": p.path, "page": p.page,
                          "score": round(p.score, 4), "tokens": p.tokens, "text": p.text}
                         for i, p in enumerate(ctx.passages, start=1)]}


def library_summary(results: Results, ctx: Context, libraries: list[str],
                    room: tuple[int, int] | None = None) -> str:
    """One line for people: ``library notes (hybrid): 2 passages (410 tokens): [1] a.pdf p.12
    (0.0325); [2] b.md (0.0161)`` (and how many more were found than fit), that nothing was
    found, or that what was found does not fit.

    Args:
        room: (tokens left for passages, the model's context length in tokens), to say how
            little room there was when passages were found but none fits.
    """
    how = f"library {', '.join(libraries)} ({'words and meaning' if results.mode == 'hybrid' else 'words only'})"
    found = len(results.hits)
    if not ctx.passages and found:
        left = (f": {max(room[0], 0):,} tokens of this model's {room[1]:,}-token context were left for them"
                if room is not None else "")
        return (f"{how}: {_passages(found)} found, but none fits{left}; use a model with a longer "
                "context, or ask a shorter question")
    if not ctx.passages:
        return f"{how}: no passage found"
    items = "; ".join(f"[{i}] {p.doc_name}" + (f" p.{p.page}" if _paged(results, p) else "") + f" ({p.score:.4g})"
                      for i, p in enumerate(ctx.passages, start=1))
    more = f"; {found - len(ctx.passages)} more found did not fit the context" if found > len(ctx.passages) else ""
    return f"{how}: {_passages(len(ctx.passages))} ({ctx.tokens:,} tokens): {items}{more}"


def _passages(n: int) -> str:
    return f"{n} passage{'s' if n != 1 else ''}"


def _paged(results: Results, p: Passage) -> bool:
    return any(h.file == p.path and h.page == p.page and h.paged for h in results.hits)
