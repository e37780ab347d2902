"""Reading what a person points magimac at: a file given by path, or stdin, always with a cap.

Every person-given input goes through here, so none can make magimac read without end
(``/dev/zero``, a FIFO that never closes, a 20 GB file) or stop on a traceback:

- `read_file_bytes`: a regular file only (opened with ``O_NONBLOCK`` and checked on the open
  descriptor, so a FIFO swapped in after a check cannot hang the read), at most ``max_bytes``.
- `read_text_file`: the same, decoded as UTF-8 (a leading BOM dropped); bytes that are not
  UTF-8 are one line naming the file and the byte.
- `read_stdin`: at most ``max_bytes`` of a text stream (``read(cap + 1)``: one byte more tells
  "over the cap" without reading the rest); `read_stdin_line`: one line of at most
  `MAX_LINE_CHARS` (an answer, a key).

Limits (bytes): `MAX_TEXT_BYTES` for a prompt, a system prompt or a conversation file;
callers pass their own for other inputs (documents, images, ``mcp.json``).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import IO

from magimac.core.errors import MagimacError
from magimac.core.units import format_bytes

MAX_TEXT_BYTES = 16_000_000
"""Largest prompt, system prompt or conversation file, bytes (16 MB: over ten times what
Magistral's 128K-token context holds, so no real conversation reaches it)."""


MAX_LINE_CHARS = 4096
"""Longest line read from stdin as an answer or a key, characters."""


class InputError(MagimacError, ValueError):
    """A person-given file or stream that cannot be read; one line naming it and what to do."""


def read_file_bytes(path: str | Path, max_bytes: int, error: type[MagimacError] = InputError,
                    hint: str = "give a smaller file") -> bytes:
    """The bytes of the regular file at ``path`` (``~`` expanded), at most ``max_bytes``.

    Args:
        path: the file, as the person gave it (named so in messages).
        max_bytes: the most bytes accepted.
        error: the `MagimacError` subclass to raise (a caller's own, e.g. ``DocumentError``).
        hint: what to do when the file is over ``max_bytes``.

    Raises:
        ``error``: missing, a folder, not a regular file (FIFO, socket, device), unreadable,
            or larger than ``max_bytes`` (the message states the limit).
    """
    p = Path(path).expanduser()
    try:
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise error(f"{path}: no such file") from None
    except IsADirectoryError:
        raise error(f"{path}: is a folder, not a file") from None
    except OSError as e:
        raise error(f"{path}: cannot read ({e.strerror or e})") from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise error(f"{path}: is a folder, not a file")
        if not stat.S_ISREG(st.st_mode):
            raise error(f"{path}: not a regular file (a pipe, socket or device); give a file")
        if st.st_size > max_bytes:
            raise _too_large(error, path, max_bytes, hint, st.st_size)
        try:
            data = f.read(max_bytes + 1)
        except OSError as e:
            raise error(f"{path}: cannot read ({e.strerror or e})") from None
    if len(data) > max_bytes:  # it grew while being read
        raise _too_large(error, path, max_bytes, hint)
    return data


def read_text_file(path: str | Path, max_bytes: int = MAX_TEXT_BYTES, error: type[MagimacError] = InputError) -> str:
    """The text of the UTF-8 file at ``path`` (a leading BOM dropped), at most ``max_bytes``.

    Raises:
        ``error``: as `read_file_bytes`, or the bytes are not UTF-8 text (the byte's offset named).
    """
    return _decode(read_file_bytes(path, max_bytes, error), str(path), error)


def read_stdin(stream: IO[str], max_bytes: int = MAX_TEXT_BYTES) -> str:
    """At most ``max_bytes`` of text from ``stream`` (stdin): its binary buffer when it has one,
    decoded as UTF-8; a text-only stream (tests) by characters.

    Raises:
        InputError: more than ``max_bytes`` (the limit stated), or not UTF-8 text.
    """
    buffer = getattr(stream, "buffer", None)
    data = buffer.read(max_bytes + 1) if buffer is not None else stream.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise _too_large(InputError, "stdin", max_bytes, "give a shorter prompt")
    return _decode(data, "stdin", InputError) if isinstance(data, bytes) else data


def read_stdin_line(stream: IO[str], max_chars: int = MAX_LINE_CHARS) -> str:
    """One line of ``stream`` (a yes/no answer, a key), without its line end, at most
    ``max_chars`` characters (``readline(cap + 1)``: a line that never ends is not waited out).

    Raises:
        InputError: a longer line, or bytes that are not text in the stream's encoding.
    """
    try:
        line = stream.readline(max_chars + 1).rstrip("\r\n")
    except UnicodeDecodeError:
        raise InputError("stdin: not text; give one line of text") from None
    if len(line) > max_chars:
        raise InputError(f"stdin: a line longer than {max_chars:,} characters; give one short line")
    return line


def _decode(data: bytes, shown: str, error: type[MagimacError]) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise error(f"{shown}: not UTF-8 text (byte {e.start:,} is {data[e.start]:#04x}); "
                    "give a text file saved as UTF-8") from None


def _too_large(error: type[MagimacError], path, max_bytes: int, hint: str, size: int | None = None) -> MagimacError:
    got = f"{format_bytes(size)}; " if size is not None else ""
    return error(f"{path}: too large ({got}the limit is {format_bytes(max_bytes)}); {hint}")
