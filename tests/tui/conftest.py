"""Fixtures of the app's tests: engines to share between apps (loaded once per session), and
a fake engine for tests that do not need a model (`magimac.testing.fake_engine`)."""

from __future__ import annotations

import pytest

from magimac.engine.worker import Engine
from magimac.testing.fake_engine import FakeEngine


def loaded_engine(checkpoint) -> Engine:
    e = Engine(checkpoint)
    e.start()
    e.wait_loaded()
    return e


@pytest.fixture(scope="session")
def engine(scripted_checkpoint):
    """One loaded engine on the scripted checkpoint (it answers `Script()`), shared by the apps."""
    e = loaded_engine(scripted_checkpoint)
    yield e
    e.close()


@pytest.fixture(scope="session")
def endless_engine(random_checkpoint):
    """A random-weights model: it writes until stopped (for Esc)."""
    e = loaded_engine(random_checkpoint)
    yield e
    e.close()


@pytest.fixture
def fake_engine() -> FakeEngine:
    """A `FakeEngine`: loaded at once, answers `fake_engine.REASONING` then `fake_engine.ANSWER`."""
    return FakeEngine()


@pytest.fixture
def pinned_plan(monkeypatch):
    """`magimac plan`'s advice pinned (it depends on the machine, and takes seconds)."""
    lines = ["`magimac pull magistral-small-2509 --quant 4bit`: fits this Mac"]
    monkeypatch.setattr("magimac.tui.screens.plan_recommendations", lambda: lines)
    return lines
