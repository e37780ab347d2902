"""The allowed values of every sampling setting (`SETTINGS`, the one settings table), which
`magimac chat`, the app, the server and the clients check, and the settings module's freedom from MLX."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import fields

import pytest

from magimac.core.settings import SETTINGS, GenerationSettings, setting_error


@pytest.mark.parametrize("name, value, phrase", [
    ("min_p", 2.0, "must be a number in [0, 1) (0: off)"),
    ("min_p", 1.0, "must be a number in [0, 1) (0: off)"),
    ("min_p", -0.1, "must be a number in [0, 1) (0: off)"),
    ("min_p", float("nan"), "must be a number in [0, 1) (0: off)"),
    ("top_k", 999999, "from 0 to 131072 (0: off)"),
    ("top_k", -5, "must be a whole number of tokens from 0 to 131072"),
    ("top_k", 2.5, "must be a whole number"),
    ("seed", -1, "must be a whole number from 0"),
    ("seed", 2**64, "must be a whole number from 0 to 18446744073709551615"),
    ("seed", 10**400, "must be a whole number from 0"),
    ("repetition_penalty", 0.0, "must be a number > 0 (1: no penalty)"),
    ("repetition_penalty", float("inf"), "must be a number > 0 (1: no penalty)"),
    ("top_p", 0.0, "must be a number in (0, 1]"),
    ("temperature", float("nan"), "must be a number in [0, 2]"),
    ("temperature", 1e308, "must be a number in [0, 2]"),
    ("max_tokens", 0, "must be a whole number of tokens >= 1"),
    ("reasoning_budget", -1, "must be a whole number of tokens >= 0"),
])
def test_out_of_range_values_are_refused_with_one_phrase(name, value, phrase):
    problem = setting_error(name, value)
    assert problem is not None and phrase in problem and "\n" not in problem


@pytest.mark.parametrize("name, value", [
    ("min_p", 0.0), ("min_p", 0.05), ("top_k", 0), ("top_k", 40), ("top_k", 131072),
    ("seed", 0), ("seed", 2**64 - 1), ("repetition_penalty", 1.1), ("top_p", 1.0),
    ("temperature", 0.0), ("max_tokens", 1), ("reasoning_budget", 0),
])
def test_values_in_range_are_accepted(name, value):
    assert setting_error(name, value) is None


def test_every_numeric_setting_has_a_range():
    numeric = {f.name for f in fields(GenerationSettings)} - {"keep_reasoning", "system_prompt", "reasoning_instructions",
                                                             "tools", "tool_choice", "banned_openings", "cache_owner"}
    assert set(SETTINGS) == numeric
    assert all(getattr(GenerationSettings(), r.name) == r.default for r in SETTINGS.values())


def test_the_settings_module_leaves_mlx_unimported():
    code = "import magimac.core.settings, sys; print([m for m in sys.modules if m.split('.')[0] in ('mlx', 'mlx_lm', 'mlx_vlm')])"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stdout + r.stderr[-1000:]
