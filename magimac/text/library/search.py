"""Searching libraries: BM25 always, dense vectors when an embedding model is there, fused.

The fusion is reciprocal rank fusion (Cormack, Clarke and Büttcher, SIGIR 2009): a passage's
score is the sum over the two rankings of ``1 / (RRF_K + rank)`` (rank from 1), with the
paper's ``RRF_K = 60``. It needs no calibration between BM25 scores and cosine similarities,
which live on unrelated scales. Each ranking contributes its best `CANDIDATES` passages.

`search` is the one entry point: `magimac chat --library`, the app and (later) the
``search_documents`` tool of the tools issue call it.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from magimac.text.library import store
from magimac.text.library.embedding import Embedder, from_blobs
from magimac.text.passages import fts_query

RRF_K = 60
CANDIDATES = 50
#: Words-only hits scoring under this fraction of the best one are left out (BM25's IDF makes
#: a word found on every page worth almost nothing: such a hit shares only common words).
BM25_FLOOR = 0.05


@dataclass(frozen=True)
class Hit:
    """One passage found.

    Attributes:
        library: the library's name; file: the file's absolute path; page: 1-based page.
        paged: whether page numbers mean something for the file (PDF, DOCX, several pages).
        text: the passage text.
        score: higher is better: the RRF score (hybrid) or BM25 negated (words only).
        bm25_rank / dense_rank: the passage's 1-based rank in each list, None when absent.
    """

    library: str
    file: str
    page: int
    paged: bool
    text: str
    score: float
    bm25_rank: int | None = None
    dense_rank: int | None = None

    @property
    def name(self) -> str:
        """The file's name (last path component)."""
        return Path(self.file).name


@dataclass
class Results:
    """What `search` found.

    Attributes:
        hits: the best passages, best first.
        mode: ``"hybrid"`` (BM25 and vectors fused) or ``"bm25"``.
        notes: one-line notes for people (why the vectors were not used).
    """

    hits: list[Hit] = field(default_factory=list)
    mode: str = "bm25"
    notes: list[str] = field(default_factory=list)


def search(libraries: str | list[str], query: str, k: int = 5, embedder: Embedder | None = None) -> Results:
    """The ``k`` passages of ``libraries`` that best answer ``query``.

    Args:
        libraries: a library name or several (their hits are merged by score).
        query: the question, in any language; its words are the BM25 query and, with an
            embedder, its vector the dense one.
        k: how many passages to return.
        embedder: an `Embedder` whose vectors the libraries store; None: BM25 only.

    Returns:
        `Results`; ``mode`` is ``"hybrid"`` only when every library had vectors of ``embedder``.

    Raises:
        LibraryError: a library does not exist or its index cannot be read.
    """
    names = [libraries] if isinstance(libraries, str) else list(libraries)
    out = Results(mode="hybrid" if embedder is not None else "bm25")
    qvec = embedder.embed_query(query) if embedder is not None else None
    for name in names:
        con = store.open_index(name)
        try:
            hits, note = _search_one(con, name, query, k, embedder, qvec)
        finally:
            con.close()
        out.hits.extend(hits)
        if note:
            out.notes.append(note)
            out.mode = "bm25"
    out.hits.sort(key=lambda h: -h.score)
    del out.hits[k:]
    return out


def _search_one(con: sqlite3.Connection, name: str, query: str, k: int, embedder, qvec):
    bm25 = _bm25(con, query, CANDIDATES)
    dense, note = [], None
    if embedder is not None:
        m = store.meta(con)
        if m.get("embedder") != embedder.name:
            note = (f"library {name}: no vectors of {embedder.name} yet; searched by words only "
                    f"(run 'magimac library update {name}')")
        else:
            dense = _dense(con, qvec, int(m["dim"]), CANDIDATES)
    if embedder is not None and note is None:
        scores = _rrf([bm25, dense])
    else:  # words only: drop matches of nothing but common words ("the", "of"), near zero
        top = bm25[0][1] if bm25 else 0.0
        scores = {pid: s for pid, s in bm25 if s >= BM25_FLOOR * top}
    best = sorted(scores, key=lambda p: -scores[p])[:k]
    bm25_rank = {pid: i + 1 for i, (pid, _) in enumerate(bm25)}
    dense_rank = {pid: i + 1 for i, (pid, _) in enumerate(dense)}
    return [_hit(con, name, pid, scores[pid], bm25_rank.get(pid), dense_rank.get(pid)) for pid in best], note


def _bm25(con, query: str, n: int) -> list[tuple[int, float]]:
    """``(passage id, -bm25)`` of the best ``n`` matches, best first."""
    q = fts_query(query)
    if not q:
        return []
    rows = con.execute("SELECT rowid, bm25(passages_fts) FROM passages_fts WHERE passages_fts MATCH ? "
                       "ORDER BY bm25(passages_fts) LIMIT ?", (q, n))
    return [(int(i), -float(s)) for i, s in rows]


def _dense(con, qvec: np.ndarray, dim: int, n: int) -> list[tuple[int, float]]:
    """``(passage id, cosine)`` of the ``n`` passages nearest ``qvec``, best first."""
    rows = con.execute("SELECT id, vector FROM passages WHERE vector IS NOT NULL").fetchall()
    if not rows:
        return []
    ids = np.array([r[0] for r in rows])
    sims = from_blobs([r[1] for r in rows], dim) @ np.asarray(qvec, dtype=np.float32)
    top = np.argsort(-sims, kind="stable")[:n]
    return [(int(ids[i]), float(sims[i])) for i in top]


def _rrf(rankings: list[list[tuple[int, float]]]) -> dict[int, float]:
    """Reciprocal rank fusion of rankings (best first): ``{id: sum 1/(RRF_K + rank)}``."""
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, (pid, _) in enumerate(ranking, start=1):
            scores[pid] = scores.get(pid, 0.0) + 1.0 / (RRF_K + rank)
    return scores


def _hit(con, name: str, pid: int, score: float, bm25_rank, dense_rank) -> Hit:
    path, kind, pages, page, text = con.execute(
        "SELECT f.path, f.kind, f.pages, p.page, p.text FROM passages p JOIN files f ON f.id = p.file_id "
        "WHERE p.id=?", (pid,)).fetchone()
    return Hit(library=name, file=path, page=int(page), paged=kind in ("pdf", "docx") or pages > 1,
               text=text, score=score, bm25_rank=bm25_rank, dense_rank=dense_rank)
