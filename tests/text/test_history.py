"""History database: messages with reasoning/stats/attachments, partial answers, search,
migrations and file mode."""

from __future__ import annotations

import sqlite3
import stat
import subprocess
import sys

import pytest

from magimac.text import history
from magimac.text.history import Attachment, History, HistoryError


def test_messages_round_trip_with_reasoning_stats_and_attachments(tmp_path):
    h = History(tmp_path / "h.db")
    c = h.new_conversation("Greetings", {"temperature": 0.5})
    h.add_message(c.id, "user", "Bonjour", attachments=[Attachment("image", "/x/cat.png"),
                                                        Attachment("document", "/x/a.pdf")])
    h.add_message(c.id, "assistant", "Salut", reasoning="think", stats={"decode_tps": 12.5},
                  finish_reason="stop")
    h.close()
    h = History(tmp_path / "h.db")
    [conv] = h.conversations()
    assert (conv.title, conv.settings) == ("Greetings", {"temperature": 0.5})
    user, answer = h.messages(c.id)
    assert user.to_message().images == ["/x/cat.png"]
    assert user.to_message().documents == ["/x/a.pdf"]
    assert (answer.content, answer.reasoning, answer.stats, answer.finish_reason) == (
        "Salut", "think", {"decode_tps": 12.5}, "stop")
    assert not answer.interrupted


def test_answer_killed_mid_stream_is_kept_as_far_as_it_got(tmp_path):
    db = tmp_path / "h.db"
    code = f"""
import os
from magimac.text.history import History
h = History({str(db)!r})
c = h.new_conversation()
h.add_message(c.id, "user", "question")
m = h.add_message(c.id, "assistant", "")
h.update_message(m.id, reasoning="half a thought", content="half an ans")
os._exit(9)
"""
    subprocess.run([sys.executable, "-c", code], check=False)
    h = History(db)
    [conv] = h.conversations()
    _, answer = h.messages(conv.id)
    assert (answer.reasoning, answer.content) == ("half a thought", "half an ans")
    assert answer.finish_reason is None and answer.interrupted


def test_search_finds_words_in_text_and_reasoning_and_follows_edits(tmp_path):
    h = History(tmp_path / "h.db")
    a = h.new_conversation("Maths")
    b = h.new_conversation("Cooking")
    h.add_message(a.id, "user", "What is the derivative of sine?")
    m = h.add_message(b.id, "assistant", "", reasoning="the ratatouille needs courgettes")
    assert h.search("derivative")[0].title == "Maths"
    assert h.search("ratat")[0].message_id == m.id  # prefix of the last word
    h.update_message(m.id, reasoning="pasta instead")
    assert h.search("ratatouille") == []
    assert [x.title for x in h.search("pasta")] == ["Cooking"]
    assert h.search('"unbalanced (') == []  # typed text is never FTS syntax
    h.delete(b.id)
    assert h.search("pasta") == []


def test_delete_messages_from_drops_the_tail(tmp_path):
    h = History(tmp_path / "h.db")
    c = h.new_conversation()
    ids = [h.add_message(c.id, r, t).id for r, t in (("user", "1"), ("assistant", "2"), ("user", "3"))]
    h.delete_messages_from(c.id, ids[1])
    assert [m.content for m in h.messages(c.id)] == ["1"]


def test_file_is_owner_only_and_in_wal_mode(tmp_path):
    h = History()  # default path under the isolated data dir
    c = h.new_conversation()
    h.add_message(c.id, "user", "x")
    assert h.path == history.default_path()
    assert stat.S_IMODE(h.path.stat().st_mode) == 0o600
    wal = h.path.with_name(h.path.name + "-wal")
    assert wal.exists() and stat.S_IMODE(wal.stat().st_mode) == 0o600
    assert h.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_migrates_old_and_refuses_newer_schema(tmp_path, monkeypatch):
    db = tmp_path / "h.db"
    h = History(db)
    assert h.schema_version == history.SCHEMA_VERSION
    h.new_conversation("kept")
    h.close()
    monkeypatch.setattr(history, "MIGRATIONS", [*history.MIGRATIONS,
                                                "ALTER TABLE conversations ADD COLUMN pinned INTEGER DEFAULT 0"])
    monkeypatch.setattr(history, "SCHEMA_VERSION", len(history.MIGRATIONS))
    h = History(db)
    assert h.schema_version == history.SCHEMA_VERSION
    assert [c.title for c in h.conversations()] == ["kept"]
    h.close()
    con = sqlite3.connect(db)
    con.execute("PRAGMA user_version = 99")
    con.commit()
    con.close()
    with pytest.raises(HistoryError, match="newer"):
        History(db)


def test_not_a_database_is_a_clear_error(tmp_path):
    bad = tmp_path / "h.db"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(HistoryError, match="move it aside"):
        History(bad)
