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

Events are the MLX-free dataclasses of `magimac.core.events`.  Everything that touches MLX runs in
the worker thread (MLX streams are thread-local); the public methods put requests on a queue
and turns read their events from their own queue.  Tokenizing (mistral-common, no MLX) may run
in the caller's thread.

Decisions:

- Loading: a model directory with a ``vision_config`` loads with `mlx_vlm` (one copy of the
  weights serves text and images), else with `mlx_lm`.  Generation is one code path: mlx-lm's
  `generate_step`.  mlx-vlm's language model returns a ``LanguageModelOutput`` and takes
  ``inputs_embeds``, so `_TextModel` (a 3-line adapter) gives it mlx-lm's call signature;
  images enter as ``input_embeddings`` built by mlx-vlm's ``get_input_embeddings``.
- Pixels come from mistral-common (the same call that counts the image tokens), so the
  number of ``[IMG]`` tokens and the vision tower's patches agree by construction.
- Prompt cache: the KV cache (mlx-lm's, 16-bit or ``kv_bits`` quantized from the first token)
  and the ids it holds survive between turns.  A new turn trims the cache back to the longest
  common prefix with its prompt and prefills only the rest (at least one token).  Image tokens
  are compared with their image's content hash, and a prefix never ends inside an image.
- Context overflow: when prompt + reserve (``max_tokens``, else min(4096, context/4)) exceeds
  the context, the oldest whole turns (a user message and the replies after it) are dropped,
  the system prompt and the last user message kept.  If the last user message alone does not
  fit, the turn ends with Done("error", one line).  Generation stops at the context limit
  with Done("length").  ``max_tokens`` defaults to the rest of the context.
- Reasoning budget: a logits processor that, after N reasoning tokens, masks every logit but
  the closing ``[/THINK]`` id (evaluated lazily in MLX, no sync per token); for text-marker
  models it forces the tokens of ``</think>`` one by one.
- Cancel: checked after every generated token (the turn ends within one token); during a
  long prefill it takes effect at the next 2048-token chunk (mlx-lm's prefill step).
- Sampling defaults: the registry entry matching the model directory's name, else the
  model's generation_config.json, else temperature 0.7 / top_p 0.95 (Magistral model card).
"""

from __future__ import annotations

from magimac.core.errors import MagimacError

import atexit
import json
import math
import threading
import weakref
import time
import queue
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from magimac.core.conversation import Message
from magimac.core.events import Done, EngineError, Event, Loaded, LoadProgress, Stats

DEFAULT_TEMPERATURE = 0.7  # Magistral model card
DEFAULT_TOP_P = 0.95
IMG_TOKENS = ("[IMG]", "[IMG_BREAK]", "[IMG_END]")


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


class EngineLoadError(MagimacError, RuntimeError):
    """The model could not be loaded (missing, not converted, too large, broken); one line."""


@dataclass
class GenerationSettings:
    """How one turn is sampled and how its prompt is built.

    Attributes:
        temperature: sampling temperature; None: the registry entry's (0.7 for Magistral).
            0 means greedy (argmax).
        top_p: nucleus sampling in (0, 1]; None: the registry entry's (0.95).
        top_k: keep the k most likely tokens; 0 disables.
        min_p: drop tokens below ``min_p`` x the top probability; 0 disables.
        repetition_penalty: mlx-lm's repetition penalty (> 1 discourages repeats); None: off.
        seed: seed of MLX's random generator for this turn; None: not reseeded.
        max_tokens: most tokens to generate; None: the rest of the context.
        reasoning_budget: most reasoning tokens; after that many the engine forces the
            closing reasoning marker and the model answers.  None: unlimited.
        keep_reasoning: keep earlier assistant turns' reasoning in the prompt (default: drop
            it, the common choice; it saves context).
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


SETTING_RANGES: dict[str, tuple[float, float, bool, str]] = {
    "temperature": (0.0, math.inf, True, "must be a finite number >= 0"),
    "top_p": (0.0, 1.0, False, "must be in (0, 1]"),
    "max_tokens": (1, math.inf, True, "must be a positive number of tokens"),
    "reasoning_budget": (0, math.inf, True, "must be a number of tokens >= 0"),
}
"""`GenerationSettings` field -> (lowest, highest, lowest allowed, what to say otherwise): what
`magimac chat` and the app's settings screen accept (sampling needs finite values; top-p is a
probability mass)."""


def setting_error(name: str, value: float) -> str | None:
    """Why ``value`` is not allowed for the `GenerationSettings` field ``name`` (a phrase such
    as ``"must be in (0, 1]"``), or None when it is; fields without a `SETTING_RANGES` entry
    take any value."""
    if name not in SETTING_RANGES:
        return None
    lo, hi, lo_ok, problem = SETTING_RANGES[name]
    ok = math.isfinite(value) and (lo <= value if lo_ok else lo < value) and value <= hi
    return None if ok else problem


class Turn:
    """The events of one turn; iterate it to receive them (Done is always last).

    Iteration blocks until the next event arrives from the worker thread.

    Attributes:
        done: the Done event once received.
        prompt_tokens: the ids actually prefilled/cached for this turn (after the overflow
            policy), set by the worker before the first event.
    """

    def __init__(self) -> None:
        self._q: queue.Queue[Event] = queue.Queue()
        self._cancelled = threading.Event()
        self.done: Done | None = None
        self.prompt_tokens: list[int] = []

    def _put(self, ev: Event) -> None:
        self._q.put(ev)

    def __iter__(self) -> Iterator[Event]:
        while self.done is None:
            ev = self._q.get()
            if isinstance(ev, Done):
                self.done = ev
            yield ev


class _TextModel:
    """mlx-lm's model call signature over an mlx-vlm language model.

    mlx-vlm's ``language_model(inputs, cache, inputs_embeds)`` returns a
    ``LanguageModelOutput``; mlx-lm's `generate_step` wants ``model(inputs, cache=...,
    input_embeddings=...) -> logits`` and ``model.layers`` (to build a KV cache).
    """

    def __init__(self, language_model: Any) -> None:
        self.lm = language_model
        self.layers = language_model.layers

    def __call__(self, inputs, cache=None, input_embeddings=None):
        return self.lm(inputs, cache=cache, inputs_embeds=input_embeddings).logits


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) < 300 else text[:297] + "..."


class Engine:
    """Loads one converted model in a worker thread and runs turns on it.

    Args:
        model: registry name, hub id or directory (resolved by `magimac.models.store.resolve_model`);
            None: the default installed model.
        context_length: the context limit in tokens; None: the registry entry's, else the
            model config's ``max_position_embeddings``.
        kv_bits: quantize the KV cache to this many bits (4 or 8; mlx-lm's quantized KV
            cache, group size 64 (32 for a head dimension that 64 does not divide), from the
            first token); None: the plan's choice (`magimac.models.plan.check_fits`: 16-bit when it fits).
        force: load even when the plan says weights + KV cache exceed the memory the GPU may
            use (`magimac.models.plan.check_fits`).

    After loading, ``model_dir``, ``vision``, ``markers`` (`reasoning.ReasoningMarkers`),
    ``context_length`` and ``loaded`` (the Loaded event) are set.
    """

    def __init__(
        self,
        model: str | Path | None = None,
        *,
        context_length: int | None = None,
        kv_bits: int | None = None,
        force: bool = False,
    ) -> None:
        if kv_bits is not None and kv_bits not in (2, 3, 4, 5, 6, 8):
            raise ValueError(f"kv_bits must be 2, 3, 4, 5, 6 or 8, got {kv_bits}")
        self.model = model
        self.context_length = context_length
        self.kv_bits = kv_bits
        self.force = force
        self._asked = (context_length, kv_bits)  # before the plan fills them in (`magimac.models.plan`)
        self.model_dir: Path | None = None
        self.vision = False
        self.markers = None
        self.loaded: Loaded | None = None
        self._entry = None
        self._gen_defaults: dict[str, float] = {}
        self._thread: threading.Thread | None = None
        self._requests: queue.Queue = queue.Queue()
        self._load_log: list[LoadProgress | Loaded | EngineError] = []
        self._load_cond = threading.Condition()
        self._load_error: str | None = None
        self._ready = threading.Event()
        self._meta_lock = threading.Lock()
        self._config: dict = {}
        self._pending: list[Turn] = []
        self._pending_lock = threading.Lock()
        self._tokenizer = None
        # worker-thread state (MLX)
        self._model = None
        self._vlm = None
        self._cache: list | None = None
        self._cache_keys: list = []

    # ---- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Start the worker thread, which loads the model; returns at once."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._worker, name="magimac-engine", daemon=True)
        self._thread.start()
        atexit.register(_close_at_exit, weakref.ref(self))

    def wait_loaded(self, timeout: float | None = None) -> Loaded:
        """Block until the model is loaded (starting the worker if needed).

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
                t._cancelled.set()

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

        self._wait_tokenizer()
        settings = settings or GenerationSettings()
        return prompt.encode(self._tokenizer, messages, self.markers, self._system_prompt(settings),
                             settings.keep_reasoning, self.vision)

    def count_tokens(self, text: str) -> int:
        """Number of tokens of plain ``text`` (no BOS/EOS; control-token text counts as text)."""
        self._wait_tokenizer()
        return len(self._tekken.encode(text, bos=False, eos=False))

    def _wait_tokenizer(self) -> None:
        if self._load_error is not None:
            raise EngineLoadError(self._load_error)
        self._load_meta()

    @property
    def _tekken(self):
        return self._tokenizer.instruct_tokenizer.tokenizer

    def _system_prompt(self, settings: GenerationSettings) -> str | None:
        from magimac.text import prompt

        if settings.system_prompt is DEFAULT:
            if self._entry is not None and self._entry.system_prompt == "none":
                return None
            return prompt.default_system_prompt(self.model_dir, self.markers)
        return settings.system_prompt  # type: ignore[return-value]

    def sampling_defaults(self) -> tuple[float, float]:
        """(temperature, top_p) used when settings leave them None."""
        if self._entry is not None:
            return self._entry.temperature, self._entry.top_p
        return (float(self._gen_defaults.get("temperature", DEFAULT_TEMPERATURE)),
                float(self._gen_defaults.get("top_p", DEFAULT_TOP_P)))

    # ---- worker ----------------------------------------------------------------------------

    def _log(self, ev: LoadProgress | Loaded | EngineError) -> None:
        with self._load_cond:
            self._load_log.append(ev)
            self._load_cond.notify_all()

    def _worker(self) -> None:
        try:
            self._load()
        except Exception as e:  # any failure becomes one line for the UI
            self._load_error = e.args[0] if isinstance(e, EngineLoadError) else _one_line(e)
            self._log(EngineError(self._load_error))
        finally:
            self._ready.set()
        while True:
            req = self._requests.get()
            if req[0] == "close":
                break
            _, messages, settings, turn = req
            try:
                if self._load_error is not None:
                    turn._put(Done("error", self._load_error))
                elif turn._cancelled.is_set():
                    turn._put(Done("cancelled"))
                else:
                    self._run_turn(messages, settings, turn)
            except Exception as e:  # never crash the worker: the turn ends with an error
                self._cache, self._cache_keys = None, []
                turn._put(Done("error", _one_line(e)))
            finally:
                with self._pending_lock:
                    if turn in self._pending:
                        self._pending.remove(turn)
        self._model = self._vlm = self._cache = None
        import mlx.core as mx

        mx.synchronize()
        mx.clear_cache()
        # MLX requires each thread that used streams to clear them before it ends, or the
        # process may abort at exit (ml-explore/mlx#4327, mlx-vlm#1945).
        mx.clear_streams()

    def _load_meta(self) -> None:
        """Resolve the model and read its config and tokenizer (no MLX; any thread, once).

        Raises:
            EngineLoadError: no such model, unreadable config.json, no tekken.json.
        """
        from magimac.text import prompt
        from magimac.models import store
        from magimac.text.reasoning import markers_for

        with self._meta_lock:
            if self._tokenizer is not None:
                return
            try:
                path = store.resolve_model(str(self.model) if self.model is not None else None)
            except store.ModelNotFound as e:
                raise EngineLoadError(str(e)) from None
            try:
                config = json.loads((path / "config.json").read_text())
            except (OSError, json.JSONDecodeError) as e:
                raise EngineLoadError(
                    f"{path}/config.json: unreadable ({_one_line(e)}); convert the model with `magimac quantize`"
                ) from None
            try:
                self._gen_defaults = json.loads((path / "generation_config.json").read_text())
            except (OSError, json.JSONDecodeError):
                self._gen_defaults = {}
            try:
                tokenizer = prompt.load_tokenizer(path)
            except prompt.PromptError as e:
                raise EngineLoadError(str(e)) from None
            self.model_dir = path
            self._config = config
            self.vision = "vision_config" in config
            self._entry = _registry_entry(path)
            text_cfg = config.get("text_config", config)
            if self.context_length is None:
                self.context_length = (self._entry.context_length if self._entry is not None
                                       else int(text_cfg.get("max_position_embeddings", 32768)))
            self.markers = markers_for(tokenizer.instruct_tokenizer.tokenizer)
            self._tokenizer = tokenizer

    def _load(self) -> None:
        self._log(LoadProgress(0.0, "reading the model's config and tokenizer"))
        self._load_meta()
        path = self.model_dir
        assert path is not None
        from magimac.models import plan

        try:  # the plan refuses what will not fit, and picks the context limit and KV bits
            choice = plan.check_fits(path, *self._asked, force=self.force)
        except plan.DoesNotFit as e:
            raise EngineLoadError(str(e)) from None
        self.context_length = choice.context_length if self._asked[0] else min(choice.context_length,
                                                                               int(self.context_length))
        self.kv_bits = choice.kv_bits
        weights = choice.weights_bytes
        self._log(LoadProgress(0.1, f"loading {weights / 1e9:.2f} GB of weights"))
        try:
            if self.vision:
                from mlx_vlm.utils import load_model as vlm_load_model

                self._vlm = vlm_load_model(path)
                self._model = _TextModel(self._vlm.language_model)
            else:
                from mlx_lm.utils import load_model as lm_load_model

                self._model, _ = lm_load_model(path)
        except Exception as e:
            raise EngineLoadError(
                f"{path}: cannot load the weights ({_one_line(e)}); convert the model with `magimac quantize`"
            ) from None
        from magimac.models.store import quantization_label

        name = self._entry.display_name if self._entry is not None else path.name
        self.loaded = Loaded(model=name, quantization=quantization_label(path),
                             context_length=int(self.context_length), vision=self.vision, weights_bytes=weights)
        self._log(LoadProgress(1.0, "loaded"))
        self._log(self.loaded)

    def _fit(self, messages: list[Message], settings: GenerationSettings):
        """Encode, dropping the oldest whole turns while prompt + reserve exceeds the context."""
        ctx = int(self.context_length)
        reserve = settings.max_tokens or min(4096, ctx // 4)
        msgs = list(messages)
        head = [msgs.pop(0)] if msgs and msgs[0].role == "system" else []
        p = self.encode(head + msgs, settings)
        while len(p.tokens) + reserve > ctx and sum(m.role == "user" for m in msgs) > 1:
            msgs.pop(0)
            while msgs and msgs[0].role != "user":
                msgs.pop(0)
            p = self.encode(head + msgs, settings)
        if len(p.tokens) >= ctx:
            raise _TurnError(
                f"the prompt is {len(p.tokens)} tokens but the context holds {ctx}: "
                "shorten the message or raise the context length"
            )
        return p

    def _run_turn(self, messages: list[Message], settings: GenerationSettings, turn: Turn) -> None:
        import mlx.core as mx
        from mlx_lm.generate import generate_step, wired_limit
        from mlx_lm.models.cache import can_trim_prompt_cache, make_prompt_cache, trim_prompt_cache
        from mlx_lm.sample_utils import make_logits_processors, make_sampler

        from magimac.text import prompt as prompt_mod
        from magimac.text.reasoning import ReasoningSplitter

        t_request = time.perf_counter()
        try:
            p = self._fit(messages, settings)
        except (prompt_mod.PromptError, _TurnError) as e:
            turn._put(Done("error", str(e)))
            return
        tokens = p.tokens
        turn.prompt_tokens = list(tokens)
        ctx = int(self.context_length)
        keys, spans = self._token_keys(tokens, p.image_keys)

        # reuse the KV cache up to the common prefix (at least one token left to feed)
        common = 0
        if self._cache is not None and can_trim_prompt_cache(self._cache):
            limit = min(len(keys), len(self._cache_keys), len(tokens) - 1)
            while common < limit and keys[common] == self._cache_keys[common]:
                common += 1
            for s, e in spans:  # never start inside an image
                if s < common <= e:
                    common = s
            trim_prompt_cache(self._cache, self._cache[0].offset - common)
        else:
            self._cache = make_prompt_cache(self._model)
        if common == 0 and self._cache[0].offset:
            self._cache = make_prompt_cache(self._model)
        self._cache_keys = keys[:common]

        suffix = tokens[common:]
        embeddings = self._embeddings(tokens, common, spans, p.images) if any(e >= common for _, e in spans) else None

        temp_d, top_p_d = self.sampling_defaults()
        temp = temp_d if settings.temperature is None else settings.temperature
        top_p = top_p_d if settings.top_p is None else settings.top_p
        sampler = make_sampler(temp=temp, top_p=top_p if top_p < 1 else 0.0, min_p=settings.min_p, top_k=settings.top_k)
        processors = make_logits_processors(repetition_penalty=settings.repetition_penalty)
        if settings.reasoning_budget is not None:
            processors.append(self._budget_processor(settings.reasoning_budget))
        if settings.seed is not None:
            mx.random.seed(settings.seed)

        room = ctx - len(tokens)
        max_tokens = room if settings.max_tokens is None else min(settings.max_tokens, room)
        eos = {self._tekken.eos_id}
        splitter = ReasoningSplitter(self.markers, self._tekken)
        yielded: list[int] = []
        finish = "length"
        t_first = t_end = None
        mx.reset_peak_memory()
        cancelled = turn._cancelled

        def progress(done: int, total: int) -> None:
            if cancelled.is_set() and done < total:
                raise _Cancelled

        try:
            with wired_limit(self._model if self._vlm is None else self._vlm):
                gen = generate_step(
                    mx.array(suffix), self._model, max_tokens=max_tokens, sampler=sampler,
                    logits_processors=processors or None, prompt_cache=self._cache,
                    kv_bits=self.kv_bits, kv_group_size=self._kv_group_size(), quantized_kv_start=0,
                    prompt_progress_callback=progress,
                    input_embeddings=embeddings,
                )
                for tok, _ in gen:
                    if t_first is None:
                        t_first = time.perf_counter()
                    yielded.append(tok)
                    if cancelled.is_set():
                        finish = "cancelled"
                        break
                    if tok in eos:
                        finish = "stop"
                        break
                    for ev in splitter.feed(tok):
                        turn._put(ev)
                gen.close()
        except _Cancelled:
            finish = "cancelled"
        t_end = time.perf_counter()
        for ev in splitter.flush():
            turn._put(ev)
        # the cache now holds exactly the prompt + every token generate_step yielded
        offset = self._cache[0].offset
        self._cache_keys = (keys + yielded)[:offset]
        if len(self._cache_keys) != offset:  # cancelled mid-prefill in an unknown place
            self._cache, self._cache_keys = None, []

        prefilled = len(tokens) - common
        ttft = (t_first - t_request) if t_first is not None else 0.0
        decode_s = (t_end - t_first) if t_first is not None else 0.0
        stats = Stats(
            prompt_tokens=len(tokens),
            cached_tokens=common,
            ttft_s=ttft,
            prefill_tps=prefilled / ttft if ttft > 0 else 0.0,
            decode_tps=(len(yielded) - 1) / decode_s if decode_s > 0 and len(yielded) > 1 else 0.0,
            reasoning_tokens=splitter.reasoning_tokens,
            answer_tokens=splitter.answer_tokens,
            peak_memory_bytes=int(mx.get_peak_memory()),
            context_length=ctx,
        )
        turn._put(stats)
        turn._put(Done(finish, None, stats))

    def _kv_group_size(self) -> int:
        """64 (mlx-lm's default), or 32 when the head dimension is not a multiple of 64."""
        text = self._config.get("text_config", self._config)
        head_dim = text.get("head_dim") or text.get("hidden_size", 0) // max(1, text.get("num_attention_heads", 1))
        return 64 if head_dim % 64 == 0 else 32

    def _token_keys(self, tokens: list[int], image_keys: list[str]) -> tuple[list, list[tuple[int, int]]]:
        """Cache keys (image tokens tagged with their image's hash) and image spans [start, end]."""
        img, brk, end = (self._tekken.get_special_token(t) for t in IMG_TOKENS) if self.vision else (-1, -1, -1)
        keys: list = list(tokens)
        spans: list[tuple[int, int]] = []
        start = None
        for i, t in enumerate(tokens):
            if t in (img, brk) and start is None:
                start = i
            if t == end and start is not None:
                k = image_keys[len(spans)] if len(spans) < len(image_keys) else str(len(spans))
                for j in range(start, i + 1):
                    keys[j] = (k, tokens[j])
                spans.append((start, i))
                start = None
        return keys, spans

    def _embeddings(self, tokens: list[int], common: int, spans: list[tuple[int, int]], images: list):
        """Input embeddings [L, hidden] for ``tokens[common:]``, images through mlx-vlm.

        One `get_input_embeddings` call per image (with the text before it), so images of
        different sizes need no padding.
        """
        import mlx.core as mx

        parts = []
        pos = common
        for k, (s, e) in enumerate(spans):
            if e < common:
                continue
            img = images[k]
            out = self._vlm.get_input_embeddings(
                mx.array(tokens[pos:e + 1])[None], mx.array(img)[None],
                image_sizes=[(img.shape[1], img.shape[2])],
            )
            parts.append(out.inputs_embeds[0])
            pos = e + 1
        if pos < len(tokens):
            parts.append(self._vlm.language_model.model.embed_tokens(mx.array(tokens[pos:])))
        return mx.concatenate(parts, axis=0) if len(parts) > 1 else parts[0]

    def _budget_processor(self, budget: int) -> Callable:
        m = self.markers
        if m.kind == "control":
            return _ControlBudget(m.open_id, m.close_id, budget)
        return _TextBudget(self._tekken, m, budget)


class _Cancelled(Exception):
    """Raised from the prefill progress callback to stop a cancelled prefill."""


class _TurnError(Exception):
    """A turn that cannot run (e.g. its prompt exceeds the context); one line."""


class _ControlBudget:
    """Logits processor: after ``budget`` tokens inside ``[THINK]``, only ``[/THINK]`` may come.

    The state is kept in lazy MLX scalars, so no per-token sync is added.  It sees the last fed
    token (``tokens[-1]``): ``[THINK]`` opens, ``[/THINK]`` closes.
    """

    def __init__(self, open_id: int, close_id: int, budget: int) -> None:
        import mlx.core as mx

        self.open_id, self.close_id, self.budget = open_id, close_id, budget
        self.inside = mx.array(False)
        self.count = mx.array(0)

    def __call__(self, tokens, logits):
        import mlx.core as mx

        last = tokens[-1]
        self.inside = mx.where(last == self.open_id, True, mx.where(last == self.close_id, False, self.inside))
        self.count = mx.where(self.inside, self.count + 1, 0)
        force = self.inside & (self.count > self.budget)  # count includes the [THINK] itself
        only_close = mx.where(mx.arange(logits.shape[-1]) == self.close_id, 0.0, -float("inf")).astype(logits.dtype)
        return mx.where(force, only_close, logits)


class _TextBudget:
    """Logits processor for ``<think>`` text markers: after ``budget`` tokens since the opening
    marker, force the tokens of ``</think>`` one by one.  Syncs on the last token (1.0 only).
    Only a short tail of the text is kept, enough to spot a marker split across tokens."""

    def __init__(self, tekken, markers, budget: int) -> None:
        self.tekken, self.markers, self.budget = tekken, markers, budget
        self.tail = ""
        self.count = 0
        self.inside = False
        self.forcing: list[int] = []
        self.done = False

    def __call__(self, tokens, logits):
        import mlx.core as mx

        if self.done:
            return logits
        m = self.markers
        self.tail = (self.tail + self.tekken.decode([int(tokens[-1].item())]))[-4 * len(m.close_text):]
        if not self.inside:
            if m.open_text in self.tail:
                self.inside = True
                self.tail = self.tail.split(m.open_text, 1)[1]
        elif not self.forcing:
            self.count += 1
            if m.close_text in self.tail:
                self.done = True
                return logits
            if self.count >= self.budget:
                self.forcing = self.tekken.encode(m.close_text, bos=False, eos=False)
        if self.forcing:
            want = self.forcing.pop(0)
            self.done = not self.forcing
            only = mx.where(mx.arange(logits.shape[-1]) == want, 0.0, -float("inf"))
            return mx.broadcast_to(only.astype(logits.dtype), logits.shape)
        return logits


def _close_at_exit(ref: "weakref.ref[Engine]") -> None:
    """Stop a still-running engine at interpreter exit (MLX must clear its worker's streams)."""
    engine = ref()
    if engine is not None:
        engine.close()


def _registry_entry(path: Path):
    """The registry entry a model directory belongs to (by directory name or local path)."""
    from magimac.models.registry import load_registry

    try:
        reg = load_registry()
    except Exception:
        return None
    name = path.name.lower()
    for e in reg.values():
        lp = e.local_path()
        if lp is not None and lp.resolve() == path.resolve():
            return e
        for n in (e.name, *e.aliases):
            if name == n.lower() or name.startswith(n.lower() + "-"):
                return e
    return None


__all__ = ["DEFAULT", "Engine", "EngineLoadError", "GenerationSettings", "Turn"]
