"""Open a model for chatting: resolve the name once, start its engine, say what was chosen.

What this adds to `magimac.models.store.resolve_model`: one place where a front-end gets a
running engine and the notice to show (the bundled demo used because nothing is installed),
so `magimac chat`, the app and later front-ends cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from magimac.core.conversation import Message
from magimac.core.events import Loaded
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
        return self.online.name if self.online else self.path.name


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
    """One opened model and its engine; runs turns for a front-end.

    Attributes:
        choice: the resolved model; engine: the engine (anything with `Engine`'s methods:
        ``start``, ``load_events``, ``wait_loaded``, ``submit``, ``cancel``, ``close``,
        ``prompt_tokens``, ``count_tokens``, ``encode``); owns_engine: whether `close` closes it.
    """

    choice: ModelChoice
    engine: Any
    owns_engine: bool = True
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

    def cancel(self) -> None:
        """Stop the running turn within a token (its events end with Done("cancelled"))."""
        self.engine.cancel()

    def close(self) -> None:
        """Stop the engine's thread (when this session started it); safe to call twice."""
        if self.owns_engine and self.engine is not None:
            self.engine.close()


def open_model(name: str | None = None, *, choice: ModelChoice | None = None,
               engine_factory: Callable[..., Any] | None = None, start: bool = True,
               owns_engine: bool = True, online_factory: Callable[..., Any] = online_engine_factory,
               **engine_options: Any) -> ChatSession:
    """Resolve ``name`` (or take ``choice``) and start loading it in the background.

    Args:
        name: as `choose_model`. choice: an already resolved model (the name is not resolved
            again). engine_factory: ``f(path, **engine_options) -> engine`` (tests pass a fake;
            default `default_engine_factory`). start: start the engine's thread now.
        online_factory: ``f(online_model, **engine_options) -> engine`` for a model of Mistral's
            API (default `online_engine_factory`; ``engine_factory`` is for local models only).
        owns_engine: whether `ChatSession.close` closes the engine (False for an engine the
            caller shares, e.g. one a test passes in).
        engine_options: `Engine` options (``context_length``, ``kv_bits``, ``force``).

    Raises:
        magimac.models.store.ModelNotFound: as `choose_model`.
    """
    choice = choice or choose_model(name)
    if choice.online is not None:  # connects nothing yet: the first turn will
        engine = online_factory(choice.online, **engine_options)
    else:
        engine = (engine_factory or default_engine_factory)(choice.path, **engine_options)
    if start and hasattr(engine, "start"):
        engine.start()
    return ChatSession(choice, engine, owns_engine=owns_engine)
