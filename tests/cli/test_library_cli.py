"""`magimac library add | list | update | rm` and `magimac chat --library` (scripted checkpoint):
the bar's last line, unreadable files listed, and the passages with file and page in --json."""

from __future__ import annotations

import io
import json
import sys

from magimac.cli.main import main
from magimac.models.embedders import load_embedders
from magimac.testing.library_corpus import LIGHTHOUSE_PAGE, write_corpus


def run(capsys, *args):
    rc = main([*map(str, args)])
    out, err = capsys.readouterr()
    return rc, out, err


def test_add_list_update_rm(capsys, tmp_path):
    docs = write_corpus(tmp_path / "docs")
    rc, out, err = run(capsys, "library", "add", "docs", docs)
    assert rc == 0, err
    assert "no embedding model installed: libraries are searched by words only (BM25)" in err
    assert "not indexed: letter.doc: unsupported format (.doc); save it as .docx" in err
    assert "library docs: 8 added, 0 changed, 0 unchanged, 0 deleted; 19 pages read, 18 passages; " \
           "3 not readable" in err
    rc, out, err = run(capsys, "library", "list")
    assert rc == 0 and "docs" in out and "(1 scanned)" in out and "words (BM25)" in out
    (docs / "tool.py").unlink()
    rc, out, err = run(capsys, "library", "update", "docs")
    assert "0 added, 0 changed, 7 unchanged, 1 deleted" in err
    rc, out, err = run(capsys, "library", "add", "docs", docs)
    assert rc == 1 and err.startswith("magimac: library 'docs' already exists;")
    rc, out, err = run(capsys, "library", "rm", "docs")
    assert rc == 0 and "removed library docs" in err and docs.is_dir()
    rc, out, err = run(capsys, "library", "update", "docs")
    assert (rc, err) == (1, "magimac: no library named 'docs' (libraries: none yet); "
                            "make it with 'magimac library add docs FOLDER'\n")


def test_chat_json_reports_library_passages_with_file_and_page(capsys, monkeypatch, tmp_path,
                                                               scripted_checkpoint):
    docs = write_corpus(tmp_path / "docs")
    assert run(capsys, "library", "add", "docs", docs)[0] == 0
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    rc, out, err = run(capsys, "chat", "--model", scripted_checkpoint, "--json", "--library", "docs",
                       "Who was the lighthouse keeper of Ushant Island?")
    assert rc == 0, err
    lines = [json.loads(x) for x in out.splitlines()]
    documents = lines[0]
    assert documents["type"] == "documents" and documents["libraries"] == ["docs"]
    assert documents["mode"] == "bm25"
    first = documents["passages"][0]
    assert (first["n"], first["document"], first["file"], first["page"]) == \
        (1, "ledger.pdf", str(docs / "ledger.pdf"), LIGHTHOUSE_PAGE)
    assert "Marguerite Le Bris" in first["text"] and first["score"] > 0
    assert lines[-1] == {"type": "done", "finish_reason": "stop"}
    rc, out, err = run(capsys, "chat", "--model", scripted_checkpoint, "--library", "docs",
                       "Who was the lighthouse keeper of Ushant Island?")
    assert rc == 0 and f"library docs (words only): " in err and f"[1] ledger.pdf p.{LIGHTHOUSE_PAGE} (" in err
    rc, out, err = run(capsys, "chat", "--model", scripted_checkpoint, "--library", "nope", "Hi")
    assert rc == 1 and "magimac: no library named 'nope' (libraries: docs)" in err


def test_the_embedding_model_is_a_registry_entry():
    e = load_embedders()["multilingual-e5-small"]
    assert (e.hub_id, e.dim, e.query_prefix, e.passage_prefix) == (
        "mlx-community/multilingual-e5-small-mlx", 384, "query: ", "passage: ")
    assert not e.installed()


def test_read_scans_reads_scanned_pages_with_the_model(capsys, tmp_path, scripted_checkpoint):
    """--read-scans: each page without a text layer goes to the model as an image; the scripted
    checkpoint "reads" it as its scripted answer, which becomes the page's searchable text."""
    from magimac.testing.checkpoint import DEFAULT_SCRIPT_ANSWER
    from magimac.text.library import search

    docs = write_corpus(tmp_path / "docs")
    rc, out, err = run(capsys, "library", "add", "docs", docs, "--read-scans", "--model", scripted_checkpoint)
    assert rc == 0, err
    assert "read ledger.pdf p.12 from its image in " in err and "read scan.pdf p.1 from its image in " in err
    assert "9 added" in err and "2 scanned pages read by the model in " in err
    assert "not indexed: broken.pdf: not a PDF file (no %PDF header)" in err  # still refused as before
    hits = search.search("docs", DEFAULT_SCRIPT_ANSWER).hits
    assert {(h.name, h.page) for h in hits} == {("ledger.pdf", 12), ("scan.pdf", 1)}


def test_with_an_embedding_model_installed_chat_searches_by_meaning(capsys, monkeypatch, tmp_path,
                                                                   isolated_dirs, scripted_checkpoint):
    """An embedder entry in the user's models.toml, installed where `magimac pull` puts it: the
    library gets vectors, and a French question finds the English passage (hybrid)."""
    from magimac.testing.embedder import build_embedding_model
    from magimac.testing.library_corpus import CONCEPTS

    (isolated_dirs / "config" / "models.toml").write_text(
        '[embedders.tiny]\nhub_id = "example/tiny"\ndim = 32\nquery_prefix = ""\npassage_prefix = ""\n')
    build_embedding_model(isolated_dirs / "models" / "embedders" / "tiny", CONCEPTS)
    docs = write_corpus(tmp_path / "docs")
    rc, out, err = run(capsys, "library", "add", "docs", docs)
    assert rc == 0 and "18 vectors" in err and "no embedding model" not in err
    rc, out, err = run(capsys, "library", "list")
    assert "words + meaning (tiny)" in out
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    rc, out, err = run(capsys, "chat", "--model", scripted_checkpoint, "--json", "--library", "docs",
                       "Délai de paiement des factures ?")
    documents = json.loads(out.splitlines()[0])
    assert documents["mode"] == "hybrid" and not documents["notes"]
    assert "billing.txt" in [p["document"] for p in documents["passages"][:2]]


def test_add_says_what_it_skipped(capsys, tmp_path):
    import os

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "notes.txt").write_text("The lighthouse keeper rang the bell.")
    os.mkfifo(docs / "pipe.txt")
    rc, out, err = run(capsys, "library", "add", "docs", docs, "--no-embeddings")
    assert rc == 0 and "library docs: 1 added, 0 changed, 0 unchanged, 0 deleted; 1 pages read, 1 passages; " \
        "skipped 1 that is not a regular file (" in err


def test_passages_found_that_do_not_fit_the_demo_are_said_not_to_fit(capsys, monkeypatch, tmp_path):
    """The demo's 512-token context has no room for a library's ~1000-character passages: the
    line says they were found but do not fit, and what would help, not "no passage found"."""
    docs = tmp_path / "big"
    docs.mkdir()
    (docs / "policy.md").write_text("\n\n".join(f"Refund rule {i}: " + "12 34 56 78 90 " * 60 for i in range(6)),
                                    encoding="utf-8")  # digits are a token each: some 600 tokens a passage
    assert run(capsys, "library", "add", "big", docs)[0] == 0
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    rc, out, err = run(capsys, "chat", "--library", "big", "refund")
    assert rc == 0, err
    err = " ".join(err.split())
    assert "library big (words only): 6 passages found, but none fits: " in err
    assert "of this model's 512-token context were left for them; use a model with a longer context, " \
           "or ask a shorter question" in err
    assert "no passage found" not in err
