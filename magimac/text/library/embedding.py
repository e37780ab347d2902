"""What the library needs of an embedding model, without MLX: the `Embedder` protocol and the
vectors' storage format.

The engine's `magimac.engine.embed.MlxEmbedder` is the implementation that runs a model; tests
may pass any object with the same three members. Vectors are L2-normalised float32 arrays in
memory and little-endian float16 bytes on disk (half the size; cosine scores change by under
1e-3, far below the gaps between ranks).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np


class Embedder(Protocol):
    """An embedding model as the library uses it.

    Attributes:
        name: the model's registry name (stored with the vectors: a different model means
            the vectors are recomputed).
        dim: the vector length (384 for multilingual-e5-small).
    """

    name: str
    dim: int

    def embed_passages(self, texts: list[str]) -> np.ndarray:
        """``(len(texts), dim)`` float32, each row L2-normalised."""

    def embed_query(self, text: str) -> np.ndarray:
        """``(dim,)`` float32, L2-normalised."""


def to_blob(vector: np.ndarray) -> bytes:
    """One vector as stored: little-endian float16 bytes (``dim`` × 2 bytes)."""
    return np.asarray(vector, dtype="<f2").tobytes()


def from_blobs(blobs: list[bytes], dim: int) -> np.ndarray:
    """Stored vectors back as a ``(len(blobs), dim)`` float32 matrix.

    Raises:
        ValueError: a blob is not ``dim`` float16 values long.
    """
    if not blobs:
        return np.zeros((0, dim), dtype=np.float32)
    flat = np.frombuffer(b"".join(blobs), dtype="<f2")
    if flat.size != len(blobs) * dim:
        raise ValueError(f"stored vectors are not {dim} values long")
    return flat.reshape(len(blobs), dim).astype(np.float32)
