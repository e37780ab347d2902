"""The engine: one worker thread owns MLX, loads a converted model and streams turns.

Public API (used by the TUI, `magimac chat`, benchmarks and the documents helper)::

    engine = Engine(model, context_length=None, kv_bits=None, force=False)
    engine.start()                       # returns at once; the worker thread loads the model
    loaded = engine.wait_loaded()        # events.Loaded, or raises EngineLoadError
    turn = engine.submit(messages, GenerationSettings())
    for ev in turn: ...                  # ReasoningDelta / AnswerDelta ..., Stats, Done (last)
    engine.cancel()                      # the running turn ends within one token: Done("cancelled")
    engine.prompt_tokens(messages, settings) -> list[int]
    engine.count_tokens(text) -> int
    engine.close()

Events are the MLX-free dataclasses of `magimac.events`.  Everything that touches MLX runs
in the worker thread (MLX streams are thread-local); the public methods only put requests on
a queue and read events from per-turn queues.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from magimac.conversation import Message
from magimac.events import Done, EngineError, Event, Loaded, LoadProgress


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


class EngineLoadError(RuntimeError):
    """The model could not be loaded (missing, not converted, too large, broken); one line."""


@dataclass
class GenerationSettings:
    """How one turn is sampled and how its prompt is built.

    Attributes:
        temperature: sampling temperature; None: the registry entry's (0.7 for Magistral).
            0 means greedy (argmax).
        top_p: nucleus sampling; None: the registry entry's (0.95).
        top_k: keep the k most likely tokens; 0 disables.
        min_p: drop tokens below ``min_p`` x the top probability; 0 disables.
        repetition_penalty: mlx-lm's repetition penalty (> 1 discourages repeats); None: off.
        seed: seed of MLX's random generator for this turn; None: not reseeded.
        max_tokens: most tokens to generate; None: the rest of the context.
        reasoning_budget: most reasoning tokens; after that many the engine forces the
            closing reasoning marker and the model answers.  None: unlimited.
        keep_reasoning: keep earlier assistant turns' reasoning in the prompt (default: drop
            it, as Mistral recommends; it saves context).
        system_prompt: `DEFAULT` = the model's SYSTEM_PROMPT.txt (or built-in text for
            Magistral 1.0); None = no system prompt; a string = this system prompt (its literal
            ``[THINK]``/``[/THINK]`` become a thinking chunk, as in the model's own).
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


class Turn:
    """The events of one turn; iterate it to receive them (Done is always last).

    Iteration blocks until the next event arrives from the worker thread.
    """

    def __init__(self) -> None:
        self._q: queue.Queue[Event] = queue.Queue()
        self.done: Done | None = None

    def _put(self, ev: Event) -> None:
        self._q.put(ev)

    def __iter__(self) -> Iterator[Event]:
        while self.done is None:
            ev = self._q.get()
            if isinstance(ev, Done):
                self.done = ev
            yield ev


class Engine:
    """Loads one converted model in a worker thread and runs turns on it.

    Args:
        model: registry name, hub id or directory (resolved by `magimac.store.resolve_model`);
            None: the default installed model.
        context_length: the context limit in tokens; None: the registry entry's or the
            model config's ``max_position_embeddings``.
        kv_bits: quantize the KV cache to this many bits (4 or 8; mlx-lm's quantized KV
            cache, group size 64); None: 16-bit KV.
        force: load even when the planner thinks the model does not fit in memory.
    """

    def __init__(
        self,
        model: str | Path | None = None,
        *,
        context_length: int | None = None,
        kv_bits: int | None = None,
        force: bool = False,
    ) -> None:
        self.model = model
        self.context_length = context_length
        self.kv_bits = kv_bits
        self.force = force
        self._thread: threading.Thread | None = None
        self._requests: queue.Queue = queue.Queue()
        self._load_events: queue.Queue = queue.Queue()
        self._loaded: Loaded | None = None
        self._load_error: str | None = None
        self._ready = threading.Event()
        self._cancel = threading.Event()

    def start(self) -> None:
        """Start the worker thread, which loads the model; returns at once."""
        raise NotImplementedError

    def wait_loaded(self, timeout: float | None = None) -> Loaded:
        """Block until the model is loaded; raises EngineLoadError (one line) on failure or timeout."""
        raise NotImplementedError

    def load_events(self) -> Iterator[LoadProgress | Loaded | EngineError]:
        """Loading progress events, ending with Loaded or EngineError."""
        raise NotImplementedError

    def submit(self, messages: list[Message], settings: GenerationSettings | None = None) -> Turn:
        """Queue a turn answering ``messages`` (the last one a user message); returns its Turn."""
        raise NotImplementedError

    def cancel(self) -> None:
        """End the running turn within one token (Done("cancelled")); no-op when idle."""
        self._cancel.set()

    def prompt_tokens(self, messages: list[Message], settings: GenerationSettings | None = None) -> list[int]:
        """The exact prompt token ids a turn on ``messages`` would prefill (before any overflow policy)."""
        raise NotImplementedError

    def count_tokens(self, text: str) -> int:
        """Number of tokens of plain ``text`` (no BOS/EOS, no control tokens)."""
        raise NotImplementedError

    def close(self) -> None:
        """Stop the worker thread and free the model."""
        raise NotImplementedError
