"""One turn of generation, in the engine's worker thread: fit the prompt, reuse the KV cache,
sample, decode, and send the turn's events and stats.

- Prompt cache: the KV cache (mlx-lm's, 16-bit or ``kv_bits`` quantized from the first token)
  and the keys of the positions it holds survive between turns.  A new turn trims the cache
  back to the longest common prefix with its prompt and prefills only the rest (at least one
  token).  Image tokens are compared with their image's content hash, and a prefix never ends
  inside an image.  When the prompt cache on disk (`magimac.engine.disk_cache`) holds a longer
  prefix, that is loaded instead; after the turn its new whole blocks are saved.
- Context overflow: when prompt + reserve (``max_tokens``, else min(4096, context/4)) exceeds
  the context, the oldest whole turns (a user message and the replies after it) are dropped,
  the system prompt and the last user message kept.  If the last user message alone does not
  fit, the turn ends with Done("error", one line).  Generation stops at the context limit
  with Done("length").  ``max_tokens`` defaults to the rest of the context.
- Generation is one code path, mlx-lm's `generate_step`; images enter as ``input_embeddings``
  built by mlx-vlm's ``get_input_embeddings``.
- Cancel: checked after every generated token (the turn ends within one token) and between
  the prefill's chunks, which take about a second each (`magimac.engine.prefill.PrefillPace`,
  as mlx-lm's ``prefill_step_size``); a long prefill sends its progress (`Prefill` events).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

import mlx.core as mx
from mlx_lm.generate import generate_step, wired_limit
from mlx_lm.models.cache import can_trim_prompt_cache, make_prompt_cache, trim_prompt_cache

from magimac.core.conversation import Message
from magimac.core.events import Done, Stats
from magimac.engine.loading import ModelInfo
from magimac.engine.prefill import PrefillCancelled, PrefillPace, PrefillReport
from magimac.engine.sampler import sampling
from magimac.core.settings import GenerationSettings
from magimac.text import prompt as prompt_mod
from magimac.text.tool_calls import OutputSplitter
from magimac.text.tools import calls_in


class TurnError(Exception):
    """A turn that cannot run (e.g. its prompt exceeds the context); one line."""


def fit(encode: Callable, messages: list[Message], settings: GenerationSettings, context_length: int):
    """Encode ``messages``, dropping the oldest whole turns while prompt + reserve exceeds the context.

    Args:
        encode: ``encode(messages, settings) -> magimac.text.prompt.Prompt`` (`Engine.encode`).
        context_length: the context limit, tokens.

    Raises:
        TurnError: the system prompt and the last user message alone fill the context.
        magimac.text.prompt.PromptError: a bad conversation.
    """
    reserve = settings.max_tokens or min(4096, context_length // 4)
    msgs = list(messages)
    head = [msgs.pop(0)] if msgs and msgs[0].role == "system" else []
    p = encode(head + msgs, settings)
    while len(p.tokens) + reserve > context_length and sum(m.role == "user" for m in msgs) > 1:
        msgs.pop(0)
        while msgs and msgs[0].role != "user":
            msgs.pop(0)
        p = encode(head + msgs, settings)
    if len(p.tokens) >= context_length:
        raise TurnError(
            f"the prompt is {len(p.tokens)} tokens but the context holds {context_length}: "
            "shorten the message or raise the context length"
        )
    return p


def token_keys(tokens: list[int], image_keys: list[str], image_ids: tuple[int, int, int]):
    """Cache keys and image spans of a prompt.

    Returns:
        (keys, spans): one key per token (the id, or (image hash, id) inside an image) and the
        [start, end] positions (inclusive) of each image's tokens.
    """
    img, brk, end = image_ids
    keys: list = list(tokens)
    spans: list[tuple[int, int]] = []
    start = None
    for i, t in enumerate(tokens):
        if t in (img, brk) and start is None:
            start = i
        if t == end and start is not None:
            k = image_keys[len(spans)] if len(spans) < len(image_keys) else str(len(spans))
            for j in range(start, i + 1):
                keys[j] = (k, tokens[j])
            spans.append((start, i))
            start = None
    return keys, spans


def input_embeddings(vlm, tokens: list[int], common: int, spans: list[tuple[int, int]], images: list):
    """Input embeddings [L, hidden] for ``tokens[common:]``, images through mlx-vlm.

    One `get_input_embeddings` call per image (with the text before it), so images of
    different sizes need no padding.  ``images``: one float32 array [3, H, W] per span.
    """
    parts = []
    pos = common
    for k, (s, e) in enumerate(spans):
        if e < common:
            continue
        img = images[k]
        out = vlm.get_input_embeddings(
            mx.array(tokens[pos:e + 1])[None], mx.array(img)[None],
            image_sizes=[(img.shape[1], img.shape[2])],
        )
        parts.append(out.inputs_embeds[0])
        pos = e + 1
    if pos < len(tokens):
        parts.append(vlm.language_model.model.embed_tokens(mx.array(tokens[pos:])))
    return mx.concatenate(parts, axis=0) if len(parts) > 1 else parts[0]


class PromptCache:
    """The KV cache kept between turns, and the key of every position it holds.

    Attributes:
        cache: mlx-lm's per-layer caches, or None (the next turn makes a fresh one).
        keys: one key per cached position (see `token_keys`); ``len(keys) == cache[0].offset``.
    """

    def __init__(self, model: Any) -> None:
        self.model = model
        self.cache: list | None = None
        self.keys: list = []

    def reset(self) -> None:
        """Forget the cache: the next turn prefills its whole prompt."""
        self.cache, self.keys = None, []

    def reuse(self, keys: list, spans: list[tuple[int, int]]) -> int:
        """Trim the cache to its longest common prefix with ``keys`` (at least one position left to
        feed, never ending inside an image span); returns that prefix's length, tokens."""
        common = 0
        if self.cache is not None and can_trim_prompt_cache(self.cache):
            limit = min(len(self.keys), len(keys) - 1)
            while common < limit and keys[common] == self.keys[common]:
                common += 1
            for s, e in spans:
                if s < common <= e:
                    common = s
            trim_prompt_cache(self.cache, self.cache[0].offset - common)
        else:
            self.cache = make_prompt_cache(self.model)
        if common == 0 and self.cache[0].offset:
            self.cache = make_prompt_cache(self.model)
        self.keys = keys[:common]
        return common

    def record(self, keys: list, generated: list[int]) -> None:
        """After a turn: the cache holds the prompt (``keys``) + every token generated."""
        offset = self.cache[0].offset
        self.keys = (keys + generated)[:offset]
        if len(self.keys) != offset:  # cancelled mid-prefill in an unknown place
            self.reset()


@dataclass
class _Decoded:
    tokens: list[int] = field(default_factory=list)
    finish: str = "length"
    first_at: float | None = None  # time.perf_counter() of the first token, seconds
    end_at: float = 0.0


@dataclass
class TurnRunner:
    """Runs turns on one loaded model (worker thread only).

    Attributes:
        info: the model directory's `ModelInfo`; model: mlx-lm-callable model; vlm: the
        mlx-vlm model or None; encode: `Engine.encode`; context_length: tokens; kv_bits: KV
        cache bits or None (16-bit); disk: the prompt cache on disk
        (`magimac.engine.disk_cache.DiskCache`) or None; cache: the `PromptCache` kept between
        turns; pace: the prefill's chunk size (`PrefillPace`), measured turn after turn.
    """

    info: ModelInfo
    model: Any
    vlm: Any
    encode: Callable
    context_length: int
    kv_bits: int | None
    disk: Any = None
    cache: PromptCache = field(init=False)
    pace: PrefillPace = field(init=False, default_factory=PrefillPace)

    def __post_init__(self) -> None:
        self.cache = PromptCache(self.model)

    def run(self, messages: list[Message], settings: GenerationSettings, turn) -> None:
        """Run one turn, sending its events to ``turn`` (a `magimac.engine.worker.Turn`):
        deltas, then Stats, then Done; a prompt that cannot be built ends with Done("error")."""
        t_request = time.perf_counter()
        try:
            p = fit(self.encode, messages, settings, self.context_length)
        except (prompt_mod.PromptError, TurnError) as e:
            turn.put(Done("error", str(e)))
            return
        tokens = p.tokens
        turn.prompt_tokens = list(tokens)
        keys, spans = token_keys(tokens, p.image_keys, self.info.image_token_ids())
        common = self.cache.reuse(keys, spans)
        from_disk = self.disk.restore(self.cache, keys, spans, common, settings.cache_owner) if self.disk else 0
        common = max(common, from_disk)
        embeddings = (input_embeddings(self.vlm, tokens, common, spans, p.images)
                      if any(e >= common for _, e in spans) else None)
        sampler, processors = sampling(settings, self.info)
        room = self.context_length - len(tokens)
        max_tokens = room if settings.max_tokens is None else min(settings.max_tokens, room)
        splitter = OutputSplitter(self.info.markers, self.info.tekken, calls_in(messages) + 1)
        mx.reset_peak_memory()
        out = self._decode(tokens[common:], embeddings, sampler, processors, max_tokens, splitter, turn)
        for ev in splitter.flush():
            turn.put(ev)
        self.cache.record(keys, out.tokens)
        stats = self._stats(len(tokens), common, t_request, out, splitter, from_disk)
        turn.put(stats)
        turn.put(Done(out.finish, None, stats))
        if self.disk is not None:  # after Done: copies the new blocks for the writer thread
            self.disk.save(self.cache.cache, keys, len(tokens), settings.cache_owner)

    def _decode(self, suffix, embeddings, sampler, processors, max_tokens, splitter, turn) -> _Decoded:
        """Prefill ``suffix`` and decode, streaming the splitter's events; stops at EOS, the
        token limit or a cancel (checked after every token and every prefill chunk)."""
        out = _Decoded()
        eos = self.info.tekken.eos_id
        cancelled = turn.cancel_event
        put, feed, generated = turn.put, splitter.feed, out.tokens
        step = self.pace.step
        progress = PrefillReport(self.pace, step, put, cancelled.is_set)
        try:
            with wired_limit(self.model if self.vlm is None else self.vlm):
                gen = generate_step(
                    mx.array(suffix), self.model, max_tokens=max_tokens, sampler=sampler,
                    logits_processors=processors or None, prompt_cache=self.cache.cache,
                    kv_bits=self.kv_bits, kv_group_size=self.info.kv_group_size(), quantized_kv_start=0,
                    prefill_step_size=step, prompt_progress_callback=progress, input_embeddings=embeddings,
                )
                for tok, _ in gen:
                    if out.first_at is None:
                        out.first_at = time.perf_counter()
                    generated.append(tok)
                    if cancelled.is_set():
                        out.finish = "cancelled"
                        break
                    if tok == eos:
                        out.finish = "stop"
                        break
                    for ev in feed(tok):
                        put(ev)
                gen.close()
        except PrefillCancelled:
            out.finish = "cancelled"
        out.end_at = time.perf_counter()
        return out

    def _stats(self, n_prompt: int, common: int, t_request: float, out: _Decoded, splitter,
               from_disk: int = 0) -> Stats:
        """The turn's `Stats` (seconds from the request; tokens/s over what was prefilled / decoded;
        ``common`` prompt tokens reused, ``from_disk`` of them read from the disk cache)."""
        ttft = (out.first_at - t_request) if out.first_at is not None else 0.0
        decode_s = (out.end_at - out.first_at) if out.first_at is not None else 0.0
        n = len(out.tokens)
        return Stats(
            prompt_tokens=n_prompt,
            cached_tokens=common,
            ttft_s=ttft,
            prefill_tps=(n_prompt - common) / ttft if ttft > 0 else 0.0,
            decode_tps=(n - 1) / decode_s if decode_s > 0 and n > 1 else 0.0,
            reasoning_tokens=splitter.reasoning_tokens,
            answer_tokens=splitter.answer_tokens,
            tool_tokens=splitter.tool_tokens,
            peak_memory_bytes=int(mx.get_peak_memory()),
            context_length=self.context_length,
            memory_tokens=common - from_disk,
            disk_tokens=from_disk,
            prefilled_tokens=n_prompt - common,
            cache_notice=self.disk.take_notice() if self.disk is not None else "",
        )
