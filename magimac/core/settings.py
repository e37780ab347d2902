"""How one turn is sampled and prompted (`GenerationSettings`), and the values each number may take.

No MLX here: `magimac chat` and the app's settings screen import this module to check values
before any model loads.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

DEFAULT_TEMPERATURE = 0.7  # Magistral model card
DEFAULT_TOP_P = 0.95
TEKKEN_VOCABULARY = 131072
"""Tokens in the Tekken vocabulary of Magistral (and Mistral Small 3.x): the most ``top_k`` can keep."""
MAX_SEED = 2**64 - 1
"""The largest seed MLX's random generator takes (an unsigned 64-bit integer)."""


class _Default:
    """Sentinel type: "use the model's own system prompt" (its SYSTEM_PROMPT.txt)."""

    _instance: "_Default | None" = None

    def __new__(cls) -> "_Default":
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "DEFAULT"


DEFAULT = _Default()
"""`GenerationSettings.system_prompt` value meaning the model's own SYSTEM_PROMPT.txt."""


@dataclass
class GenerationSettings:
    """How one turn is sampled and how its prompt is built.

    Attributes:
        temperature: sampling temperature; None: the registry entry's (0.7 for Magistral).
            0 means greedy (argmax).
        top_p: nucleus sampling in (0, 1]; None: the registry entry's (0.95).
        top_k: keep the k most likely tokens; 0 disables.  A k of the model's vocabulary size
            or more keeps every token, the same as 0.
        min_p: drop tokens below ``min_p`` x the top probability, in [0, 1); 0 disables.
        repetition_penalty: mlx-lm's repetition penalty (> 1 discourages repeats); None: off.
        seed: seed of MLX's random generator for this turn, in [0, 2**64 - 1]; None: not reseeded.
        max_tokens: most tokens to generate; None: the rest of the context.
        reasoning_budget: most reasoning tokens; after that many the engine forces the
            closing reasoning marker and the model answers.  None: unlimited.
        keep_reasoning: keep earlier assistant turns' reasoning in the prompt (default: drop
            it, the common choice; it saves context).
        system_prompt: `DEFAULT` = the model's SYSTEM_PROMPT.txt (or built-in text for
            Magistral 1.0); None = no system prompt; a string = this system prompt (its literal
            ``[THINK]``/``[/THINK]`` become a thinking chunk, as in the model's own).
        reasoning_instructions: keep the model's own reasoning instructions before a custom
            system prompt (a string here, or a leading ``system`` message) that has no thinking
            block of its own, so the model still reasons (`magimac.text.prompt.
            with_reasoning_instructions`); False sends the custom prompt alone.
        tools: the tools offered to the model (`magimac.text.tools.ToolSpec`s, in order);
            empty: none (the prompt has no ``[AVAILABLE_TOOLS]``).
        tool_choice: ``"auto"`` (the model decides) or ``"none"`` (the tools stay in the prompt
            but ``[TOOL_CALLS]`` is never sampled), as mistral-common's `ToolChoiceEnum` names them.
        banned_openings: texts the reasoning may not begin with: right after ``[THINK]`` and
            the other tokens of one of them, its last token is never sampled (the bundled demo's
            reply language, `magimac.demo.language`); control-token markers only.
        cache_owner: who the turn's prompt-cache blocks on disk belong to (the app passes
            ``"conversation:<id>"``, so deleting the conversation drops the blocks only it
            used, `magimac.engine.disk_index.DiskIndex.drop_owner`); None: nobody in particular.
    """

    temperature: float | None = None
    top_p: float | None = None
    top_k: int = 0
    min_p: float = 0.0
    repetition_penalty: float | None = None
    seed: int | None = None
    max_tokens: int | None = None
    reasoning_budget: int | None = None
    keep_reasoning: bool = False
    system_prompt: str | None | _Default = DEFAULT
    reasoning_instructions: bool = True
    tools: tuple = ()
    tool_choice: str = "auto"
    banned_openings: tuple[str, ...] = ()
    cache_owner: str | None = None


class SettingRange(NamedTuple):
    """The values one `GenerationSettings` number may take, and what to say otherwise."""

    low: float
    high: float
    low_ok: bool  # whether ``low`` itself is allowed
    high_ok: bool  # whether ``high`` itself is allowed
    whole: bool  # whether only whole numbers are allowed
    problem: str  # the phrase that follows the option's name: "--top-p must be in (0, 1]"


SETTING_RANGES: dict[str, SettingRange] = {
    "temperature": SettingRange(0.0, math.inf, True, True, False, "must be a finite number >= 0"),
    "top_p": SettingRange(0.0, 1.0, False, True, False, "must be in (0, 1]"),
    "top_k": SettingRange(0, TEKKEN_VOCABULARY, True, True, True,
                          f"must be a whole number from 0 (off) to {TEKKEN_VOCABULARY} (the Tekken vocabulary)"),
    "min_p": SettingRange(0.0, 1.0, True, False, False, "must be in [0, 1) (0: off)"),
    "repetition_penalty": SettingRange(0.0, math.inf, False, True, False,
                                       "must be a finite number > 0 (1: no penalty)"),
    "seed": SettingRange(0, MAX_SEED, True, True, True, f"must be a whole number from 0 to {MAX_SEED}"),
    "max_tokens": SettingRange(1, math.inf, True, True, True, "must be a positive number of tokens"),
    "reasoning_budget": SettingRange(0, math.inf, True, True, True, "must be a number of tokens >= 0"),
}
"""`GenerationSettings` field -> `SettingRange`: every number `magimac chat` and the app's settings
screen accept (sampling needs finite values; top-p and min-p are probabilities; top-k counts tokens
of the vocabulary, whose size is known only once a model is loaded, so the bound is Tekken's
131072 and the engine treats a k at or above the loaded model's vocabulary as "keep all")."""


def setting_error(name: str, value: float) -> str | None:
    """Why ``value`` is not allowed for the `GenerationSettings` field ``name``, or None when it is.

    Returns a phrase to follow the option's name, such as ``"must be in (0, 1]"``.  Fields
    without a `SETTING_RANGES` entry take any value; ints of any size are compared exactly.
    """
    r = SETTING_RANGES.get(name)
    if r is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return r.problem
    if isinstance(value, float) and (not math.isfinite(value) or (r.whole and not value.is_integer())):
        return r.problem
    above_low = r.low <= value if r.low_ok else r.low < value
    below_high = value <= r.high if r.high_ok else value < r.high
    return None if above_low and below_high else r.problem


DISK_CACHE_BUDGET = 10 * 10**9
"""Bytes the prompt cache on disk may take by default (10 GB as Finder counts them): about 64K
tokens of Magistral Small's 16-bit KV (160 KiB a token, shared/MAGISTRAL.md), 256K at 4-bit."""
BLOCK_TOKENS = 256
"""Tokens in one block of the prompt cache on disk.  Smaller blocks lose fewer tokens at the end
of a match (at most a block minus one is prefilled again: under a second at Magistral's few hundred
tokens/s on an M4 Pro) but mean more files and index rows; one 256-token block of Magistral Small's
16-bit KV is 40 MiB (10 MiB at 4-bit), 64 files for a 16K-token conversation."""


@dataclass(frozen=True)
class DiskCacheSettings:
    """The prompt cache on disk (`magimac.engine.disk_cache`), an `Engine` option.

    Attributes:
        enabled: False keeps the KV cache in memory only (as before).
        budget_bytes: bytes the cache may take; None: the person's setting (`magimac cache
            --budget`), else `DISK_CACHE_BUDGET`.  Least recently used blocks go first.
        directory: where the blocks and their index live; None: `magimac.core.paths.cache_dir()`
            / ``prompt-cache``.
        block_tokens: tokens per block (`BLOCK_TOKENS`; tests use small blocks).
    """

    enabled: bool = True
    budget_bytes: int | None = None
    directory: str | None = None
    block_tokens: int = BLOCK_TOKENS


__all__ = ["DEFAULT", "DiskCacheSettings", "GenerationSettings", "SETTING_RANGES", "SettingRange", "setting_error"]
