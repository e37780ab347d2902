"""Text extraction from local documents attached to a conversation, keeping page numbers.

Everything runs locally and offline: `pypdf` reads PDF, `python-docx` reads DOCX,
`beautifulsoup4` (with the stdlib ``html.parser``) reads HTML, and plain text, Markdown, source
code and CSV are decoded as text. The project adds what those libraries leave to the caller:
choosing a reader from the file's extension and leading bytes, page splitting for DOCX (at
explicit and last-rendered page breaks) and for text (at form feeds), and one-line
`DocumentError` messages for files that cannot be attached (binary, empty, encrypted, too large,
unsupported) so that `magimac chat --file` and the TUI can show them as they are.

Extracted text is only ever text: the engine encodes it with mistral-common text chunks, so a
file containing ``[INST]`` or ``[/THINK]`` never yields control tokens.
"""

from __future__ import annotations

import functools
import io
import logging
import re
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from magimac.core.errors import MagimacError
from magimac.core.files import read_file_bytes

#: Largest file accepted, in bytes (64 MiB). A bigger file is refused before it is read.
MAX_FILE_BYTES = 64 * 1024 * 1024
#: Most extracted characters accepted (4 million, roughly 1M tokens: eight times Magistral's
#: 128K-token context). Retrieval over more would send a vanishing fraction of the file.
MAX_TEXT_CHARS = 4_000_000

TEXT_SUFFIXES = {".txt", ".text", ".log", ".rst", ".org", ".tex", ".adoc", ".asciidoc", ""}
MARKDOWN_SUFFIXES = {".md", ".markdown", ".mdown", ".mkd"}
CSV_SUFFIXES = {".csv", ".tsv"}
HTML_SUFFIXES = {".html", ".htm", ".xhtml"}
CODE_SUFFIXES = {
    ".py", ".pyi", ".ipynb", ".js", ".mjs", ".cjs", ".ts", ".tsx", ".jsx", ".c", ".h", ".cc",
    ".cpp", ".cxx", ".hpp", ".hh", ".m", ".mm", ".swift", ".rs", ".go", ".java", ".kt", ".kts",
    ".scala", ".rb", ".php", ".pl", ".lua", ".r", ".jl", ".hs", ".ml", ".ex", ".exs", ".erl",
    ".clj", ".cs", ".fs", ".vb", ".dart", ".zig", ".nim", ".sh", ".bash", ".zsh", ".fish",
    ".ps1", ".bat", ".sql", ".json", ".jsonl", ".toml", ".yaml", ".yml", ".ini", ".cfg",
    ".conf", ".xml", ".css", ".scss", ".less", ".vue", ".svelte", ".proto", ".cmake", ".mk",
    ".make", ".dockerfile", ".gradle", ".diff", ".patch", ".env",
}
#: Formats people try to attach that magimac cannot read, with what to do instead.
UNSUPPORTED_HINTS = {
    ".doc": "save it as .docx", ".rtf": "save it as .docx or .txt", ".odt": "save it as .docx",
    ".pages": "export it as .docx or PDF", ".xls": "export it as .csv", ".xlsx": "export it as .csv",
    ".numbers": "export it as .csv", ".ppt": "export it as PDF", ".pptx": "export it as PDF",
    ".key": "export it as PDF", ".epub": "convert it to PDF or text",
}
#: Extensions offered by file pickers (any other text file can be attached by path too).
SUPPORTED_SUFFIXES = (TEXT_SUFFIXES - {""}) | MARKDOWN_SUFFIXES | CSV_SUFFIXES | HTML_SUFFIXES \
    | CODE_SUFFIXES | {".pdf", ".docx"}
KINDS = ("text", "markdown", "code", "csv", "html", "pdf", "docx")

_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # legacy Office files and encrypted OOXML


class DocumentError(MagimacError, ValueError):
    """A file cannot be attached; the message is one line that names the file and the reason."""


@dataclass
class Page:
    """One page of extracted text.

    Attributes:
        number: 1-based page number (the PDF page index + 1; for DOCX counted at page breaks;
            for text files counted at form feeds, so a file without them is page 1).
        text: the page's text (str), never None; may be empty for a blank page.
    """

    number: int
    text: str


@dataclass
class Document:
    """A document attached to a message, as extracted text.

    Attributes:
        name: the file name shown to the model and the user (``path``'s last component).
        path: the absolute path of the file read.
        kind: one of `KINDS`: ``text``, ``markdown``, ``code``, ``csv``, ``html``, ``pdf``,
            ``docx``.
        pages: the pages in order; at least one page has non-blank text.
    """

    name: str
    path: str
    kind: str
    pages: list[Page] = field(default_factory=list)

    @property
    def paged(self) -> bool:
        """Whether page numbers mean something to a reader (PDF/DOCX, or more than one page)."""
        return self.kind in ("pdf", "docx") or len(self.pages) > 1

    @property
    def text(self) -> str:
        """All pages' text joined by blank lines (str)."""
        return "\n\n".join(p.text for p in self.pages)


def load_document(path: str | Path, max_bytes: int = MAX_FILE_BYTES,
                  max_chars: int = MAX_TEXT_CHARS) -> Document:
    """Read a local file and extract its text page by page.

    The reader is chosen from the leading bytes (``%PDF-``, a ZIP holding
    ``word/document.xml``) and then from the extension (`TEXT_SUFFIXES`, `MARKDOWN_SUFFIXES`,
    `CODE_SUFFIXES`, `CSV_SUFFIXES`, `HTML_SUFFIXES`); a file with another extension is read
    as plain text when it decodes as text.

    Args:
        path: the file to read.
        max_bytes: the largest file size accepted, in bytes.
        max_chars: the most extracted characters accepted.

    Returns:
        A `Document` whose pages hold the extracted text.

    Raises:
        DocumentError: the file is missing, not a regular file, larger than ``max_bytes``,
            binary, empty (no text after extraction), encrypted with a password, unreadable
            as its format, of an unsupported format, or yields more than ``max_chars``
            characters. The message names the file and says what to do.
    """
    p = Path(path).expanduser()
    name = p.name
    data = _read_file(p, str(path), max_bytes)
    kind = _sniff_kind(data, p.suffix.lower(), name)
    pages = _extract_pages(data, kind, name, max_chars)
    pages = [Page(pg.number, _tidy(pg.text)) for pg in pages]
    total = sum(len(pg.text) for pg in pages)
    if total > max_chars:
        raise DocumentError(f"{name}: too much text ({total:,} characters; the limit is "
                            f"{max_chars:,}); attach a smaller part of it")
    if not any(pg.text.strip() for pg in pages):
        if kind == "pdf":
            raise DocumentError(f"{name}: the PDF has no extractable text (scanned pages?); "
                                "run it through OCR first")
        raise DocumentError(f"{name}: contains no text")
    return Document(name=name, path=str(p.resolve()), kind=kind, pages=pages)


def _read_file(p: Path, shown: str, max_bytes: int) -> bytes:
    """The bytes of regular file ``p`` (``shown``: the path as the person gave it).

    Raises:
        DocumentError: missing, a directory, not a regular file, over ``max_bytes``, empty.
    """
    if p.is_dir():
        raise DocumentError(f"{shown}: is a directory; attach the files inside it one by one")
    data = read_file_bytes(shown, max_bytes, DocumentError, "attach a smaller part of it")
    if not data.strip():
        raise DocumentError(f"{p.name}: the file is empty")
    return data


def _extract_pages(data: bytes, kind: str, name: str, max_chars: int) -> list[Page]:
    """The pages of text in ``data`` read as ``kind`` (form feeds split plain text into pages)."""
    if kind == "pdf":
        return _pdf_pages(data, name, max_chars)
    if kind == "docx":
        return _docx_pages(data, name)
    text = _decode(data, name)
    if kind == "html":
        text = _html_text(text)
    return [Page(i + 1, t) for i, t in enumerate(text.split("\f"))]


def load_document_cached(path: str | Path) -> Document:
    """`load_document`, reusing the last result while the file's size and modification time
    are unchanged (the TUI sends a conversation's documents with every turn). Errors are not
    cached. Keeps at most 16 documents."""
    p = Path(path).expanduser()
    try:
        st = p.stat()
    except OSError:
        return load_document(p)
    return _load_cached(str(p.resolve()), st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=16)
def _load_cached(path: str, mtime_ns: int, size: int) -> Document:
    return load_document(path)


def describe(doc: Document, tokens: int | None = None) -> str:
    """A document for people: ``manual.pdf (PDF, 30 pages, 4,210 tokens)``; ``notes.md
    (Markdown, 310 tokens)`` (pages shown for paged documents; tokens when given)."""
    parts = [_KIND_NAMES[doc.kind]]
    if doc.paged:
        parts.append(f"{len(doc.pages)} page{'s' if len(doc.pages) != 1 else ''}")
    if tokens is not None:
        parts.append(f"{tokens:,} tokens")
    return f"{doc.name} ({', '.join(parts)})"


_KIND_NAMES = {"text": "text", "markdown": "Markdown", "code": "code", "csv": "CSV", "html": "HTML",
               "pdf": "PDF", "docx": "DOCX"}


def _sniff_kind(data: bytes, suffix: str, name: str) -> str:
    """Pick one of `KINDS` for a file, or raise DocumentError for an unsupported one."""
    if data[:5] == b"%PDF-" or (suffix == ".pdf" and b"%PDF-" in data[:1024]):
        return "pdf"
    if suffix == ".pdf":
        raise DocumentError(f"{name}: not a PDF file (no %PDF header)")
    if data[:8] == _OLE_MAGIC:
        if suffix == ".docx":
            raise DocumentError(f"{name}: the document is encrypted; save a copy without a "
                                "password and attach that")
        hint = UNSUPPORTED_HINTS.get(suffix, "export it as .docx, PDF or text")
        raise DocumentError(f"{name}: unsupported format (legacy Office file); {hint}")
    if data[:4] == b"PK\x03\x04":
        if suffix == ".docx" or _zip_has(data, "word/document.xml"):
            return "docx"
        hint = UNSUPPORTED_HINTS.get(suffix, "attach PDF, DOCX or text files")
        raise DocumentError(f"{name}: unsupported format ({suffix or 'ZIP archive'}); {hint}")
    if suffix == ".docx":
        raise DocumentError(f"{name}: not a DOCX file (not a ZIP package)")
    if suffix in UNSUPPORTED_HINTS:
        raise DocumentError(f"{name}: unsupported format ({suffix}); {UNSUPPORTED_HINTS[suffix]}")
    if suffix in MARKDOWN_SUFFIXES:
        return "markdown"
    if suffix in CSV_SUFFIXES:
        return "csv"
    if suffix in HTML_SUFFIXES:
        return "html"
    if suffix in CODE_SUFFIXES or name.lower() in ("makefile", "dockerfile", "cmakelists.txt"):
        return "code"
    return "text"


def _zip_has(data: bytes, member: str) -> bool:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            return member in z.namelist()
    except zipfile.BadZipFile:
        return False


def _decode(data: bytes, name: str) -> str:
    """Decode a text file: UTF-8 (BOM optional), UTF-16 with a BOM, else Windows-1252.

    Raises DocumentError when the bytes look binary: a NUL byte outside UTF-16, or control
    characters (other than tab, newline, carriage return, form feed) in more than 1 % of the text.
    """
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            raise DocumentError(f"{name}: binary file (not text); attach text, PDF or DOCX files") from None
    if b"\x00" in data:
        raise DocumentError(f"{name}: binary file (not text); attach text, PDF or DOCX files")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("cp1252", errors="replace")
    controls = sum(1 for ch in text if ord(ch) < 32 and ch not in "\t\n\r\f")
    if controls > len(text) / 100:
        raise DocumentError(f"{name}: binary file (not text); attach text, PDF or DOCX files")
    return text


def _tidy(text: str) -> str:
    """Normalise newlines, strip trailing spaces and runs of more than one blank line."""
    lines = [ln.rstrip() for ln in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    out: list[str] = []
    for ln in lines:
        if ln or (out and out[-1]):
            out.append(ln)
    return "\n".join(out).strip("\n")


def _html_text(html: str) -> str:
    """Visible text of an HTML page: the title, then the body with a line per block element
    and tabs between table cells; scripts, styles and other invisible parts are dropped."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    for tag in soup(["head", "script", "style", "noscript", "template", "svg"]):
        tag.decompose()
    for text in soup.find_all(string=True):
        if text.find_parent("pre") is None:
            text.replace_with(re.sub(r"\s+", " ", str(text)))
    for tag in soup(_HTML_BLOCKS):
        tag.insert_before("\n")
        tag.insert_after("\n")
    for tag in soup(_HTML_LINES):
        tag.insert_after("\n")
    for tag in soup(["td", "th"]):
        tag.insert_after("\t")
    for tag in soup("br"):
        tag.replace_with("\n")
    body = "\n".join(re.sub(r" +", " ", line).strip(" ") for line in soup.get_text().split("\n"))
    return f"{title}\n\n{body}" if title and title not in body[:len(title) + 200] else body


_HTML_BLOCKS = ["p", "div", "h1", "h2", "h3", "h4", "h5", "h6", "section", "article",
                "header", "footer", "nav", "aside", "main", "pre", "blockquote", "table", "ul",
                "ol", "dl", "figure", "figcaption", "hr", "title", "form"]
_HTML_LINES = ["li", "tr", "dt", "dd"]


def _pdf_pages(data: bytes, name: str, max_chars: int) -> list[Page]:
    """Extract a PDF's pages with pypdf (its log lines silenced: a broken file is one
    DocumentError); stops early once more than ``max_chars`` are read."""
    from pypdf import PdfReader
    from pypdf.errors import DependencyError, FileNotDecryptedError, PdfReadError

    locked = DocumentError(f"{name}: the PDF is encrypted with a password; save a copy without the "
                           "password and attach that")
    try:
        with _quiet_pypdf():
            reader = PdfReader(io.BytesIO(data))
            # An owner-password-only PDF opens with the empty user password, as in any viewer.
            if reader.is_encrypted and not reader.decrypt(""):
                raise locked
            pages: list[Page] = []
            total = 0
            for i, page in enumerate(reader.pages):
                pages.append(Page(i + 1, page.extract_text() or ""))
                total += len(pages[-1].text)
                if total > max_chars:
                    break
            return pages
    except DocumentError:
        raise
    except FileNotDecryptedError:
        raise locked from None
    except DependencyError as e:
        raise DocumentError(f"{name}: the PDF is encrypted and needs a missing package ({e})") from None
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, RecursionError) as e:
        raise DocumentError(f"{name}: not a readable PDF ({type(e).__name__}: {e})"[:300]) from None


@contextmanager
def _quiet_pypdf():
    """pypdf's warnings off (it logs "EOF marker not found" and the like on stderr) while it
    reads; a file it cannot read is said once, as a DocumentError."""
    log = logging.getLogger("pypdf")
    level = log.level
    log.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        log.setLevel(level)


def _docx_pages(data: bytes, name: str) -> list[Page]:
    """Extract a DOCX's paragraphs and tables in order, starting a page at each page break.

    DOCX stores no page layout; the pages counted are those marked by explicit page breaks,
    "page break before" paragraphs and the ``lastRenderedPageBreak`` marks Word saves, so they
    match what Word showed when the file was last saved.
    """
    import docx
    from docx.opc.exceptions import PackageNotFoundError
    from docx.table import Table

    try:
        document = docx.Document(io.BytesIO(data))
        pages: list[list[str]] = [[]]
        for block in document.iter_inner_content():
            if isinstance(block, Table):
                rows = ["\t".join(c.text for c in row.cells) for row in block.rows]
                pages[-1].append("\n".join(rows))
                continue
            el = block._p
            if el.xpath("./w:pPr/w:pageBreakBefore") and any(pages[-1]):
                pages.append([])
            parts = [""]
            for run in el.xpath(".//w:r"):
                for node in run.iterchildren():
                    tag = node.tag.rsplit("}", 1)[-1]
                    if tag == "lastRenderedPageBreak" or (tag == "br" and node.get(_W_TYPE) == "page"):
                        parts.append("")
                    elif tag in _DOCX_TEXT_TAGS:
                        parts[-1] += str(node)  # python-docx's text equivalent (tab, line break)
            pages[-1].append(parts[0])
            for part in parts[1:]:
                if any(pages[-1]):
                    pages.append([])
                pages[-1].append(part)
        return [Page(i + 1, "\n".join(lines)) for i, lines in enumerate(pages)]
    except (PackageNotFoundError, zipfile.BadZipFile, KeyError, ValueError) as e:
        raise DocumentError(f"{name}: not a readable DOCX file ({type(e).__name__}: {e})"[:300]) from None


_DOCX_TEXT_TAGS = {"t", "tab", "br", "cr", "noBreakHyphen", "ptab"}
_W_TYPE = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}type"
