"""Scanned PDF pages: the image of a page without a text layer, and reading it with a model.

A scanned page is a page whose ``extract_text`` is blank; its picture is the largest image
embedded in it (pypdf's ``page.images``: a scanner stores one image per page). pypdf extracts
the image as it is stored, so no renderer (pdfium) is needed for scans; a page drawn with
vector paths and no image stays unreadable. The image is scaled to at most `MAX_SIDE` pixels
(Magistral's vision encoder takes 1540 px a side: ``vision_config.image_size``) and handed as
PNG bytes to a `PageReader`, which `magimac.session.scans` implements with Magistral's vision.
"""

from __future__ import annotations

import io
from typing import Callable

from magimac.text.documents import Document, DocumentError, Page

#: Longest side of a page image sent to the model (pixels; Magistral's ``image_size``).
MAX_SIDE = 1540

#: Reads one page image (PNG bytes) and returns its text; ``label`` names it (``scan.pdf p.3``).
PageReader = Callable[[bytes, str], str]


def page_png(page) -> bytes | None:
    """The largest embedded image of a pypdf page as PNG bytes (at most `MAX_SIDE` a side), or
    None when the page holds no image pypdf can decode."""
    best = None
    try:
        images = list(page.images)
    except Exception:  # pypdf raises many kinds on odd image streams
        return None
    for im in images:
        try:
            pil = im.image
        except Exception:
            continue
        if pil is not None and (best is None or pil.width * pil.height > best.width * best.height):
            best = pil
    if best is None:
        return None
    best = best.convert("RGB")
    best.thumbnail((MAX_SIDE, MAX_SIDE))
    buf = io.BytesIO()
    best.save(buf, format="PNG")
    return buf.getvalue()


def read_scanned_pdf(path: str, reader: PageReader,
                     on_page: Callable[[str, float], None] | None = None) -> tuple[Document, set[int]]:
    """A PDF's pages, the scanned ones read by ``reader``.

    Args:
        path: the PDF; reader: reads one page image.
        on_page: called with ``(label, seconds)`` after each page the model read (``label``:
            ``scan.pdf p.3``).

    Returns:
        ``(Document, numbers of the pages read from their image)``.

    Raises:
        DocumentError: the file is not a readable PDF, or no page has text even after reading.
    """
    import time
    from pathlib import Path

    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    name = Path(path).name
    try:
        pdf = PdfReader(path)
        if pdf.is_encrypted and not pdf.decrypt(""):
            raise DocumentError(f"{name}: the PDF is encrypted with a password; save a copy without it")
        pages, read = [], set()
        for i, page in enumerate(pdf.pages, start=1):
            text = page.extract_text() or ""
            if not text.strip() and (png := page_png(page)) is not None:
                t0, label = time.monotonic(), f"{name} p.{i}"
                text = reader(png, label)
                read.add(i)
                if on_page:
                    on_page(label, time.monotonic() - t0)
            pages.append(Page(i, text.strip()))
    except (PdfReadError, OSError, ValueError) as e:
        raise DocumentError(f"{name}: cannot read the PDF ({e})") from None
    if not any(p.text for p in pages):
        raise DocumentError(f"{name}: no text, even read from its page images")
    return Document(name=name, path=str(Path(path).resolve()), kind="pdf", pages=pages), read
