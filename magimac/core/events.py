"""Events the engine sends to its clients (the TUI, `magimac chat`, benchmarks).

The engine's worker thread owns MLX; clients only ever see these plain dataclasses, so the
UI never imports MLX and the engine never imports Textual.
"""

from __future__ import annotations

from dataclasses import dataclass, field

FINISH_REASONS = ("stop", "length", "cancelled", "error")


@dataclass(frozen=True)
class LoadProgress:
    """Model loading progress: ``fraction`` in [0, 1] and a short ``message``."""

    fraction: float
    message: str = ""


@dataclass(frozen=True)
class Loaded:
    """The model is loaded and ready.

    Attributes:
        model: display name; quantization: e.g. ``"4bit"``; context_length: tokens the
        engine allows; vision: whether images are accepted; weights_bytes: bytes in memory;
        service: where the model runs: "" on this machine, else the service's name
        (``"Mistral API"``, `magimac.online`).
    """

    model: str
    quantization: str
    context_length: int
    vision: bool
    weights_bytes: int = 0
    service: str = ""


@dataclass(frozen=True)
class Prefill:
    """Progress of reading a long prompt (the prefill, before the first token).

    ``done_tokens`` of ``total_tokens`` are in the KV cache; both count only the prompt tokens
    this turn prefills (those already cached are left out).  Sent at the start, after each
    chunk and at the end, and only when the prefill takes more than
    `magimac.engine.prefill.SHOWN_AFTER_CHUNKS` chunks (a short prompt sends none).
    """

    done_tokens: int
    total_tokens: int


@dataclass(frozen=True)
class ReasoningDelta:
    """New reasoning text (between the reasoning markers)."""

    text: str


@dataclass(frozen=True)
class AnswerDelta:
    """New answer text (after the closing reasoning marker)."""

    text: str


@dataclass(frozen=True)
class Stats:
    """Numbers for one turn.

    Attributes:
        prompt_tokens: tokens in the full prompt.
        cached_tokens: prompt tokens reused from the KV cache (not prefilled again).
        ttft_s: time to first token, seconds, from the request to the first sampled token.
        prefill_tps: prefill tokens/s over the tokens actually prefilled.
        decode_tps: decode tokens/s.
        reasoning_tokens / answer_tokens: generated tokens in each part.
        peak_memory_bytes: MLX peak memory during the turn, bytes.
        context_length: the engine's context limit, tokens.
        tool_tokens: generated tokens inside tool calls (``[TOOL_CALLS]`` and ``[ARGS]`` too).
        memory_tokens / disk_tokens / prefilled_tokens: the prompt's tokens whose KV came from
            the in-memory cache, from the prompt cache on disk, and from prefilling them
            (``memory_tokens + disk_tokens == cached_tokens``; the three sum to prompt_tokens).
        cache_notice: one line about the disk cache to show once (a full disk), else "".
    """

    prompt_tokens: int = 0
    cached_tokens: int = 0
    ttft_s: float = 0.0
    prefill_tps: float = 0.0
    decode_tps: float = 0.0
    reasoning_tokens: int = 0
    answer_tokens: int = 0
    peak_memory_bytes: int = 0
    context_length: int = 0
    tool_tokens: int = 0  # generated tokens inside tool calls, control tokens included
    memory_tokens: int = 0
    disk_tokens: int = 0
    prefilled_tokens: int = 0
    cache_notice: str = ""


@dataclass(frozen=True)
class Done:
    """The turn ended: ``finish_reason`` is one of FINISH_REASONS; ``error`` a one-line message.

    ``rejected``: the engine refused the turn before it started because of what was asked (a
    conversation that cannot become a prompt, a prompt longer than the context), not because
    of a fault of its own; `magimac serve` answers such a turn with HTTP 400.
    """

    finish_reason: str
    error: str | None = None
    stats: Stats = field(default_factory=Stats)
    rejected: bool = False


@dataclass(frozen=True)
class EngineError:
    """An error outside a turn (e.g. loading failed); one-line ``message``."""

    message: str


@dataclass(frozen=True)
class Retrying:
    """An online turn waits before it asks again (rate limit, HTTP 429): ``wait_s`` seconds
    (the server's ``Retry-After``; None when it gave none), ``reason`` one line for people."""

    wait_s: float | None
    reason: str


@dataclass(frozen=True)
class ToolCall:
    """The model called a tool (sent when the call's arguments are complete).

    Attributes:
        id: the call's id, ``"c"`` + 8 digits counting the calls of the conversation from 1
            (9 characters [a-zA-Z0-9], as mistral-common requires).
        name: the tool's name as the model wrote it.
        arguments: the arguments (a JSON object), ``{}`` when they could not be read.
        raw: the arguments' text as the model wrote it.
        error: why the call cannot run (arguments not a JSON object), one line; else None.
    """

    id: str
    name: str
    arguments: dict = field(default_factory=dict)
    raw: str = ""
    error: str | None = None


@dataclass(frozen=True)
class ToolResult:
    """A tool call's result, given back to the model.

    Attributes:
        id: the `ToolCall`'s id; name: the tool's name.
        output: what the tool returned (the tool message's text), or None when it failed.
        error: one line (``"the person did not allow this call"``, ``"time limit of 10 s
            reached"``, ...) when it failed, else None; the model sees ``"error: " + error``.
        seconds: how long the tool ran, seconds (0 when it did not run).
    """

    id: str
    name: str
    output: str | None = None
    error: str | None = None
    seconds: float = 0.0

    @property
    def content(self) -> str:
        """The tool message's text for the model: the output, or ``"error: " + error`` (and what
        it printed before, when a run stopped at a limit printed something)."""
        if self.error is None:
            return self.output
        if self.output:
            return f"error: {self.error}; what it printed until then:\n{self.output}"
        return f"error: {self.error}"


Event = (LoadProgress | Loaded | Prefill | ReasoningDelta | AnswerDelta | Stats | Done | EngineError | Retrying
         | ToolCall | ToolResult)
