"""Which conversation owns which blocks of the prompt cache on disk, for the front-ends.

The engine's cache (`magimac.engine.disk_cache`, its index `magimac.engine.disk_index`) tags each
block with owners; a conversation of the history owns the blocks its turns wrote, so deleting it
frees what no other conversation uses. Front-ends ask this module, never the engine.
"""

from __future__ import annotations

import sqlite3

from magimac.engine.disk_index import DiskIndex, default_directory


def conversation_owner(conversation_id: int) -> str:
    """The owner tag of a history conversation's blocks (`magimac.text.history`), for
    `magimac.core.settings.GenerationSettings.cache_owner`."""
    return f"conversation:{conversation_id}"


def forget_conversation(conversation_id: int) -> int:
    """Drop the blocks only the deleted conversation ``conversation_id`` used; returns the bytes
    freed.  Never raises: a cache that cannot be opened holds nothing to drop (0)."""
    directory = default_directory()
    if not (directory / "index.db").exists():
        return 0
    try:
        return DiskIndex(directory).drop_owner(conversation_owner(conversation_id))
    except (OSError, sqlite3.Error):
        return 0
