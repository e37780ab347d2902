"""`magimac quantize --out` where nothing can be written: one line naming the path and what
to do, exit 1, nothing left behind (issue 14: these were OSError tracebacks).  Tests run as
root here, which ignores permissions, so read-only means /sys (sysfs refuses new folders)."""

from __future__ import annotations

from pathlib import Path

import pytest

from magimac.cli.main import main
from magimac.testing.checkpoint import build_checkpoint

SMALL = dict(hidden=64, intermediate=128, heads=2, kv_heads=1, head_dim=32, vocab=4096)
needs_sys = pytest.mark.skipif(not Path("/sys").is_dir(), reason="needs Linux's read-only /sys")


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    return build_checkpoint(tmp_path_factory.mktemp("wr") / "ckpt", **SMALL)


def _quantize(capsys, source: Path, out: Path) -> str:
    rc = main(["quantize", str(source), "--out", str(out), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and err[-1].startswith("magimac: ") and "Traceback" not in "\n".join(err)
    return err[-1]


def test_out_below_a_file(capsys, tmp_path, source):
    (tmp_path / "work").mkdir()
    f = tmp_path / "work" / "report.pdf"
    f.write_bytes(b"%PDF")
    msg = _quantize(capsys, source, f / "models" / "out")
    assert msg == (f"magimac: {f / 'models'}: cannot write there: {f} is a file, not a folder; "
                   "choose another --out (a folder on a writable disk with room for the model)")
    assert [p.name for p in (tmp_path / "work").iterdir()] == ["report.pdf"] and f.read_bytes() == b"%PDF"


@needs_sys
def test_out_on_a_read_only_file_system(capsys, source):
    msg = _quantize(capsys, source, Path("/sys/out"))
    assert msg.startswith("magimac: /sys: cannot write there: /sys is ") and "choose another --out" in msg
    assert not Path("/sys/out").exists()


@needs_sys
def test_out_under_a_missing_parent_on_a_read_only_file_system(capsys, source):
    msg = _quantize(capsys, source, Path("/sys/magimac-missing/models/out"))
    assert msg.startswith("magimac: /sys/magimac-missing/models: cannot write there: /sys is ")
    assert not Path("/sys/magimac-missing").exists()


def test_missing_parents_are_made_and_a_later_failure_removes_them(capsys, tmp_path, source):
    out = tmp_path / "new" / "deeper" / "out"
    assert main(["quantize", str(source), "--out", str(out), "--quiet", "--target-ram", "1MB"]) == 1
    assert not (tmp_path / "new").exists()  # refused before anything was made
    assert main(["quantize", str(source), "--out", str(out), "--quiet"]) == 0
    assert (out / "magimac-manifest.json").is_file()
