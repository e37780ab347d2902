"""`magimac doctor`: facts, versions, and what it finds wrong (exit 1 only on errors)."""

from __future__ import annotations

import json
import platform
from dataclasses import replace
from importlib import metadata

import pytest

from magimac.models import hardware

from magimac.core import paths
from magimac.cli.main import main


def doctor_json(capsys, rc: int = 0) -> dict:
    capsys.readouterr()
    assert main(["doctor", "--json"]) == rc
    return json.loads(capsys.readouterr().out)


def messages(report: dict, level: str) -> list[str]:
    return [f["message"] for f in report["findings"] if f["level"] == level]


def test_reports_this_machine_and_versions(capsys):
    r = doctor_json(capsys)
    assert r["facts"]["total_memory"] > 0 and r["facts"]["free_disk"] > 0
    assert r["facts"]["mlx_device"] in ("cpu", "gpu")
    assert r["versions"]["python"] == platform.python_version()
    for pkg in ("mlx", "mlx-lm", "mlx-vlm"):
        assert r["versions"][pkg] == metadata.version(pkg)
    assert not messages(r, "error")
    if r["facts"]["system"] == "Linux":
        assert any("MLX runs on the CPU" in m for m in messages(r, "warning"))
    assert "no model is installed" in messages(r, "warning")


def test_text_report(capsys):
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert "GPU limit" in out and "free disk" in out and f"mlx {metadata.version('mlx')}" in out


def test_a_broken_registry_is_an_error(capsys):
    (paths.config_dir() / "models.toml").write_text("[models.x\n")
    r = doctor_json(capsys, rc=1)
    assert any("models.toml: not valid TOML" in m for m in messages(r, "error"))


def test_lists_partial_conversions_of_killed_runs_with_their_size(capsys, tmp_path):
    import os
    import subprocess
    import sys

    from magimac.core import staging

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # its pid now names no process
    elsewhere = tmp_path / "clone"  # an --out outside the models dir, noted by quantize
    staging.remember_place(elsewhere)
    dead = [paths.models_dir() / f".m-4bit.partial-{gone.pid}-k1lled9x", elsewhere / f".x.partial-{gone.pid}-k1lled8x"]
    live = paths.models_dir() / f".n-4bit.partial-{os.getpid()}-runn1ng0"
    for d in (*dead, live):
        d.mkdir(parents=True)
        (d / "model.safetensors").write_bytes(b"x" * 175_000)
    r = doctor_json(capsys)
    found = [m for m in messages(r, "warning") if "partial conversion" in m]
    assert found == [f"{d} (175.0 KB) is a partial conversion left by a magimac quantize that was killed"
                     for d in dead]
    assert main(["doctor"]) == 0
    assert f"warning: {dead[1]} (175.0 KB) is a partial conversion" in capsys.readouterr().out


@pytest.fixture
def fake_mac(monkeypatch):
    """Make `hardware.detect` return a Mac, and MLX's device its Metal GPU; the test sets
    their fields (``hw``, ``dev``)."""
    from magimac.engine import device

    state = {"hw": replace(hardware.assumed_mac(32 * 2**30), chip="Apple M3", gpu_limit_source="sysctl"),
             "dev": device.Device("gpu", True, "Apple M3", metadata.version("mlx"), None)}
    monkeypatch.setattr(hardware, "detect", lambda *a, **k: state["hw"])
    monkeypatch.setattr(device, "detect", lambda: state["dev"])
    return state


def test_python_under_rosetta_is_an_error(fake_mac, capsys):
    fake_mac["hw"] = replace(fake_mac["hw"], machine="x86_64")
    r = doctor_json(capsys, rc=1)
    assert any("native arm64 Python" in m for m in messages(r, "error"))


def test_a_mac_whose_mlx_has_no_metal_is_an_error(fake_mac, capsys):
    from magimac.engine import device

    fake_mac["dev"] = device.Device("cpu", False, "", metadata.version("mlx"), None)
    r = doctor_json(capsys, rc=1)
    assert "MLX cannot use the GPU (Metal is not available)" in messages(r, "error")
    assert r["facts"]["metal"] is False and r["facts"]["mlx_device"] == "cpu"


def test_a_32gb_mac_is_fine_but_a_raised_wired_limit_is_risky(fake_mac, capsys):
    r = doctor_json(capsys)
    assert messages(r, "warning") == ["no model is installed"]
    fake_mac["hw"] = replace(fake_mac["hw"], wired_limit_mb=31 * 1024)
    r = doctor_json(capsys)
    assert any("iogpu.wired_limit_mb=31744" in m for m in messages(r, "warning"))


def test_small_mac_and_full_disk(fake_mac, capsys):
    fake_mac["hw"] = replace(hardware.assumed_mac(8 * 2**30), free_disk=10**9)
    r = doctor_json(capsys)
    assert any("does not fit this machine's GPU memory" in m for m in messages(r, "warning"))
    fake_mac["hw"] = replace(hardware.assumed_mac(32 * 2**30), free_disk=10**9)
    r = doctor_json(capsys)
    assert any("GB free at" in m and "4bit" in m for m in messages(r, "warning"))


def test_an_installed_model_too_large_for_this_machine(fake_mac, random_checkpoint, capsys):
    import shutil

    d = paths.models_dir() / "big"
    shutil.copytree(random_checkpoint, d)
    fake_mac["hw"] = replace(fake_mac["hw"], gpu_limit=10**6)
    r = doctor_json(capsys)
    [f] = [f for f in r["findings"] if "big needs" in f["message"]]
    assert f["fix"] == "magimac rm big"


def test_memory_line_gives_total_and_available_in_one_unit(fake_mac, capsys):
    fake_mac["hw"] = replace(fake_mac["hw"], total_memory=int(23.5 * 2**30), available_memory=int(22.7 * 2**30))
    assert main(["doctor"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("memory"))
    assert line.split(None, 1)[1] == "23.5 GiB total, 22.7 GiB available", line
