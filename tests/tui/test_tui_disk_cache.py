"""The app and the prompt cache on disk: a conversation reopened in a new app (a new engine,
nothing in memory) says how much of its prompt came from disk; deleting it deletes its blocks."""

from __future__ import annotations

from magimac.engine.disk_index import DiskIndex
from magimac.engine.worker import Engine
from magimac.text.history import History

from pilot_helpers import app_for, send, wait_until


async def test_a_reopened_conversation_reads_from_disk_and_its_deletion_drops_its_blocks(scripted_checkpoint):
    first = Engine(scripted_checkpoint)
    try:
        app = app_for(first, scripted_checkpoint)
        async with app.run_test(size=(120, 30)) as pilot:
            await send(pilot, "Hi")
            conversation = app.conversation.id
            assert "from disk" not in app.status.render()
        first.wait_idle()
    finally:
        first.close()
    index = DiskIndex()
    assert index.usage().blocks > 0 and index.usage().owners == 1
    second = Engine(scripted_checkpoint)  # a new app: nothing in memory
    try:
        app = app_for(second, scripted_checkpoint)
        async with app.run_test(size=(120, 30)) as pilot:
            await wait_until(pilot, lambda: app.loaded is not None)
            await app.open_conversation(conversation)
            await send(pilot, "Hi again")
            stats = History().messages(conversation)[-1].stats
            assert stats["disk_tokens"] > 0 and stats["memory_tokens"] == 0
            assert f"{stats['disk_tokens']} from disk" in app.status.render()
            second.wait_idle()
            await app.run_action("delete")
            await pilot.press("y")
            await wait_until(pilot, lambda: History().conversation(conversation) is None)
    finally:
        second.close()
    assert index.usage().blocks == 0 and not list(index.blocks_dir.glob("*/*.safetensors"))
