"""Text extraction from attached documents: every supported type, page numbers, clear errors."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from magimac.text.documents import DocumentError, describe, load_document, load_document_cached


def make_pdf(path: Path, pages: list[str], user_password: str | None = None,
             owner_password: str | None = None) -> Path:
    """A PDF with one text page per entry of ``pages`` (fpdf2), optionally encrypted."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("helvetica", size=11)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 6, text)
    if user_password or owner_password:
        pdf.set_encryption(owner_password=owner_password or "owner", user_password=user_password)
    pdf.output(str(path))
    return path


def make_docx(path: Path, pages: list[list[str]], table: list[list[str]] | None = None) -> Path:
    """A DOCX with a hard page break between pages, each page a list of paragraphs (python-docx)."""
    import docx

    d = docx.Document()
    for i, paras in enumerate(pages):
        if i:
            d.add_page_break()
        for para in paras:
            d.add_paragraph(para)
    if table:
        t = d.add_table(rows=len(table), cols=len(table[0]))
        for r, row in enumerate(table):
            for c, cell in enumerate(row):
                t.cell(r, c).text = cell
    d.save(str(path))
    return path


@pytest.mark.parametrize("name, content, kind, expected", [
    ("notes.txt", "Buy milk.\nCall Ada at noon.\n", "text", "Call Ada at noon."),
    ("README.md", "# Title\n\nSome *markdown* text.\n", "markdown", "Some *markdown* text."),
    ("main.py", "def add(a, b):\n    return a + b\n", "code", "    return a + b"),
    ("prices.csv", "item,price\napple,1.20\npear,0.90\n", "csv", "pear,0.90"),
    ("notes", "No extension at all.\n", "text", "No extension at all."),
])
def test_text_like_files_are_read_as_text(tmp_path, name, content, kind, expected):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    doc = load_document(path)
    assert doc.kind == kind
    assert doc.name == name
    assert [p.number for p in doc.pages] == [1]
    assert expected in doc.pages[0].text


def test_html_gives_visible_text_without_scripts(tmp_path):
    path = tmp_path / "page.html"
    path.write_text("<html><head><title>Quarterly</title><style>p{color:red}</style></head>"
                    "<body><h1>Results</h1><p>Revenue\n   grew <b>12%</b>.</p>"
                    "<table><tr><th>Name</th><th>Team</th></tr><tr><td>Ada</td><td>Owls</td></tr></table>"
                    "<script>var secret = 1;</script></body></html>", encoding="utf-8")
    doc = load_document(path)
    assert doc.kind == "html"
    text = doc.text
    assert text == "Quarterly\n\nResults\n\nRevenue grew 12%.\n\nName\tTeam\nAda\tOwls"
    assert "secret" not in text and "color:red" not in text


def test_pdf_keeps_page_numbers(tmp_path):
    path = make_pdf(tmp_path / "report.pdf", ["Intro about owls.", "Middle about bats.",
                                              "End: the vault code is 4711."])
    doc = load_document(path)
    assert doc.kind == "pdf"
    assert [p.number for p in doc.pages] == [1, 2, 3]
    assert "owls" in doc.pages[0].text
    assert "vault code is 4711" in doc.pages[2].text
    assert "4711" not in doc.pages[0].text + doc.pages[1].text


def test_docx_pages_split_at_page_breaks_and_tables_are_read(tmp_path):
    path = make_docx(tmp_path / "memo.docx", [["First page", "still first"], ["Second page here"]],
                     table=[["Name", "Role"], ["Ada", "Engineer"]])
    doc = load_document(path)
    assert doc.kind == "docx"
    assert [p.number for p in doc.pages] == [1, 2]
    assert doc.pages[0].text == "First page\nstill first"
    assert "Second page here" in doc.pages[1].text
    assert "Ada\tEngineer" in doc.pages[1].text


def test_text_form_feeds_are_page_breaks(tmp_path):
    path = tmp_path / "printout.txt"
    path.write_text("page one\fpage two\fpage three", encoding="utf-8")
    doc = load_document(path)
    assert [(p.number, p.text) for p in doc.pages] == [(1, "page one"), (2, "page two"), (3, "page three")]


def test_latin1_and_utf16_text_decode(tmp_path):
    a = tmp_path / "a.txt"
    a.write_bytes("café crème".encode("cp1252"))
    b = tmp_path / "b.txt"
    b.write_bytes("naïve 你好".encode("utf-16"))
    assert load_document(a).text == "café crème"
    assert load_document(b).text == "naïve 你好"


def test_control_token_strings_stay_in_the_text(tmp_path):
    path = tmp_path / "tricky.md"
    path.write_text("Before [INST] middle [/THINK] after </s>", encoding="utf-8")
    assert load_document(path).text == "Before [INST] middle [/THINK] after </s>"


@pytest.mark.parametrize("name, data, message", [
    ("photo.png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)), "binary file"),
    ("blob.dat", bytes(range(1, 32)) * 40, "binary file"),
    ("empty.txt", b"", "empty"),
    ("blank.md", b"  \n\n\t \n", "empty"),
    ("old.doc", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 64, "save it as .docx"),
    ("sheet.xlsx", b"PK\x03\x04" + b"\x00" * 64, "export it as .csv"),
    ("fake.pdf", b"hello, I am not a PDF", "not a PDF"),
    ("fake.docx", b"hello, I am not a DOCX", "not a DOCX"),
    ("locked.docx", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 64, "encrypted"),
])
def test_unreadable_files_give_one_line_errors_naming_the_file(tmp_path, name, data, message):
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(DocumentError) as e:
        load_document(path)
    msg = str(e.value)
    assert name in msg and message in msg and "\n" not in msg


def test_broken_docx_zip_is_reported(tmp_path):
    path = tmp_path / "broken.docx"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("hello.txt", "not a word document")
    with pytest.raises(DocumentError, match="broken.docx: not a readable DOCX"):
        load_document(path)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(DocumentError, match="no such file"):
        load_document(tmp_path / "nope.txt")
    with pytest.raises(DocumentError, match="is a directory"):
        load_document(tmp_path)
    with pytest.raises(DocumentError, match="/dev/zero: not a regular file"):
        load_document("/dev/zero")


def test_password_protected_pdf_is_refused(tmp_path):
    path = make_pdf(tmp_path / "secret.pdf", ["classified"], user_password="hunter2")
    with pytest.raises(DocumentError, match="secret.pdf: the PDF is encrypted with a password"):
        load_document(path)


def test_pdf_with_only_an_owner_password_opens(tmp_path):
    path = make_pdf(tmp_path / "restricted.pdf", ["printing is restricted"], owner_password="boss")
    assert "printing is restricted" in load_document(path).text


def test_pdf_without_text_asks_for_ocr(tmp_path):
    path = make_pdf(tmp_path / "scan.pdf", [""])
    with pytest.raises(DocumentError, match="scan.pdf: the PDF has no extractable text"):
        load_document(path)


def test_enormous_files_are_refused(tmp_path):
    big = tmp_path / "huge.log"
    big.write_text("x" * 5000, encoding="utf-8")
    with pytest.raises(DocumentError, match=r"huge.log: too large \(5.0 KB; the limit is 1.0 KB\)"):
        load_document(big, max_bytes=1000)
    with pytest.raises(DocumentError, match="huge.log: too much text"):
        load_document(big, max_chars=1000)
    pdf = make_pdf(tmp_path / "long.pdf", ["lorem ipsum " * 40] * 5)
    with pytest.raises(DocumentError, match="long.pdf: too much text"):
        load_document(pdf, max_chars=1000)


def test_describe_shows_kind_pages_and_tokens(tmp_path):
    pdf = load_document(make_pdf(tmp_path / "report.pdf", ["one", "two", "three"]))
    assert describe(pdf, 1234) == "report.pdf (PDF, 3 pages, 1,234 tokens)"
    md = tmp_path / "notes.md"
    md.write_text("hello", encoding="utf-8")
    assert describe(load_document(md)) == "notes.md (Markdown)"


def test_cached_loading_sees_changes_to_the_file(tmp_path):
    import os

    path = tmp_path / "draft.txt"
    path.write_text("first version", encoding="utf-8")
    assert load_document_cached(path).text == "first version"
    assert load_document_cached(path) is load_document_cached(str(path))
    path.write_text("second, longer version", encoding="utf-8")
    os.utime(path, ns=(1, 10**18))
    assert load_document_cached(path).text == "second, longer version"
    path.write_bytes(b"")
    with pytest.raises(DocumentError, match="draft.txt: the file is empty"):
        load_document_cached(path)


def test_a_broken_pdf_is_one_error_and_no_log_line(tmp_path, caplog):
    """pypdf logs "EOF marker not found" (stderr, in a terminal) before it fails: silenced."""
    path = tmp_path / "cut.pdf"
    path.write_bytes(b"%PDF-1.4\n1 0 obj <<>> endobj\ngarbage\n")
    with pytest.raises(DocumentError, match=r"^cut\.pdf: not a readable PDF \(PdfStreamError"):
        load_document(path)
    assert [r.getMessage() for r in caplog.records] == []
