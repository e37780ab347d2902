"""The index of the prompt cache on disk: block keys, their files, owners and the budget (no MLX).

The KV blocks themselves are written and read by `magimac.engine.disk_cache` (MLX, the worker
thread); this module is what `magimac cache`, the app's conversation deletion and the cache's
writer thread share, so it imports no MLX and any thread may use it (one SQLite connection per
call, WAL mode, a 10 s busy timeout).

Layout under `default_directory()` (``<cache dir>/prompt-cache``, `magimac.core.paths.cache_dir`):
``index.db`` (SQLite, mode 0600) and ``blocks/<2 hex>/<key>.safetensors`` (mode 0600, folders
0700), as the history keeps its database readable by its owner only.

Keys: `model_identity` names the weights and KV settings; `chain_keys` hashes the tokens up to
each block's end onto it (BLAKE2b, 128 bits), so a key names one model's KV of one exact prefix.
A prompt's last, partial block (fewer tokens than a block) is stored too, under the `link` of its
tokens, and found again through its ``parent`` (`DiskIndex.tails`): a reopened conversation then
prefills only what was not in the prompt before (the answer and the new message).

Owners: every turn tags the blocks it used or wrote with its owner (``"conversation:<id>"`` from
the app, ``"-"`` when none is given); `DiskIndex.drop_owner` removes an owner's tags and the blocks
left with none, so a block another conversation (or an anonymous `magimac chat`) also used stays.

Eviction: least recently used first; among blocks used at the same moment the one ending furthest
into its prompt goes first, so a chain loses its tail before its head (a prefix stays usable).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from magimac.core import paths
from magimac.core.settings import BLOCK_TOKENS, DISK_CACHE_BUDGET

FORMAT = "magimac-prompt-cache/1"
"""Part of every model identity: a change of the block format invalidates all blocks."""
ANONYMOUS = "-"
"""The owner of blocks used by turns that name none (`magimac chat`, benchmarks)."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS blocks (
    key TEXT PRIMARY KEY, model TEXT NOT NULL, tokens INTEGER NOT NULL,
    bytes INTEGER NOT NULL, used REAL NOT NULL, parent TEXT NOT NULL, length INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS blocks_by_use ON blocks(used, tokens);
CREATE INDEX IF NOT EXISTS blocks_by_parent ON blocks(parent);
CREATE TABLE IF NOT EXISTS owners (key TEXT NOT NULL, owner TEXT NOT NULL, PRIMARY KEY (key, owner));
CREATE INDEX IF NOT EXISTS owners_by_owner ON owners(owner);
CREATE TABLE IF NOT EXISTS settings (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS models (model TEXT PRIMARY KEY, block_tokens INTEGER NOT NULL);
"""


def default_directory() -> Path:
    """``<cache dir>/prompt-cache`` (`magimac.core.paths.cache_dir`; ``MAGIMAC_CACHE_DIR`` moves it)."""
    return paths.cache_dir() / "prompt-cache"


def model_identity(model_dir: Path, *extra: object) -> str:
    """A 32-hex-digit name for the weights in ``model_dir`` plus ``extra`` (KV bits, group size,
    block size, loader and library versions: whatever changes the KV).

    Cheap instead of hashing gigabytes: config.json and model.safetensors.index.json whole, and
    for each ``*.safetensors`` its name, size, mtime (ns) and 64 KiB read from its middle, so a
    re-converted or copied model (new mtime) or other weights of the same shapes get a new name.
    A miss only costs a prefill; the same name for other weights would need a file of the same
    size, modification time and middle bytes.

    Raises:
        OSError: the directory cannot be read.
    """
    h = hashlib.blake2b(FORMAT.encode(), digest_size=16)
    for name in ("config.json", "model.safetensors.index.json"):
        f = model_dir / name
        if f.exists():
            h.update(name.encode() + b"\0" + f.read_bytes())
    for f in sorted(model_dir.glob("*.safetensors")):
        st = f.stat()
        h.update(f"{f.name}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
        with open(f, "rb") as fh:
            fh.seek(st.st_size // 2)
            h.update(fh.read(65536))
    h.update(repr(extra).encode())
    return h.hexdigest()


def _key_text(k) -> str:
    """One token key (`magimac.engine.generate.token_keys`): an id, or (image hash, id)."""
    return str(k) if isinstance(k, int) else f"{k[0]}:{k[1]}"


def link(prev: str, block: list) -> str | None:
    """The key of ``block`` (token keys) after the block keyed ``prev`` (or the model identity):
    BLAKE2b-128 of both.  None when the block holds an image without a content hash (a
    placeholder key, not 64 hex digits): only what can be named exactly is stored."""
    if any(not isinstance(k, int) and len(str(k[0])) != 64 for k in block):
        return None
    h = hashlib.blake2b(prev.encode(), digest_size=16)
    h.update(",".join(map(_key_text, block)).encode())
    return h.hexdigest()


def chain_keys(model_id: str, keys: list, block_tokens: int, limit: int) -> list[str]:
    """The `link` key of each whole block in ``keys[:limit]``, the first chained onto ``model_id``;
    the chain ends before a block `link` cannot name."""
    out: list[str] = []
    prev = model_id
    for start in range(0, limit - block_tokens + 1, block_tokens):
        key = link(prev, keys[start:start + block_tokens])
        if key is None:
            break
        out.append(prev := key)
    return out


@dataclass(frozen=True)
class Usage:
    """What the cache holds: ``blocks`` (files), ``bytes`` (their sizes), ``models`` (distinct
    model identities), ``owners`` (distinct owners), ``budget_bytes`` (the limit in force),
    ``tokens`` (positions of KV held, summed over blocks), ``partial_blocks`` (blocks holding
    a prompt's last tokens, fewer than a block) and ``block_tokens`` (tokens in a whole block:
    the largest size of the models stored, `BLOCK_TOKENS` when none says)."""

    blocks: int
    bytes: int
    models: int
    owners: int
    budget_bytes: int
    tokens: int = 0
    partial_blocks: int = 0
    block_tokens: int = BLOCK_TOKENS


class DiskIndex:
    """The SQLite index of the prompt cache in ``directory`` (created 0700 when missing).

    Raises:
        OSError: the directory cannot be created.
        sqlite3.Error: the index cannot be opened.
    """

    def __init__(self, directory: Path | str | None = None) -> None:
        self.directory = Path(directory) if directory is not None else default_directory()
        self.blocks_dir = self.directory / "blocks"
        for d in (self.directory, self.blocks_dir):
            d.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(d, 0o700)
        self.db = self.directory / "index.db"
        if not self.db.exists():
            os.close(os.open(self.db, os.O_CREAT | os.O_WRONLY, 0o600))
        os.chmod(self.db, 0o600)
        with self._connect() as con:
            con.execute("PRAGMA journal_mode=WAL")  # kept in the file: readers never wait for a writer
            con.executescript(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.db, timeout=10, isolation_level=None)

    def path_for(self, key: str) -> Path:
        """The block file of ``key``: ``blocks/<first 2 hex>/<key>.safetensors``."""
        return self.blocks_dir / key[:2] / f"{key}.safetensors"

    def present(self, keys: list[str]) -> set[str]:
        """Which of ``keys`` the index holds."""
        found: set[str] = set()
        with self._connect() as con:
            for i in range(0, len(keys), 500):
                part = keys[i:i + 500]
                q = f"SELECT key FROM blocks WHERE key IN ({','.join('?' * len(part))})"
                found.update(r[0] for r in con.execute(q, part))
        return found

    def add(self, key: str, model: str, tokens: int, nbytes: int, owner: str | None, used: float,
            parent: str, length: int) -> None:
        """Record a block written to `path_for` ``(key)``: its model, the prompt position it ends
        at (tokens), its size (bytes), its owner, when its turn used it (`time.time()`, the same
        for every block of one turn, so eviction takes a prompt's tail first) and the key it
        follows (``parent``: the previous block's, or the model identity) and the positions it
        holds (``length``, tokens)."""
        with self._connect() as con:
            con.execute("INSERT OR REPLACE INTO blocks VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (key, model, tokens, nbytes, used, parent, length))
            con.execute("INSERT OR IGNORE INTO owners VALUES (?, ?)", (key, owner or ANONYMOUS))

    def tails(self, parent: str, after: int, limit: int) -> list[tuple[str, int]]:
        """(key, end) of the blocks following ``parent`` that end in (``after``, ``limit``]
        tokens, the longest first: candidates for a prompt's last, partial block."""
        with self._connect() as con:
            return con.execute("SELECT key, tokens FROM blocks WHERE parent = ? AND tokens > ? AND tokens <= ? "
                               "ORDER BY tokens DESC", (parent, after, limit)).fetchall()

    def touch(self, keys: Iterable[str], owner: str | None, used: float | None = None) -> None:
        """Mark ``keys`` used at ``used`` (`time.time()`; None: now), by ``owner`` (None: `ANONYMOUS`)."""
        rows = [(k,) for k in keys]
        now = time.time() if used is None else used
        with self._connect() as con:
            con.executemany("UPDATE blocks SET used = ? WHERE key = ?", [(now, k) for (k,) in rows])
            con.executemany("INSERT OR IGNORE INTO owners SELECT key, ? FROM blocks WHERE key = ?",
                            [(owner or ANONYMOUS, k) for (k,) in rows])

    def remove(self, keys: Iterable[str]) -> int:
        """Delete ``keys``' files and rows; returns the bytes their rows said they took."""
        keys = list(keys)
        freed = 0
        with self._connect() as con:
            for k in keys:
                row = con.execute("SELECT bytes FROM blocks WHERE key = ?", (k,)).fetchone()
                freed += row[0] if row else 0
                con.execute("DELETE FROM blocks WHERE key = ?", (k,))
                con.execute("DELETE FROM owners WHERE key = ?", (k,))
        for k in keys:
            self.path_for(k).unlink(missing_ok=True)
        return freed

    def evict(self, budget_bytes: int) -> int:
        """Drop least recently used blocks until the total is at most ``budget_bytes``; returns
        the bytes freed."""
        with self._connect() as con:
            total = con.execute("SELECT coalesce(sum(bytes), 0) FROM blocks").fetchone()[0]
            doomed = []
            if total > budget_bytes:
                for key, nbytes in con.execute("SELECT key, bytes FROM blocks ORDER BY used, tokens DESC"):
                    if total <= budget_bytes:
                        break
                    doomed.append(key)
                    total -= nbytes
        return self.remove(doomed)

    def drop_owner(self, owner: str) -> int:
        """Forget ``owner`` (e.g. a deleted conversation) and delete the blocks no one else used;
        returns the bytes freed."""
        with self._connect() as con:
            mine = [r[0] for r in con.execute("SELECT key FROM owners WHERE owner = ?", (owner,))]
            con.execute("DELETE FROM owners WHERE owner = ?", (owner,))
            shared = set()
            for i in range(0, len(mine), 500):
                part = mine[i:i + 500]
                q = f"SELECT DISTINCT key FROM owners WHERE key IN ({','.join('?' * len(part))})"
                shared.update(r[0] for r in con.execute(q, part))
        return self.remove(k for k in mine if k not in shared)

    def budget(self) -> int:
        """The person's budget (`set_budget`), else `DISK_CACHE_BUDGET`; bytes."""
        with self._connect() as con:
            row = con.execute("SELECT value FROM settings WHERE name = 'budget_bytes'").fetchone()
        return int(row[0]) if row else DISK_CACHE_BUDGET

    def set_budget(self, nbytes: int) -> None:
        """Keep ``nbytes`` as the budget of every later engine, and evict down to it now."""
        with self._connect() as con:
            con.execute("INSERT OR REPLACE INTO settings VALUES ('budget_bytes', ?)", (str(int(nbytes)),))
        self.evict(nbytes)

    def register(self, model: str, block_tokens: int) -> None:
        """Note that ``model``'s whole blocks hold ``block_tokens`` tokens (for `usage`)."""
        with self._connect() as con:
            con.execute("INSERT OR REPLACE INTO models VALUES (?, ?)", (model, block_tokens))

    def usage(self) -> Usage:
        """What the cache holds now (from the index)."""
        with self._connect() as con:
            blocks, nbytes, models, tokens, partial = con.execute(
                "SELECT count(*), coalesce(sum(bytes), 0), count(DISTINCT b.model), coalesce(sum(length), 0), "
                "coalesce(sum(length < coalesce(m.block_tokens, ?)), 0) "
                "FROM blocks b LEFT JOIN models m ON b.model = m.model", (BLOCK_TOKENS,)).fetchone()
            owners = con.execute("SELECT count(DISTINCT owner) FROM owners").fetchone()[0]
            size = con.execute("SELECT max(block_tokens) FROM models WHERE model IN "
                               "(SELECT DISTINCT model FROM blocks)").fetchone()[0]
        return Usage(blocks, nbytes, models, owners, self.budget(), tokens, partial, size or BLOCK_TOKENS)

    def clear(self) -> int:
        """Delete every block (files, rows and leftovers of interrupted writes); the budget
        setting stays.  Returns the bytes the index counted."""
        freed = self.usage().bytes
        with self._connect() as con:
            con.execute("DELETE FROM blocks")
            con.execute("DELETE FROM owners")
        shutil.rmtree(self.blocks_dir, ignore_errors=True)
        self.blocks_dir.mkdir(mode=0o700, exist_ok=True)
        return freed


def clear_cache(directory: Path | str | None = None) -> tuple[DiskIndex, int]:
    """Empty the prompt cache in ``directory`` (None: `default_directory`): `DiskIndex.clear`,
    or, when the index is damaged (not a database, a malformed one), delete it and every block
    and start an empty index (its budget setting goes with it).  Returns the index and the bytes
    freed.

    Raises:
        OSError: the directory or its files cannot be created or deleted.
        sqlite3.Error: the index is busy (another process holds it) or cannot be created anew.
    """
    try:
        index = DiskIndex(directory)
        return index, index.clear()
    except sqlite3.OperationalError:
        raise
    except sqlite3.DatabaseError:
        d = Path(directory) if directory is not None else default_directory()
        freed = sum(f.stat().st_size for f in (d / "blocks").rglob("*") if f.is_file())
        for name in ("index.db", "index.db-wal", "index.db-shm"):
            (d / name).unlink(missing_ok=True)
        shutil.rmtree(d / "blocks", ignore_errors=True)
        return DiskIndex(d), freed


__all__ = ["ANONYMOUS", "DiskIndex", "Usage", "chain_keys", "clear_cache", "link",
           "default_directory", "model_identity"]
