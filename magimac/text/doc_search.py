"""The ``search_documents`` tool's work: the passages of the conversation's attached documents
that best match a query, each labelled with its file and page.

The documents are read with `magimac.text.documents` (cached), split with the same passage
splitter as the prompt's documents part, and ranked with SQLite FTS5 BM25
(`magimac.text.passages.rank`): nothing leaves the machine.  The project adds only the
formatting of the result for the model.
"""

from __future__ import annotations

from magimac.text.documents import DocumentError, load_document_cached
from magimac.text.passages import rank, split_passages
from magimac.text.retrieval import label

PASSAGE_CHARS = 800  # about 200 tokens per passage
TOP_PASSAGES = 5


def search_documents(query: str, paths: list[str], top: int = TOP_PASSAGES,
                     passage_chars: int = PASSAGE_CHARS) -> str:
    """The ``top`` passages of the documents at ``paths`` that match ``query``, best first, as
    ``[file, page N]`` + passage blocks separated by blank lines; a sentence when there is
    nothing to search or nothing matches.

    Raises:
        magimac.text.documents.DocumentError: a document cannot be read (one line naming it).
    """
    if not paths:
        return "No documents are attached to this conversation."
    docs = [load_document_cached(p) for p in dict.fromkeys(paths)]
    pieces = [(d, page, chunk) for d in docs for page in d.pages for chunk in split_passages(page.text, passage_chars)]
    scores = rank(query, [c for _, _, c in pieces])
    if not scores:
        names = ", ".join(d.name for d in docs)
        return f"No passage of {names} matches {query!r}."
    best = sorted(scores, key=lambda i: -scores[i])[:top]
    return "\n\n".join(f"{label(pieces[i][0], pieces[i][1].number)}\n{pieces[i][2]}" for i in best)


__all__ = ["search_documents", "DocumentError"]
