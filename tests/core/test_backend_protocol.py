"""Every backend meets the engine contract (`magimac.core.backend.Backend`): the same methods,
with the same parameter names, so the session layer can hold any of them and no front-end has to
probe one with ``getattr``."""

from __future__ import annotations

import importlib
import inspect

import pytest

from magimac.core.backend import Backend, TurnStream

BACKENDS = [
    ("magimac.engine.worker", "Engine"),
    ("magimac.engine.batch", "BatchEngine"),
    ("magimac.session.remote", "RemoteEngine"),
    ("magimac.online.engine", "OnlineEngine"),
    ("magimac.testing.fake_engine", "FakeEngine"),
]
TURNS = [
    ("magimac.engine.worker", "Turn"),
    ("magimac.session.remote", "RemoteTurn"),
    ("magimac.online.engine", "RemoteTurn"),
    ("magimac.testing.fake_engine", "FakeTurn"),
]


def _members(protocol) -> dict[str, inspect.Signature]:
    return {name: inspect.signature(getattr(protocol, name)) for name in dir(protocol)
            if not name.startswith("_") and callable(getattr(protocol, name))}


def _params(sig: inspect.Signature) -> list[tuple[str, bool]]:
    """(name, has a default) of each parameter after ``self``."""
    return [(p.name, p.default is not inspect.Parameter.empty) for p in list(sig.parameters.values())[1:]]


@pytest.mark.parametrize("module,name", BACKENDS)
def test_each_backend_has_every_method_of_the_contract_with_its_parameters(module, name):
    cls = getattr(importlib.import_module(module), name)
    missing, different = [], []
    for method, sig in _members(Backend).items():
        impl = getattr(cls, method, None)
        if not callable(impl):
            missing.append(method)
        elif _params(inspect.signature(impl)) != _params(sig):
            different.append(f"{method}{inspect.signature(impl)} vs {method}{sig}")
    assert not missing and not different, f"{name}: missing {missing}, different {different}"


@pytest.mark.parametrize("module,name", TURNS)
def test_each_turn_is_an_iterator_of_events_that_can_be_cancelled(module, name):
    cls = getattr(importlib.import_module(module), name)
    assert all(callable(getattr(cls, m, None)) for m in ("__iter__", "__next__", "cancel")), name


def test_a_fake_engine_is_a_backend_and_its_turns_are_turn_streams():
    from magimac.core.conversation import Message
    from magimac.core.events import Done
    from magimac.testing.fake_engine import FakeEngine

    engine = FakeEngine()
    assert isinstance(engine, Backend)
    turn = engine.submit([Message("user", "Hi")])
    assert isinstance(turn, TurnStream)
    next(turn)
    turn.cancel()
    last = list(turn)[-1]
    assert isinstance(last, Done) and last.finish_reason == "cancelled"
