"""Indexing a library: read the folders' files once, then re-read only what changed.

`add` builds a new library's index in a staging folder beside its destination and renames it
into place when complete, so a killed ``add`` leaves nothing half-made. `update` works on the
index in place, one SQLite transaction per file (its pages, passages and full-text rows
replaced together) and per batch of vectors, so a killed ``update`` leaves every file either
as it was or as it is now: the index stays usable.

A file is re-read when its size or modification time changed and its SHA-256 differs from the
stored one (a touched but unchanged file only gets its new time); files gone from the folders
are dropped. A folder that is missing (an unplugged disk) keeps its files in the index and is
reported. Files are streamed one at a time, so memory stays flat in the number of files; a file
that cannot be read is recorded with its one-line `DocumentError` reason and the rest goes on.

What the project adds to SQLite and the readers of `magimac.text.documents`: the change
detection, the per-file transactions and the progress callbacks.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import sqlite3
import stat
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from magimac.text.documents import SUPPORTED_SUFFIXES, UNSUPPORTED_HINTS, DocumentError, load_document
from magimac.text.library import store
from magimac.text.library.embedding import Embedder, to_blob
from magimac.text.library.scans import PageReader, read_scanned_pdf
from magimac.text.passages import split_passages

#: Passage size in the index (characters; about 250 tokens, within the 512 tokens an
#: E5-style embedding model reads).
PASSAGE_CHARS = 1000
#: Passages embedded per call of `Embedder.embed_passages`.
EMBED_BATCH = 32
#: How `load_document`'s refusal of a PDF without any text layer ends.
SCANNED_PDF_ENDING = "(scanned pages?); run it through OCR first"


class Progress:
    """What indexing reports as it goes; the CLI draws a bar from it. Every method is a no-op
    here, so callers override only what they show."""

    def start(self, total_files: int) -> None:
        """``total_files`` files will be looked at."""

    def file_done(self, path: str, pages: int, problem: str | None, read: bool) -> None:
        """One file handled: ``pages`` indexed (0 when unchanged or unreadable), ``problem`` its
        one-line reason when it could not be read, ``read`` whether it was (re)read."""

    def page_read(self, label: str, seconds: float) -> None:
        """A scanned page (``label``: ``scan.pdf p.3``) was read by the model in ``seconds``."""

    def embed_start(self, total_passages: int) -> None:
        """``total_passages`` passages will be embedded."""

    def embed_done(self, passages: int) -> None:
        """``passages`` more passages embedded."""


@dataclass
class Report:
    """What one `add` or `update` did.

    Attributes:
        added / changed / unchanged / deleted: file counts.
        pages: pages read in this run; passages: passages written in this run.
        embedded: passages given a vector in this run.
        scans_read / scan_seconds: scanned pages read by the model, and the seconds it took.
        problems: ``(path, one-line reason)`` of files that could not be read.
        missing_folders: folders not found (their files kept).
        skipped: paths passed over as no regular file (FIFOs, sockets, devices, symbolic
            links that leave their folder).
        seconds: wall time of the run.
    """

    added: int = 0
    changed: int = 0
    unchanged: int = 0
    deleted: int = 0
    pages: int = 0
    passages: int = 0
    embedded: int = 0
    scans_read: int = 0
    scan_seconds: float = 0.0
    problems: list[tuple[str, str]] = field(default_factory=list)
    missing_folders: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0


def check_folders(folders: list[str | Path]) -> list[str]:
    """The folders as absolute paths, each an existing directory.

    Raises:
        LibraryError: one is missing or not a folder (named, with what to do).
    """
    out = []
    for f in folders:
        p = Path(f).expanduser()
        if not p.is_dir():
            why = "no such folder" if not p.exists() else "not a folder"
            raise store.LibraryError(f"{f}: {why}; give folders to index")
        out.append(str(p.resolve()))
    return list(dict.fromkeys(out))


def add(name: str, folders: list[str | Path], embedder: Embedder | None = None,
        progress: Progress | None = None, reader: PageReader | None = None) -> Report:
    """Make library ``name`` from ``folders`` (`check_folders`) and index them; with
    ``reader``, scanned PDF pages are read from their image (`scans.read_scanned_pdf`).

    Raises:
        LibraryError: the name is taken or invalid, a folder is missing.
    """
    store.check_name(name)
    if store.exists(name):
        raise store.LibraryError(f"library {name!r} already exists; 'magimac library update {name}' "
                                 f"re-reads its folders, 'magimac library rm {name}' removes it")
    roots = check_folders(folders)
    base = store.private_dir(store.libraries_dir())
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.part-{os.getpid()}-", dir=base))
    try:
        con = store.create_index(staging / "index.db", name, roots)
        try:
            report = _sync(con, roots, embedder, progress or Progress(), reader)
        finally:
            con.close()
        os.chmod(staging, 0o700)
        os.rename(staging, base / name)
    except BaseException:
        import shutil

        shutil.rmtree(staging, ignore_errors=True)
        raise
    return report


def update(name: str, embedder: Embedder | None = None, progress: Progress | None = None,
           reader: PageReader | None = None) -> Report:
    """Re-read what changed in library ``name``'s folders, drop deleted files, fill in
    missing vectors when ``embedder`` is given, and with ``reader`` read the scanned pages
    not read yet. Raises LibraryError as `store.open_index`."""
    con = store.open_index(name)
    try:
        roots = json.loads(store.meta(con)["folders"])
        return _sync(con, roots, embedder, progress or Progress(), reader)
    finally:
        con.close()


def _sync(con: sqlite3.Connection, roots: list[str], embedder: Embedder | None,
          progress: Progress, reader: PageReader | None = None) -> Report:
    t0 = time.monotonic()
    report = Report(missing_folders=[r for r in roots if not Path(r).is_dir()])
    present = [r for r in roots if r not in report.missing_folders]
    known = {p: (i, s, m, h) for i, p, s, m, h in
             con.execute("SELECT id, path, size, mtime_ns, sha256 FROM files")}
    found = list(_walk(present, report.skipped))
    unread = {r[0] for r in con.execute("SELECT DISTINCT file_id FROM pages WHERE scanned=1")} if reader else set()
    reading = _Reading(reader, progress, report) if reader else None
    progress.start(len(found))
    seen: set[str] = set()
    for path, problem in found:
        seen.add(path)
        if problem is not None:
            _record_problem(con, path, problem, report)
            progress.file_done(path, 0, problem, False)
            continue
        old = known.get(path)
        pages, problem, read = _sync_file(con, path, old, report, reading, old is not None and old[0] in unread)
        progress.file_done(path, pages, problem, read)
    for path, (file_id, *_rest) in known.items():
        if path not in seen and any(_under(path, r) for r in present):
            _drop_file(con, file_id)
            report.deleted += 1
    for (path,) in con.execute("SELECT path FROM problems").fetchall():
        if path not in seen and any(_under(path, r) for r in present):
            con.execute("DELETE FROM problems WHERE path=?", (path,))  # gone, or no longer a candidate
    con.commit()
    if embedder is not None:
        report.embedded = fill_vectors(con, embedder, progress)
    report.seconds = round(time.monotonic() - t0, 3)
    return report


def _walk(roots: list[str], skipped: list[str]):
    """``(path, problem)`` of every candidate file under ``roots``, in a stable order: files
    with a supported extension (problem None) and those with a known unsupported one (problem:
    its hint). Hidden files and folders (a leading ``.``) and other extensions are passed
    over; candidates that are no regular file in their folder (`_regular`) go to ``skipped``."""
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for fn in sorted(filenames):
                if fn.startswith("."):
                    continue
                suffix = Path(fn).suffix.lower()
                path = os.path.join(dirpath, fn)
                if (suffix in UNSUPPORTED_HINTS or suffix in SUPPORTED_SUFFIXES) and not _regular(path, root):
                    skipped.append(path)
                elif suffix in UNSUPPORTED_HINTS:
                    yield path, f"{fn}: unsupported format ({suffix}); {UNSUPPORTED_HINTS[suffix]}"
                elif suffix in SUPPORTED_SUFFIXES:
                    yield path, None


def _regular(path: str, root: str) -> bool:
    """Whether ``path`` is a regular file (a symbolic link: to one inside ``root``). FIFOs,
    sockets and devices are not: reading a FIFO waits for a writer forever. A path that
    cannot be looked at counts as regular, so reading it reports why."""
    try:
        st = os.stat(path)
    except OSError:
        return True
    if os.path.islink(path) and not _under(os.path.realpath(path), os.path.realpath(root)):
        return False
    return stat.S_ISREG(st.st_mode)


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def file_sha256(path: str) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO put there since the walk must not hang
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def _sync_file(con, path: str, old, report: Report, reading=None, force: bool = False) -> tuple[int, str | None, bool]:
    """Bring one file's rows up to date (``force``: re-read it even if unchanged, for its
    scanned pages); returns ``(pages indexed, problem, read)``."""
    try:
        st = os.stat(path)
        if old is not None and (old[1], old[2]) == (st.st_size, st.st_mtime_ns) and not force:
            report.unchanged += 1
            return 0, None, False
        digest = file_sha256(path)
    except OSError as e:
        return 0, _record_problem(con, path, f"{Path(path).name}: cannot read ({e.strerror or e})", report), False
    if old is not None and old[3] == digest and not force:
        con.execute("UPDATE files SET size=?, mtime_ns=? WHERE id=?", (st.st_size, st.st_mtime_ns, old[0]))
        con.commit()
        report.unchanged += 1
        return 0, None, False
    try:
        doc, scanned_read = _load(path, reading)
    except DocumentError as e:
        if old is not None:
            _drop_file(con, old[0])
        return 0, _record_problem(con, path, str(e), report), True
    with con:
        if old is not None:
            _drop_file(con, old[0], commit=False)
        _insert(con, path, st, digest, doc, report, scanned_read)
        con.execute("DELETE FROM problems WHERE path=?", (path,))
    if old is None:
        report.added += 1
    else:
        report.changed += 1
    return len(doc.pages), None, True


def _insert(con, path: str, st: os.stat_result, digest: str, doc, report: Report,
            scanned_read: set[int] = frozenset()) -> None:
    """A file's rows; ``pages.scanned``: 1 for a PDF page without text, 2 for one whose text
    was read from its image by the model."""
    cur = con.execute("INSERT INTO files(path, size, mtime_ns, sha256, kind, pages, indexed_at) "
                      "VALUES (?, ?, ?, ?, ?, ?, ?)",
                      (path, st.st_size, st.st_mtime_ns, digest, doc.kind, len(doc.pages), time.time()))
    file_id = cur.lastrowid
    for page in doc.pages:
        scanned = 2 if page.number in scanned_read else int(doc.kind == "pdf" and not page.text.strip())
        con.execute("INSERT INTO pages VALUES (?, ?, ?, ?)", (file_id, page.number, len(page.text), scanned))
        for chunk in _chunks(doc, page.text):
            pid = con.execute("INSERT INTO passages(file_id, page, text) VALUES (?, ?, ?)",
                              (file_id, page.number, chunk)).lastrowid
            con.execute("INSERT INTO passages_fts(rowid, text) VALUES (?, ?)", (pid, chunk))
            report.passages += 1
    report.pages += len(doc.pages)


def _load(path: str, reading) -> tuple:
    """``(Document, pages read from their image)``: `load_document`, and with ``reading`` a PDF
    with blank pages (or no text at all) read again with its scans read by the model."""
    try:
        doc = load_document(path)
    except DocumentError as e:
        if reading is None or not str(e).endswith(SCANNED_PDF_ENDING):
            raise
        return read_scanned_pdf(path, reading.read, reading.on_page)
    if reading is not None and doc.kind == "pdf" and any(not p.text.strip() for p in doc.pages):
        return read_scanned_pdf(path, reading.read, reading.on_page)
    return doc, set()


class _Reading:
    """A `PageReader` with its progress and report."""

    def __init__(self, reader: PageReader, progress: Progress, report: Report) -> None:
        self.read, self.progress, self.report = reader, progress, report

    def on_page(self, label: str, seconds: float) -> None:
        self.report.scans_read += 1
        self.report.scan_seconds = round(self.report.scan_seconds + seconds, 3)
        self.progress.page_read(label, seconds)


def _chunks(doc, text: str) -> list[str]:
    """A page's passages; a CSV's passages after the first start with its header row."""
    chunks = split_passages(text, PASSAGE_CHARS)
    if doc.kind == "csv" and len(chunks) > 1:
        header = chunks[0].split("\n", 1)[0]
        chunks = chunks[:1] + [c if c.startswith(header + "\n") else f"{header}\n{c}" for c in chunks[1:]]
    return chunks


def _drop_file(con, file_id: int, commit: bool = True) -> None:
    ids = [r[0] for r in con.execute("SELECT id FROM passages WHERE file_id=?", (file_id,))]
    con.executemany("DELETE FROM passages_fts WHERE rowid=?", [(i,) for i in ids])
    con.execute("DELETE FROM passages WHERE file_id=?", (file_id,))
    con.execute("DELETE FROM pages WHERE file_id=?", (file_id,))
    con.execute("DELETE FROM files WHERE id=?", (file_id,))
    if commit:
        con.commit()


def _record_problem(con, path: str, reason: str, report: Report) -> str:
    con.execute("INSERT OR REPLACE INTO problems VALUES (?, ?)", (path, reason))
    con.commit()
    report.problems.append((path, reason))
    return reason


def fill_vectors(con: sqlite3.Connection, embedder: Embedder, progress: Progress | None = None) -> int:
    """Embed every passage without a vector (all of them when the stored vectors came from
    another model), one transaction per `EMBED_BATCH`; returns how many were embedded."""
    progress = progress or Progress()
    m = store.meta(con)
    if m.get("embedder") != embedder.name or int(m.get("dim", 0)) != embedder.dim:
        with con:
            con.execute("UPDATE passages SET vector=NULL")
            store.set_meta(con, embedder=embedder.name, dim=embedder.dim)
    todo = [r[0] for r in con.execute("SELECT id FROM passages WHERE vector IS NULL ORDER BY id")]
    progress.embed_start(len(todo))
    for i in range(0, len(todo), EMBED_BATCH):
        ids = todo[i:i + EMBED_BATCH]
        marks = ",".join("?" * len(ids))
        rows = con.execute(f"SELECT id, text FROM passages WHERE id IN ({marks}) ORDER BY id", ids).fetchall()
        vectors = embedder.embed_passages([t for _, t in rows])
        with con:
            con.executemany("UPDATE passages SET vector=? WHERE id=?",
                            [(to_blob(v), pid) for (pid, _), v in zip(rows, vectors)])
        progress.embed_done(len(rows))
    return len(todo)
