"""Many turns at once on one loaded model: the engine of `magimac serve`.

`BatchEngine` is `magimac.engine.worker.Engine` (the same loading, tokenizer, events and
duck-typed interface) whose worker thread decodes every running turn together, one step for
all, with mlx-lm's `BatchGenerator` (continuous batching, as `mlx_lm.server` does: a new turn
joins the running batch after its prefill; prefill runs in chunks between decode steps, of
about a second each, `magimac.engine.prefill.PrefillPace`).  What this module adds to it:

- Prefixes (`magimac.engine.prefix.PrefixCache`): each turn starts from the longest stored KV
  prefix of its prompt, and its whole KV (prompt + generated) is stored when it ends, so a
  client that sends its whole history again prefills only what is new, even when other
  conversations ran in between.
- Images: the positions up to the last image not in the prefix are prefilled here, in one
  call with mlx-vlm's input embeddings (`magimac.engine.generate.input_embeddings`), and the
  turn then joins the batch with the text after it (mlx-lm's batch takes token ids only).
- Per-turn sampling: each turn keeps its own temperature, top-p, budget processor
  (`magimac.engine.budget`) and, with a seed, its own random key (`magimac.engine.sampler.SeededSampler`), so a seeded
  turn gives the same tokens whatever runs beside it.
- Cancel: `Turn.cancel` ends that turn alone before the next step (within one token, or one
  prefill chunk); `Engine.cancel` still ends them all.  A long prefill sends its progress
  (`Prefill` events, as the one-turn engine does).
- Tool calls: each turn's output goes through `magimac.text.tool_calls.OutputSplitter` (as in
  `magimac.engine.generate`), so a call reaches the turn as one `ToolCall` event.
- A prompt that does not fit the context is refused (``Done("error", ..., rejected=True)``),
  never shortened: an API client owns its history.
- The prompt cache on disk (`magimac.engine.disk_cache`, the one-turn engine's): a turn whose
  prompt the memory prefixes miss reads its longest stored run of blocks from disk, and its
  prompt's new blocks are written after it ends, so a restarted `magimac serve` prefills only
  what it never saw.

Limits: the KV cache is 16-bit (mlx-lm's quantized KV cache cannot be batched: it has no
``merge``); a model whose plan needs quantized KV is refused at load with what to do.
"""

from __future__ import annotations

import queue
import time
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, Callable

import mlx.core as mx
from mlx_lm.generate import BatchGenerator, StopSequences
from mlx_lm.models.cache import make_prompt_cache

from magimac.core.conversation import Message
from magimac.core.errors import one_line
from magimac.core.events import Done, Prefill, Stats
from magimac.engine import loading
from magimac.engine.generate import input_embeddings, token_keys
from magimac.engine.loading import EngineLoadError
from magimac.engine.prefill import PrefillPace
from magimac.engine.prefix import PrefixCache, kv_bytes_per_token
from magimac.engine.sampler import batch_sampling
from magimac.core.settings import DiskCacheSettings, GenerationSettings
from magimac.engine.worker import Engine, Turn
from magimac.text.prompt import PromptError
from magimac.text.tool_calls import OutputSplitter
from magimac.text.tools import calls_in

DEFAULT_MAX_STREAMS = 8
"""Turns decoded together by default (more wait for a place); mlx_lm.server's default is 32."""


@dataclass
class _Request:
    prompt: Any  # magimac.text.prompt.Prompt
    settings: GenerationSettings
    t_request: float  # time.perf_counter() when submitted, seconds
    first_call: int = 1  # the number of the turn's first tool call (`OutputSplitter`)


@dataclass
class _Stream:
    """One running turn (worker thread only)."""

    turn: Turn
    keys: list
    prompt_len: int
    cached: int
    splitter: OutputSplitter
    t_request: float
    from_disk: int = 0  # prompt tokens whose KV came from the disk cache
    owner: str | None = None  # the disk cache owner of its blocks (`GenerationSettings.cache_owner`)
    tokens: list[int] = field(default_factory=list)  # every generated id, the end token too
    first_at: float | None = None
    show_prefill: bool = False  # whether its prefill sends `Prefill` events


class BatchRunner:
    """Runs many turns in one `BatchGenerator` (worker thread only).

    Args:
        info / model / vlm: as `magimac.engine.generate.TurnRunner`.
        context_length: tokens one turn may hold (prompt + generated).
        cache_bytes: the bound of the prefix cache, bytes.
        max_streams: turns decoded together.
        on_done: called with each turn and its finish reason once its Done was sent.
        disk: the prompt cache on disk (`magimac.engine.disk_cache.DiskCache`), or None.
    """

    def __init__(self, info: loading.ModelInfo, model: Any, vlm: Any, context_length: int,
                 cache_bytes: int, max_streams: int, on_done: Callable[[Turn, str], None], disk=None) -> None:
        self.info, self.model, self.vlm, self.disk = info, model, vlm, disk
        self.context_length = context_length
        self.max_streams = max_streams
        self.prefix = PrefixCache(cache_bytes)
        self.on_done = on_done
        self.streams: dict[int, _Stream] = {}
        self._samplers: dict[tuple, Callable] = {}
        self._stops = StopSequences([(info.tekken.eos_id,)])
        self.pace = PrefillPace()
        self.gen = self._generator()

    def _generator(self) -> BatchGenerator:
        return BatchGenerator(self.model, completion_batch_size=self.max_streams,
                              prefill_batch_size=self.max_streams, prefill_step_size=self.pace.step,
                              stream=mx.default_stream(mx.default_device()))

    @property
    def busy(self) -> bool:
        return bool(self.streams)

    def close(self) -> None:
        self.fail_all("the engine closed", "cancelled")
        self.gen.close()

    # ---- admitting a turn -----------------------------------------------------------------

    def add(self, req: _Request, turn: Turn) -> None:
        """Start ``turn``: its prefix from the cache, its images prefilled, then into the batch."""
        p = req.prompt
        tokens = p.tokens
        turn.prompt_tokens = list(tokens)
        if len(tokens) >= self.context_length:
            self._refuse(turn, f"the prompt is {len(tokens)} tokens but the context holds "
                               f"{self.context_length}: shorten the conversation")
            return
        keys, spans = token_keys(tokens, p.image_keys, self.info.image_token_ids())
        cache, cached = self.prefix.fetch(keys, spans)
        from_disk = 0
        if self.disk is not None:
            held = SimpleNamespace(cache=cache if cache is not None else make_prompt_cache(self.model), keys=[])
            from_disk = self.disk.restore(held, keys, spans, cached, req.settings.cache_owner)
            if from_disk:
                cache, cached = held.cache, from_disk
        if any(e >= cached for _, e in spans):
            cache, start = self._prefill_images(tokens, cached, spans, p.images, cache)
        else:
            start = cached
        room = self.context_length - len(tokens)
        max_tokens = room if req.settings.max_tokens is None else min(req.settings.max_tokens, room)
        sampler, processors = self._sampling(req.settings)
        (uid,) = self.gen.insert([tokens[start:]], max_tokens=[max_tokens], caches=[cache],
                                 all_tokens=[tokens[:start]], samplers=[sampler],
                                 logits_processors=[processors], stop_sequences=[self._stops])
        splitter = OutputSplitter(self.info.markers, self.info.tekken, req.first_call)
        self.streams[uid] = _Stream(turn, keys, len(tokens), cached, splitter, req.t_request, from_disk,
                                    req.settings.cache_owner, show_prefill=self.pace.shows(len(tokens) - start))

    def _refuse(self, turn: Turn, error: str) -> None:
        turn.put(Done("error", error, rejected=True))
        self.on_done(turn, "error")

    def _prefill_images(self, tokens, cached, spans, images, cache):
        """Prefill ``tokens[cached:]`` up to the end of the last image with mlx-vlm's embeddings;
        returns (cache, positions now cached)."""
        end = max(e for _, e in spans) + 1
        cache = cache if cache is not None else make_prompt_cache(self.model)
        with mx.stream(self.gen.stream):
            embeddings = input_embeddings(self.vlm, tokens[:end], cached, spans, images)
            self.model(mx.array(tokens[cached:end])[None], cache=cache, input_embeddings=embeddings[None])
            mx.eval([c.state for c in cache])
        return cache, end

    def _sampling(self, settings: GenerationSettings) -> tuple[Callable, list[Callable]]:
        """The turn's sampler (shared by turns that sample alike and have no seed, so the batch
        samples in one call; `magimac.engine.sampler.batch_sampling`) and its own processors."""
        return batch_sampling(settings, self.info, self._samplers)

    # ---- decoding -------------------------------------------------------------------------

    def step(self) -> None:
        """Drop cancelled turns, then one step of the batch (a decode step and/or a prefill
        chunk), sending each turn its new events."""
        for uid in [u for u, s in self.streams.items() if s.turn.cancel_event.is_set()]:
            caches = self.gen.remove([uid], return_prompt_caches=True)
            cache, held = caches.get(uid, (None, []))
            self._finish(uid, "cancelled", cache, len(held))
        if not self.streams:
            return
        self.gen.prefill_step_size = self.pace.step
        with self.gen.stats() as counted:
            prompts, responses = self.gen.next()
        self.pace.measure(counted.prompt_tokens, counted.prompt_time)
        for p in prompts:
            s = self.streams.get(p.uid)
            if s is not None and s.show_prefill:
                s.turn.put(Prefill(*p.progress))
        now = time.perf_counter()
        for r in responses:
            s = self.streams[r.uid]
            s.first_at = now if s.first_at is None else s.first_at
            s.tokens.append(r.token)
            if r.finish_reason != "stop":  # "stop" is the end token: nothing to show
                for ev in s.splitter.feed(r.token):
                    s.turn.put(ev)
            if r.finish_reason is not None:
                self._finish(r.uid, r.finish_reason, r.prompt_cache, len(r.all_tokens))

    def _finish(self, uid: int, reason: str, cache, held: int) -> None:
        """End turn ``uid``: flush its text, keep its KV prefix (``held`` positions), send Stats
        and Done."""
        s = self.streams.pop(uid)
        for ev in s.splitter.flush():
            s.turn.put(ev)
        if cache is not None and held:
            self.prefix.store((s.keys + s.tokens)[:held], cache)
        stats = self._stats(s)
        s.turn.put(stats)
        s.turn.put(Done(reason, None, stats))
        if self.disk is not None and cache is not None:  # after Done: the writer thread writes
            self.disk.save(cache, s.keys, s.prompt_len, s.owner)
        self.on_done(s.turn, reason)

    def fail_all(self, error: str, reason: str = "error") -> None:
        """End every running turn with ``Done(reason, error)`` and start a fresh batch."""
        for uid in list(self.streams):
            s = self.streams.pop(uid)
            s.turn.put(Done(reason, None if reason == "cancelled" else error, self._stats(s)))
            self.on_done(s.turn, reason)
        self.gen.close()
        self.gen = self._generator()

    def _stats(self, s: _Stream) -> Stats:
        end = time.perf_counter()
        ttft = (s.first_at - s.t_request) if s.first_at is not None else 0.0
        n = len(s.tokens)
        decode_s = end - s.first_at if s.first_at is not None else 0.0
        return Stats(
            prompt_tokens=s.prompt_len, cached_tokens=s.cached, memory_tokens=s.cached - s.from_disk,
            disk_tokens=s.from_disk, ttft_s=ttft,
            prefill_tps=(s.prompt_len - s.cached) / ttft if ttft > 0 else 0.0,
            decode_tps=(n - 1) / decode_s if decode_s > 0 and n > 1 else 0.0,
            reasoning_tokens=s.splitter.reasoning_tokens, answer_tokens=s.splitter.answer_tokens,
            tool_tokens=s.splitter.tool_tokens,
            peak_memory_bytes=int(mx.get_peak_memory()), context_length=self.context_length,
            cache_notice=self.disk.take_notice() if self.disk is not None else "",
        )


class BatchEngine(Engine):
    """`Engine` that runs many turns at once (see the module doc): ``submit`` may be called
    from many threads, and each returned `Turn` streams its own events.

    Args:
        model, context_length, force, disk_cache: as `Engine` (the prompt cache on disk is on by
            default, as for the chat and the app).
        kv_bits: must stay None (16-bit KV; see the module doc).
        cache_bytes: bound of the prefix cache, bytes; None: one whole context of 16-bit KV
            (`kv_bytes_per_token` x context length), which the memory plan already counted.
        max_streams: turns decoded together (default `DEFAULT_MAX_STREAMS`).

    Raises:
        ValueError: ``kv_bits`` given, or ``max_streams`` < 1.
    """

    def __init__(self, model, *, context_length: int | None = None, kv_bits: int | None = None,
                 force: bool = False, cache_bytes: int | None = None,
                 max_streams: int = DEFAULT_MAX_STREAMS, disk_cache: DiskCacheSettings | None = None) -> None:
        if kv_bits is not None:
            raise ValueError("a batched engine keeps a 16-bit KV cache (mlx-lm cannot batch a quantized one)")
        if max_streams < 1:
            raise ValueError(f"max_streams must be at least 1, got {max_streams}")
        super().__init__(model, context_length=context_length, force=force, disk_cache=disk_cache)
        self.cache_bytes = cache_bytes
        self.max_streams = max_streams
        self._ended: dict[str, int] = {}

    def submit(self, messages: list[Message], settings: GenerationSettings | None = None) -> Turn:
        """Queue a turn; the prompt is encoded here, in the caller's thread.  A conversation that
        cannot become a prompt ends the turn at once with ``Done("error", ..., rejected=True)``."""
        settings = settings or GenerationSettings()
        turn = Turn()
        t_request = time.perf_counter()
        try:
            prompt = self.encode(messages, settings)
        except EngineLoadError as e:
            turn.put(Done("error", str(e)))
            return turn
        except PromptError as e:
            turn.put(Done("error", str(e), rejected=True))
            return turn
        with self._pending_lock:
            self._pending.append(turn)
        self.start()
        self._requests.put(("turn", _Request(prompt, settings, t_request, calls_in(messages) + 1), turn))
        return turn

    def _make_runner(self, info, model, vlm, choice):
        if choice.kv_bits is not None:
            raise EngineLoadError(
                f"{info.path.name}: a context of {choice.context_length:,} tokens needs a quantized KV "
                "cache here, and `magimac serve` batches a 16-bit one: pass a smaller --context-length")
        cache_bytes = self.cache_bytes
        if cache_bytes is None:
            cache_bytes = kv_bytes_per_token(info.text_config) * choice.context_length
        from magimac.engine.disk_cache import open_disk_cache

        disk = open_disk_cache(self.disk_cache, info, None, "mlx_lm" if vlm is None else "mlx_vlm")
        return BatchRunner(info, model, vlm, choice.context_length, cache_bytes, self.max_streams,
                           self._forget, disk)

    def status(self) -> dict:
        """``{"running": turns queued or decoding, "ended": {finish reason: turns}, "prefix_cache":
        {"entries", "bytes", "max_bytes"}}`` (any thread; a snapshot)."""
        with self._pending_lock:
            running = len(self._pending)
        runner = self._runner
        cache = runner.prefix if runner is not None else None
        return {"running": running, "ended": dict(self._ended),
                "prefix_cache": {"entries": len(cache) if cache else 0, "bytes": cache.nbytes if cache else 0,
                                 "max_bytes": cache.max_bytes if cache else 0}}

    def _forget(self, turn: Turn, reason: str) -> None:
        with self._pending_lock:
            if turn in self._pending:
                self._pending.remove(turn)
            self._ended[reason] = self._ended.get(reason, 0) + 1
            self._idle.notify_all()

    def _loop(self) -> None:
        """Admit queued turns, then step the batch, until "close" (worker thread)."""
        runner: BatchRunner | None = self._runner
        while True:
            busy = runner is not None and runner.busy
            try:
                req = self._requests.get(block=not busy)
            except queue.Empty:
                req = None
            while req is not None:
                if req[0] == "close":
                    if runner is not None:
                        runner.close()
                    return
                self._admit(runner, *req[1:])
                try:
                    req = self._requests.get_nowait()
                except queue.Empty:
                    req = None
            if runner is not None and runner.busy:
                try:
                    runner.step()
                except Exception as e:  # never crash the worker: the running turns end with the error
                    runner.fail_all(one_line(e))

    def _admit(self, runner: BatchRunner | None, req: _Request, turn: Turn) -> None:
        if self._load_error is not None or runner is None:
            done = Done("error", self._load_error or "the model is not loaded")
        elif turn.cancel_event.is_set():
            done = Done("cancelled")
        else:
            try:
                runner.add(req, turn)
                return
            except Exception as e:  # a turn that cannot start ends alone
                done = Done("error", one_line(e))
        turn.put(done)
        self._forget(turn, done.finish_reason)


__all__ = ["BatchEngine", "BatchRunner", "DEFAULT_MAX_STREAMS"]
