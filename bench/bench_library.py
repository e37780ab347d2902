"""Benchmark library search and indexing.

1. Retrieval: recall@5 and MRR (first relevant page's reciprocal rank, 0 beyond the top 10) of
   BM25 alone against hybrid (BM25 + dense vectors, reciprocal rank fusion, k = 60) on the
   labelled questions of ``bench/data/library/questions.json`` over the public-domain corpus
   beside it (``SOURCE.md``: the Bill of Rights, 1791, and the Déclaration des droits de
   l'homme et du citoyen, 1789; one amendment or article per page). Sets: ``en`` (English
   question, English text), ``fr`` (French on French), ``cross`` (a question in one language,
   the answer in the other).
   The dense side uses ``multilingual-e5-small`` when it is installed (`magimac pull
   multilingual-e5-small`); otherwise a tiny *constructed* model (`magimac.testing.embedder`)
   whose vectors come from a bilingual word list written for this corpus (`LEXICON`). Its
   numbers measure the fusion and the pipeline with a known dense signal, not the quality of a
   trained model: the table says which one ran.
2. Indexing (words only): pages/s of `index.add` on a generated 200-page PDF and on 100 and 400
   text files of two pages each, then the peak Python heap (tracemalloc, a second run of each)
   while indexing 100 and then 400 files (flat memory in the number of files means the two
   peaks are close), and the process's maximum RSS.

Prints tables and writes ``bench/out/library.json``. Usage::

    python bench/bench_library.py [--pdf-pages 200]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "bench" / "data" / "library"
OUT = ROOT / "bench" / "out"

#: Bilingual word groups for the constructed embedder (content words of the two texts).
LEXICON = [
    ["twice", "deux", "fois", "same", "meme", "offence", "crime", "delit", "jeopardy"],
    ["counsel", "lawyer", "avocat", "defence", "assistance"],
    ["soldier", "soldiers", "quartered", "soldats", "loger"],
    ["searches", "searching", "search", "fouiller", "seizures", "warrant", "warrants", "mandat"],
    ["cruel", "punishment", "punishments", "peine", "peines", "puni", "punisse"],
    ["powers", "pouvoirs", "delegated", "reserved"],
    ["states", "state", "etats"],
    ["press", "presse", "speech", "imprimer", "ecrire", "parler"],
    ["jury", "trial", "tried", "juge", "jugee", "jugement"],
    ["sovereignty", "souverainete", "nation"],
    ["innocent", "presumed", "presume", "coupable", "guilty"],
    ["property", "propriete", "prive", "deprived", "taken"],
    ["compensation", "indemnite"],
    ["liberty", "liberte", "freedom", "libres", "libre", "free"],
    ["taxes", "contribution", "impots", "means", "facultes", "moyens", "repartie", "repartis"],
    ["separation", "constitution"],
    ["accused", "accuse", "accusation"],
    ["religion", "religieuses", "religious"],
    ["law", "loi", "lois"],
    ["home", "house", "houses", "maison"],
    ["police", "force", "publique"],
]


def _retrieval(embedder, label: str) -> dict:
    from magimac.text.library import index, search

    questions = json.loads((DATA / "questions.json").read_text(encoding="utf-8"))["questions"]
    index.add("bench", [DATA / "en", DATA / "fr"], embedder=embedder)
    rows = {}
    for mode, emb in (("bm25", None), ("hybrid", embedder)):
        for q in questions:
            hits = search.search("bench", q["q"], k=10, embedder=emb).hits
            ranks = [i for i, h in enumerate(hits, 1) if h.name == q["file"] and h.page == q["page"]]
            r = ranks[0] if ranks else None
            for key in (q["set"], "all"):
                acc = rows.setdefault((mode, key), {"n": 0, "recall@5": 0.0, "mrr": 0.0})
                acc["n"] += 1
                acc["recall@5"] += 1.0 if r is not None and r <= 5 else 0.0
                acc["mrr"] += 1.0 / r if r else 0.0
    out = {}
    for (mode, key), acc in rows.items():
        out.setdefault(key, {})[mode] = {"n": acc["n"], "recall@5": round(acc["recall@5"] / acc["n"], 3),
                                         "mrr": round(acc["mrr"] / acc["n"], 3)}
    return {"dense_model": label, "sets": out}


def _embedder(work: Path):
    from magimac.engine.embed import MlxEmbedder
    from magimac.models.embedders import installed_embedder

    entry = installed_embedder()
    if entry is not None:
        return MlxEmbedder(entry.install_dir(), entry.name, entry.query_prefix, entry.passage_prefix), entry.name
    from magimac.testing.embedder import build_embedding_model

    path = build_embedding_model(work / "lexicon-model", LEXICON, hidden=64)
    return MlxEmbedder(path, "constructed-lexicon"), "constructed bilingual lexicon model (not trained; see doc)"


def _indexing(work: Path, pdf_pages: int) -> dict:
    from magimac.testing.library_corpus import pdf_bytes
    from magimac.text.library import index

    pdf_dir = work / "pdf"
    pdf_dir.mkdir()
    text = ("The committee met in the long room and read the minutes of the last meeting; "
            "the accounts were passed and the new members admitted. ") * 12
    (pdf_dir / "minutes.pdf").write_bytes(pdf_bytes([f"Page {n}. {text}" for n in range(1, pdf_pages + 1)]))
    t0 = time.perf_counter()
    r = index.add("pdf", [pdf_dir])
    pdf_s = time.perf_counter() - t0
    result = {"pdf_pages": r.pages, "pdf_seconds": round(pdf_s, 2), "pdf_pages_per_s": round(r.pages / pdf_s, 1)}
    for n in (100, 400):
        d = work / f"files{n}"
        d.mkdir()
        for i in range(n):
            (d / f"note{i:04d}.txt").write_text(f"Note {i}. {text}\f{text}", encoding="utf-8")
        t0 = time.perf_counter()
        r = index.add(f"files{n}", [d])  # timed without tracemalloc (it slows allocation)
        s = time.perf_counter() - t0
        tracemalloc.start()
        index.add(f"traced{n}", [d])
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        result[f"files{n}"] = {"files": r.added, "pages": r.pages, "seconds": round(s, 2),
                               "pages_per_s": round(r.pages / s, 1), "peak_heap_mib": round(peak / 2**20, 2)}
    import resource

    result["process_max_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    result["peak_ratio_400_vs_100"] = round(result["files400"]["peak_heap_mib"] / result["files100"]["peak_heap_mib"], 2)
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pdf-pages", type=int, default=200)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        os.environ["MAGIMAC_DATA_DIR"] = str(work / "data")  # the bench's libraries, not the person's
        embedder, label = _embedder(work)
        retrieval = _retrieval(embedder, label)
        embedder.close()
        indexing = _indexing(work, args.pdf_pages)
    print(f"retrieval (dense side: {retrieval['dense_model']})")
    print(f"{'set':<6} {'n':>3}  {'BM25 R@5':>9} {'hybrid R@5':>10}  {'BM25 MRR':>9} {'hybrid MRR':>10}")
    for key in ("en", "fr", "cross", "all"):
        b, h = retrieval["sets"][key]["bm25"], retrieval["sets"][key]["hybrid"]
        print(f"{key:<6} {b['n']:>3}  {b['recall@5']:>9.3f} {h['recall@5']:>10.3f}  {b['mrr']:>9.3f} {h['mrr']:>10.3f}")
    print(f"\nindexing: {indexing['pdf_pages']} PDF pages in {indexing['pdf_seconds']} s "
          f"({indexing['pdf_pages_per_s']} pages/s)")
    for n in (100, 400):
        f = indexing[f"files{n}"]
        print(f"  {f['files']} text files, {f['pages']} pages: {f['seconds']} s ({f['pages_per_s']} pages/s), "
              f"peak Python heap {f['peak_heap_mib']} MiB")
    print(f"  peak heap 400 files / 100 files: {indexing['peak_ratio_400_vs_100']}; process max RSS "
          f"{indexing['process_max_rss_mib']} MiB (MLX and the embedder included)")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "library.json").write_text(json.dumps({"retrieval": retrieval, "indexing": indexing}, indent=1))
    print(f"wrote {OUT / 'library.json'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
