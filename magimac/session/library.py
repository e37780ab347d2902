"""Libraries in a turn: search the conversation's libraries with the question and put the
passages found before it, numbered for citation.

The embedding model is the first installed one (`magimac.models.embedders.installed_embedder`),
loaded once per process on its own MLX thread (`magimac.engine.embed.MlxEmbedder`). Without one,
search is by words only (BM25) and the turn's summary says so, once per process.
"""

from __future__ import annotations

import threading

from magimac.core.conversation import Message
from magimac.text.library.context import library_context, library_report, library_summary, with_library
from magimac.text.library.search import search
from magimac.text.retrieval import answer_reserve

#: Passages asked of the search for one turn (those that fit the context are sent).
TURN_PASSAGES = 8

_lock = threading.Lock()
_embedders: dict[str, object] = {}
_said_bm25_only = False
BM25_ONLY_NOTE = ("no embedding model installed: libraries are searched by words only (BM25); "
                  "'magimac pull multilingual-e5-small' adds search by meaning")


def library_embedder():
    """The installed embedding model, loaded once (None when none is installed).

    Raises:
        magimac.engine.embed.EmbedderError: the installed model cannot be loaded.
    """
    from magimac.models.embedders import installed_embedder

    entry = installed_embedder()
    if entry is None:
        return None
    with _lock:
        key = str(entry.install_dir())
        if key not in _embedders:
            from magimac.engine.embed import MlxEmbedder

            _embedders[key] = MlxEmbedder(entry.install_dir(), entry.name, entry.query_prefix,
                                          entry.passage_prefix)
        return _embedders[key]


def bm25_note_once() -> str | None:
    """`BM25_ONLY_NOTE` the first time it is asked for in this process, then None."""
    global _said_bm25_only
    with _lock:
        if _said_bm25_only:
            return None
        _said_bm25_only = True
        return BM25_ONLY_NOTE


def attach_libraries(engine, messages: list[Message], settings, libraries: list[str]):
    """Search ``libraries`` with the last message and put what fits before its text.

    Args:
        engine: an engine (``prompt_tokens``, ``count_tokens``, ``context_length`` or
            ``wait_loaded()``), as `magimac.text.retrieval.attach_for_engine` takes.
        messages: the conversation, documents already in it; settings: its GenerationSettings.
        libraries: library names.

    Returns:
        ``(messages, summary, report)``: the messages with the passages in the last one's text,
        the one-line summary and the ``documents`` report (`library_report`).

    Raises:
        LibraryError: a library does not exist or cannot be read.
    """
    embedder = library_embedder()
    query = messages[-1].content if messages else ""
    results = search(libraries, query, k=TURN_PASSAGES, embedder=embedder)
    if embedder is None and (note := bm25_note_once()):
        results.notes.append(note)
    used = len(engine.prompt_tokens(messages, settings))
    context_length = engine.wait_loaded().context_length
    budget = context_length - used - answer_reserve(context_length, getattr(settings, "max_tokens", None))
    ctx = library_context(results, budget, engine.count_tokens)
    summary = library_summary(results, ctx, libraries, (budget, context_length))
    if results.notes:
        summary += "\n" + "\n".join(results.notes)
    return with_library(messages, ctx), summary, library_report(results, ctx, libraries)


def search_libraries(libraries: list[str], query: str, k: int = 5) -> dict:
    """Search ``libraries`` with the installed embedder (if any): what a ``search_documents``
    tool returns to the model (the tools issue calls this mid-reasoning).

    Args:
        libraries: library names (the conversation's); query: the model's query text;
        k: how many passages (1 to 20 are sensible).

    Returns:
        JSON-ready ``{"mode": "hybrid" | "bm25", "notes": [str], "passages": [{"n", "document",
        "file", "page", "score", "text"}]}``, best first (``page`` is None for files without
        pages).

    Raises:
        LibraryError: a library does not exist or cannot be read.
    """
    results = search(libraries, query, k=k, embedder=library_embedder())
    return {"mode": results.mode, "notes": list(results.notes),
            "passages": [{"n": i, "document": h.name, "file": h.file, "page": h.page if h.paged else None,
                          "score": round(h.score, 4), "text": h.text}
                         for i, h in enumerate(results.hits, start=1)]}
