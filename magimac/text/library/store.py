"""Where libraries live and what each one holds: one SQLite database per library.

A library is a name and the folders it indexes. Its index is ``<data dir>/libraries/NAME/
index.db`` (`magimac.core.paths.data_dir`), readable by its owner only: the folder is 0700 and
the database 0600 (SQLite gives its WAL and shared-memory files the database's permissions). The index is only
ever rebuilt from the files, never the other way: files are opened for reading only.

Schema (``SCHEMA_VERSION`` 1):

- ``meta(key, value)``: ``name``, ``folders`` (JSON list of absolute paths), ``created``
  (Unix seconds), ``embedder`` (the embedding model whose vectors are stored, '' for none),
  ``dim`` (vector length).
- ``files(id, path, size, mtime_ns, sha256, kind, pages, indexed_at)``: one row per file read;
  ``size`` in bytes, ``mtime_ns`` in nanoseconds (``os.stat``), ``sha256`` hex of the bytes.
- ``pages(file_id, number, chars, scanned)``: each page's 1-based number and its text length
  in characters; ``scanned`` 1 for a PDF page without a text layer.
- ``passages(id, file_id, page, text, vector)``: the passages searched; ``vector`` the
  passage's embedding as little-endian float16 bytes (``dim`` × 2 bytes), NULL without one.
- ``passages_fts``: FTS5 over ``passages.text`` (rowid = ``passages.id``), the tokenizer of
  `magimac.text.passages.rank` (``porter unicode61 remove_diacritics 2``).
- ``problems(path, reason)``: files that could not be read, with their one-line reason.

Vectors sit in a BLOB column rather than a numpy file beside the database or ``sqlite-vec``:
they change in the same transaction as their text (a killed run cannot leave them out of step),
and a brute-force product over float16 vectors (384 × 2 bytes each) scores 100,000 passages in
tens of milliseconds, which is all a personal library needs, without a native extension.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from magimac.core import paths
from magimac.core.errors import MagimacError

SCHEMA_VERSION = 1
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

SCHEMA = """
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE files(id INTEGER PRIMARY KEY, path TEXT UNIQUE NOT NULL, size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL, sha256 TEXT NOT NULL, kind TEXT NOT NULL, pages INTEGER NOT NULL,
    indexed_at REAL NOT NULL);
CREATE TABLE pages(file_id INTEGER NOT NULL, number INTEGER NOT NULL, chars INTEGER NOT NULL,
    scanned INTEGER NOT NULL DEFAULT 0, PRIMARY KEY(file_id, number));
CREATE TABLE passages(id INTEGER PRIMARY KEY, file_id INTEGER NOT NULL, page INTEGER NOT NULL,
    text TEXT NOT NULL, vector BLOB);
CREATE INDEX passages_file ON passages(file_id);
CREATE VIRTUAL TABLE passages_fts USING fts5(text, tokenize='porter unicode61 remove_diacritics 2');
CREATE TABLE problems(path TEXT PRIMARY KEY, reason TEXT NOT NULL);
"""


class LibraryError(MagimacError):
    """A library name, folder or index cannot be used; one line naming it and what to do."""


@dataclass(frozen=True)
class LibraryInfo:
    """One library as `magimac library list` shows it.

    Attributes:
        name: the library's name; folders: absolute folder paths indexed.
        files / pages / passages: counts in the index; problems: files that could not be read.
        scanned_pages: PDF pages without a text layer (not searchable).
        embedder: the embedding model of the stored vectors ('' when BM25 only).
        bytes: the index's size on disk (bytes).
    """

    name: str
    folders: list[str]
    files: int
    pages: int
    passages: int
    problems: int
    scanned_pages: int
    embedder: str
    bytes: int


def libraries_dir() -> Path:
    """``<data dir>/libraries`` (may not exist yet)."""
    return paths.data_dir() / "libraries"


def check_name(name: str) -> str:
    """``name`` if it can name a library (letters, digits, ``.``, ``_``, ``-``; up to 64).

    Raises:
        LibraryError: another name, in one line saying what is allowed.
    """
    if not NAME_RE.match(name or ""):
        raise LibraryError(f"library name {name!r}: use letters, digits, '.', '_' or '-' "
                           "(up to 64, starting with a letter or digit)")
    return name


def library_dir(name: str) -> Path:
    """The folder of library ``name`` (checked with `check_name`)."""
    return libraries_dir() / check_name(name)


def index_path(name: str) -> Path:
    """The index database of library ``name``."""
    return library_dir(name) / "index.db"


def exists(name: str) -> bool:
    """Whether library ``name`` has an index."""
    return index_path(name).is_file()


def names() -> list[str]:
    """The libraries that have an index, sorted by name."""
    base = libraries_dir()
    if not base.is_dir():
        return []
    return sorted(p.name for p in base.iterdir() if NAME_RE.match(p.name) and (p / "index.db").is_file())


def private_dir(path: Path) -> Path:
    """Make ``path`` (and its parents) a folder and set it to 0700 (owner only)."""
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def create_index(db: Path, name: str, folders: list[str]) -> sqlite3.Connection:
    """A new, empty index database at ``db`` (0600), with its schema and ``meta``."""
    private_dir(db.parent)
    os.close(os.open(db, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    con = _connect(db)
    con.executescript(SCHEMA)
    meta = {"name": name, "folders": json.dumps(folders), "created": str(int(time.time())),
            "embedder": "", "dim": "0", "schema": str(SCHEMA_VERSION)}
    con.executemany("INSERT INTO meta VALUES (?, ?)", meta.items())
    con.commit()
    return con


def open_index(name: str) -> sqlite3.Connection:
    """The index of library ``name``, open for reading and writing.

    Raises:
        LibraryError: no such library (naming the ones there are), or the index is not one.
    """
    db = index_path(name)
    if not db.is_file():
        known = ", ".join(names()) or "none yet"
        raise LibraryError(f"no library named {name!r} (libraries: {known}); "
                           f"make it with 'magimac library add {name} FOLDER'")
    try:
        con = _connect(db)
        version = con.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
    except sqlite3.DatabaseError as e:
        raise LibraryError(f"{db}: not a magimac library index ({e}); remove it with "
                           f"'magimac library rm {name}' and add the folders again") from None
    if version is None or int(version[0]) != SCHEMA_VERSION:
        raise LibraryError(f"{db}: index of another magimac version; run "
                           f"'magimac library rm {name}' and add it again")
    return con


def _connect(db: Path) -> sqlite3.Connection:
    """A connection in WAL mode with ``synchronous=NORMAL`` (SQLite's advice for WAL): a commit
    per file costs no fsync, and a crash can only lose the last commits, never the database's
    consistency (the index is rebuilt from the files anyway). SQLite gives the ``-wal`` and
    ``-shm`` files the database's permissions."""
    con = sqlite3.connect(db)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")
    return con


def meta(con: sqlite3.Connection) -> dict[str, str]:
    """The ``meta`` table as a dict."""
    return dict(con.execute("SELECT key, value FROM meta"))


def set_meta(con: sqlite3.Connection, **values: str) -> None:
    """Set ``meta`` keys (in the caller's transaction)."""
    con.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", [(k, str(v)) for k, v in values.items()])


def info(name: str) -> LibraryInfo:
    """What library ``name`` holds (`LibraryInfo`). Raises LibraryError as `open_index`."""
    con = open_index(name)
    try:
        m = meta(con)

        def count(sql: str) -> int:
            return int(con.execute(sql).fetchone()[0] or 0)

        return LibraryInfo(
            name=name, folders=json.loads(m["folders"]),
            files=count("SELECT COUNT(*) FROM files"), pages=count("SELECT COUNT(*) FROM pages"),
            passages=count("SELECT COUNT(*) FROM passages"),
            problems=count("SELECT COUNT(*) FROM problems"),
            scanned_pages=count("SELECT COUNT(*) FROM pages WHERE scanned=1"),
            embedder=m.get("embedder", ""), bytes=index_path(name).stat().st_size)
    finally:
        con.close()


def remove(name: str) -> None:
    """Delete library ``name``'s index (the indexed files are not touched).

    Raises:
        LibraryError: no such library.
    """
    d = library_dir(name)
    if not (d / "index.db").is_file():
        known = ", ".join(names()) or "none yet"
        raise LibraryError(f"no library named {name!r} (libraries: {known})")
    shutil.rmtree(d)
