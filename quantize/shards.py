"""Streaming safetensors shard writer and the plan of output shards.

mlx-vlm/mlx-lm save a shard with `mx.save_safetensors`, which needs every tensor of the shard
in memory at once (up to 5 GB).  magimac knows every output tensor's name, shape and dtype
before computing any (`magimac.quantize.layout`), so it writes the header first and then each tensor's
bytes, in row chunks, at their offsets: peak memory is one chunk, whatever the shard or model
size.  The files are ordinary safetensors (``__metadata__ = {"format": "mlx"}``) that
`mx.load`, mlx-vlm and mlx-lm read.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import mlx.core as mx
import numpy as np

from magimac.quantize.layout import TensorSpec

MAX_SHARD_BYTES = 5 << 30  # mlx-lm / mlx-vlm's MAX_FILE_SIZE_GB = 5
SAFETENSORS_DTYPES = {mx.bfloat16: "BF16", mx.float16: "F16", mx.float32: "F32", mx.uint32: "U32",
                      mx.uint8: "U8", mx.int32: "I32", mx.uint16: "U16", mx.int8: "I8"}


def shard_name(i: int, n: int) -> str:
    """``model-0000i-of-0000n.safetensors`` (1-based), the name mlx-lm's loader globs."""
    return f"model-{i:05d}-of-{n:05d}.safetensors"


def split_shards(groups: list[list[TensorSpec]], max_bytes: int = MAX_SHARD_BYTES) -> list[list[TensorSpec]]:
    """Pack groups of tensors (one group per source tensor: weight, scales, biases) into
    shards of at most ``max_bytes`` each (a group larger than that gets a shard of its own)."""
    shards: list[list[TensorSpec]] = [[]]
    size = 0
    for g in groups:
        gb = sum(s.nbytes for s in g)
        if shards[-1] and size + gb > max_bytes:
            shards.append([])
            size = 0
        shards[-1].extend(g)
        size += gb
    return [s for s in shards if s]


@dataclass
class _Slot:
    spec: TensorSpec
    offset: int  # absolute, in the file
    written: int = 0


class ShardWriter:
    """Write one safetensors file whose tensors are known up front.

    Usage: ``w = ShardWriter(path, specs)``; ``w.write(name, array, row)`` any number of
    times (rows of a tensor may come in chunks, in any order); ``w.close()`` checks that every
    byte was written and raises ``RuntimeError`` otherwise.
    """

    def __init__(self, path: Path, specs: list[TensorSpec]):
        self.path = Path(path)
        header: dict = {"__metadata__": {"format": "mlx"}}
        self.slots: dict[str, _Slot] = {}
        pos = 0
        for s in specs:
            header[s.name] = {"dtype": SAFETENSORS_DTYPES[s.dtype], "shape": list(s.shape),
                              "data_offsets": [pos, pos + s.nbytes]}
            self.slots[s.name] = _Slot(s, pos)
            pos += s.nbytes
        raw = json.dumps(header, separators=(",", ":")).encode()
        raw += b" " * (-len(raw) % 8)
        base = 8 + len(raw)
        for slot in self.slots.values():
            slot.offset += base
        self.size = base + pos
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.write(self.fd, len(raw).to_bytes(8, "little") + raw)

    def write(self, name: str, array: mx.array, row: int = 0) -> int:
        """Write ``array`` (evaluated; dtype and trailing shape as the spec) as rows
        ``row, row + len(array)`` of tensor ``name``; returns bytes written."""
        slot = self.slots[name]
        if array.dtype != slot.spec.dtype or tuple(array.shape[1:]) != slot.spec.shape[1:]:
            raise RuntimeError(f"{name}: got {array.dtype} {array.shape}, planned {slot.spec.dtype} {slot.spec.shape}")
        buf = memoryview(np.ascontiguousarray(array)).cast("B") if array.dtype != mx.bfloat16 else \
            memoryview(np.ascontiguousarray(array.view(mx.uint16))).cast("B")
        row_bytes = slot.spec.nbytes // max(1, slot.spec.shape[0]) if slot.spec.shape else slot.spec.nbytes
        start = slot.offset + row * row_bytes
        done = 0
        while done < len(buf):
            done += os.pwrite(self.fd, buf[done:], start + done)
        slot.written += done
        return done

    def close(self) -> None:
        """Close; raises ``RuntimeError`` naming a tensor not fully written.

        No fsync, as `mx.save_safetensors`: forcing gigabytes to disk would double the
        wall time on slow disks, and the output is renamed into place only after this
        process has written and re-read every shard, so a crash of the process never leaves
        a complete-looking directory (a power loss right after the rename could).
        """
        try:
            for slot in self.slots.values():
                if slot.written != slot.spec.nbytes:
                    raise RuntimeError(f"{self.path.name}: {slot.spec.name} has {slot.written} of {slot.spec.nbytes} bytes")
        finally:
            os.close(self.fd)


class BackgroundWrites:
    """Write evaluated arrays to `ShardWriter`s on a thread, so disk writes overlap the next
    chunk's quantization (``pwrite`` releases the GIL).  At most ``depth`` writes wait.

    Usage: ``bg.write(writer, name, array, row)``; ``bg.close()`` waits and re-raises the
    first error; ``bg.abort()`` stops without waiting for the queue.
    """

    def __init__(self, depth: int = 3):
        import queue
        import threading

        self._q: queue.Queue = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="magimac-writer", daemon=True)
        self._thread.start()

    def write(self, writer: ShardWriter, name: str, array: mx.array, row: int = 0) -> None:
        if self._error is not None:
            raise self._error
        self._q.put((writer, name, array, row))

    def _run(self) -> None:
        while True:
            item = self._q.get()
            if item is None:
                return
            if self._error is None:
                try:
                    item[0].write(*item[1:])
                except BaseException as e:  # noqa: BLE001 - re-raised in the caller
                    self._error = e

    def close(self) -> None:
        self._q.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error

    def abort(self) -> None:
        self._error = self._error or RuntimeError("aborted")
        self._q.put(None)
        self._thread.join()
