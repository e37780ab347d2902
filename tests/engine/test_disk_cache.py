"""The prompt cache on disk: a prefix written by one engine is read by the next (and by another
process), never by another model or other KV bits; bad files are removed and recomputed; the
budget and conversation deletion bound it; the output with a cached prefix equals the output
without it (random weights, greedy)."""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
import subprocess
import sys

import pytest

from magimac.cli.main import main
from magimac.core.conversation import Message
from magimac.core.events import AnswerDelta, Done, ReasoningDelta
from magimac.engine.disk_index import DiskIndex, default_directory
from magimac.session.prompt_cache import conversation_owner, forget_conversation
from magimac.core.settings import DiskCacheSettings, GenerationSettings
from magimac.engine.worker import Engine

BLOCK = 16
GREEDY = GenerationSettings(temperature=0, max_tokens=8, seed=0)
LONG = "Tell me about the history of the harbour, its ships and its lighthouse. " * 6


def turn(engine: Engine, text: str | list = LONG, settings: GenerationSettings = GREEDY):
    """One turn on ``text`` (a user message, or the messages) -> (generated text, Stats)."""
    out = ""
    messages = [Message("user", text)] if isinstance(text, str) else text
    for ev in engine.submit(messages, settings):
        if isinstance(ev, (ReasoningDelta, AnswerDelta)):
            out += ev.text
        if isinstance(ev, Done):
            assert ev.finish_reason != "error", ev.error
            return out, ev.stats


def one_turn(checkpoint, directory, text: str = LONG, settings: GenerationSettings = GREEDY, **options):
    """A fresh engine (empty memory cache), one turn, closed (its writes finished)."""
    disk = DiskCacheSettings(directory=str(directory), block_tokens=options.pop("block_tokens", BLOCK),
                             **options.pop("disk", {}))
    e = Engine(checkpoint, disk_cache=disk, **options)
    e.wait_loaded()
    try:
        return turn(e, text, settings)
    finally:
        e.close()


class Fresh:
    """One engine whose memory cache is emptied before every turn, as in a new process (each
    turn's writes are finished before it returns)."""

    def __init__(self, checkpoint, directory, **options) -> None:
        disk = DiskCacheSettings(directory=str(directory), block_tokens=BLOCK, **options.pop("disk", {}))
        self.engine = Engine(checkpoint, disk_cache=disk, **options)
        self.engine.wait_loaded()

    def __call__(self, text=LONG, settings: GenerationSettings = GREEDY):
        self.engine._runner.cache.reset()  # the worker is idle between turns
        out = turn(self.engine, text, settings)
        self.engine.wait_idle()
        return out

    def __enter__(self) -> "Fresh":
        return self

    def __exit__(self, *exc) -> None:
        self.engine.close()


def test_a_new_engine_reads_the_prefix_and_answers_the_same(random_checkpoint, tmp_path):
    plain, s0 = one_turn(random_checkpoint, tmp_path, disk={"enabled": False})
    assert s0.disk_tokens == 0 and not (tmp_path / "index.db").exists()
    with Fresh(random_checkpoint, tmp_path) as fresh:
        first, s1 = fresh()
        assert (s1.memory_tokens, s1.disk_tokens, s1.prefilled_tokens) == (0, 0, s1.prompt_tokens)
        assert DiskIndex(tmp_path).usage().tokens == s1.prompt_tokens  # whole blocks and the partial last one
        again, s2 = fresh()
        assert s2.disk_tokens == s2.prompt_tokens - 1  # all but the token that must be fed
        assert s2.cached_tokens == s2.disk_tokens and s2.prefilled_tokens == s2.prompt_tokens - s2.disk_tokens
        assert again == first == plain  # greedy: the cached prefix changes nothing
        follow = [Message("user", LONG), Message("assistant", first), Message("user", "And the lighthouse?")]
        answers = [fresh(follow), fresh(follow)]
    assert answers[0][1].disk_tokens == s1.prompt_tokens  # the whole earlier prompt, its partial block too
    assert answers[1][1].disk_tokens == answers[1][1].prompt_tokens - 1
    assert answers[0][0] == answers[1][0]


def test_a_second_process_reads_the_history_from_disk(random_checkpoint):
    # default block size (256) and directory (MAGIMAC_CACHE_DIR, set per test), as people get them
    text = LONG * 3
    e = Engine(random_checkpoint)
    e.wait_loaded()
    try:
        first, s1 = turn(e, text)
    finally:
        e.close()
    assert s1.disk_tokens == 0 and s1.prompt_tokens > 300
    p = subprocess.run([sys.executable, "-m", "magimac", "chat", "--model", str(random_checkpoint), "--json",
                        "--temperature", "0", "--seed", "0", "--max-tokens", "8", text],
                       capture_output=True, text=True, timeout=120, env=os.environ.copy())
    assert p.returncode == 0, p.stderr
    lines = [json.loads(x) for x in p.stdout.splitlines()]
    stats = next(d for d in lines if d["type"] == "stats")
    assert stats["disk_tokens"] == s1.prompt_tokens - 1 > 256
    assert stats["memory_tokens"] == 0 and stats["prefilled_tokens"] == s1.prompt_tokens - stats["disk_tokens"]
    assert "".join(d["text"] for d in lines if d["type"] in ("reasoning", "answer")) == first


def test_other_kv_bits_and_other_weights_never_use_the_blocks(random_checkpoint, scripted_checkpoint, tmp_path):
    one_turn(random_checkpoint, tmp_path)
    n = DiskIndex(tmp_path).usage().blocks
    with Fresh(random_checkpoint, tmp_path, kv_bits=8) as fresh:
        assert fresh()[1].disk_tokens == 0
        assert fresh()[1].disk_tokens > 0  # its own quantized blocks, though
    copy = tmp_path / "copy"  # other weights of the same shapes, size and modification time
    shutil.copytree(random_checkpoint, copy)
    shard = sorted(copy.glob("model-*.safetensors"))[0]
    st = shard.stat()
    with open(shard, "r+b") as f:
        f.seek(st.st_size // 2)
        f.write(bytes(64))
    os.utime(shard, ns=(st.st_atime_ns, st.st_mtime_ns))
    _, sc = one_turn(copy, tmp_path)
    _, ss = one_turn(scripted_checkpoint, tmp_path)
    assert sc.disk_tokens == ss.disk_tokens == 0
    assert DiskIndex(tmp_path).usage().models == 4 and DiskIndex(tmp_path).usage().blocks == 4 * n


def test_truncated_misnamed_and_damaged_blocks_are_removed_and_recomputed(random_checkpoint, tmp_path):
    with Fresh(random_checkpoint, tmp_path) as fresh:
        first, s1 = fresh()
        index = DiskIndex(tmp_path)
        chain = _chain(index)
        assert len(chain) >= 4
        whole = s1.prompt_tokens - 1
        data = index.path_for(chain[2]).read_bytes()
        index.path_for(chain[2]).write_bytes(data[: len(data) // 2])  # truncated
        out, s2 = fresh()
        assert s2.disk_tokens == 2 * BLOCK and out == first
        assert len(index.present(chain)) == len(chain)  # block 2 written again
        # a whole, readable block under another block's name (its metadata names its own key)
        index.path_for(chain[0]).write_bytes(index.path_for(chain[1]).read_bytes())
        out, s3 = fresh()
        assert s3.disk_tokens == 0 and out == first
        assert fresh()[1].disk_tokens == whole
        index.path_for(chain[0]).write_bytes(b"\xff" * 64)  # a damaged header
        out, s4 = fresh()
        assert s4.disk_tokens == 0 and out == first and index.path_for(chain[0]).stat().st_size > 64
        out, s5 = fresh()
    assert s5.disk_tokens == whole and out == first


def _chain(index: DiskIndex) -> list[str]:
    """The block keys of the one stored prompt, in prompt order (by the end they record)."""
    con = index._connect()
    rows = con.execute("SELECT key FROM blocks ORDER BY tokens").fetchall()
    con.close()
    assert len(rows) == len(list(index.blocks_dir.glob("*/*.safetensors")))
    return [r[0] for r in rows]


def test_the_budget_keeps_the_head_of_a_prompt(random_checkpoint, tmp_path):
    one_turn(random_checkpoint, tmp_path)
    index = DiskIndex(tmp_path)
    per_block = max(index.path_for(k).stat().st_size for k in _chain(index))
    index.clear()
    budget = 3 * per_block + per_block // 2
    with Fresh(random_checkpoint, tmp_path, disk={"budget_bytes": budget}) as fresh:
        fresh()
        usage = index.usage()
        assert usage.blocks == 3 and usage.bytes <= budget
        assert fresh()[1].disk_tokens == 3 * BLOCK


def test_deleting_a_conversation_drops_only_its_own_blocks(random_checkpoint, tmp_path, monkeypatch):
    monkeypatch.setenv("MAGIMAC_CACHE_DIR", str(tmp_path))
    directory = default_directory()
    ships, lights = LONG + "About ships? " * 20, LONG + "About lights? " * 20  # the same start
    a = GenerationSettings(temperature=0, max_tokens=4, cache_owner=conversation_owner(1))
    b = GenerationSettings(temperature=0, max_tokens=4, cache_owner=conversation_owner(2))
    with Fresh(random_checkpoint, directory) as fresh:
        fresh(ships, a)
        fresh(lights, b)
        index = DiskIndex(directory)
        both = index.usage().blocks
        freed = forget_conversation(1)
        after = index.usage()
        assert freed > 0 and 0 < after.blocks < both and after.owners == 1
        s = fresh(lights, b)[1]
        assert s.disk_tokens == s.prompt_tokens - 1  # conversation 2 is whole
        s = fresh(ships, a)[1]
        assert 0 < s.disk_tokens < s.prompt_tokens - BLOCK  # only the shared start is left of 1
    assert len(list(index.blocks_dir.glob("*/*.safetensors"))) == index.usage().blocks


def test_files_are_private_and_a_full_disk_skips_saving_with_one_notice(random_checkpoint, tmp_path, monkeypatch):
    import safetensors.numpy

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    with Fresh(random_checkpoint, tmp_path) as fresh:
        fresh()
        index = DiskIndex(tmp_path)
        for p in [tmp_path, index.blocks_dir, *index.blocks_dir.iterdir()]:
            assert stat.S_IMODE(p.stat().st_mode) == 0o700
        for p in [index.db, *index.blocks_dir.glob("*/*")]:
            assert stat.S_IMODE(p.stat().st_mode) == 0o600
        index.clear()
        monkeypatch.setattr(safetensors.numpy, "save_file", full)
        notices = [fresh(text)[1].cache_notice for text in (LONG, LONG + "More. " * 10, LONG + "Again. " * 10)]
    assert [bool(n) for n in notices] == [False, True, False] and "disk is full" in notices[1]
    assert index.usage().blocks == 0 and not list(tmp_path.rglob("*.tmp"))


def test_magimac_cache_shows_the_size_and_clears(random_checkpoint, tmp_path, capsys, monkeypatch):
    one_turn(random_checkpoint, default_directory())
    assert main(["cache"]) == 0
    out = capsys.readouterr().out
    assert str(default_directory()) in out and "of KV of 1 model: " in out and "budget 10.00 GB" in out
    assert main(["cache", "--budget", "20GB", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["blocks"] > 0 and d["budget_bytes"] == 20 * 10**9 and d["block_tokens"] == BLOCK
    assert main(["cache", "--clear"]) == 0
    assert "0 tokens of KV of 0 models: 0 whole blocks" in capsys.readouterr().out
    assert main(["chat", "--model", str(random_checkpoint), "--no-disk-cache", "--max-tokens", "2", LONG]) == 0
    capsys.readouterr()
    assert main(["cache", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["blocks"] == 0
    assert main(["cache", "--budget", "lots"]) == 1
    assert "--budget" in capsys.readouterr().err
