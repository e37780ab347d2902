"""Embedding models on MLX: passages and questions to vectors, for library search.

The model and its tokenizer load through `mlx_embeddings` (``mlx_embeddings.utils.load``:
BERT and XLM-RoBERTa encoders from a folder holding ``config.json``, ``*.safetensors`` and a
Hugging Face ``tokenizer.json``), which already does the forward pass, mean pooling over the
attention mask and L2 normalisation (``text_embeds``). What this module adds: the E5 prefixes
(``query: `` / ``passage: ``, from the registry entry), batching with truncation to the model's
window, float32 numpy out, one-line errors, and a thread of its own: every MLX call of an
embedder runs on that one thread (MLX streams are thread-local), so the library CLI, the chat
session and the app's workers may call it from anywhere.
"""

from __future__ import annotations

import atexit
import json
import threading
import weakref
import queue
from concurrent.futures import Future
from pathlib import Path

import numpy as np

from magimac.core.errors import MagimacError

#: Tokens an input is cut to (the 512 positions of BERT-style models; less when config says).
MAX_TOKENS = 512


class EmbedderError(MagimacError):
    """An embedding model cannot be loaded; one line naming the folder and what to do."""


class MlxEmbedder:
    """An embedding model loaded from ``path``; satisfies `magimac.text.library.embedding.Embedder`.

    Args:
        path: the model folder (``config.json``, ``*.safetensors``, ``tokenizer.json``).
        name: the registry name stored with the vectors.
        query_prefix / passage_prefix: put before questions / passages (E5: ``"query: "``,
            ``"passage: "``; the model card's convention).
        batch: inputs per forward pass.

    Attributes:
        dim: vector length (``hidden_size`` of config.json).

    Raises:
        EmbedderError: the folder is not a model mlx_embeddings can load.
    """

    def __init__(self, path: str | Path, name: str, query_prefix: str = "query: ",
                 passage_prefix: str = "passage: ", batch: int = 16) -> None:
        self.path, self.name = Path(path), name
        self.query_prefix, self.passage_prefix, self.batch = query_prefix, passage_prefix, batch
        try:
            config = json.loads((self.path / "config.json").read_text(encoding="utf-8"))
            self.dim = int(config["hidden_size"])
            self.max_tokens = min(MAX_TOKENS, int(config.get("max_position_embeddings", MAX_TOKENS)))
        except (OSError, ValueError, KeyError) as e:
            raise EmbedderError(f"{self.path}: not an embedding model folder ({e}); "
                                f"run 'magimac pull {name}' again") from None
        self._jobs: queue.Queue = queue.Queue()
        self._lock = threading.Lock()
        # a daemon thread of its own: concurrent.futures refuses work once exit begins, and
        # the atexit hook must still run `_free` there
        self._thread = threading.Thread(target=self._serve, name="magimac-embed", daemon=True)
        self._thread.start()
        self._closed = False
        try:
            self._model, self._tokenizer = self._run(self._load)
        except Exception as e:  # mlx_embeddings raises ValueError, FileNotFoundError, KeyError...
            self.close()
            raise EmbedderError(f"{self.path}: cannot load the embedding model ({e}); "
                                f"run 'magimac pull {name}' again") from None
        atexit.register(_close_at_exit, weakref.ref(self))

    def _load(self):
        from mlx_embeddings.utils import load

        return load(str(self.path))

    def embed_passages(self, texts: list[str]) -> np.ndarray:
        """``(len(texts), dim)`` float32 L2-normalised vectors of passages."""
        return self._embed([self.passage_prefix + t for t in texts])

    def embed_query(self, text: str) -> np.ndarray:
        """``(dim,)`` float32 L2-normalised vector of a question."""
        return self._embed([self.query_prefix + text])[0]

    def _embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:
            return self._run(self._forward_all, texts)

    def _run(self, fn, *args):
        """Run ``fn(*args)`` on the embedder's thread and return (or raise) its result."""
        fut: Future = Future()
        self._jobs.put((fn, args, fut))
        return fut.result()

    def _serve(self) -> None:
        while (job := self._jobs.get()) is not None:
            fn, args, fut = job
            try:
                fut.set_result(fn(*args))
            except BaseException as e:  # handed to the caller
                fut.set_exception(e)

    def _forward_all(self, texts: list[str]) -> np.ndarray:
        import mlx.core as mx

        out = []
        for i in range(0, len(texts), self.batch):
            enc = self._tokenizer(texts[i:i + self.batch], padding=True, truncation=True,
                                  max_length=self.max_tokens, return_tensors="np")
            ids = mx.array(enc["input_ids"].astype(np.int32))
            mask = mx.array(enc["attention_mask"].astype(np.int32))
            emb = self._model(ids, attention_mask=mask).text_embeds.astype(mx.float32)
            out.append(np.array(emb))
        return np.concatenate(out, axis=0)

    def close(self) -> None:
        """Free the model and stop the embedder's thread (idempotent)."""
        if getattr(self, "_closed", True):
            return
        self._closed = True
        self._run(self._free)
        self._jobs.put(None)
        self._thread.join(timeout=30)

    def _free(self) -> None:
        import mlx.core as mx

        self._model = self._tokenizer = None
        mx.synchronize()
        # each thread that used MLX streams clears them before it ends, or the process may
        # abort at exit (ml-explore/mlx#4327; as `magimac.engine.worker.Engine._free`)
        mx.clear_streams()


def _close_at_exit(ref: "weakref.ref[MlxEmbedder]") -> None:
    embedder = ref()
    if embedder is not None:
        embedder.close()
