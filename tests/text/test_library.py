"""Libraries: the index of a folder (every file type, unreadable files), incremental updates,
deleted files, owner-only permissions, and search by words alone and by words and meaning with
a tiny embedding model made here."""

from __future__ import annotations

import os
import sqlite3
import stat
import time

import pytest

from magimac.engine.embed import MlxEmbedder
from magimac.testing.embedder import build_embedding_model
from magimac.testing.library_corpus import CONCEPTS, LIGHTHOUSE_PAGE, write_corpus
from magimac.text.library import index, search, store


@pytest.fixture(scope="module")
def embedder(tmp_path_factory):
    e = MlxEmbedder(build_embedding_model(tmp_path_factory.mktemp("emb") / "tiny", CONCEPTS), "tiny")
    yield e
    e.close()


@pytest.fixture
def corpus(tmp_path):
    return write_corpus(tmp_path / "docs")


def test_add_indexes_every_type_and_lists_what_it_cannot_read(corpus):
    report = index.add("docs", [corpus])
    assert report.added == 8 and report.pages == 19
    reasons = {os.path.basename(p): r for p, r in report.problems}
    assert reasons == {
        "broken.pdf": "broken.pdf: not a PDF file (no %PDF header)",
        "letter.doc": "letter.doc: unsupported format (.doc); save it as .docx",
        "scan.pdf": "scan.pdf: the PDF has no extractable text (scanned pages?); run it through OCR first",
    }
    info = store.info("docs")
    assert (info.files, info.problems, info.scanned_pages, info.embedder) == (8, 3, 1, "")
    con = sqlite3.connect(store.index_path("docs"))
    kinds = sorted(k for (k,) in con.execute("SELECT kind FROM files"))
    assert kinds == ["code", "code", "csv", "docx", "html", "markdown", "pdf", "text"]
    assert not con.execute("SELECT 1 FROM files WHERE path LIKE '%hidden%' OR path LIKE '%.png'").fetchall()
    assert stat.S_IMODE(os.stat(store.index_path("docs")).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(store.library_dir("docs")).st_mode) == 0o700


def test_the_answer_on_one_page_of_a_long_pdf_is_found_with_its_page(corpus):
    index.add("docs", [corpus])
    found = search.search("docs", "Who was the lighthouse keeper of Ushant?")
    top = found.hits[0]
    assert (top.name, top.page, top.paged, found.mode) == ("ledger.pdf", LIGHTHOUSE_PAGE, True, "bm25")
    assert top.file == str(corpus / "ledger.pdf") and "Marguerite Le Bris" in top.text


def test_update_rereads_only_changed_files_and_drops_deleted_ones(corpus):
    index.add("docs", [corpus])
    again = index.update("docs")
    assert (again.added, again.changed, again.unchanged, again.deleted, again.pages) == (0, 0, 8, 0, 0)
    billing = corpus / "billing.txt"
    billing.write_text("Billing terms\n\nInvoices are now due within sixty days.\n", encoding="utf-8")
    os.utime(billing, ns=(time.time_ns(), time.time_ns() + 10**9))
    touched = corpus / "recette.md"
    os.utime(touched, ns=(time.time_ns(), time.time_ns() + 10**9))  # same bytes, new time
    (corpus / "museum.html").unlink()
    r = index.update("docs")
    assert (r.added, r.changed, r.unchanged, r.deleted, r.pages) == (0, 1, 6, 1, 1)
    assert search.search("docs", "sixty").hits[0].name == "billing.txt"
    assert not search.search("docs", "thirty").hits  # the old text is gone
    assert not search.search("docs", "museum Sundays").hits
    assert store.info("docs").files == 7


def test_a_file_that_becomes_unreadable_leaves_the_index_and_is_listed(corpus):
    index.add("docs", [corpus])
    (corpus / "billing.txt").write_bytes(b"\x00\x01binary now" * 10)
    r = index.update("docs")
    assert [(os.path.basename(p), why) for p, why in r.problems if "billing" in p] == \
        [("billing.txt", "billing.txt: binary file (not text); attach text, PDF or DOCX files")]
    assert not search.search("docs", "invoices").hits


def test_a_killed_run_leaves_the_previous_index_usable(corpus, monkeypatch):
    index.add("docs", [corpus])
    (corpus / "billing.txt").write_text("Invoices are due in ninety days.\n", encoding="utf-8")
    os.utime(corpus / "billing.txt", ns=(time.time_ns(), time.time_ns() + 10**9))

    def killed(*_a, **_k):
        raise KeyboardInterrupt
    monkeypatch.setattr(index, "_insert", killed)  # dies inside the file's transaction
    with pytest.raises(KeyboardInterrupt):
        index.update("docs")
    assert search.search("docs", "thirty").hits[0].name == "billing.txt"  # the old rows stand
    with pytest.raises(KeyboardInterrupt):
        index.add("other", [corpus])
    assert not store.exists("other") and store.names() == ["docs"]  # nothing half-made


def test_names_and_folders_are_checked_in_one_line(tmp_path, corpus):
    with pytest.raises(store.LibraryError, match="library name 'a b'"):
        index.add("a b", [corpus])
    with pytest.raises(store.LibraryError, match="nowhere: no such folder"):
        index.add("x", [tmp_path / "nowhere"])
    with pytest.raises(store.LibraryError, match="no library named 'nope' \\(libraries: none yet\\)"):
        search.search("nope", "q")


def test_hybrid_search_finds_a_french_question_and_a_paraphrase(corpus, embedder):
    index.add("docs", [corpus], embedder=embedder)
    assert store.info("docs").embedder == "tiny"
    question = "Délai de paiement des factures ?"  # no word in common with any file
    words_only = search.search("docs", question)
    assert all(h.name != "billing.txt" for h in words_only.hits)
    both = search.search("docs", question, embedder=embedder)
    billing = next(h for h in both.hits if h.name == "billing.txt")
    assert both.mode == "hybrid" and billing in both.hits[:2]  # tied with recette.md's "de"
    assert (billing.dense_rank, billing.bm25_rank) == (1, None)
    assert billing.score == pytest.approx(1 / (search.RRF_K + 1))
    para = search.search("docs", "beacon guardian isle", embedder=embedder)  # paraphrase, no shared word
    assert {(h.name, h.page) for h in para.hits[:2]} == {("ledger.pdf", LIGHTHOUSE_PAGE), ("phare.docx", 1)}


def test_vectors_are_added_by_update_and_missing_ones_are_said(corpus, embedder):
    index.add("docs", [corpus])
    r = search.search("docs", "factures", embedder=embedder)
    assert r.mode == "bm25" and r.notes == [
        "library docs: no vectors of tiny yet; searched by words only (run 'magimac library update docs')"]
    assert index.update("docs", embedder=embedder).embedded == 18
    assert search.search("docs", "factures", embedder=embedder).mode == "hybrid"
    assert index.update("docs", embedder=embedder).embedded == 0


def test_what_is_not_a_regular_file_is_skipped_and_counted(tmp_path):
    """A FIFO (reading it would wait for a writer forever) and a link out of the folder are
    passed over; a link to a file inside the folder is read."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "notes.txt").write_text("The lighthouse keeper rang the bell.")
    (docs / "again.txt").symlink_to(docs / "notes.txt")
    os.mkfifo(docs / "pipe.txt")
    (tmp_path / "secret.txt").write_text("outside the folder")
    (docs / "leak.txt").symlink_to(tmp_path / "secret.txt")
    report = index.add("docs", [docs])
    assert sorted(os.path.basename(p) for p in report.skipped) == ["leak.txt", "pipe.txt"]
    assert report.added == 2 and report.problems == []
