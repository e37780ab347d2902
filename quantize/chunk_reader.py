"""Read source tensors in row chunks on a background thread, hashing each shard as it goes.

`mx.load` + evaluation (what mlx-vlm/mlx-lm do) reads a whole tensor at a time and leaves the
file reading and the MLX compute in series.  Here one thread reads the next chunks (``pread``
into NumPy buffers; no memory map, so nothing stays resident) while the caller quantizes the
current one.  A second thread computes each shard's sha256 for the manifest, in file order,
from the chunks the reader hands it when it keeps up (so the source is read once) and by
reading the rest itself (headers, tensors the caller evaluates lazily, chunks it had no room
for), so hashing never holds the conversion back and never holds more than a few chunks.
"""

from __future__ import annotations

import hashlib
import os
import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

NUMPY_DTYPES = {"BF16": np.uint16, "F16": np.float16, "F32": np.float32}
_BLOCK = 16 << 20
_DONE = object()


@dataclass
class Chunk:
    """Rows ``row`` .. ``row + rows`` of ``job``'s tensor; ``data`` is None for jobs without
    ``info`` (evaluated lazily by the caller)."""

    job: object
    row: int
    rows: int
    data: np.ndarray | None


class SourceReader:
    """Iterate `Chunk`s of ``jobs`` (each with ``info``: a `source.TensorInfo` or None, and
    ``shape``); then `hashes` gives ``{shard name: sha256}``.

    Args:
        shards: the source weight files, in order; ``jobs`` must be sorted by (shard, offset).
        known: shard name -> sha256 already known (Hugging Face cache blobs): not hashed.
        chunk_bytes: bytes per chunk (rows of a tensor).
        depth: chunks read ahead.

    Raises (from iteration):
        OSError / ValueError from reading; ``EOFError`` naming the file when it is shorter
        than its header says.
    """

    def __init__(self, shards: list[Path], jobs: list, *, known: dict[str, str] | None = None,
                 chunk_bytes: int = 64 << 20, depth: int = 2):
        self.shards, self.jobs, self.chunk_bytes = shards, jobs, chunk_bytes
        self.known = dict(known or {})
        self._hashes: dict[str, str] = {}
        self._hash_error: BaseException | None = None
        self._q: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._hq: queue.Queue = queue.Queue(maxsize=depth + 2)  # (shard, offset, bytes | None = end)
        self._hasher = threading.Thread(target=self._hash_run, name="magimac-sha256", daemon=True)
        self._thread = threading.Thread(target=self._run, name="magimac-reader", daemon=True)
        self._hasher.start()
        self._thread.start()

    def __iter__(self) -> Iterator[Chunk]:
        while True:
            item = self._q.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def hashes(self) -> dict[str, str]:
        """Shard name -> sha256 hex, complete once iteration has finished."""
        self._thread.join()
        self._hasher.join()
        if self._hash_error is not None:
            raise self._hash_error
        return {**self._hashes, **self.known}

    def close(self) -> None:
        """Stop the reader thread (after an error or Ctrl-C in the caller)."""
        self._stop.set()
        for q, t in ((self._q, self._thread), (self._hq, self._hasher)):
            while t.is_alive():
                try:
                    q.get(timeout=0.05)
                except queue.Empty:
                    pass

    def _put(self, item, q: queue.Queue | None = None) -> bool:
        q = self._q if q is None else q
        while not self._stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _hash_run(self) -> None:
        """Hash every shard in file order: chunks handed over where they fit, the rest read here."""
        pos: dict[Path, int] = {}
        running: dict[Path, object] = {}
        try:
            while not self._stop.is_set():
                try:
                    item = self._hq.get(timeout=0.1)
                except queue.Empty:
                    continue
                if item is _DONE:
                    return
                shard, offset, data = item
                h = running.setdefault(shard, hashlib.sha256())
                self._hash_file(shard, h, pos.get(shard, 0), offset)
                end = offset if data is None else offset + len(data)
                if data is not None and end > max(pos.get(shard, 0), offset):
                    h.update(memoryview(data)[max(pos.get(shard, 0), offset) - offset:])
                pos[shard] = max(pos.get(shard, 0), end)
                if data is None:
                    self._hashes[shard.name] = running.pop(shard).hexdigest()
        except BaseException as e:  # noqa: BLE001 - reported by hashes()
            self._hash_error = e

    @staticmethod
    def _hash_file(shard: Path, h, start: int, end: int) -> None:
        if start >= end:
            return
        fd = os.open(shard, os.O_RDONLY)
        try:
            while start < end:
                n = min(_BLOCK, end - start)
                h.update(_pread(fd, n, start, shard))
                start += n
        finally:
            os.close(fd)

    def _offer(self, shard: Path, offset: int, data: np.ndarray) -> None:
        """Hand a chunk to the hasher if it has room; if not, it reads those bytes itself."""
        try:
            self._hq.put_nowait((shard, offset, data))
        except queue.Full:
            pass

    def _run(self) -> None:
        try:
            for shard in self.shards:
                if not self._read_shard(shard, [j for j in self.jobs if j.source_file == shard]):
                    return
            self._put(_DONE, self._hq)
            self._put(_DONE)
        except BaseException as e:  # noqa: BLE001 - handed to the consumer
            self._put(_DONE, self._hq)
            self._put(e)

    def _read_shard(self, shard: Path, jobs: list) -> bool:
        hashing = shard.name not in self.known
        fd = os.open(shard, os.O_RDONLY)
        try:
            for job in jobs:
                info = job.info
                if info is None:
                    if not self._put(Chunk(job, 0, job.shape[0] if job.shape else 1, None)):
                        return False
                    continue
                rows_total = info.shape[0] if info.shape else 1
                row_bytes = info.nbytes // rows_total
                step = max(1, self.chunk_bytes // max(1, row_bytes)) if len(info.shape) >= 2 else rows_total
                for r in range(0, rows_total, step):
                    n = min(step, rows_total - r)
                    start = info.offset + r * row_bytes
                    buf = _pread(fd, n * row_bytes, start, shard)
                    if hashing:
                        self._offer(shard, start, buf)
                    if not self._put(Chunk(job, r, n, buf.view(NUMPY_DTYPES[info.dtype]))):
                        return False
            if hashing:  # end of shard: the hasher reads what is left and finishes
                return self._put((shard, shard.stat().st_size, None), self._hq)
            return True
        finally:
            os.close(fd)


def _pread(fd: int, n: int, offset: int, path: Path) -> np.ndarray:
    buf = np.empty(n, np.uint8)  # not zero-filled, unlike bytearray
    view = memoryview(buf)
    got = 0
    while got < n:
        k = os.preadv(fd, [view[got:]], offset + got)
        if k == 0:
            raise EOFError(f"{path}: truncated at byte {offset + got}; download it again")
        got += k
    return buf


def read_tensor(info) -> np.ndarray:
    """One whole source tensor (a `source.TensorInfo`) read from its file, as a NumPy array of
    its `NUMPY_DTYPES` type (bf16 as uint16 bits), flat.

    Raises:
        OSError; EOFError naming the file when it is shorter than its header says.
    """
    fd = os.open(info.file, os.O_RDONLY)
    try:
        return _pread(fd, info.nbytes, info.offset, info.file).view(NUMPY_DTYPES[info.dtype])
    finally:
        os.close(fd)
