"""Reading scanned pages with Magistral's vision: a `magimac.text.library.scans.PageReader`
made from an opened model.

Each page is one turn: the page image (a temporary PNG, owner-only, removed after the turn) and
`TRANSCRIBE` as the user message, no system prompt, temperature 0, a reasoning budget of
`REASONING_BUDGET` tokens (reading needs little thought) and at most `MAX_TOKENS` tokens. Slow:
the image alone is up to (1540 / 28)² ≈ 3,000 prompt tokens on Magistral Small, so this is off
unless the person asks (`magimac library add --read-scans`).
"""

from __future__ import annotations

import os
import tempfile

from magimac.core.conversation import Message
from magimac.core.errors import MagimacError
from magimac.core.events import AnswerDelta, Done

TRANSCRIBE = ("This image is a scanned page of a document. Write out all of its text, in its "
              "language and reading order, and nothing else.")
REASONING_BUDGET = 64
MAX_TOKENS = 2048


def vision_page_reader(session):
    """A PageReader running turns on ``session`` (a `magimac.session.model.ChatSession`).

    Raises:
        MagimacError: the model takes no images (named, with what to use instead).
    """
    from magimac.core.settings import GenerationSettings

    loaded = session.wait_loaded()
    if not loaded.vision:
        raise MagimacError(f"{loaded.model} reads no images: scanned pages need a vision model "
                           "(Magistral Small 1.2); pass --model magistral-small-2509")
    settings = GenerationSettings(temperature=0.0, max_tokens=MAX_TOKENS, reasoning_budget=REASONING_BUDGET,
                                  system_prompt=None)

    def read(png: bytes, label: str) -> str:
        fd, tmp = tempfile.mkstemp(suffix=".png", prefix="magimac-scan-")  # 0600
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(png)
            run = session.turn([Message("user", TRANSCRIBE, images=[tmp])], settings)
            text = "".join(ev.text for ev in run if isinstance(ev, AnswerDelta))
            done = run.done or Done("error", "no end")
            if done.finish_reason == "error":
                raise MagimacError(f"{label}: the model could not read the page ({done.error})")
            return text
        finally:
            os.unlink(tmp)

    return read
