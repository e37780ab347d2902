"""Streaming detokenizer for Tekken: token ids in, text out, one token at a time.

Why our own: mlx-lm wraps transformers' `MistralCommonBackend` tokenizer in its
`NaiveStreamingDetokenizer`, which re-decodes every token of the current line on each new
token (O(T^2) per line, through transformers' Python decode) -- Magistral's reasoning has
long lines.  Tekken tokens are byte strings, so an exact streaming detokenizer is just
`Tekkenizer.id_to_byte_piece` fed into an incremental UTF-8 decoder: O(1) per token, spaces
kept as the pieces carry them, and a character split over several tokens (an emoji is often
3 byte-level tokens) comes out whole once its last byte arrives.
"""

from __future__ import annotations

import codecs

from mistral_common.tokens.tokenizers.base import SpecialTokenPolicy
from mistral_common.tokens.tokenizers.tekken import Tekkenizer


class StreamingDetokenizer:
    """Incremental Tekken decoder.

    Args:
        tekken: the model's `Tekkenizer` (``MistralTokenizer.instruct_tokenizer.tokenizer``).

    Control tokens (ids below ``tekken.num_special_tokens``: ``</s>``, ``[THINK]``, ...)
    decode to nothing; callers that need them look at ids.  Invalid UTF-8 becomes U+FFFD.
    """

    def __init__(self, tekken: Tekkenizer) -> None:
        self._tekken = tekken
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def add(self, token_id: int) -> str:
        """Decode one more token; returns the text it completes (maybe ``""``)."""
        piece = self._tekken.id_to_byte_piece(int(token_id), SpecialTokenPolicy.IGNORE)
        return self._decoder.decode(piece) if piece else ""

    def flush(self) -> str:
        """End of stream: returns what is left (an incomplete character becomes U+FFFD)."""
        return self._decoder.decode(b"", final=True)

    def reset(self) -> None:
        """Forget pending bytes."""
        self._decoder.reset()
