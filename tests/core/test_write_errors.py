"""A place magimac cannot write is one line naming it and what to do, exit 1, nothing left:
a path below a file, a read-only file system (/sys and /proc stay read-only for root, so this
holds where tests run as root), for history and export (the text layer) and `magimac pull`."""

from __future__ import annotations

from pathlib import Path

import pytest

from magimac.cli.main import main
from magimac.core import staging
from magimac.core.errors import MagimacError

READ_ONLY = Path("/sys/magimac-test")  # sysfs refuses new folders, even to root


@pytest.fixture
def a_file(tmp_path) -> Path:
    f = tmp_path / "notes.txt"
    f.write_text("not a folder")
    return f


def test_make_dirs_names_the_file_in_the_way_and_leaves_nothing(tmp_path, a_file):
    with pytest.raises(MagimacError) as e:
        staging.make_dirs(a_file / "models" / "x", "choose another --out")
    msg = str(e.value)
    assert msg == (f"{a_file / 'models' / 'x'}: cannot write there: {a_file} is a file, not a folder; "
                   "choose another --out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["magimac-home", "notes.txt"]


@pytest.mark.skipif(not Path("/sys").is_dir(), reason="needs Linux's read-only /sys")
def test_make_dirs_on_a_read_only_file_system():
    with pytest.raises(MagimacError) as e:
        staging.make_dirs(READ_ONLY / "deeper", "choose another --out")
    assert str(e.value).startswith(f"{READ_ONLY / 'deeper'}: cannot write there: /sys is ")
    assert "\n" not in str(e.value) and not READ_ONLY.exists()


def test_history_in_an_unwritable_place_is_one_line(a_file):
    from magimac.text.history import History, HistoryError

    with pytest.raises(HistoryError) as e:
        History(a_file / "history.db")
    assert str(e.value) == (f"{a_file / 'history.db'}: cannot write the history database there: {a_file} is a "
                            "file, not a folder; set MAGIMAC_DATA_DIR to a writable folder")


def test_export_to_an_unwritable_folder_is_one_line_and_leaves_nothing(tmp_path, a_file):
    from magimac.text.export import write_export
    from magimac.text.history import History

    h = History(tmp_path / "h.db")
    conv = h.new_conversation("A chat")
    with pytest.raises(MagimacError) as e:
        write_export(a_file / "exports", conv, h.messages(conv.id))
    assert str(e.value).startswith(f"{a_file / 'exports'}: cannot write there: {a_file} is a file, not a folder")
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("h.db")) == ["magimac-home", "notes.txt"]
    if Path("/sys").is_dir():
        with pytest.raises(OSError, match="cannot write there"):  # the app catches OSError
            write_export(Path("/sys"), conv, h.messages(conv.id))


@pytest.mark.parametrize("var, quant, what", [
    ("HF_HOME", "4bit", "HF_HOME"),
    ("MAGIMAC_MODELS_DIR", "8bit", "MAGIMAC_MODELS_DIR"),  # no ready-made 8-bit: converted here
])
def test_pull_refuses_an_unwritable_place_before_going_online(var, quant, what, a_file, monkeypatch, capsys):
    monkeypatch.setenv(var, str(a_file / "deeper"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    assert main(["pull", "magistral-small-2509", "--quant", quant]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("magimac: ") and "\n" not in err and "goes online" not in err
    assert f"{a_file} is a file, not a folder" in err and what in err
