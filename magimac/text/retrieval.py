"""Fit attached documents into the context: whole when they fit, else the best passages.

When every attached document fits the token budget, each goes in whole, page by page, under a
``[name]`` / ``[name, page N]`` label. When they do not, the documents are split into passages
(paragraphs packed up to a size, never across a page), ranked against the question with BM25
as computed by SQLite's FTS5 extension (``bm25()``, in an in-memory database: no downloaded
model, nothing leaves the machine), and the best passages that fit the budget are sent in
reading order, each labelled with file and page so the answer can cite them.

Token counts come from a ``count_tokens(text) -> int`` callable (the engine's tokenizer), so
this module needs no MLX. The project adds the passage splitting, the query built from the
question, and the packing under a budget; ranking is SQLite's.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable

from magimac.core.conversation import Message
from magimac.text.documents import Document, describe, load_document, load_document_cached
from magimac.text.passages import rank, split_passages

#: Opening line of the document part when whole documents are sent.
WHOLE_HEADER = "Attached documents:"
#: Opening line of the document part when only passages are sent.
PASSAGES_HEADER = ("Attached documents (too long to include in full; these are the passages most "
                   "relevant to the question, each labelled with its file and page):")
#: Passage size bounds in characters (about 4 characters per token in English with Tekken).
MIN_PASSAGE_CHARS = 200
MAX_PASSAGE_CHARS = 1600


@dataclass
class Passage:
    """A piece of a document sent to the model.

    Attributes:
        doc_name: the document's name (`Document.name`).
        page: the 1-based page number the passage comes from.
        text: the passage text.
        score: relevance to the question: FTS5 ``bm25()`` negated, so higher is better; 0.0 for
            a passage sent without a match (whole documents, or the reading-order fallback when
            no word of the question occurs in the documents).
        tokens: the passage's token count including its label (tokens), as counted by the
            ``count_tokens`` given to `build_context`.
        path: the file's absolute path, for library passages ('' for attached documents).
    """

    doc_name: str
    page: int
    text: str
    score: float = 0.0
    tokens: int = 0
    path: str = ""


@dataclass
class Context:
    """The document part of a user message.

    Attributes:
        text: the labelled document text to put before the question ('' when no documents).
        passages: what was sent: one entry per page of each whole document, or the chosen
            passages; in reading order (document, then page, then position).
        whole: True when every document went in whole.
        tokens: ``count_tokens(text)`` (tokens); never more than the budget.
    """

    text: str
    passages: list[Passage] = field(default_factory=list)
    whole: bool = True
    tokens: int = 0


def context_report(ctx: Context) -> dict:
    """The documents part of a turn as JSON-ready data (``magimac chat --json`` prints it as a
    line; the TUI stores it with the answer): ``{"type": "documents", "whole": bool, "tokens":
    int, "passages": [{"document", "page", "score", "tokens", "text"?}]}``; ``text`` (the
    passage sent) only when passages were chosen, since whole documents are the files."""
    return {"type": "documents", "whole": ctx.whole, "tokens": ctx.tokens,
            "passages": [{"document": p.doc_name, "page": p.page, "score": round(p.score, 3),
                          "tokens": p.tokens} | ({} if ctx.whole else {"text": p.text})
                         for p in ctx.passages]}


def context_summary(ctx: Context) -> str:
    """One line for people: ``documents: whole (1,234 tokens): a.md, b.pdf p.1-3`` or
    ``documents: 3 passages (900 tokens): manual.pdf p.27, p.4; memo.txt``."""
    pages: dict[str, list[int]] = {}
    for p in ctx.passages:
        pages.setdefault(p.doc_name, []).append(p.page)
    what = "; ".join(f"{name} p.{_page_ranges(ps)}" if len(ps) > 1 or ps[0] != 1 else name
                     for name, ps in pages.items())
    how = "whole" if ctx.whole else f"{len(ctx.passages)} passage{'s' if len(ctx.passages) != 1 else ''}"
    return f"documents: {how} ({ctx.tokens:,} tokens): {what or 'none fit the context'}"


def _page_ranges(pages: list[int]) -> str:
    """``[1, 2, 3, 7, 9, 10]`` -> ``1-3, 7, 9-10`` (sorted, duplicates merged)."""
    out: list[str] = []
    ps = sorted(set(pages))
    start = prev = ps[0]
    for n in ps[1:] + [None]:
        if n is not None and n == prev + 1:
            prev = n
            continue
        out.append(f"{start}-{prev}" if prev != start else str(start))
        if n is not None:
            start = prev = n
    return ", ".join(out)


def label(doc: Document, page: int) -> str:
    """The label put before a document's page or passage: ``[name]`` or ``[name, page N]``."""
    return f"[{doc.name}, page {page}]" if doc.paged else f"[{doc.name}]"


def build_context(question: str, docs: list[Document], budget_tokens: int,
                  count_tokens: Callable[[str], int], passage_chars: int | None = None) -> Context:
    """Choose what of ``docs`` to send with ``question`` within ``budget_tokens``.

    Args:
        question: the user's message text; its words are the BM25 query.
        docs: the attached documents, in attachment order.
        budget_tokens: the most tokens the returned ``text`` may take (tokens).
        count_tokens: returns the token count of a string with the model's tokenizer.
        passage_chars: the largest passage in characters; by default a sixth of the budget at
            about 4 characters per token, within [`MIN_PASSAGE_CHARS`, `MAX_PASSAGE_CHARS`].

    Returns:
        A `Context`. With no documents, or a budget too small for any passage, its text is ''
        and ``passages`` is empty (``whole`` is False when documents were left out).
    """
    if not docs:
        return Context(text="", passages=[], whole=True, tokens=0)
    whole = _whole_text(docs)
    if budget_tokens > 0:
        n = count_tokens(whole)
        if n <= budget_tokens:
            passages = [Passage(d.name, p.number, p.text) for d in docs for p in d.pages if p.text.strip()]
            return Context(text=whole, passages=passages, whole=True, tokens=n)

    if passage_chars is None:
        passage_chars = min(MAX_PASSAGE_CHARS, max(MIN_PASSAGE_CHARS, budget_tokens * 4 // 6))
    pieces = [(d, page, chunk) for d in docs for page in d.pages
              for chunk in _with_csv_header(d, split_passages(page.text, passage_chars))]
    scores = rank(question, [chunk for _, _, chunk in pieces])
    order = sorted(scores, key=lambda i: -scores[i]) if scores else _interleaved(pieces)

    remaining = budget_tokens - count_tokens(PASSAGES_HEADER) - 1
    chosen: dict[int, Passage] = {}
    misses = 0
    for i in order:
        if remaining < 8 or misses >= 50:  # full, or 50 passages in a row did not fit
            break
        d, page, chunk = pieces[i]
        block = f"{label(d, page.number)}\n{chunk}"
        n = count_tokens(block) + 2  # the blank line joining blocks
        if n <= remaining:
            chosen[i] = Passage(d.name, page.number, chunk, scores.get(i, 0.0), n)
            remaining -= n
            misses = 0
        else:
            misses += 1
    while chosen:
        ids = sorted(chosen)
        text = _passages_text(pieces, ids)
        n = count_tokens(text)
        if n <= budget_tokens:
            return Context(text=text, passages=[chosen[i] for i in ids], whole=False, tokens=n)
        # Token counts of the joined text can exceed the sum of the parts by a few: drop the
        # lowest-ranked passage and check again.
        del chosen[min(chosen, key=lambda i: (chosen[i].score, -i))]
    return Context(text="", passages=[], whole=False, tokens=0)


def user_text(question: str, context: Context) -> str:
    """The user message text for ``question`` with the documents of ``context`` before it.

    This is the one place chat and the TUI turn attachments into message text. The result is
    plain text: the engine encodes it with mistral-common text chunks, so control-token strings
    in a document stay text.
    """
    if not context.text:
        return question
    return f"{context.text}\n\n{question}"


def answer_reserve(context_length: int, max_tokens: int | None = None) -> int:
    """Tokens kept free for the model's reasoning and answer: ``max_tokens`` when set, else a
    quarter of the context up to 8192 tokens (Magistral's reasoning often runs to thousands)."""
    if max_tokens:
        return min(max_tokens, context_length)
    return min(8192, context_length // 4)


def attach_documents(
    messages: list[Message],
    count_tokens: Callable[[str], int],
    prompt_tokens: Callable[[list[Message]], int],
    context_length: int,
    reserve_tokens: int | None = None,
    load: Callable[[str], Document] = load_document,
) -> tuple[list[Message], Context]:
    """Put the text of the documents attached to ``messages`` into the user messages' text.

    The one function `magimac chat` and the TUI call before `Engine.submit`, so both send the
    same prompt. The document budget is ``context_length`` minus the tokens of the prompt
    without documents (``prompt_tokens(messages)``; the engine ignores ``Message.documents``)
    and minus ``reserve_tokens`` for the answer (default `answer_reserve`).

    - When every attached document fits, each goes in whole into the message it was attached
      to (so earlier turns keep the same text and the engine's prompt cache stays valid).
    - Otherwise passages of all the conversation's documents are ranked against the last user
      message and sent with it; earlier messages keep a one-line note naming their files.

    Args:
        messages: the conversation; documents are paths in `Message.documents` of user
            messages (a path attached twice is read once).
        count_tokens: token count of plain text with the model's tokenizer.
        prompt_tokens: token count of the prompt a list of messages makes.
        context_length: the engine's context limit (tokens).
        reserve_tokens: tokens left for the answer; None: `answer_reserve(context_length)`.
        load: reads one path (default `load_document`; the TUI may pass a caching one).

    Returns:
        ``(messages with document text in their content, Context)``: the Context lists every
        passage sent (``whole`` when all went in whole) and ``tokens`` the document tokens;
        its ``text`` is the document part of the last message. Messages without documents are
        returned unchanged; the input list is not modified.

    Raises:
        DocumentError: a document cannot be read (from ``load``).
    """
    attached = [(i, m) for i, m in enumerate(messages) if m.role == "user" and m.documents]
    if not attached:
        return list(messages), Context(text="")
    docs: dict[str, Document] = {}
    per_message: list[tuple[int, list[Document]]] = []
    for i, m in attached:
        fresh = [p for p in dict.fromkeys(m.documents) if p not in docs]
        for p in fresh:
            docs[p] = load(p)
        per_message.append((i, [docs[p] for p in fresh]))
    if reserve_tokens is None:
        reserve_tokens = answer_reserve(context_length)
    budget = context_length - prompt_tokens(messages) - reserve_tokens - 2 * len(attached)
    whole = _attach_whole(messages, per_message, budget, count_tokens)
    if whole is not None:
        return whole
    return _attach_passages(messages, per_message, list(docs.values()), budget, count_tokens)


def _attach_whole(messages, per_message, budget: int, count_tokens):
    """Every document in whole into the message it came with, or None when they do not fit."""
    out = list(messages)
    contexts: list[Context] = []
    remaining = budget
    for i, ds in per_message:
        ctx = build_context(messages[i].content, ds, remaining, count_tokens)
        if not ctx.whole:
            return None
        contexts.append(ctx)
        remaining -= ctx.tokens
        out[i] = replace(messages[i], content=user_text(messages[i].content, ctx))
    last_has_docs = per_message[-1][0] == len(messages) - 1
    return out, Context(text=contexts[-1].text if last_has_docs else "",
                        passages=[p for c in contexts for p in c.passages], whole=True,
                        tokens=sum(c.tokens for c in contexts))


def _attach_passages(messages, per_message, docs: list[Document], budget: int, count_tokens):
    """The best passages of all documents with the last message; earlier ones get a note."""
    out = list(messages)
    last = len(messages) - 1
    for i, ds in per_message:
        if i != last and ds:
            note = "[Attached: " + ", ".join(describe(d) for d in ds) + \
                   "; the relevant passages are quoted with a later message]"
            out[i] = replace(messages[i], content=f"{note}\n\n{messages[i].content}")
    if out[last].role != "user":
        return out, Context(text="", whole=False)
    notes = sum(count_tokens(out[i].content) - count_tokens(messages[i].content) + 1
                for i, _ in per_message if i != last)
    ctx = build_context(messages[last].content, docs, budget - notes, count_tokens)
    out[last] = replace(messages[last], content=user_text(messages[last].content, ctx))
    return out, ctx


def attach_for_engine(engine, messages: list[Message], settings=None, context_length: int | None = None,
                      load: Callable[[str], Document] = load_document_cached) -> tuple[list[Message], Context]:
    """`attach_documents` with an engine's tokenizer: what `magimac chat` and the TUI call.

    Args:
        engine: a `magimac.engine.worker.Engine` (any object with ``count_tokens(text)``,
            ``prompt_tokens(messages, settings)`` and ``context_length`` set once the tokenizer
            is read, or ``wait_loaded().context_length``); only its tokenizer is needed.
        messages: the conversation to send; ``settings``: its `GenerationSettings` (the
            system prompt counts against the context; ``max_tokens`` is the answer reserve).
        context_length: the context limit (tokens); None: the engine's.
        load: reads one path (default `documents.load_document_cached`).

    Returns / Raises: as `attach_documents`.
    """
    if not any(m.documents for m in messages):
        return list(messages), Context(text="")
    bare = len(engine.prompt_tokens(messages, settings))  # also reads the tokenizer and context limit
    if context_length is None:
        context_length = getattr(engine, "context_length", None) or engine.wait_loaded().context_length
    reserve = answer_reserve(context_length, getattr(settings, "max_tokens", None))
    return attach_documents(messages, engine.count_tokens,
                            lambda ms: bare if ms is messages else len(engine.prompt_tokens(ms, settings)),
                            context_length, reserve, load)


def _with_csv_header(doc: Document, chunks: list[str]) -> list[str]:
    """For a CSV, start every passage after the first with the header row, so columns keep names."""
    if doc.kind != "csv" or len(chunks) < 2:
        return chunks
    header = chunks[0].split("\n", 1)[0]
    return chunks[:1] + [c if c.startswith(header + "\n") else f"{header}\n{c}" for c in chunks[1:]]


def _whole_text(docs: list[Document]) -> str:
    blocks = [WHOLE_HEADER]
    for d in docs:
        for p in d.pages:
            if p.text.strip():
                blocks.append(f"{label(d, p.number)}\n{p.text}")
    return "\n\n".join(blocks)


def _passages_text(pieces: list, ids: list[int]) -> str:
    blocks = [PASSAGES_HEADER]
    for i in ids:
        d, page, chunk = pieces[i]
        blocks.append(f"{label(d, page.number)}\n{chunk}")
    return "\n\n".join(blocks)


def _interleaved(pieces: list) -> list[int]:
    """Reading order taking one passage from each document in turn (no-match fallback)."""
    per_doc: dict[int, list[int]] = {}
    for i, (d, _, _) in enumerate(pieces):
        per_doc.setdefault(id(d), []).append(i)
    queues = list(per_doc.values())
    order: list[int] = []
    while any(queues):
        for q in queues:
            if q:
                order.append(q.pop(0))
    return order
