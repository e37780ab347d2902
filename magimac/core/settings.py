"""How one turn is sampled and prompted (`GenerationSettings`), and the values each number may take.

No MLX here: `magimac chat` and the app's settings screen import this module to check values
before any model loads.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from magimac.core.errors import MagimacError

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


class SettingError(MagimacError, ValueError):
    """A generation setting out of its range (or not a number): one line naming it and its range."""


@dataclass(frozen=True)
class Setting:
    """One row of `SETTINGS`: a generation setting's type, range, default, unit and names.

    Attributes:
        name: the `GenerationSettings` field (also the app's settings-dict key).
        whole: whole numbers only (an int), else any finite number (a float).
        low / high: the bounds; low_ok / high_ok: whether each bound itself is allowed.
        default: the value when unset (`GenerationSettings`' default); `unset` says what it means.
        unit: what the number counts (``"tokens"``) or ``""``.
        label: the app's label; about: what it does (the CLI's help, the app's placeholder).
        openai: the field of an OpenAI chat request (`magimac serve` reads it, `RemoteEngine`
            writes it; ``top_k``, ``min_p``, ``repetition_penalty`` and ``reasoning_budget`` are
            magimac's own, vLLM reads the first three); openai_aliases: older names also read.
        mistral: the field of Mistral's API, or None: the API has none, so it is not sent.
        note: what a special value means, shown after the range (``"0: off"``).
    """

    name: str
    whole: bool
    low: float
    high: float
    low_ok: bool
    high_ok: bool
    default: float | None
    unset: str
    label: str
    about: str
    openai: str
    mistral: str | None
    unit: str = ""
    note: str = ""
    openai_aliases: tuple[str, ...] = ()

    @property
    def flag(self) -> str:
        """The CLI option: ``--top-p``."""
        return "--" + self.name.replace("_", "-")

    @property
    def range(self) -> str:
        """The allowed values in words: ``"a number in (0, 1]"``, ``"a whole number of tokens >= 1"``."""
        kind = "a whole number" + (f" of {self.unit}" if self.unit else "") if self.whole else "a number"
        low, high = _plain(self.low), _plain(self.high)
        if math.isinf(self.high):
            text = f"{kind} {'>=' if self.low_ok else '>'} {low}"
        elif self.whole:
            text = f"{kind} from {low} to {high}"
        else:
            text = f"{kind} in {'[' if self.low_ok else '('}{low}, {high}{']' if self.high_ok else ')'}"
        return f"{text} ({self.note})" if self.note else text

    def problem(self, value) -> str | None:
        """Why ``value`` is not allowed (``"must be a number in (0, 1]"``), or None when it is.
        Ints of any size are compared exactly; bools, NaN and infinities are refused."""
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (
                isinstance(value, float) and (not math.isfinite(value) or (self.whole and not value.is_integer()))):
            return f"must be {self.range}"
        above = self.low <= value if self.low_ok else self.low < value
        below = value <= self.high if self.high_ok else value < self.high
        return None if above and below else f"must be {self.range}"

    def parse(self, raw: str, named: str | None = None) -> int | float:
        """The value of ``raw`` text (an option, a form field), checked.

        Raises:
            SettingError: not a number of the row's kind, or out of range: ``"--top-p must be a
                number in (0, 1], got 2"`` (``named``: the name to use, default the CLI flag).
        """
        try:
            value = int(raw) if self.whole else float(raw)
        except (TypeError, ValueError):
            value = None
        return self.check(value, named, raw)

    def check(self, value, named: str | None = None, shown=None):
        """``value`` when allowed, else a `SettingError` naming ``named`` (default the CLI flag)."""
        problem = self.problem(value)
        if problem:
            raise SettingError(f"{named or self.flag} {problem}, got {value if shown is None else shown}")
        return value


def _plain(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and math.isfinite(x) else str(x)


MAX_TEMPERATURE = 2.0
"""The highest temperature anyone may ask for: OpenAI's bound (Mistral's SDK states none and
recommends 0 to 0.7; Magistral's card 0.7).  Far above it a model babbles."""

SETTINGS: dict[str, Setting] = {s.name: s for s in (
    Setting("temperature", False, 0, MAX_TEMPERATURE, True, True, None, f"the model's, {DEFAULT_TEMPERATURE}",
         "Temperature", "sampling temperature; 0 = greedy", "temperature", "temperature"),
    Setting("top_p", False, 0, 1, False, True, None, f"the model's, {DEFAULT_TOP_P}",
         "Top-p", "nucleus sampling: keep the likeliest tokens that make up this probability", "top_p", "top_p"),
    Setting("top_k", True, 0, TEKKEN_VOCABULARY, True, True, 0, "off", "Top-k", "keep the k most likely tokens",
         "top_k", None, unit="tokens", note="0: off"),
    Setting("min_p", False, 0, 1, True, False, 0.0, "off", "Min-p",
         "drop tokens below min-p x the top probability", "min_p", None, note="0: off"),
    Setting("repetition_penalty", False, 0, math.inf, False, True, None, "off", "Repetition penalty",
         "above 1 discourages repeating recent tokens", "repetition_penalty", None, note="1: no penalty"),
    Setting("seed", True, 0, MAX_SEED, True, True, None, "random", "Seed", "random seed, for repeatable output",
         "seed", "random_seed"),
    Setting("max_tokens", True, 1, math.inf, True, True, None, "the rest of the context", "Max tokens",
         "most tokens to generate, reasoning and answer together", "max_completion_tokens", "max_tokens",
         unit="tokens", openai_aliases=("max_tokens",)),
    Setting("reasoning_budget", True, 0, math.inf, True, True, None, "unlimited", "Reasoning budget",
         "end the reasoning after this many tokens", "reasoning_budget", None, unit="tokens",
         note="0: no reasoning"),
)}
"""Every number of `GenerationSettings`, once: `magimac chat`'s options, the app's settings form,
`magimac serve`'s request fields, the request `RemoteEngine` and the online engine send, and the
registry's sampling defaults are all read from or checked against this table, so no two disagree.
Top-k counts tokens of the vocabulary, whose size is known only once a model is loaded: the bound
is Tekken's 131072, and the engine treats a k at or above the loaded model's vocabulary as "keep
all".  Settings whose ``mistral`` is None are local only: an online turn does not send them
(a reasoning budget of 0 becomes ``reasoning_effort: "none"`` there)."""


def setting_error(name: str, value) -> str | None:
    """Why ``value`` is not allowed for the `GenerationSettings` field ``name`` (a phrase to
    follow its name, such as ``"must be a number in (0, 1]"``), or None when it is (or when
    ``name`` is no row of `SETTINGS`)."""
    row = SETTINGS.get(name)
    return None if row is None else row.problem(value)


def check_settings(settings: "GenerationSettings") -> "GenerationSettings":
    """``settings`` when every number in it is allowed (None: unset).

    Raises:
        SettingError: the first one out of range, named by its field: ``"temperature must be a
            number in [0, 2], got 5"``.
    """
    for row in SETTINGS.values():
        value = getattr(settings, row.name)
        if value is not None:
            row.check(value, row.name)
    return settings


def wire_fields(settings: "GenerationSettings", api: str) -> dict:
    """The request fields for the set numbers of ``settings`` (those not at their default) on
    ``api``, ``"openai"`` or ``"mistral"``: ``{"temperature": 0.3, "random_seed": 7}``.  A
    setting the API has no field for is left out.

    Raises:
        SettingError: a number out of range (`check_settings`).
    """
    check_settings(settings)
    out = {}
    for row in SETTINGS.values():
        field_name, value = getattr(row, api), getattr(settings, row.name)
        if field_name and value is not None and value != row.default:
            out[field_name] = value
    return out


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


__all__ = ["DEFAULT", "DiskCacheSettings", "GenerationSettings", "SETTINGS", "Setting", "SettingError",
           "check_settings", "setting_error", "wire_fields"]
