"""search_documents over attached documents: passages with file and page, best first."""

from __future__ import annotations

from magimac.core.events import ToolCall
from magimac.text.doc_search import search_documents
from magimac.tools.toolbox import Toolbox


def test_passages_come_with_file_and_page(tmp_path):
    doc = tmp_path / "manual.txt"
    doc.write_text("The kettle boils water.\f\nDescale the kettle with vinegar every month.\f\nThe lid is blue.")
    other = tmp_path / "notes.md"
    other.write_text("Nothing about appliances here.")
    out = search_documents("how to descale", [str(doc), str(other)])
    assert out.startswith("[manual.txt, page 2]\nDescale the kettle with vinegar every month.")
    assert "notes.md" not in out
    assert search_documents("zebra", [str(doc)]) == "No passage of manual.txt matches 'zebra'."
    assert search_documents("x", []) == "No documents are attached to this conversation."


def test_the_tool_reads_the_conversations_documents_and_reports_a_missing_one(tmp_path):
    doc = tmp_path / "a.txt"
    doc.write_text("Paris is the capital of France.")
    box = Toolbox(("search_documents",))
    call = ToolCall("c00000001", "search_documents", {"query": "capital"}, '{"query": "capital"}')
    assert box.run(call, [str(doc)]).output == "[a.txt]\nParis is the capital of France."
    missing = box.run(call, [str(tmp_path / "gone.txt")])
    assert missing.output is None and "gone.txt" in missing.error
    bad = box.run(ToolCall("c00000002", "search_documents", {"q": 1}, '{"q": 1}'), [str(doc)])
    assert bad.error == "search_documents needs the argument 'query' (a string)"
