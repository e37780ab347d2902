"""Fixtures of the app's tests: a fake engine for tests that do not need a model
(`magimac.testing.fake_engine`) and the planner's advice pinned; the loaded engines are the
suite's own (`tests/conftest.py`)."""

from __future__ import annotations

import pytest

from magimac.testing.api_standin import api  # noqa: F401  (the Mistral API stand-in)
from magimac.testing.fake_engine import FakeEngine


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
