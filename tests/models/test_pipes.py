"""`magimac models | head -1` and `magimac plan | head -1` end quietly (exit 141, nothing on
stderr), as `magimac chat` does, with a real pipe whose reader has gone."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def _run_into_closed_pipe(*args: str) -> tuple[int, str]:
    """Run ``magimac ARGS`` with stdout a pipe whose read end is already closed (what `head -1`
    leaves once it has its line): every write fails with EPIPE."""
    r, w = os.pipe()
    os.close(r)
    try:
        p = subprocess.run([sys.executable, "-m", "magimac", *args], stdout=w, stderr=subprocess.PIPE,
                           text=True, timeout=240)
    finally:
        os.close(w)
    return p.returncode, p.stderr


def _head_1(*args: str) -> tuple[str, int, str]:
    """``magimac ARGS | head -1``: the first line read, then the pipe closed."""
    p = subprocess.Popen([sys.executable, "-m", "magimac", *args], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    first = p.stdout.readline()
    p.stdout.close()
    err = p.stderr.read()
    return first, p.wait(timeout=240), err


@pytest.mark.parametrize("args", [("models",), ("plan", "--ram", "32GB")])
def test_a_closed_pipe_ends_quietly(args):
    rc, err = _run_into_closed_pipe(*args)
    assert (rc, err) == (141, "")


@pytest.mark.parametrize("args", [("models",), ("plan", "--ram", "32GB")])
def test_head_1_gets_its_line_and_no_traceback(args):
    first, rc, err = _head_1(*args)
    assert first.strip() and rc in (0, 141) and err == ""
