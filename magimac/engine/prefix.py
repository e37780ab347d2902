"""The KV prefixes of many conversations, kept between requests (`magimac serve`).

A bounded cache of KV prefixes, by bytes, the least recently stored dropped first (each turn
stores its conversation's KV again when it ends, so a conversation in use stays): mlx-lm's
`LRUPromptCache` (a trie of token sequences, used by `mlx_lm.server`) does the storing, the
nearest-prefix search and the eviction.  What this adds for Magistral:

- keys, not ids: image tokens are keyed with their image's content hash
  (`magimac.engine.generate.token_keys`), so two images of one size never share a prefix;
- a prefix never ends inside an image, and at least one prompt token is always left to feed
  (mlx-lm's `BatchGenerator` needs one to start decoding);
- the bound: ``max_bytes`` of stored KV (16-bit keys and values of every layer).
"""

from __future__ import annotations

from typing import Any

from mlx_lm.models.cache import LRUPromptCache, trim_prompt_cache

_MODEL = "model"  # LRUPromptCache keys entries by model too; one engine serves one model
_MANY = 1 << 40   # no bound on the number of entries: the bound is in bytes


def kv_bytes_per_token(text_config: dict, bits: int = 16) -> int:
    """Bytes of KV cache one token takes: 2 (keys and values) x layers x KV heads x head
    dimension x ``bits`` / 8 (Magistral Small: 2 x 40 x 8 x 128 x 2 = 160 KiB, shared/MAGISTRAL.md)."""
    heads = text_config.get("num_key_value_heads") or text_config["num_attention_heads"]
    head_dim = text_config.get("head_dim") or text_config["hidden_size"] // text_config["num_attention_heads"]
    return 2 * text_config["num_hidden_layers"] * heads * head_dim * bits // 8


class PrefixCache:
    """Per-conversation KV prefixes, LRU by bytes.

    Args:
        max_bytes: the most bytes of KV the stored prefixes may hold (the least recently
            stored go first when a new one would pass it).
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = int(max_bytes)
        self._lru = LRUPromptCache(max_size=_MANY, max_bytes=self.max_bytes)

    @property
    def nbytes(self) -> int:
        """Bytes held now."""
        return self._lru.nbytes

    def __len__(self) -> int:
        return len(self._lru)

    def fetch(self, keys: list, spans: list[tuple[int, int]]) -> tuple[list[Any] | None, int]:
        """A copy of the longest stored prefix of ``keys``, trimmed to fit.

        Args:
            keys: one key per prompt token (`token_keys`); spans: the [start, end] positions
                (inclusive) of each image's tokens.

        Returns:
            (cache, n): mlx-lm per-layer caches holding the first ``n`` positions of ``keys``
            (n < len(keys), never inside an image span), or (None, 0) when nothing matches.
        """
        cache, rest = self._lru.fetch_nearest_cache(_MODEL, keys)
        if cache is None:
            return None, 0
        n = len(keys) - len(rest)
        keep = min(n, len(keys) - 1)
        for s, e in spans:
            if s < keep <= e:
                keep = s
        if keep <= 0:
            return None, 0
        if keep < n:
            trim_prompt_cache(cache, n - keep)
        return cache, keep

    def store(self, keys: list, cache: list[Any]) -> None:
        """Keep ``cache`` (holding the positions ``keys``); the shorter stored prefixes of the
        same keys are dropped, and the least recently used ones while over ``max_bytes``."""
        if keys and cache and cache[0].size() == len(keys):
            self._lru.insert_cache(_MODEL, list(keys), cache)
