"""The prompt cache on disk: KV blocks that outlive the process (worker thread + one writer thread).

A prompt's KV is kept in blocks of `BLOCK_TOKENS` tokens (and its last, partial block), keyed by
the model and the tokens up to the block's end (`magimac.engine.disk_index`: model identity + chained hash, image tokens by
their image's hash).  Before a turn, `DiskCache.restore` finds the longest run of stored blocks
that starts the prompt; when it reaches further than the in-memory cache, the blocks become the
KV cache and only the rest is prefilled.  After a turn, `DiskCache.save` hands the prompt's new
whole blocks to a writer thread.

Threads: MLX streams are thread-local, so MLX runs only in the worker thread: `save` slices the
new blocks and copies them to NumPy there (a memory copy after the turn's Done, before the next
turn), and the writer thread sees only NumPy arrays, files and SQLite.  The worker only reads
the index (WAL: readers never wait for the writer); every index update runs in the writer.  Files are written with
the `safetensors` package (temp file, mode 0600, then rename) and read back with `mx.load`.

Why not mlx-lm's `save_prompt_cache` / `load_prompt_cache`: they write a whole cache in one file
with `mx.save_safetensors` (MLX, so in the worker thread, evaluating and writing while a person
waits) and rebuild whole caches; blocks need slices of a cache joined back along the sequence
axis, written off the worker thread.  The file format is the same (safetensors).

Never wrong: the model identity covers the weights, KV bits and group size, block size, loader and
MLX / mlx-lm versions, and each file's metadata repeats its key and model; a file that cannot be
read, or whose metadata, tensors or shapes are not what the key promises, is removed and its
tokens prefilled.  (safetensors has no checksum: flipped bits inside the tensor data would go
unseen; truncation and a damaged header are caught.)  Never fatal: any error writing a block
skips it; a full disk (ENOSPC, EDQUOT) stops saving for the rest of the process with one notice.
"""

from __future__ import annotations

import errno
import json
import os
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any

import mlx.core as mx
import numpy as np
from mlx_lm.models.cache import KVCache, QuantizedKVCache, trim_prompt_cache

from magimac.engine.disk_index import DiskIndex, chain_keys, link, model_identity
from magimac.core.settings import DiskCacheSettings

FULL_DISK = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


@dataclass
class _Block:
    key: str
    end: int  # prompt position the block ends at, tokens
    length: int  # positions it holds, tokens
    arrays: dict[str, np.ndarray]
    dtypes: dict[str, str]
    owner: str | None
    used: float  # time.time() of the turn
    parent: str  # the key of the block before (or the model identity)


def _to_numpy(a: mx.array) -> tuple[np.ndarray, str]:
    """``a`` as NumPy (bfloat16 as its uint16 bits, NumPy has no bfloat16) and its MLX dtype name."""
    name = str(a.dtype).split(".")[-1]
    return np.array(a.view(mx.uint16) if a.dtype == mx.bfloat16 else a), name


def _layer_arrays(c) -> list[mx.array] | None:
    """The arrays one layer's cache stores, in file order, or None for a kind not stored."""
    if isinstance(c, QuantizedKVCache) and c.keys is not None:
        return [*c.keys, *c.values]
    if type(c) is KVCache and c.keys is not None:
        return [c.keys, c.values]
    return None


class DiskCache:
    """The blocks of one loaded model (`open_disk_cache` builds it; worker thread for
    `restore`/`save`, any thread for `close`).

    Attributes:
        index: the `DiskIndex`; model_id: this model's identity (32 hex digits);
        block_tokens: tokens per block; budget_bytes: the disk budget in force, bytes.
    """

    def __init__(self, index: DiskIndex, model_id: str, block_tokens: int, budget_bytes: int,
                 kv_bits: int | None, kv_group_size: int) -> None:
        self.index, self.model_id, self.block_tokens = index, model_id, block_tokens
        self.budget_bytes, self.kv_bits, self.kv_group_size = budget_bytes, kv_bits, kv_group_size
        self._queue: queue.Queue = queue.Queue()  # _Block, an index update (callable), or None: stop
        self._pending: set[str] = set()  # keys queued, not yet written
        self._bad: set[str] = set()  # keys found damaged, their removal queued
        self._notice: str | None = None
        self._noticed = False
        self._stopped = False
        self._writer = threading.Thread(target=self._write_loop, name="magimac-disk-cache", daemon=True)
        self._writer.start()

    # ---- before a turn (worker thread) -----------------------------------------------------

    def restore(self, prompt_cache, keys: list, spans: list[tuple[int, int]], common: int, owner) -> int:
        """`_restore`, and 0 when anything goes wrong (the memory cache is then kept as it was)."""
        try:
            return self._restore(prompt_cache, keys, spans, common, owner)
        except Exception:  # an unreadable index is only a prefill
            return 0

    def _restore(self, prompt_cache, keys: list, spans: list[tuple[int, int]], common: int, owner) -> int:
        """Load the longest stored prefix of ``keys`` into ``prompt_cache`` (a
        `magimac.engine.generate.PromptCache`) when it is longer than the ``common`` tokens the
        memory already holds; returns the tokens that came from disk (0: memory kept as is).

        The prefix leaves at least one token to feed and never ends inside an image span.  Only
        a model whose layers all take mlx-lm's plain (or quantized) KV cache is served: a sliding
        window or another cache kind keeps its own."""
        if any(type(c) not in (KVCache, QuantizedKVCache) for c in prompt_cache.cache or ()):
            return 0
        pieces = self._stored_prefix(keys)
        length = min(pieces[-1][1], len(keys) - 1) if pieces else 0
        for s, e in spans:
            if s < length <= e:
                length = s
        if length <= common:
            return 0
        layers, loaded = self._load(pieces)
        if layers is None or min(length, loaded) <= common or len(layers) != len(prompt_cache.cache or ()):
            return 0
        trim_prompt_cache(layers, loaded - min(length, loaded))
        length = min(length, loaded)
        prompt_cache.cache, prompt_cache.keys = layers, keys[:length]
        self._later(self.index.touch, [k for k, end in pieces if end <= loaded], owner)
        return length

    def _stored_prefix(self, keys: list) -> list[tuple[str, int]]:
        """(key, end) of the stored blocks that start ``keys``: the run of whole blocks short of
        its last token, then the longest stored block after it that ``keys`` holds whole (a
        partial block, or the whole one ending with the prompt: the same prompt asked again
        loads all but its last token)."""
        b = self.block_tokens
        chain = chain_keys(self.model_id, keys, b, len(keys) - 1)
        present = self.index.present(chain) - self._bad
        n = next((i for i, k in enumerate(chain) if k not in present), len(chain))
        pieces = [(k, (i + 1) * b) for i, k in enumerate(chain[:n])]
        parent = chain[n - 1] if n else self.model_id
        for key, end in self.index.tails(parent, n * b, min(len(keys), (n + 1) * b)):
            if link(parent, keys[n * b:end]) == key:
                return pieces + [(key, end)]
        return pieces

    def _load(self, pieces: list[tuple[str, int]]) -> tuple[list | None, int]:
        """The per-layer caches of the first ``pieces`` (key, end) that read back whole, and the
        tokens they hold; a bad block is removed (and ends the run)."""
        parts: list[list[mx.array]] = []
        start = 0
        for key, end in pieces:
            arrays = self._read(key, end - start)
            if arrays is None:
                self._bad.add(key)
                self._later(self.index.remove, [key])
                break
            parts.append(arrays)
            start = end
        if not parts:
            return None, 0
        width = len(parts[0])
        joined = [mx.concatenate([p[i] for p in parts], axis=2) for i in range(width)]
        mx.eval(joined)
        return self._caches(joined, start), start

    def _read(self, key: str, tokens: int) -> list[mx.array] | None:
        """One block's arrays in file order, or None when the file is missing, unreadable or not
        what ``key`` promises (metadata, tensor names, ``tokens`` positions)."""
        try:
            arrays, meta = mx.load(str(self.index.path_for(key)), return_metadata=True)
            if meta.get("key") != key or meta.get("model") != self.model_id:
                return None
            dtypes = json.loads(meta["dtypes"])
            names = json.loads(meta["names"])
            out = []
            for name in names:
                a = arrays[name]
                if a.ndim != 4 or a.shape[2] != tokens:
                    return None
                out.append(a.view(mx.bfloat16) if dtypes[name] == "bfloat16" else a)
            return out if len(out) == len(arrays) and len(out) % (2 if self.kv_bits is None else 6) == 0 else None
        except Exception:  # truncated, damaged, missing: recompute
            return None

    def _caches(self, joined: list[mx.array], length: int) -> list:
        """mlx-lm caches holding ``joined`` (per layer: keys, values; or 3 + 3 quantized parts)."""
        out = []
        step = 2 if self.kv_bits is None else 6
        for i in range(0, len(joined), step):
            if self.kv_bits is None:
                c = KVCache()
                c.keys, c.values = joined[i], joined[i + 1]
            else:
                c = QuantizedKVCache(group_size=self.kv_group_size, bits=self.kv_bits)
                c.keys, c.values = tuple(joined[i:i + 3]), tuple(joined[i + 3:i + 6])
            c.offset = length
            out.append(c)
        return out

    # ---- after a turn (worker thread) ------------------------------------------------------

    def save(self, layers: list | None, keys: list, n_prompt: int, owner: str | None) -> int:
        """`_save`, and 0 when anything goes wrong (nothing is saved; the turn already ended)."""
        try:
            return self._save(layers, keys, n_prompt, owner)
        except Exception:
            return 0

    def _save(self, layers: list | None, keys: list, n_prompt: int, owner: str | None) -> int:
        """Queue the new blocks of the prompt (its first ``n_prompt`` keys: whole blocks, then
        the partial last one) held in ``layers`` (mlx-lm's caches) for the writer; mark the
        stored ones used by ``owner``.  Returns the blocks queued (0 when saving stopped or the
        cache kind is not stored)."""
        if self._stopped or not layers:
            return 0
        limit = min(n_prompt, layers[0].offset)
        pieces = self._pieces(keys, limit)
        pending = set(self._pending)  # before the index is read: a block written meanwhile is in it
        present = self.index.present([k for k, _, _ in pieces]) - self._bad
        now = time.time()  # one moment for the whole prompt: eviction takes its tail first
        self._later(self.index.touch, present, owner, now)
        per_layer = [_layer_arrays(c) for c in layers]
        if any(a is None for a in per_layer):
            return 0
        starts = [0] + [end for _, end, _ in pieces[:-1]]
        new = [(s, p) for s, p in zip(starts, pieces) if p[0] not in present and p[0] not in pending]
        if not new:
            return 0
        first = new[0][0]  # one copy of the new range per array; the blocks are views of it
        copies = {f"{li}.{pi}": _to_numpy(a[..., first:limit, :])
                  for li, parts in enumerate(per_layer) for pi, a in enumerate(parts)}
        dtypes = {name: dtype for name, (_, dtype) in copies.items()}
        queued = 0
        for start, (key, end, parent) in new:
            arrays = {name: c[..., start - first:end - first, :] for name, (c, _) in copies.items()}
            self._pending.add(key)
            self._bad.discard(key)
            self._queue.put(_Block(key, end, end - start, arrays, dtypes, owner, now, parent))
            queued += 1
        return queued

    def _pieces(self, keys: list, limit: int) -> list[tuple[str, int, str]]:
        """(key, end, parent) of the whole blocks of ``keys[:limit]`` and of its partial last block."""
        chain = chain_keys(self.model_id, keys, self.block_tokens, limit)
        parents = [self.model_id, *chain]
        pieces = [(k, (i + 1) * self.block_tokens, parents[i]) for i, k in enumerate(chain)]
        start = len(chain) * self.block_tokens
        if 0 < limit - start < self.block_tokens and (tail := link(parents[-1], keys[start:limit])):
            pieces.append((tail, limit, parents[-1]))
        return pieces

    def take_notice(self) -> str:
        """The one notice about the cache not yet shown (a full disk), or "" (shown once)."""
        if self._notice is None or self._noticed:
            return ""
        self._noticed = True
        return self._notice

    # ---- the writer thread (no MLX) --------------------------------------------------------

    def _later(self, fn, *args) -> None:
        """Run ``fn(*args)`` (an index update) in the writer thread: the worker only reads the
        index, so it never waits for SQLite's write lock."""
        self._queue.put(lambda: fn(*args))

    def _write_loop(self) -> None:
        while True:
            block = self._queue.get()
            if block is None:
                self._queue.task_done()
                return
            try:
                if callable(block):
                    block()
                elif not self._stopped:
                    self._write(block)
            except OSError as e:
                if e.errno in FULL_DISK:
                    self._stopped = True
                    self._notice = (f"the disk is full: the prompt cache in {self.index.directory} "
                                    "stops saving until magimac restarts (`magimac cache --clear` frees it)")
            except Exception:  # a block that cannot be saved is only a later prefill
                pass
            finally:
                if isinstance(block, _Block):
                    self._pending.discard(block.key)
                self._queue.task_done()

    def _write(self, block: _Block) -> None:
        from safetensors.numpy import save_file

        path = self.index.path_for(block.key)
        path.parent.mkdir(mode=0o700, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        meta = {"format": "magimac-prompt-cache-block/1", "key": block.key, "model": self.model_id,
                "end": str(block.end), "names": json.dumps(list(block.arrays)), "dtypes": json.dumps(block.dtypes)}
        try:
            os.close(os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600))
            save_file({k: np.ascontiguousarray(a) for k, a in block.arrays.items()}, str(tmp), metadata=meta)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        self.index.add(block.key, self.model_id, block.end, path.stat().st_size, block.owner, block.used,
                       block.parent, block.length)
        self.index.evict(self.budget_bytes)

    def flush(self) -> None:
        """Wait until every queued block is written (or skipped)."""
        self._queue.join()

    def close(self, timeout: float = 60.0) -> None:
        """Finish the queued writes (at most ``timeout`` seconds) and stop the writer."""
        self._queue.put(None)
        self._writer.join(timeout)


def open_disk_cache(settings: DiskCacheSettings, info, kv_bits: int | None, loader: str) -> DiskCache | None:
    """The `DiskCache` of a loaded model (``info``: its `magimac.engine.loading.ModelInfo`;
    ``loader``: "mlx_lm" or "mlx_vlm"), or None when disabled or its directory cannot be used
    (the engine then runs with the memory cache alone), or its budget is 0."""
    if not settings.enabled:
        return None
    import mlx_lm

    try:
        index = DiskIndex(settings.directory)
        group = info.kv_group_size()
        model_id = model_identity(info.path, kv_bits, group, settings.block_tokens, loader,
                                  mx.__version__, mlx_lm.__version__)
        budget = settings.budget_bytes if settings.budget_bytes is not None else index.budget()
        index.register(model_id, settings.block_tokens)
    except Exception:
        return None
    if budget <= 0:  # `magimac cache --budget 0`: off
        return None
    return DiskCache(index, model_id, settings.block_tokens, budget, kv_bits, group)


__all__ = ["DiskCache", "open_disk_cache"]
