"""`magimac plan --ram` and `magimac quantize --target-ram` size the same Mac identically
(issue 14: quantize read 32GB as 32e9 bytes and refused the 4-bit Magistral plan recommends)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from magimac.cli.main import main
from magimac.core.units import parse_size
from magimac.testing.checkpoint import build_checkpoint

MAGISTRAL_CONFIG = Path(__file__).resolve().parents[2] / "magimac" / "data" / "magistral-small-2509.json"
SMALL = dict(hidden=64, intermediate=128, heads=2, kv_heads=1, head_dim=32, vocab=4096)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return build_checkpoint(tmp_path_factory.mktemp("agree") / "ckpt", **SMALL)


def _usable(text: str) -> str:
    """The "N GB usable" figure a command printed."""
    found = re.findall(r"([\d.]+ [KMG]?B) usable", text)
    assert found, text
    return found[0]


@pytest.mark.parametrize("ram", ["16GB", "32GB", "64GB"])
def test_plan_and_quantize_print_the_same_usable_memory(ram, tiny, tmp_path, capsys):
    assert main(["plan", "--ram", ram]) == 0
    plan_usable = _usable(capsys.readouterr().out)
    assert main(["plan", "--ram", ram, "--json"]) == 0
    budget = json.loads(capsys.readouterr().out)["budget_bytes"]
    (tmp_path / "a-file").write_text("x")  # --out below a file: quantize stops after its fit check
    assert main(["quantize", str(tiny), "--target-ram", ram, "--out", str(tmp_path / "a-file" / "o"), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert _usable(err) == plan_usable
    from magimac.quantize.sizes import estimate, fit

    cfg = json.loads((tiny / "config.json").read_text())
    assert fit(estimate(cfg), cfg, ram_bytes=parse_size(ram), context=32768).usable_bytes == budget


def test_the_4bit_magistral_plan_recommends_for_a_32gb_mac_passes_quantizes_fit_check(capsys):
    from magimac.quantize.sizes import estimate, fit

    assert main(["plan", "--ram", "32GB", "--json"]) == 0
    p = json.loads(capsys.readouterr().out)
    rec = p["recommendation"]
    assert rec["level"] == "4bit" and rec["kv_bits"] == 16 and rec["context"] >= 32768
    cfg = json.loads(MAGISTRAL_CONFIG.read_text())
    f = fit(estimate(cfg, bits=4), cfg, ram_bytes=parse_size("32GB"), context=32768)  # quantize's defaults
    assert f.fits, f
    assert f.usable_bytes == p["budget_bytes"] and f.weights_bytes == rec["weights_bytes"]


def test_without_flags_quantize_sizes_this_machine_as_plan(tiny, tmp_path, capsys, monkeypatch):
    """Issue: plan used the detected GPU limit, quantize the macOS default from RAM."""
    from dataclasses import replace

    from magimac.core.units import format_bytes
    from magimac.models import hardware

    hw = replace(hardware.detect(), total_memory=int(23.5 * 2**30), gpu_limit=25_280_000_000,
                 gpu_limit_source="system memory")
    monkeypatch.setattr(hardware, "detect", lambda *a, **k: hw)
    assert main(["plan", "--json"]) == 0
    budget = json.loads(capsys.readouterr().out)["budget_bytes"]
    assert main(["plan"]) == 0
    plan_usable = _usable(capsys.readouterr().out)
    (tmp_path / "a-file").write_text("x")
    assert main(["quantize", str(tiny), "--out", str(tmp_path / "a-file" / "o"), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert _usable(err) == plan_usable == format_bytes(budget)
    assert "of 23.5 GiB RAM" in err
    from magimac.quantize.sizes import estimate, fit

    cfg = json.loads((tiny / "config.json").read_text())
    assert fit(estimate(cfg), cfg, ram_bytes=hw.total_memory, context=32768,
               gpu_limit_bytes=hw.gpu_limit).usable_bytes == budget


def test_size_table_prints_small_sizes_in_mb_or_kb_aligned(tiny):
    from magimac.quantize.sizes import describe, estimate

    cfg = json.loads((tiny / "config.json").read_text())
    table = describe(estimate(cfg)).splitlines()[1:]
    assert not any("0.000 GB" in row or "0.00 GB" in row for row in table), table
    sizes = [re.match(r"^  \S+\s+([\d.]+ [KMG]?B)\b", row) for row in table]
    assert all(sizes) and any(m.group(1).endswith((" KB", " MB")) for m in sizes), table
    assert len({m.end(1) for m in sizes}) == 1, table  # the size column lines up
