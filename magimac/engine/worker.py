"""The engine: one worker thread owns MLX, loads a converted model and streams turns.

Public API (used by the app, `magimac chat`, the session layer, benchmarks and retrieval)::

    engine = Engine(model, context_length=None, kv_bits=None, force=False, disk_cache=None)
    engine.start()                       # returns at once; the worker thread loads the model
    loaded = engine.wait_loaded()        # events.Loaded, or raises EngineLoadError
    turn = engine.submit(messages, GenerationSettings())
    for ev in turn: ...                  # ReasoningDelta / AnswerDelta ..., Stats, Done (last)
    engine.cancel()                      # the running turn ends within one token: Done("cancelled")
    engine.wait_idle()                   # no turn left, the disk cache's writes finished
    engine.prompt_tokens(messages, settings) -> list[int]
    engine.count_tokens(text) -> int
    engine.close()

Events are the MLX-free dataclasses of `magimac.core.events`.  Everything that touches MLX runs in
the worker thread (MLX streams are thread-local); the public methods put requests on a queue
and turns read their events from their own queue.  Tokenizing (mistral-common, no MLX) may run
in the caller's thread.  This module imports no MLX itself, so a front-end may import it freely.

Where the rest lives: `settings` (GenerationSettings and the allowed values), `loading` (the
model directory, the memory check, the weights), `generate` (one turn: prompt fitting, KV-cache
reuse, sampling, decoding, stats), `budget` (the reasoning budget).  Sampling defaults: the
registry entry matching the model directory's name, else the model's generation_config.json,
else temperature 0.7 / top_p 0.95 (Magistral model card).
"""

from __future__ import annotations

import atexit
import queue
import threading
import weakref
from pathlib import Path
from typing import Iterator

from magimac.core.conversation import Message
from magimac.core.errors import one_line
from magimac.core.events import Done, EngineError, Event, Loaded, LoadProgress
from magimac.core.units import format_bytes
from magimac.engine import loading
from magimac.engine.loading import EngineLoadError
from magimac.core.settings import DEFAULT, DiskCacheSettings, GenerationSettings


class Turn:
    """The events of one turn; iterate it to receive them (Done is always last).

    Iteration blocks until the next event arrives from the worker thread.  The turn is its own
    iterator and keeps its place: after an interrupted ``next`` (Ctrl-C), iterating it again
    continues with the next event not yet received.

    Attributes:
        done: the Done event once received.
        prompt_tokens: the ids actually prefilled/cached for this turn (after the overflow
            policy), set by the worker before the first event.
        cancel_event: set to end the turn within one token (`Engine.cancel`).
    """

    def __init__(self) -> None:
        self._q: queue.Queue[Event] = queue.Queue()
        self.cancel_event = threading.Event()
        self.done: Done | None = None
        self.prompt_tokens: list[int] = []

    def put(self, ev: Event) -> None:
        """Send ``ev`` to the reader (any thread)."""
        self._q.put(ev)

    def cancel(self) -> None:
        """End this turn alone within one token (its events end with Done("cancelled"))."""
        self.cancel_event.set()

    def __iter__(self) -> Iterator[Event]:
        return self

    def __next__(self) -> Event:
        if self.done is not None:
            raise StopIteration
        ev = self._q.get()
        if isinstance(ev, Done):
            self.done = ev
        return ev


class Engine:
    """Loads one converted model in a worker thread and runs turns on it.

    Args:
        model: a converted model directory; names are resolved once, before the engine, by
            `magimac.session.model.choose_model`.
        context_length: the context limit in tokens; None: the registry entry's, else the
            model config's ``max_position_embeddings``.
        kv_bits: quantize the KV cache to this many bits (4 or 8; mlx-lm's quantized KV
            cache, group size 64 (32 for a head dimension that 64 does not divide), from the
            first token); None: the plan's choice (`magimac.models.plan.check_fits`: 16-bit when it fits).
        force: load even when the plan says weights + KV cache exceed the memory the GPU may
            use (`magimac.models.plan.check_fits`).
        disk_cache: the prompt cache on disk (`magimac.core.settings.DiskCacheSettings`);
            None: the defaults (on, the person's budget, `magimac.engine.disk_cache`).

    Raises:
        ValueError: ``kv_bits`` is not one of 2, 3, 4, 5, 6, 8.

    After loading, ``model_dir``, ``vision``, ``markers`` (`reasoning.ReasoningMarkers`),
    ``context_length`` and ``loaded`` (the Loaded event) are set.
    """

    def __init__(
        self,
        model: str | Path,
        *,
        context_length: int | None = None,
        kv_bits: int | None = None,
        force: bool = False,
        disk_cache: DiskCacheSettings | None = None,
    ) -> None:
        if kv_bits is not None and kv_bits not in (2, 3, 4, 5, 6, 8):
            raise ValueError(f"kv_bits must be 2, 3, 4, 5, 6 or 8, got {kv_bits}")
        self.model = model
        self.context_length = context_length
        self.kv_bits = kv_bits
        self.force = force
        self.disk_cache = disk_cache or DiskCacheSettings()
        self._asked = (context_length, kv_bits)  # before the plan fills them in (`magimac.models.plan`)
        self.model_dir: Path | None = None
        self.vision = False
        self.markers = None
        self.loaded: Loaded | None = None
        self._info: loading.ModelInfo | None = None
        self._meta_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._requests: queue.Queue = queue.Queue()
        self._load_log: list[LoadProgress | Loaded | EngineError] = []
        self._load_cond = threading.Condition()
        self._load_error: str | None = None
        self._ready = threading.Event()
        self._pending: list[Turn] = []
        self._pending_lock = threading.Lock()
        self._idle = threading.Condition(self._pending_lock)
        self._runner = None  # generate.TurnRunner once loaded (worker thread only)

    # ---- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Start the worker thread, which loads the model; returns at once."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._worker, name="magimac-engine", daemon=True)
        self._thread.start()
        atexit.register(_close_at_exit, weakref.ref(self))

    def wait_loaded(self, timeout: float | None = None) -> Loaded:
        """Block until the model is loaded (starting the worker if needed); ``timeout`` in seconds.

        Raises:
            EngineLoadError: loading failed (its one-line reason) or ``timeout`` seconds passed.
        """
        self.start()
        if not self._ready.wait(timeout):
            raise EngineLoadError(f"the model did not load within {timeout:g} s")
        if self._load_error is not None:
            raise EngineLoadError(self._load_error)
        assert self.loaded is not None
        return self.loaded

    def load_events(self) -> Iterator[LoadProgress | Loaded | EngineError]:
        """Loading progress events from the start, ending with Loaded or EngineError.

        May be called any number of times, before or after loading finished.
        """
        self.start()
        i = 0
        while True:
            with self._load_cond:
                while i >= len(self._load_log):
                    self._load_cond.wait()
                ev = self._load_log[i]
            i += 1
            yield ev
            if isinstance(ev, (Loaded, EngineError)):
                return

    def close(self) -> None:
        """Cancel what runs, stop the worker thread and free the model."""
        self.cancel()
        if self._thread is not None and self._thread.is_alive():
            self._requests.put(("close",))
            self._thread.join(timeout=30)
        self._thread = None

    # ---- turns -----------------------------------------------------------------------------

    def submit(self, messages: list[Message], settings: GenerationSettings | None = None) -> Turn:
        """Queue a turn answering ``messages`` (the last one a user message); returns its Turn.

        Errors in the conversation (bad image, roles) and a model that failed to load end the
        turn with Done("error", one line) instead of raising.
        """
        turn = Turn()
        with self._pending_lock:
            self._pending.append(turn)
        self.start()
        self._requests.put(("turn", list(messages), settings or GenerationSettings(), turn))
        return turn

    def cancel(self) -> None:
        """End the running turn within one token, and any queued turns: each gets
        Done("cancelled").  No-op when idle."""
        with self._pending_lock:
            for t in self._pending:
                t.cancel_event.set()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until no turn is queued or running, the work after each turn's Done included,
        and the prompt cache on disk has written what it was given (``timeout`` in seconds for
        the turns).  Returns False when turns were still running at the timeout."""
        with self._idle:
            if not self._idle.wait_for(lambda: not self._pending, timeout):
                return False
        runner = self._runner
        if runner is not None and runner.disk is not None:
            runner.disk.flush()
        return True

    def cached_tokens(self) -> list[int]:
        """The token ids the KV cache in memory holds once queued turns are done: the last
        turn's prompt, then the tokens it generated (what `magimac.bench` compares prompts with)."""
        self.wait_idle()
        return [k[1] if isinstance(k, tuple) else k for k in (self._runner.cache.keys if self._runner else [])]

    def forget_cached_tokens(self) -> None:
        """Empty the KV cache in memory once queued turns are done, so the next turn prefills
        its whole prompt (less what the prompt cache on disk holds)."""
        self.wait_idle()
        if self._runner is not None:
            self._runner.cache.reset()

    def status(self) -> dict:
        """``{"running": turns queued or running}`` (any thread; a snapshot)."""
        with self._pending_lock:
            return {"running": len(self._pending)}

    # ---- tokens (no MLX) -------------------------------------------------------------------

    def prompt_tokens(self, messages: list[Message], settings: GenerationSettings | None = None) -> list[int]:
        """The exact prompt ids for ``messages`` (mistral-common's encoding; no overflow policy).

        Needs only the tokenizer (read on first use; the weights need not be loaded).  Raises
        `magimac.text.prompt.PromptError` for a bad conversation, EngineLoadError for a missing model.
        """
        return self.encode(messages, settings).tokens

    def encode(self, messages: list[Message], settings: GenerationSettings | None = None):
        """Like `prompt_tokens` but returns the whole `magimac.text.prompt.Prompt` (ids, images, text)."""
        from magimac.text import prompt

        info = self._read_model()
        settings = settings or GenerationSettings()
        instructions = self._own_system_prompt() if settings.reasoning_instructions else None
        return prompt.encode(info.tokenizer, messages, info.markers, self._system_prompt(settings),
                             settings.keep_reasoning, info.vision, instructions, tuple(settings.tools))

    def count_tokens(self, text: str) -> int:
        """Number of tokens of plain ``text`` (no BOS/EOS; control-token text counts as text)."""
        return len(self._read_model().tekken.encode(text, bos=False, eos=False))

    def sampling_defaults(self) -> tuple[float, float]:
        """(temperature, top_p) used when settings leave them None."""
        return self._read_model().sampling_defaults()

    def _system_prompt(self, settings: GenerationSettings) -> str | None:
        if settings.system_prompt is DEFAULT:
            return self._own_system_prompt()
        return settings.system_prompt  # type: ignore[return-value]

    def _own_system_prompt(self) -> str | None:
        """The model's own system prompt (its SYSTEM_PROMPT.txt, or the built-in one for its
        marker kind); None when the registry says it has none."""
        from magimac.text import prompt

        info = self._read_model()
        if info.entry is not None and info.entry.system_prompt == "none":
            return None
        return prompt.default_system_prompt(info.path, info.markers)

    def _read_model(self) -> loading.ModelInfo:
        """The model directory's `loading.ModelInfo`, read once (no MLX; any thread).

        Raises:
            EngineLoadError: loading failed before, or `loading.read_model` fails now.
        """
        if self._load_error is not None:
            raise EngineLoadError(self._load_error)
        with self._meta_lock:
            if self._info is None:
                info = loading.read_model(self.model)
                self.model_dir, self.vision, self.markers = info.path, info.vision, info.markers
                if self.context_length is None:
                    self.context_length = info.default_context_length()
                self._info = info
            return self._info

    # ---- worker ----------------------------------------------------------------------------

    def _log(self, ev: LoadProgress | Loaded | EngineError) -> None:
        with self._load_cond:
            self._load_log.append(ev)
            self._load_cond.notify_all()

    def _load(self) -> None:
        """Read the model, check it fits, load the weights (worker thread); logs progress."""
        from magimac.models.store import quantization_label

        self._log(LoadProgress(0.0, "reading the model's config and tokenizer"))
        info = self._read_model()
        choice = loading.check_memory(info, *self._asked, force=self.force)
        self.context_length, self.kv_bits = choice.context_length, choice.kv_bits
        self._log(LoadProgress(0.1, f"loading {format_bytes(choice.weights_bytes)} of weights"))
        model, vlm = loading.load_weights(info)
        self._runner = self._make_runner(info, model, vlm, choice)
        name = info.entry.display_name if info.entry is not None else info.path.name
        self.loaded = Loaded(model=name, quantization=quantization_label(info.path),
                             context_length=choice.context_length, vision=info.vision,
                             weights_bytes=choice.weights_bytes)
        self._log(LoadProgress(1.0, "loaded"))
        self._log(self.loaded)

    def _make_runner(self, info: loading.ModelInfo, model, vlm, choice: loading.MemoryChoice):
        """What runs the turns once the weights are loaded (worker thread)."""
        from magimac.engine.disk_cache import open_disk_cache
        from magimac.engine.generate import TurnRunner

        disk = open_disk_cache(self.disk_cache, info, choice.kv_bits, "mlx_lm" if vlm is None else "mlx_vlm")
        return TurnRunner(info, model, vlm, self.encode, choice.context_length, choice.kv_bits, disk)

    def _worker(self) -> None:
        try:
            self._load()
        except Exception as e:  # any failure becomes one line for the UI
            self._load_error = e.args[0] if isinstance(e, EngineLoadError) else one_line(e)
            self._log(EngineError(self._load_error))
        finally:
            self._ready.set()
        self._loop()
        self._free()

    def _loop(self) -> None:
        """Serve queued turns one at a time until "close" (worker thread)."""
        while True:
            req = self._requests.get()
            if req[0] == "close":
                break
            self._serve(*req[1:])

    def _serve(self, messages: list[Message], settings: GenerationSettings, turn: Turn) -> None:
        """Run one queued turn; whatever goes wrong ends it with Done, never the worker."""
        try:
            if self._load_error is not None:
                turn.put(Done("error", self._load_error))
            elif turn.cancel_event.is_set():
                turn.put(Done("cancelled"))
            else:
                self._runner.run(messages, settings, turn)
        except Exception as e:  # never crash the worker: the turn ends with an error
            if self._runner is not None:
                self._runner.cache.reset()
            turn.put(Done("error", one_line(e)))
        finally:
            with self._pending_lock:
                if turn in self._pending:
                    self._pending.remove(turn)
                self._idle.notify_all()

    def _free(self) -> None:
        """Finish the disk cache's writes, drop the model and clear this thread's MLX streams
        (the worker's last act)."""
        if self._runner is not None and self._runner.disk is not None:
            self._runner.disk.close()
        self._runner = None
        import mlx.core as mx

        mx.synchronize()
        mx.clear_cache()
        # MLX requires each thread that used streams to clear them before it ends, or the
        # process may abort at exit (ml-explore/mlx#4327, mlx-vlm#1945).
        mx.clear_streams()


def _close_at_exit(ref: "weakref.ref[Engine]") -> None:
    """Stop a still-running engine at interpreter exit (MLX must clear its worker's streams)."""
    engine = ref()
    if engine is not None:
        engine.close()


__all__ = ["Engine", "Turn"]
