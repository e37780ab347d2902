"""A small folder of documents for library tests: every file type, English and French, a
paraphrase, a scanned page, and files that cannot be read.

`write_corpus` returns the folder; `CONCEPTS` are the word groups the tiny embedding model of
`magimac.testing.embedder` gives one meaning each, so that the French question "Quand faut-il
régler les factures ?" lands on the English passage about invoices, which shares none of its
words.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

#: Word groups that mean the same thing, across English and French (for the tiny embedder).
CONCEPTS = [
    ["invoice", "invoices", "bill", "bills", "facture", "factures"],
    ["pay", "paid", "payment", "settle", "regler", "payer", "paiement"],
    ["days", "day", "jours", "jour"],
    ["thirty", "30", "trente"],
    ["lighthouse", "phare", "beacon"],
    ["keeper", "gardien", "guardian"],
    ["island", "ile", "isle"],
    ["bread", "pain", "loaf"],
    ["flour", "farine"],
]

PDF_PAGES = 12
#: The page of the long PDF holding the lighthouse answer (1-based).
LIGHTHOUSE_PAGE = 9


def pdf_bytes(pages: list[str], scanned: set[int] = frozenset()) -> bytes:
    """A PDF (fpdf2) with one page per text; pages in ``scanned`` (1-based) hold only an
    image of text (pillow), no text layer."""
    from fpdf import FPDF
    from PIL import Image, ImageDraw

    pdf = FPDF()
    pdf.set_font("helvetica", size=11)
    for n, text in enumerate(pages, start=1):
        pdf.add_page()
        if n in scanned:
            img = Image.new("RGB", (600, 200), "white")
            ImageDraw.Draw(img).text((10, 10), text[:80], fill="black")
            buf = io.BytesIO()
            img.save(buf, format="PNG")
            pdf.image(buf, x=10, y=10, w=180)
        else:
            pdf.multi_cell(0, 6, text)
    return bytes(pdf.output())


def _filler(n: int) -> str:
    return (f"Chapter {n}. The harbour ledger records the weather, the tides and the boats that "
            "came in. Nothing of note happened on this day beyond the usual nets and ropes.")


def long_pdf_pages() -> list[str]:
    """`PDF_PAGES` pages of filler, the lighthouse keeper's answer on `LIGHTHOUSE_PAGE`."""
    pages = [_filler(n) for n in range(1, PDF_PAGES + 1)]
    pages[LIGHTHOUSE_PAGE - 1] = ("The lighthouse keeper of Ushant Island was Marguerite Le Bris; "
                                  "she lit the lamp every evening from 1911 to 1946.")
    return pages


def write_corpus(folder: Path) -> Path:
    """Write the corpus into ``folder`` (created) and return it."""
    from docx import Document

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "billing.txt").write_text(
        "Billing terms\n\nInvoices must be paid within thirty days of receipt.\n", encoding="utf-8")
    (folder / "recette.md").write_text(
        "# Pain de campagne\n\nMélanger la farine, l'eau et le sel ; laisser lever une nuit.\n",
        encoding="utf-8")
    (folder / "tool.py").write_text("def checksum(data):\n    \"\"\"Adler-32 of the bytes.\"\"\"\n"
                                    "    return sum(data) % 65521\n", encoding="utf-8")
    (folder / "prices.csv").write_text("item,price\nsourdough loaf,4.20\nbaguette,1.10\n", encoding="utf-8")
    (folder / "museum.html").write_text("<html><head><title>Museum</title></head><body><p>The museum "
                                        "opens at nine on Sundays.</p></body></html>", encoding="utf-8")
    (folder / "ledger.pdf").write_bytes(pdf_bytes(long_pdf_pages(), scanned={PDF_PAGES}))
    doc = Document()
    doc.add_paragraph("Le gardien du phare allume la lampe chaque soir.")
    doc.save(str(folder / "phare.docx"))
    sub = folder / "old"
    sub.mkdir(exist_ok=True)
    (sub / "letter.doc").write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 64)
    (sub / "broken.pdf").write_bytes(b"not a pdf at all")
    (sub / "scan.pdf").write_bytes(pdf_bytes(["A page that was scanned"], scanned={1}))
    (folder / ".hidden.txt").write_text("never indexed", encoding="utf-8")
    (folder / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (folder / "manifest.json").write_text(json.dumps({"name": "corpus"}), encoding="utf-8")
    return folder
