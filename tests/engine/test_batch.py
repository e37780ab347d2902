"""The batched engine of `magimac serve`: turns decoded together stay each their own, seeds hold
in a batch, cancel ends one turn, and the prefix cache is bounded by bytes."""

from __future__ import annotations

import mlx.core as mx
import pytest
from mlx_lm.models.cache import KVCache

from magimac.core.conversation import Message
from magimac.core.events import AnswerDelta, Done, ReasoningDelta
from tests.engine.conftest import STEP, long_prompt, small_chunks, split
from magimac.engine.batch import BatchEngine
from magimac.engine.prefix import PrefixCache, kv_bytes_per_token
from magimac.core.settings import GenerationSettings
from magimac.engine.worker import Engine


def text_of(turn) -> tuple[str, Done]:
    out, done = "", None
    for ev in turn:
        if isinstance(ev, (ReasoningDelta, AnswerDelta)):
            out += ev.text
        elif isinstance(ev, Done):
            done = ev
    return out, done


@pytest.fixture(scope="module")
def random_batch(random_checkpoint):
    e = BatchEngine(random_checkpoint, context_length=4096)
    e.start()
    e.wait_loaded()
    yield e
    e.close()


def test_a_seed_gives_the_same_text_alone_and_in_a_batch(random_batch):
    seeded = GenerationSettings(temperature=1.0, seed=1234, max_tokens=12)
    alone, _ = text_of(random_batch.submit([Message("user", "seeded")], seeded))
    beside = random_batch.submit([Message("user", "a neighbour")], GenerationSettings(temperature=1.0, max_tokens=30))
    again = random_batch.submit([Message("user", "seeded")], seeded)
    assert text_of(again)[0] == alone
    assert text_of(beside)[1].finish_reason == "length"
    other_seed = GenerationSettings(temperature=1.0, seed=99, max_tokens=12)
    assert text_of(random_batch.submit([Message("user", "seeded")], other_seed))[0] != alone


def test_greedy_turns_decoded_together_match_the_one_turn_engine(random_batch, endless_engine):
    prompts = ["first prompt", "a rather longer second prompt with more words in it"]
    greedy = GenerationSettings(temperature=0, max_tokens=10)
    together = [random_batch.submit([Message("user", p)], greedy) for p in prompts]
    texts = [text_of(t)[0] for t in together]
    assert texts == [text_of(endless_engine.submit([Message("user", p)], greedy))[0] for p in prompts]


def test_cancel_ends_one_turn_and_a_long_prompt_is_refused(random_batch):
    long = random_batch.submit([Message("user", "ends soon")], GenerationSettings(max_tokens=4000))
    short = random_batch.submit([Message("user", "goes on")], GenerationSettings(max_tokens=8))
    next(long)
    long.cancel()
    assert text_of(long)[1].finish_reason == "cancelled"
    assert text_of(short)[1].finish_reason == "length"
    refused = text_of(random_batch.submit([Message("user", "word " * 5000)]))[1]
    assert refused.finish_reason == "error" and refused.rejected and "context holds 4096" in refused.error
    assert random_batch.status()["ended"]["cancelled"] >= 1


def test_serve_stops_a_cancelled_request_between_two_prefill_chunks(random_batch, monkeypatch,
                                                                    cancel_at_first_progress):
    small_chunks(random_batch._runner, monkeypatch)
    other = random_batch.submit([Message("user", "a short one")], GenerationSettings(system_prompt=None, max_tokens=5))
    progress, text, done = split(random_batch.submit(long_prompt("served"), GenerationSettings(max_tokens=5)))
    assert done.finish_reason == "cancelled" and text == ""
    assert len(progress) == 1 and progress[0].done_tokens == STEP and progress[0].total_tokens > 10 * STEP
    assert split(other)[2].finish_reason == "length"  # the other request went on


def kv(n: int) -> list:
    c = KVCache()
    c.update_and_fetch(mx.zeros((1, 2, n, 8)), mx.zeros((1, 2, n, 8)))
    return [c]


def test_the_prefix_cache_finds_the_longest_prefix_and_keeps_to_its_bytes():
    one = kv(10)[0].nbytes  # mlx-lm's KVCache allocates 256 positions at a time: all entries weigh the same
    cache = PrefixCache(max_bytes=one * 2 + 1)
    cache.store([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], kv(10))
    cache.store([1, 2, 3, 50, 51, 52, 53, 54, 55, 56], kv(10))
    c, n = cache.fetch([1, 2, 3, 4, 5, 99], [])
    assert n == 5 and c[0].offset == 5
    c, n = cache.fetch([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], [])
    assert n == 9  # one token is always left to feed
    c, n = cache.fetch([1, 2, 3, 4, 5, 6], [(3, 5)])
    assert n == 3  # never inside an image (positions 3..5; 5 of them cached would cut it)
    cache.store([70, 71, 72, 73, 74, 75, 76, 77, 78, 79], kv(10))  # a third one: the least recent goes
    assert len(cache) == 2 and cache.nbytes <= cache.max_bytes
    assert cache.fetch([1, 2, 3, 4, 5, 6], [])[1] == 3  # the first is gone: only the second's start
    assert cache.fetch([1, 2, 3, 50, 51, 9], [])[1] == 5
    assert cache.fetch([70, 71, 72], [])[1] == 2


def test_kv_bytes_per_token_matches_magistral_small():
    config = {"num_hidden_layers": 40, "num_key_value_heads": 8, "head_dim": 128, "hidden_size": 5120,
              "num_attention_heads": 32}
    assert kv_bytes_per_token(config) == 160 * 1024  # shared/MAGISTRAL.md


def test_a_quantized_kv_cache_is_refused_with_what_to_do(random_checkpoint):
    with pytest.raises(ValueError, match="16-bit KV cache"):
        BatchEngine(random_checkpoint, kv_bits=8)
    assert isinstance(BatchEngine(random_checkpoint), Engine)


def test_a_seed_gives_the_same_text_in_a_chat_and_in_serve(random_batch, endless_engine):
    """One seed rule for both paths (`magimac.engine.sampler`): a seeded turn samples the same
    tokens in the one-turn engine (chat, app) as in the batch (serve)."""
    seeded = GenerationSettings(temperature=1.0, seed=4321, max_tokens=12)
    served = text_of(random_batch.submit([Message("user", "one seed")], seeded))[0]
    assert text_of(endless_engine.submit([Message("user", "one seed")], seeded))[0] == served


def test_serve_reads_the_prompt_cache_on_disk_after_a_restart(random_checkpoint, tmp_path):
    """A restarted `magimac serve` prefills only what it never saw: the blocks the first run
    wrote come back from disk."""
    from magimac.core.events import Stats
    from magimac.core.settings import DiskCacheSettings

    disk = DiskCacheSettings(directory=str(tmp_path / "prompt-cache"), block_tokens=16)
    greedy = GenerationSettings(temperature=0, max_tokens=4)
    texts, stats = [], []
    for _ in range(2):  # the first run writes, the restarted one reads
        e = BatchEngine(random_checkpoint, context_length=4096, disk_cache=disk)
        events = list(e.submit(long_prompt("restart"), greedy))
        e.wait_idle()
        e.close()
        texts.append("".join(ev.text for ev in events if isinstance(ev, (ReasoningDelta, AnswerDelta))))
        stats.append([ev for ev in events if isinstance(ev, Stats)][-1])
    assert stats[0].disk_tokens == 0 and stats[1].disk_tokens >= stats[1].prompt_tokens - 16
    assert stats[1].cached_tokens == stats[1].disk_tokens and texts[1] == texts[0]
