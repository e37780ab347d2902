"""`search_libraries`: what a search_documents tool will hand the model."""

from __future__ import annotations

from magimac.session.library import search_libraries
from magimac.testing.library_corpus import LIGHTHOUSE_PAGE, write_corpus
from magimac.text.library import index


def test_search_libraries_returns_numbered_passages_with_file_and_page(tmp_path):
    docs = write_corpus(tmp_path / "docs")
    index.add("docs", [docs])
    found = search_libraries(["docs"], "lighthouse keeper Ushant", k=3)
    assert found["mode"] == "bm25"
    first = found["passages"][0]
    assert (first["n"], first["document"], first["file"], first["page"]) == \
        (1, "ledger.pdf", str(docs / "ledger.pdf"), LIGHTHOUSE_PAGE)
    csv = search_libraries(["docs"], "baguette price", k=1)["passages"][0]
    assert (csv["document"], csv["page"]) == ("prices.csv", None)  # a file without pages
