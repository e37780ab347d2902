"""What `magimac bench` measures, checked before anything runs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from magimac.core.errors import MagimacError

DEFAULT_LEVELS = "3,4,6,8"
DEFAULT_PROMPT_LENGTHS = "256,1024,4096"
DEFAULT_DECODE_TOKENS = 128


@dataclass
class Settings:
    """One bench run.

    Attributes:
        model: the source as given (directory or registry name); levels: the text of
        ``--levels``; recipes: quantize recipe names (None: quantize's default);
        group_size, mode: quantization settings; reference: model directory scored as the
        reference (None: chosen, see `magimac.bench.measure.pick_reference`); out: directory
        for the outputs (None: ``<data dir>/bench/runs/<time>``); tasks: generated problems
        per variant (0: off); task_max_tokens: generation limit per problem (tokens);
        prompt_lengths: prompt lengths (tokens); decode_tokens: tokens decoded per speed
        measurement; repeats: speed measurements per length; chunk_len: tokens per forward
        pass of the quality evaluation; eval_dir: evaluation texts (None: the bundled set);
        bandwidth: memory bandwidth (GB/s, None: chip table); force: convert again;
        plots: write PNG and terminal plots; methods: quantize methods per level (None: rtn).
    """

    model: str
    levels: str = DEFAULT_LEVELS
    recipes: list[str | None] | None = None
    group_size: int = 64
    mode: str = "affine"
    reference: Path | None = None
    out: Path | None = None
    tasks: int = 0
    task_max_tokens: int = 1024
    prompt_lengths: list[int] | None = None
    decode_tokens: int = DEFAULT_DECODE_TOKENS
    repeats: int = 3
    chunk_len: int = 512
    eval_dir: Path | None = None
    bandwidth: float | None = None
    force: bool = False
    plots: bool = True
    methods: list[str] | None = None

    def check(self) -> None:
        """Raises MagimacError (one line naming the option) on a value that cannot run."""
        parse_levels(self.levels)
        if self.decode_tokens < 2:
            raise MagimacError(f"--decode-tokens {self.decode_tokens}: must be at least 2")
        if self.repeats < 1:
            raise MagimacError(f"--repeats {self.repeats}: must be at least 1")
        if self.eval_dir is not None and not self.eval_dir.is_dir():
            raise MagimacError(f"--eval-dir {self.eval_dir}: not a directory")
        if self.reference is not None and not self.reference.is_dir():
            raise MagimacError(f"--reference {self.reference}: not a directory")


def parse_levels(text: str) -> list[int | None]:
    """``"bf16,8,4"`` -> ``[None, 8, 4]`` (None = the unquantized source).

    Raises:
        MagimacError: an empty list or a level that is not an integer of quantize's BITS.
    """
    from magimac.quantize.layout import BITS

    out: list[int | None] = []
    for part in (s.strip() for s in text.split(",")):
        if not part:
            continue
        if part.lower() in ("bf16", "16"):
            out.append(None)
            continue
        try:
            bits = int(part.removesuffix("bit"))
        except ValueError:
            bits = -1
        if bits not in BITS:
            raise MagimacError(f"--levels: {part!r} is not one of bf16, {', '.join(map(str, BITS))}")
        out.append(bits)
    if not out:
        raise MagimacError("--levels: give at least one level, e.g. --levels 4,8")
    return list(dict.fromkeys(out))


def parse_lengths(text: str) -> list[int]:
    """``"256,1024"`` -> ``[256, 1024]`` (tokens); raises MagimacError on non-positive or
    non-integers."""
    try:
        out = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        out = []
    if not out or min(out) < 1:
        raise MagimacError(f"--prompt-lengths: {text!r} is not a list of positive token counts")
    return out


def parse_methods(text: str | None) -> list[str]:
    """``"rtn,gptq"`` -> the names (checked by `magimac.bench.variants.plan_variants`); None or
    empty -> ``["rtn"]``."""
    names = [s.strip() for s in text.split(",") if s.strip()] if text else []
    return list(dict.fromkeys(names)) or ["rtn"]


def parse_recipes(text: str | None) -> list[str | None]:
    """``"uniform,mixed_3_6"`` -> the names; None or empty -> ``[None]`` (quantize's default)."""
    names = [s.strip() for s in text.split(",") if s.strip()] if text else []
    return names or [None]
