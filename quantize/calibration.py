"""Calibration samples for GPTQ and AWQ: a text file of chats (or plain text) encoded with the
model's own prompt format by mistral-common, cut into samples of equal length.

The file format (UTF-8 text; the shipped set, `DEFAULT_FILE`, is one, its sources in
``calibration/SOURCES.md``):

- a line ``@@ user`` starts a chat: the user's message follows, then optionally a line
  ``@@ think`` and the reasoning, then ``@@ answer`` and the answer;
- a line ``@@ text`` starts a plain document (encoded as text after ``<s>``);
- text before any ``@@`` line, or a file without them, is one plain document.

A chat becomes exactly what Magistral sees and writes: ``<s>[SYSTEM_PROMPT]…[/SYSTEM_PROMPT]
[INST]user[/INST][THINK]reasoning[/THINK]answer</s>`` through mistral-common's
`InstructRequest` (a reasoning is a `ThinkChunk`, so ``[THINK]`` are control tokens; what a
user wrote stays text).  Every other chat carries the checkpoint's ``SYSTEM_PROMPT.txt`` (its
``[THINK]``…``[/THINK]`` part as a `ThinkChunk`, as the engine sends it), so the samples hold
the system prompt without spending a quarter of every sample on it.  All encoded blocks are
concatenated in file order and cut into ``samples`` windows of ``tokens`` tokens (as mlx-lm's
``load_data`` cuts its calibration text, without the shuffle: the result is reproducible).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from magimac.quantize.source import QuantizeError

DEFAULT_FILE = Path(__file__).resolve().parent / "calibration" / "magistral-chats.txt"
DEFAULT_SAMPLES = 128  # samples of DEFAULT_TOKENS: 65,536 tokens (GPTQ/AWQ papers: 128 x 2048 / 128 x 512)
DEFAULT_TOKENS = 512  # tokens per sample (mlx-lm's --sequence-length default)
MIN_SAMPLES = 4  # fewer full samples than this is "too short"
MAX_FILE_BYTES = 64 << 20


@dataclass(frozen=True)
class Calibration:
    """Encoded calibration samples.

    Attributes:
        ids: int32 ``(samples, tokens)`` token ids.
        file: the text file they came from; sha256: hex digest of its bytes.
        requested: the samples asked for (``ids`` may hold fewer when the text is short).
    """

    ids: np.ndarray
    file: Path
    sha256: str
    requested: int

    def record(self) -> dict:
        """The manifest's ``calibration`` entry."""
        return {"file": self.file.name, "sha256": self.sha256, "samples": int(self.ids.shape[0]),
                "tokens_per_sample": int(self.ids.shape[1]), "requested_samples": self.requested}


def read_text(path: Path) -> tuple[str, str]:
    """``(text, sha256)`` of a calibration file.

    Raises:
        QuantizeError: missing, unreadable, larger than 64 MiB, empty, or not UTF-8 text.
    """
    hint = "give a UTF-8 text file of chats or prose (format: magimac quantize --help)"
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise QuantizeError(f"{path}: over 64 MiB; calibration needs a few hundred KB of text at most")
        raw = path.read_bytes()
    except OSError as e:
        raise QuantizeError(f"{path}: cannot read calibration file: {e.strerror}") from None
    if not raw.strip():
        raise QuantizeError(f"{path}: empty calibration file; {hint}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is None or "\x00" in text:
        raise QuantizeError(f"{path}: not UTF-8 text (a binary file?); {hint}")
    return text, hashlib.sha256(raw).hexdigest()


def parse_blocks(text: str) -> list[dict]:
    """The file's blocks: ``{"kind": "text", "text"}`` or ``{"kind": "chat", "user", "think",
    "answer"}`` (empty strings where a part is missing); blank blocks are dropped."""
    blocks: list[dict] = []
    cur: dict = {"kind": "text", "text": []}
    part = "text"
    for line in text.splitlines(keepends=True):
        tag = line.strip()
        if tag in ("@@ user", "@@ text"):
            blocks.append(cur)
            part = tag[3:]
            cur = {"kind": "chat" if part == "user" else "text", part: []}
            continue
        if tag in ("@@ think", "@@ answer") and cur["kind"] == "chat":
            part = tag[3:]
            cur[part] = []
            continue
        cur.setdefault(part, []).append(line)
    blocks.append(cur)
    out = []
    for b in blocks:
        b = {k: ("".join(v).strip() if isinstance(v, list) else v) for k, v in b.items()}
        if any(v for k, v in b.items() if k != "kind"):
            out.append({"user": "", "think": "", "answer": "", "text": "", **b})
    return out


def _system_chunks(system_prompt: str):
    from mistral_common.protocol.instruct.chunk import TextChunk, ThinkChunk

    head, sep, rest = system_prompt.partition("[THINK]")
    think, sep2, tail = rest.partition("[/THINK]")
    if not (sep and sep2):
        return [TextChunk(text=system_prompt)]
    return [c for c in (TextChunk(text=head) if head else None, ThinkChunk(thinking=think),
                        TextChunk(text=tail) if tail else None) if c is not None]


def encode_blocks(blocks: list[dict], tekken: Path, system_prompt: str | None) -> list[int]:
    """All blocks as one token stream (each starts with ``<s>``), via mistral-common."""
    from mistral_common.protocol.instruct.chunk import TextChunk, ThinkChunk
    from mistral_common.protocol.instruct.messages import AssistantMessage, SystemMessage, UserMessage
    from mistral_common.protocol.instruct.request import InstructRequest
    from mistral_common.tokens.tokenizers.mistral import MistralTokenizer

    tok = MistralTokenizer.from_file(str(tekken))
    raw = tok.instruct_tokenizer.tokenizer
    ids: list[int] = []
    chats = 0
    for b in blocks:
        if b["kind"] == "text":
            ids += raw.encode(b["text"], bos=True, eos=False)
            continue
        msgs = [SystemMessage(content=_system_chunks(system_prompt))] if system_prompt and chats % 2 == 0 else []
        reply = ([ThinkChunk(thinking=b["think"])] if b["think"] else []) + [TextChunk(text=b["answer"] or " ")]
        msgs += [UserMessage(content=[TextChunk(text=b["user"] or " ")]), AssistantMessage(content=reply)]
        ids += tok.instruct_tokenizer.encode_instruct(InstructRequest(messages=msgs)).tokens
        chats += 1
    return ids


def load_calibration(path: Path | None, checkpoint_dir: Path, *, samples: int = DEFAULT_SAMPLES,
                     tokens: int = DEFAULT_TOKENS) -> Calibration:
    """Read, encode and cut the calibration set for the checkpoint in ``checkpoint_dir``.

    Args:
        path: the text file (None: the shipped `DEFAULT_FILE`).
        checkpoint_dir: its ``tekken.json`` encodes, its ``SYSTEM_PROMPT.txt`` (if any) is the
            system prompt of the chats.
        samples / tokens: how many windows of how many tokens (at most ``samples``).

    Raises:
        QuantizeError: a bad file (`read_text`), no tekken.json, bad numbers, or text too short
            for `MIN_SAMPLES` windows (each message one line naming the file).
    """
    path = Path(path or DEFAULT_FILE)
    if samples < 1 or tokens < 16:
        raise QuantizeError(f"--calibration-samples {samples} / --calibration-tokens {tokens}: need at least 1 and 16")
    text, digest = read_text(path)
    tekken = Path(checkpoint_dir) / "tekken.json"
    if not tekken.is_file():
        raise QuantizeError(f"{tekken}: missing; calibration encodes chats with Magistral's tekken.json")
    sp_file = Path(checkpoint_dir) / "SYSTEM_PROMPT.txt"
    system_prompt = sp_file.read_text(encoding="utf-8") if sp_file.is_file() else None
    ids = encode_blocks(parse_blocks(text), tekken, system_prompt)
    n = min(samples, len(ids) // tokens)
    if n < min(samples, MIN_SAMPLES):
        raise QuantizeError(f"{path}: too short for calibration: {len(ids)} tokens, at least "
                            f"{min(samples, MIN_SAMPLES) * tokens} needed ({min(samples, MIN_SAMPLES)} samples of "
                            f"{tokens}); add text or lower --calibration-tokens")
    arr = np.asarray(ids[: n * tokens], np.int32).reshape(n, tokens)
    return Calibration(arr, path, digest, samples)
