"""Quality of a quantized model against a reference: KL divergence, top-1 agreement, perplexity.

What this adds to `mlx_lm.perplexity`: a bundled multilingual evaluation set (prose in several of
Magistral's languages, Python, LaTeX mathematics, reasoning traces in Magistral's
``[INST]…[/INST][THINK]…[/THINK]…</s>`` layout), and a comparison of whole next-token
distributions against reference log-probabilities stored on disk, as llama.cpp's
``llama-perplexity --kl-divergence`` does, so that the reference and a variant never sit in
memory together.

Definitions (see docs/bench.md for how they relate to llama.cpp and mlx-lm):

- The set is tokenized per text (``<s>`` first), then cut into chunks of at most ``chunk_len``
  tokens; each chunk is one forward pass with a fresh context. Every position but the last of a
  chunk predicts the next token, and every such prediction is scored (as `mlx_lm.perplexity`).
- Perplexity: ``exp(mean over scored tokens of -log p(next token))``, log-softmax in float32.
- KL divergence per token: ``KL(ref || var) = sum_v p_ref(v) (log p_ref(v) - log p_var(v))`` in
  nats over the whole vocabulary; reported as mean, median, 99th percentile and maximum.
- Top-1 agreement: share of positions where the arg-max tokens of reference and variant agree
  (llama.cpp's "Same top p").
- Δp: ``p_var(next) - p_ref(next)`` for the actual next token; mean and root mean square.

Storage of the reference: per chunk, the full log-softmax over the vocabulary as float32
(``chunk-NNNN.npy``, ``(L-1, V)``) plus the negative log-likelihood of each actual next token
(``nll-NNNN.npy``): exactly what the reference computed, so storage adds no error and a model
compared with itself gives exactly 0. float16 was rejected: its rounding (up to 2^-11 |log p|,
about 0.004 nats at log p = -8) is as large as the whole KL of an 8-bit variant on flat
distributions (docs/bench.md). Disk cost: ``4 * V`` bytes per scored token (512 KiB per token at
V = 131072, about 1.2 GB for the bundled set with Magistral's tokenizer).
"""

from __future__ import annotations

from magimac.core.errors import MagimacError

import hashlib
import json
import math
import os
import shutil
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path

import mlx.core as mx
import numpy as np

DEFAULT_CHUNK_LEN = 512  # tokens per forward pass, as mlx_lm.perplexity's --sequence-length
REFERENCE_FORMAT = 2


class EvalError(MagimacError):
    """The evaluation set, the tokenizer or a stored reference does not fit; one line."""


@dataclass(frozen=True)
class EvalText:
    """One text of the evaluation set.

    Attributes:
        name: e.g. ``"prose-fr"``, ``"code-python"``, ``"reasoning-arith-en"``;
        category: the part of the name before the first ``-`` (prose, code, math, reasoning);
        ids: token ids, starting with ``<s>``.
    """

    name: str
    category: str
    ids: tuple[int, ...]


@dataclass(frozen=True)
class Chunk:
    """One forward pass: ``ids`` (at most ``chunk_len`` tokens) of text ``text`` (whose
    category is ``category``)."""

    text: str
    ids: tuple[int, ...]
    category: str = ""


def eval_dir() -> Path:
    """The bundled evaluation texts (`magimac/data/eval/`)."""
    return Path(str(resources.files("magimac") / "data" / "eval"))


def _control_id(tokenizer, token: str) -> int:
    tid = tokenizer.convert_tokens_to_ids(token)
    if tid is None or tid == getattr(tokenizer, "unk_token_id", None):
        raise EvalError(f"the tokenizer has no control token {token}; is this a Magistral model?")
    return int(tid)


def load_eval_texts(tokenizer, directory: Path | None = None) -> list[EvalText]:
    """Tokenize the evaluation set.

    ``*.txt`` files are plain text (name = file stem); ``reasoning.json`` holds a list of
    ``{"name", "user", "reasoning", "answer"}`` turns, laid out as
    ``<s>[INST]user[/INST][THINK]reasoning[/THINK]answer</s>`` with control tokens looked up in
    the tokenizer (text is always encoded as text, never parsed for control tokens).

    Args:
        tokenizer: an `mlx_lm` `TokenizerWrapper` (or anything with ``encode`` and
            ``convert_tokens_to_ids``).
        directory: defaults to `eval_dir()`.

    Raises:
        EvalError: an empty directory or a malformed ``reasoning.json``.
    """
    directory = directory or eval_dir()
    bos = tokenizer.bos_token_id
    enc = lambda s: list(tokenizer.encode(s, add_special_tokens=False))  # noqa: E731
    texts: list[EvalText] = []
    for f in sorted(directory.glob("*.txt")):
        texts.append(EvalText(f.stem, f.stem.split("-")[0], tuple([bos, *enc(f.read_text())])))
    rfile = directory / "reasoning.json"
    if rfile.is_file():
        ids = {t: _control_id(tokenizer, t) for t in ("[INST]", "[/INST]", "[THINK]", "[/THINK]")}
        eos = tokenizer.eos_token_id
        try:
            turns = json.loads(rfile.read_text())
            for t in turns:
                seq = [bos, ids["[INST]"], *enc(t["user"]), ids["[/INST]"], ids["[THINK]"],
                       *enc(t["reasoning"]), ids["[/THINK]"], *enc(t["answer"]), eos]
                texts.append(EvalText(t["name"], "reasoning", tuple(seq)))
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise EvalError(f"{rfile}: expected a list of {{name, user, reasoning, answer}}: {e}")
    if not texts:
        raise EvalError(f"no evaluation texts in {directory}")
    return texts


def make_chunks(texts: Iterable[EvalText], chunk_len: int = DEFAULT_CHUNK_LEN) -> list[Chunk]:
    """Cut each text into consecutive chunks of at most ``chunk_len`` tokens (>= 2 each).

    A trailing piece of a single token is dropped (it predicts nothing).
    """
    if chunk_len < 2:
        raise EvalError(f"chunk length {chunk_len} must be at least 2 tokens")
    chunks = []
    for t in texts:
        for s in range(0, len(t.ids), chunk_len):
            piece = t.ids[s : s + chunk_len]
            if len(piece) >= 2:
                chunks.append(Chunk(t.name, piece, t.category))
    return chunks


def chunks_digest(chunks: list[Chunk]) -> str:
    """A sha256 hex digest of the chunks' texts and token ids (identifies an evaluation set)."""
    h = hashlib.sha256()
    for c in chunks:
        h.update(c.text.encode() + b"\0" + np.asarray(c.ids, dtype=np.int64).tobytes())
    return h.hexdigest()


def log_probs(model, ids: tuple[int, ...]) -> mx.array:
    """Next-token log-probabilities of one chunk: float32 ``(len(ids) - 1, V)``.

    One forward pass without a cache; log-softmax in float32 (as `mlx_lm.perplexity`).
    """
    logits = model(mx.array(ids)[None])[0, :-1].astype(mx.float32)
    return logits - mx.logsumexp(logits, axis=-1, keepdims=True)


@dataclass
class Reference:
    """Stored reference log-probabilities (see the module docstring for the format).

    Attributes:
        path: the directory holding ``meta.json``, ``chunk-NNNN.npy`` and ``nll-NNNN.npy``;
        meta: ``{"format", "reference", "digest", "chunks", "tokens", "vocab", "dtype"}``.
    """

    path: Path
    meta: dict

    def logprobs(self, i: int) -> np.ndarray:
        """float32 ``(L-1, V)`` log-probabilities of chunk ``i``, memory-mapped."""
        return np.load(self.path / f"chunk-{i:04d}.npy", mmap_mode="r")

    def nll(self, i: int) -> np.ndarray:
        """float32 ``(L-1,)`` negative log-likelihood (nats) of chunk ``i``'s actual tokens."""
        return np.load(self.path / f"nll-{i:04d}.npy")


def open_reference(path: Path, chunks: list[Chunk]) -> Reference | None:
    """The reference stored at ``path`` if it is complete and matches ``chunks``, else None
    (the caller computes it again).

    Complete: ``meta.json`` has this format and the chunks' digest, and every chunk's two
    arrays are there with their full shapes, ``(L-1, vocab)`` and ``(L-1,)`` float32 (only the
    ``.npy`` headers are read; a truncated file fails to map).  A directory that lost files
    (removed half-way, or written by something other than `write_reference`) is not trusted.
    """
    try:
        meta = json.loads((path / "meta.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if (not isinstance(meta, dict) or meta.get("format") != REFERENCE_FORMAT
            or meta.get("digest") != chunks_digest(chunks) or meta.get("chunks") != len(chunks)):
        return None
    ref = Reference(path, meta)
    try:
        for i, c in enumerate(chunks):
            lp, nll = ref.logprobs(i), np.load(path / f"nll-{i:04d}.npy", mmap_mode="r")
            if (lp.shape, nll.shape) != ((len(c.ids) - 1, meta["vocab"]), (len(c.ids) - 1,)) \
                    or lp.dtype != np.float32 or nll.dtype != np.float32:
                return None
            del lp, nll
    except (OSError, ValueError, KeyError):
        return None
    return ref


def write_reference(model, chunks: list[Chunk], path: Path, *, label: str,
                    advance: Callable[[], None] = lambda: None) -> Reference:
    """Compute and store the reference log-probabilities of ``chunks`` under ``path``.

    Written into a staging directory beside ``path`` (`magimac.core.staging`, named after this
    process) and renamed into place when complete, so an interrupted run leaves nothing that
    `open_reference` trusts: Ctrl-C or an error removes the staging directory, and one left by
    a killed process is removed by the next call for the same ``path``. An incomplete directory
    already at ``path`` is moved aside before the new one takes its place. Memory: one chunk's
    ``(L, V)`` float32 logits at a time.

    Args:
        model: the reference model (an `mlx_lm` model); label: its name, stored in meta.
        advance: called once per chunk (progress).
    """
    from magimac.core import staging

    prefix = f"{path.name}.tmp-"
    path.parent.mkdir(parents=True, exist_ok=True)
    staging.sweep_stale(path.parent, prefix)  # up to a GB each, left by killed runs
    tmp = staging.make(path.parent, prefix)
    tokens, vocab = 0, 0
    try:
        for i, c in enumerate(chunks):
            lp = log_probs(model, c.ids)
            nll = -mx.take_along_axis(lp, mx.array(c.ids[1:])[:, None], axis=-1)[:, 0]
            mx.eval(lp, nll)
            np.save(tmp / f"chunk-{i:04d}.npy", np.array(lp))
            np.save(tmp / f"nll-{i:04d}.npy", np.array(nll))
            tokens += lp.shape[0]
            vocab = lp.shape[1]
            del lp
            advance()
    except BaseException:  # interrupted or failed: leave nothing half-written
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    meta = {"format": REFERENCE_FORMAT, "reference": label, "digest": chunks_digest(chunks),
            "chunks": len(chunks), "tokens": tokens, "vocab": vocab, "dtype": "float32"}
    (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
    old = None
    if path.exists():  # incomplete (else it was used): aside in one rename, then removed
        old = staging.make(path.parent, prefix)
        os.replace(path, old / path.name)
    os.replace(tmp, path)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return Reference(path, meta)


@dataclass
class Quality:
    """Quality of a variant against the reference over the evaluation set.

    Attributes (KL in nats per token, probabilities in [0, 1]):
        tokens: scored tokens; ppl / ppl_ref: perplexity of variant / reference;
        ln_ppl_ratio: ``ln(ppl / ppl_ref)``; kl_mean, kl_median, kl_p99, kl_max: KL(ref || var);
        top1_agreement: share of positions with the same arg-max token;
        delta_p_mean, delta_p_rms: of ``p_var(next) - p_ref(next)``;
        by_text / by_category: per text name / category (prose, code, math, reasoning),
            ``{"tokens", "ppl", "kl_mean", "top1_agreement"}``.
    """

    tokens: int
    ppl: float
    ppl_ref: float
    ln_ppl_ratio: float
    kl_mean: float
    kl_median: float
    kl_p99: float
    kl_max: float
    top1_agreement: float
    delta_p_mean: float
    delta_p_rms: float
    by_text: dict[str, dict] = field(default_factory=dict)
    by_category: dict[str, dict] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def compare(model, reference: Reference, chunks: list[Chunk], *,
            advance: Callable[[], None] = lambda: None) -> Quality:
    """Score ``model`` against ``reference`` chunk by chunk (bounded memory).

    Raises:
        EvalError: the reference was computed on other chunks or another vocabulary size.
    """
    if reference.meta["digest"] != chunks_digest(chunks):
        raise EvalError(f"reference {reference.path} was computed on another evaluation set "
                        "or tokenizer; delete it to recompute")
    kls, nlls, nll_refs, same = [], [], [], []
    names: list[str] = []
    cats: list[str] = []
    for i, c in enumerate(chunks):
        lp = log_probs(model, c.ids)
        if lp.shape[1] != reference.meta["vocab"]:
            raise EvalError(f"vocabulary size {lp.shape[1]} differs from the reference's "
                            f"{reference.meta['vocab']}")
        target = mx.array(c.ids[1:])[:, None]
        nll = -mx.take_along_axis(lp, target, axis=-1)[:, 0]
        lv = lp
        lr = mx.array(np.asarray(reference.logprobs(i)))
        kl = mx.sum(mx.exp(lr) * (lr - lv), axis=-1)
        agree = mx.argmax(lr, axis=-1) == mx.argmax(lv, axis=-1)
        mx.eval(kl, agree, nll)
        kls.append(np.array(kl))
        same.append(np.array(agree))
        nlls.append(np.array(nll))
        nll_refs.append(reference.nll(i))
        names += [c.text] * lp.shape[0]
        cats += [c.category] * lp.shape[0]
        del lp, lv, lr
        advance()
    kl, nll, nll_ref = np.concatenate(kls), np.concatenate(nlls), np.concatenate(nll_refs)
    dp = np.exp(-nll) - np.exp(-nll_ref)
    agree = np.concatenate(same)

    def groups(keys: list[str]) -> dict[str, dict]:
        arr, out = np.array(keys), {}
        for k in dict.fromkeys(keys):
            m = arr == k
            out[k] = {"tokens": int(m.sum()), "ppl": math.exp(float(nll[m].mean())),
                      "kl_mean": float(kl[m].mean()), "top1_agreement": float(agree[m].mean())}
        return out

    ppl, ppl_ref = math.exp(float(nll.mean())), math.exp(float(nll_ref.mean()))
    return Quality(
        tokens=int(kl.size), ppl=ppl, ppl_ref=ppl_ref, ln_ppl_ratio=math.log(ppl / ppl_ref),
        kl_mean=float(kl.mean()), kl_median=float(np.percentile(kl, 50)),
        kl_p99=float(np.percentile(kl, 99)), kl_max=float(kl.max()),
        top1_agreement=float(agree.mean()),
        delta_p_mean=float(dp.mean()), delta_p_rms=float(np.sqrt((dp**2).mean())),
        by_text=groups(names), by_category=groups(cats),
    )
