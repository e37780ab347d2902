"""Open a model for chatting: resolve the name once, start its engine, say what was chosen.

What this adds to `magimac.models.store.resolve_model`: one place where a front-end gets a
running engine and the notice to show (the bundled demo used because nothing is installed),
so `magimac chat`, the app and later front-ends cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from magimac.core.backend import Backend, EncodedPrompt
from magimac.core.conversation import Message
from magimac.core.events import EngineError, Loaded, LoadProgress
from magimac.core.settings import GenerationSettings
from magimac.models import store
from magimac.models.online import OnlineModel, check_available, find_online


@dataclass(frozen=True)
class ModelChoice:
    """A resolved ``--model``: ``path`` (a converted model directory) and ``notice`` (one line
    for the person when the demo stands in for a missing Magistral model, else None).

    ``online``: the `magimac.models.online.OnlineModel` when the name is a model of Mistral's
    API (``path`` is then ``Path(name)``, no directory: nothing is read from it)."""

    path: Path
    notice: str | None = None
    is_demo: bool = False
    online: OnlineModel | None = None

    @property
    def name(self) -> str:
        """What the status bar shows before the model is loaded: the directory's or entry's name."""
        if self.online:
            return self.online.name
        return "demo" if self.is_demo else self.path.name


def choose_model(name: str | None) -> ModelChoice:
    """Resolve ``name`` (registry name, alias, hub id, directory, or an online model's name;
    None: the default installed model, else the bundled demo).

    Raises:
        magimac.models.store.ModelNotFound: nothing matches; the message says what to run and,
            for an unknown name, lists the close matches.
        magimac.models.online.RetiredModel: an online model Mistral's API no longer serves (one
            line: the date, the successor, how to pick it).
    """
    if name and not Path(name).expanduser().exists() and (entry := find_online(name)) is not None:
        return ModelChoice(Path(entry.name), online=check_available(entry))
    path = store.resolve_model(name)
    return ModelChoice(path, store.demo_notice(name, path), store.is_demo(path))


def default_engine_factory(path: Path, **options: Any):
    """`magimac.engine.worker.Engine` for ``path`` (imported here, at first use, so a front-end
    that never opens a model never imports MLX)."""
    from magimac.engine.worker import Engine

    return Engine(path, **options)


def online_engine_factory(model: OnlineModel, **_options: Any):
    """`magimac.online.engine.OnlineEngine` for ``model`` (the local engine's options, such as
    ``kv_bits``, do not apply to it)."""
    from magimac.online.engine import OnlineEngine

    return OnlineEngine(model)


def batch_engine_factory(path: Path, **options: Any):
    """`magimac.engine.batch.BatchEngine` for ``path`` (many turns at once: `magimac serve`),
    imported at first use as `default_engine_factory` is."""
    from magimac.engine.batch import BatchEngine

    return BatchEngine(path, **options)


@dataclass
class ChatSession:
    """One opened model and its engine; runs turns for a front-end, which talks to this and
    never to the engine.

    Attributes:
        choice: the resolved model; engine: its `magimac.core.backend.Backend` (local, batched,
        a server's, Mistral's API); owns_engine: whether `close` closes it; server: the URL of
        the `magimac serve` it runs on, or None.
    """

    choice: ModelChoice
    engine: Backend
    owns_engine: bool = True
    server: str | None = None
    _loaded: Loaded | None = field(default=None, repr=False)

    @property
    def path(self) -> Path:
        return self.choice.path

    def wait_loaded(self, timeout: float | None = None) -> Loaded:
        """Block until the model is loaded (seconds; None: no limit).

        Raises:
            magimac.engine.loading.EngineLoadError: it could not be loaded (one line).
        """
        self._loaded = self.engine.wait_loaded(timeout)
        return self._loaded

    def load_events(self) -> Iterator[LoadProgress | Loaded | EngineError]:
        """Loading progress from the start, ending with `Loaded` or `EngineError`."""
        for ev in self.engine.load_events():
            if isinstance(ev, Loaded):
                self._loaded = ev
            yield ev

    @property
    def loaded(self) -> Loaded | None:
        """The `Loaded` event once `wait_loaded` returned, else None."""
        return self._loaded

    def turn(self, messages: list[Message], settings=None, tools=None, libraries=()):
        """A `magimac.session.turn.TurnRun` answering ``messages`` (not started until iterated);
        ``tools``: a `magimac.session.tool_loop.ToolUse` to let the model use tools; passages of
        ``libraries`` (names) are put before the last message."""
        from magimac.session.turn import TurnRun

        return TurnRun(self, list(messages), settings, tools, libraries)

    def encode(self, messages: list[Message], settings: GenerationSettings | None = None) -> EncodedPrompt:
        """The prompt a turn would send for ``messages`` (ids and text; sends nothing)."""
        return self.engine.encode(messages, settings)

    def count_tokens(self, text: str) -> int:
        """Tokens of plain ``text`` in this model's tokenizer."""
        return self.engine.count_tokens(text)

    def status(self) -> dict[str, Any]:
        """The engine's snapshot (`magimac.core.backend.Backend.status`)."""
        return self.engine.status()

    @property
    def api_url(self) -> str | None:
        """Where an online model's turns go (Mistral's API or a stand-in), else None."""
        if self.choice.online is None:
            return None
        return getattr(self.engine, "api_url", None) or self.choice.online.api_url

    def cancel(self) -> None:
        """Stop the running turn within a token (its events end with Done("cancelled"))."""
        self.engine.cancel()

    def close(self) -> None:
        """Stop the engine's thread (when this session started it); safe to call twice."""
        if self.owns_engine and self.engine is not None:
            self.engine.close()


def open_model(name: str | None = None, *, choice: ModelChoice | None = None,
               engine_factory: Callable[..., Backend] | None = None, start: bool = True,
               owns_engine: bool = True, online_factory: Callable[..., Backend] = online_engine_factory,
               server: str | None = None, find_server: bool = False,
               notice: Callable[[str], None] = lambda _line: None, **engine_options: Any) -> ChatSession:
    """Resolve ``name`` (or take ``choice``) and start loading it in the background.

    Args:
        name: as `choose_model`; with ``server``, the served model to ask for (None: its first).
        choice: an already resolved model (the name is not resolved again).
        engine_factory: ``f(path, **engine_options) -> engine`` (tests pass a fake;
            default `default_engine_factory`). start: start the engine's thread now.
        online_factory: ``f(online_model, **engine_options) -> engine`` for a model of Mistral's
            API (default `online_engine_factory`; ``engine_factory`` is for local models only).
        owns_engine: whether `ChatSession.close` closes the engine (False for an engine the
            caller shares, e.g. one a test passes in).
        server: a `magimac serve` URL to run the turns on (``--server``), with the key in
            ``MAGIMAC_API_KEY``; checked when the session loads.
        find_server: use the person's own server on the default port when it serves this model
            (`magimac.session.remote.server_for`), unless ``MAGIMAC_NO_SERVER=1``.
        notice: called with one line when a server is used, or one was ignored because it could
            not prove it is the person's own.
        engine_options: `Engine` options (``context_length``, ``kv_bits``, ``force``).

    Raises:
        magimac.models.store.ModelNotFound: as `choose_model`.
    """
    if server is not None:
        from magimac.session.remote import server_for

        choice = choice or ModelChoice(Path(name or server))
        return _started(ChatSession(choice, server_for(None, server, model_id=name), owns_engine, server), start)
    choice = choice or choose_model(name)
    remote = None
    if choice.online is None and engine_factory is None and find_server:
        remote = _own_server(choice, notice)
    if remote is not None:
        return _started(ChatSession(choice, remote, owns_engine, remote.base), start)
    if choice.online is not None:  # connects nothing yet: the first turn will
        engine = online_factory(choice.online, **engine_options)
    else:
        engine = (engine_factory or default_engine_factory)(choice.path, **engine_options)
    return _started(ChatSession(choice, engine, owns_engine=owns_engine), start)


def _started(session: ChatSession, start: bool) -> ChatSession:
    if start:
        session.engine.start()
    return session


def _own_server(choice: ModelChoice, notice: Callable[[str], None]):
    """The person's own `magimac serve` serving ``choice`` (`remote.server_for`), or None; one
    ``notice`` either way when there is a server on the port."""
    from magimac.session.proof import UntrustedServer
    from magimac.session.remote import server_for  # mistral-common: only once a model is chosen

    try:
        remote = server_for(choice.path)
    except UntrustedServer as e:
        notice(str(e))
        return None
    if remote is not None:
        notice(f"using the server at {remote.base} (it has {choice.name} loaded; --no-server loads it here)")
    return remote
