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


@dataclass(frozen=True)
class ModelChoice:
    """A resolved ``--model``: ``path`` (a converted model directory) and ``notice`` (one line
    for the person when the demo stands in for a missing Magistral model, else None)."""

    path: Path
    notice: str | None = None
    is_demo: bool = False


def choose_model(name: str | None) -> ModelChoice:
    """Resolve ``name`` (registry name, alias, hub id, directory; None: the default installed
    model, else the bundled demo).

    Raises:
        magimac.models.store.ModelNotFound: nothing matches; the message says what to run and,
            for an unknown name, lists the close matches.
    """
    path = store.resolve_model(name)
    return ModelChoice(path, store.demo_notice(name, path), store.is_demo(path))


def default_engine_factory(path: Path, **options: Any):
    """`magimac.engine.worker.Engine` for ``path`` (imported here, at first use, so a front-end
    that never opens a model never imports MLX)."""
    from magimac.engine.worker import Engine

    return Engine(path, **options)


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

    def turn(self, messages: list[Message], settings=None):
        """A `magimac.session.turn.TurnRun` answering ``messages`` (not started until iterated)."""
        from magimac.session.turn import TurnRun

        return TurnRun(self, list(messages), settings)

    def cancel(self) -> None:
        """Stop the running turn within a token (its events end with Done("cancelled"))."""
        self.engine.cancel()

    def close(self) -> None:
        """Stop the engine's thread (when this session started it); safe to call twice."""
        if self.owns_engine and self.engine is not None:
            self.engine.close()


def open_model(name: str | None = None, *, choice: ModelChoice | None = None,
               engine_factory: Callable[..., Any] | None = None, start: bool = True,
               owns_engine: bool = True, **engine_options: Any) -> ChatSession:
    """Resolve ``name`` (or take ``choice``) and start loading it in the background.

    Args:
        name: as `choose_model`. choice: an already resolved model (the name is not resolved
            again). engine_factory: ``f(path, **engine_options) -> engine`` (tests pass a fake;
            default `default_engine_factory`). start: start the engine's thread now.
        owns_engine: whether `ChatSession.close` closes the engine (False for an engine the
            caller shares, e.g. one a test passes in).
        engine_options: `Engine` options (``context_length``, ``kv_bits``, ``force``).

    Raises:
        magimac.models.store.ModelNotFound: as `choose_model`.
    """
    choice = choice or choose_model(name)
    factory = engine_factory or default_engine_factory
    engine = factory(choice.path, **engine_options)
    if start and hasattr(engine, "start"):
        engine.start()
    return ChatSession(choice, engine, owns_engine=owns_engine)
