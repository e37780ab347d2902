"""Chat history: conversations and their messages in SQLite (`paths.data_dir()/history.db`).

What the project adds on top of `sqlite3`: the schema (versioned with ``PRAGMA user_version``
and migrated forward on open), WAL mode, an FTS5 index over message text and reasoning, and a
database file readable by its owner only (mode 0600; SQLite gives its `-wal`/`-shm` files the
same mode).

Every message keeps its reasoning, stats (JSON), attachments (JSON list of
``{"kind": "image" | "document", "path": ...}``) and finish reason. An assistant message being
streamed is written first with ``finish_reason`` NULL and updated as text arrives, so an answer
cut short by a crash or a kill is kept as far as it got (`StoredMessage.interrupted`).

No Textual or MLX imports: the TUI, `magimac chat` and tests use this module alike.
"""

from __future__ import annotations

from magimac.core.errors import MagimacError

import json
import os
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from magimac.core import paths, staging
from magimac.core.conversation import Message

DB_NAME = "history.db"

# Schema migrations: MIGRATIONS[i] brings user_version i to i + 1.
MIGRATIONS: list[str] = [
    # 1: conversations, messages, full-text index kept in sync by triggers.
    """
    CREATE TABLE conversations (
        id INTEGER PRIMARY KEY,
        title TEXT NOT NULL,
        created REAL NOT NULL,
        updated REAL NOT NULL,
        settings TEXT NOT NULL DEFAULT '{}'
    );
    CREATE TABLE messages (
        id INTEGER PRIMARY KEY,
        conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
        role TEXT NOT NULL,
        content TEXT NOT NULL DEFAULT '',
        reasoning TEXT,
        attachments TEXT NOT NULL DEFAULT '[]',
        stats TEXT NOT NULL DEFAULT '{}',
        finish_reason TEXT,
        created REAL NOT NULL
    );
    CREATE INDEX messages_by_conversation ON messages(conversation_id, id);
    CREATE VIRTUAL TABLE messages_fts USING fts5(
        content, reasoning, content='messages', content_rowid='id'
    );
    CREATE TRIGGER messages_ai AFTER INSERT ON messages BEGIN
        INSERT INTO messages_fts(rowid, content, reasoning)
        VALUES (new.id, new.content, coalesce(new.reasoning, ''));
    END;
    CREATE TRIGGER messages_ad AFTER DELETE ON messages BEGIN
        INSERT INTO messages_fts(messages_fts, rowid, content, reasoning)
        VALUES ('delete', old.id, old.content, coalesce(old.reasoning, ''));
    END;
    CREATE TRIGGER messages_au AFTER UPDATE OF content, reasoning ON messages BEGIN
        INSERT INTO messages_fts(messages_fts, rowid, content, reasoning)
        VALUES ('delete', old.id, old.content, coalesce(old.reasoning, ''));
        INSERT INTO messages_fts(rowid, content, reasoning)
        VALUES (new.id, new.content, coalesce(new.reasoning, ''));
    END;
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)


class HistoryError(MagimacError, RuntimeError):
    """The history database cannot be used (newer schema, corrupt file); one-line message."""


@dataclass(frozen=True)
class Attachment:
    """A file attached to a user message: ``kind`` is ``"image"`` or ``"document"``."""

    kind: str
    path: str


@dataclass
class ConversationInfo:
    """A conversation's row: ``settings`` is a JSON-able dict (model, sampling, ...)."""

    id: int
    title: str
    created: float
    updated: float
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass
class StoredMessage:
    """A message as stored.

    Attributes:
        id: row id; role/content/reasoning: as in `conversation.Message`;
        attachments: images and documents; stats: the turn's numbers (`events.Stats` fields);
        finish_reason: ``stop``/``length``/``cancelled``/``error`` for a finished answer, None
        for user messages and for an answer still streaming or cut short by a crash.

    Tool calls (`magimac.session.tool_loop`): an assistant row of a round that called tools has
    ``stats["tool_calls"]`` (``{"id", "name", "arguments"}`` dicts); each result is a ``tool`` row
    whose content is what the model was given, ``stats`` holds ``tool_call_id``, ``name``,
    ``arguments`` and ``seconds``, and ``reasoning`` holds the call's code or arguments (so that
    search finds it; it is not sent to the model as reasoning).
    """

    id: int
    conversation_id: int
    role: str
    content: str
    reasoning: str | None = None
    attachments: list[Attachment] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)
    finish_reason: str | None = None
    created: float = 0.0

    @property
    def interrupted(self) -> bool:
        """An assistant answer that never finished (crash/kill) or was stopped."""
        return self.role == "assistant" and self.finish_reason in (None, "cancelled")

    def to_message(self) -> Message:
        """The `conversation.Message` the engine takes."""
        s = self.stats or {}
        if self.role == "tool":
            return Message("tool", self.content, tool_call_id=s.get("tool_call_id"), name=s.get("name"),
                           seconds=s.get("seconds"))
        return Message(
            role=self.role,
            content=self.content,
            reasoning=self.reasoning,
            images=[a.path for a in self.attachments if a.kind == "image"],
            documents=[a.path for a in self.attachments if a.kind == "document"],
            tool_calls=list(s.get("tool_calls") or []) if self.role == "assistant" else [],
        )


MARK_START, MARK_END = "\x02", "\x03"
"""Around the matched terms of a `SearchHit.snippet` (control characters: never in typed text)."""


@dataclass(frozen=True)
class SearchHit:
    """A full-text match: the message, its conversation's title and a snippet of the message
    around the match, each matched term between `MARK_START` and `MARK_END`."""

    conversation_id: int
    message_id: int
    title: str
    role: str
    snippet: str


def default_path() -> Path:
    """`paths.data_dir()/history.db`."""
    return paths.data_dir() / DB_NAME


def _attachments_json(atts: list[Attachment]) -> str:
    return json.dumps([{"kind": a.kind, "path": a.path} for a in atts])


def _fts_query(text: str) -> str:
    """A person's search words as an FTS5 query: each word quoted, the last one a prefix."""
    words = [w.replace('"', '""') for w in text.split()]
    if not words:
        return ""
    return " ".join(f'"{w}"' for w in words[:-1]) + (" " if len(words) > 1 else "") + f'"{words[-1]}"*'


class History:
    """An open history database. Methods commit before returning; not shared across threads
    (open one per thread; WAL lets them read while another writes)."""

    def __init__(self, path: Path | str | None = None):
        """Open (creating it, mode 0600) and migrate the database at ``path``.

        Raises:
            HistoryError: the file is not a database or has a newer schema than this magimac,
                or it cannot be created (read-only disk, a file where a folder should be).
        """
        self.path = Path(path) if path is not None else default_path()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if not self.path.exists():
                os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
            os.chmod(self.path, 0o600)
        except OSError as e:
            raise HistoryError(f"{self.path}: cannot write the history database there: "
                               f"{staging.why_unwritable(self.path, e)}; set MAGIMAC_DATA_DIR to a "
                               "writable folder") from None
        try:
            self.db = sqlite3.connect(self.path, check_same_thread=False)
            self.db.row_factory = sqlite3.Row
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA foreign_keys=ON")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self._migrate()
        except sqlite3.DatabaseError as e:
            raise HistoryError(f"{self.path}: cannot use the history database ({e}); "
                               "move it aside to start a new one") from None

    def _migrate(self) -> None:
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise HistoryError(f"{self.path}: schema version {version} is newer than this "
                               f"magimac understands ({SCHEMA_VERSION}); upgrade magimac")
        for v in range(version, SCHEMA_VERSION):
            self.db.executescript(f"BEGIN; {MIGRATIONS[v]}; PRAGMA user_version = {v + 1}; COMMIT;")

    @property
    def schema_version(self) -> int:
        """The database's ``PRAGMA user_version``."""
        return self.db.execute("PRAGMA user_version").fetchone()[0]

    def close(self) -> None:
        """Checkpoint the WAL into the database file, then close the connection: after it
        ``history.db`` alone holds everything (a backup of that one file is complete)."""
        try:
            self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error:  # busy (another connection reading): SQLite checkpoints later
            pass
        self.db.close()

    # conversations ---------------------------------------------------------------------
    def new_conversation(self, title: str = "New chat", settings: dict | None = None) -> ConversationInfo:
        """Create a conversation; returns its row."""
        now = time.time()
        with self.db:
            cur = self.db.execute(
                "INSERT INTO conversations(title, created, updated, settings) VALUES (?, ?, ?, ?)",
                (title, now, now, json.dumps(settings or {})),
            )
        return ConversationInfo(cur.lastrowid, title, now, now, dict(settings or {}))

    @staticmethod
    def _conv(row: sqlite3.Row) -> ConversationInfo:
        return ConversationInfo(row["id"], row["title"], row["created"], row["updated"],
                                json.loads(row["settings"] or "{}"))

    def conversations(self) -> list[ConversationInfo]:
        """All conversations, most recently updated first."""
        rows = self.db.execute("SELECT * FROM conversations ORDER BY updated DESC, id DESC")
        return [self._conv(r) for r in rows]

    def conversation(self, conversation_id: int) -> ConversationInfo | None:
        """One conversation, or None."""
        row = self.db.execute("SELECT * FROM conversations WHERE id = ?", (conversation_id,)).fetchone()
        return self._conv(row) if row else None

    def rename(self, conversation_id: int, title: str) -> None:
        """Set a conversation's title."""
        with self.db:
            self.db.execute("UPDATE conversations SET title = ? WHERE id = ?", (title, conversation_id))

    def set_settings(self, conversation_id: int, settings: dict) -> None:
        """Replace a conversation's settings (a JSON-able dict)."""
        with self.db:
            self.db.execute("UPDATE conversations SET settings = ? WHERE id = ?",
                            (json.dumps(settings), conversation_id))

    def delete(self, conversation_id: int) -> None:
        """Delete a conversation and its messages."""
        with self.db:
            self.db.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,))

    def _touch(self, conversation_id: int) -> None:
        self.db.execute("UPDATE conversations SET updated = ? WHERE id = ?", (time.time(), conversation_id))

    # messages --------------------------------------------------------------------------
    def add_message(
        self,
        conversation_id: int,
        role: str,
        content: str = "",
        *,
        reasoning: str | None = None,
        attachments: list[Attachment] | None = None,
        stats: dict | None = None,
        finish_reason: str | None = None,
    ) -> StoredMessage:
        """Append a message; returns it with its id."""
        now = time.time()
        atts = list(attachments or [])
        with self.db:
            cur = self.db.execute(
                "INSERT INTO messages(conversation_id, role, content, reasoning, attachments, stats,"
                " finish_reason, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (conversation_id, role, content, reasoning, _attachments_json(atts),
                 json.dumps(stats or {}), finish_reason, now),
            )
            self._touch(conversation_id)
        return StoredMessage(cur.lastrowid, conversation_id, role, content, reasoning, atts,
                             dict(stats or {}), finish_reason, now)

    def update_message(
        self,
        message_id: int,
        *,
        content: str | None = None,
        reasoning: str | None = None,
        stats: dict | None = None,
        finish_reason: str | None = None,
    ) -> None:
        """Update the given fields of a message (None leaves a field as it is)."""
        sets, values = [], []
        for col, v in (("content", content), ("reasoning", reasoning), ("finish_reason", finish_reason)):
            if v is not None:
                sets.append(f"{col} = ?")
                values.append(v)
        if stats is not None:
            sets.append("stats = ?")
            values.append(json.dumps(stats))
        if not sets:
            return
        with self.db:
            self.db.execute(f"UPDATE messages SET {', '.join(sets)} WHERE id = ?", (*values, message_id))

    @staticmethod
    def _msg(row: sqlite3.Row) -> StoredMessage:
        atts = [Attachment(a["kind"], a["path"]) for a in json.loads(row["attachments"] or "[]")]
        return StoredMessage(row["id"], row["conversation_id"], row["role"], row["content"],
                             row["reasoning"], atts, json.loads(row["stats"] or "{}"),
                             row["finish_reason"], row["created"])

    def messages(self, conversation_id: int) -> list[StoredMessage]:
        """A conversation's messages in order."""
        rows = self.db.execute("SELECT * FROM messages WHERE conversation_id = ? ORDER BY id",
                               (conversation_id,))
        return [self._msg(r) for r in rows]

    def delete_messages_from(self, conversation_id: int, message_id: int) -> None:
        """Delete message ``message_id`` and every later one of the conversation (regenerate, edit)."""
        with self.db:
            self.db.execute("DELETE FROM messages WHERE conversation_id = ? AND id >= ?",
                            (conversation_id, message_id))

    # search ----------------------------------------------------------------------------
    def search(self, text: str, limit: int = 50) -> list[SearchHit]:
        """Full-text search (FTS5) over message text and reasoning, best matches first.

        ``text`` is plain words (all must match; the last one as a prefix), not FTS syntax.
        """
        q = _fts_query(text)
        if not q:
            return []
        rows = self.db.execute(
            "SELECT m.id, m.conversation_id, m.role, c.title,"
            f" snippet(messages_fts, -1, '{MARK_START}', '{MARK_END}', '…', 8) AS snip"
            " FROM messages_fts JOIN messages m ON m.id = messages_fts.rowid"
            " JOIN conversations c ON c.id = m.conversation_id"
            " WHERE messages_fts MATCH ? ORDER BY rank LIMIT ?",
            (q, limit),
        )
        return [SearchHit(r["conversation_id"], r["id"], r["title"], r["role"], r["snip"]) for r in rows]
