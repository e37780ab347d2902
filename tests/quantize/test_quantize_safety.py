"""`magimac quantize` safety: bad input is one line naming the file, and nothing is left behind."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

from magimac.testing.checkpoint import build_checkpoint
from magimac.cli.main import main as magimac_main
from magimac.quantize import convert as convert_mod

SMALL = dict(hidden=64, intermediate=128, heads=2, kv_heads=1, head_dim=32, vocab=4096)
SHARD1 = "model-00001-of-00002.safetensors"


@pytest.fixture(scope="session")
def tiny_source(tmp_path_factory) -> Path:
    """A small random checkpoint (4096-id vocabulary) with a decoy consolidated.safetensors."""
    return build_checkpoint(tmp_path_factory.mktemp("safety") / "ckpt", decoy_consolidated=True, **SMALL)


@pytest.fixture
def source(tmp_path, tiny_source) -> Path:
    """A private copy of `tiny_source` that a test may break."""
    return Path(shutil.copytree(tiny_source, tmp_path / "src"))


def _snapshot(d: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.iterdir())}


def _quantize(capsys, *args: str) -> tuple[int, str]:
    rc = magimac_main(["quantize", *args, "--quiet"])
    err = capsys.readouterr().err
    return rc, err.strip().splitlines()[-1] if err.strip() else ""


def _fails_cleanly(capsys, tmp_path, src: Path, *extra: str) -> str:
    """Run quantize into tmp_path/out, expect a one-line error, no output and no temp dirs."""
    out_parent = tmp_path / "outputs"
    out_parent.mkdir(parents=True)
    rc, last = _quantize(capsys, str(src), "--out", str(out_parent / "out"), *extra)
    assert rc == 1 and last.startswith("magimac: ")
    assert list(out_parent.iterdir()) == [], "something was left behind"
    return last


@pytest.mark.parametrize("extra, line", [
    (["--context", "-5"], "--context must be a positive number of tokens of KV cache, got -5"),
    (["--context", "0"], "--context must be a positive number of tokens of KV cache, got 0"),
    (["--method", "gptq", "--calibration-samples", "0"], "--calibration-samples must be at least 1, got 0"),
    (["--method", "awq", "--calibration-tokens", "-1"], "--calibration-tokens must be at least 1, got -1"),
    (["--bits", "0"], "--bits must be one of 2, 3, 4, 5, 6, 8, got 0"),
    (["--bits=-4"], "--bits must be one of 2, 3, 4, 5, 6, 8, got -4"),
    (["--group-size", "0"], "--group-size must be one of 32, 64, 128, got 0"),
])
def test_impossible_numbers_are_one_line_errors_naming_the_option(capsys, tmp_path, tiny_source, extra, line):
    """Refused before anything is read or sized (a -5-token context once sized "-2560 B of KV";
    0 calibration samples once meant 128)."""
    assert _fails_cleanly(capsys, tmp_path, tiny_source, *extra).startswith(f"magimac: {line}")


def test_the_library_refuses_them_too(tmp_path, tiny_source):
    from magimac.quantize.source import QuantizeError

    with pytest.raises(QuantizeError, match="^--context must be a positive number"):
        convert_mod.convert(tiny_source, tmp_path / "out", context=-5, progress=False)
    assert not (tmp_path / "out").exists()


def test_success_leaves_only_the_output_and_never_touches_the_source(capsys, tmp_path, source):
    before = _snapshot(source)
    out_parent = tmp_path / "outputs"
    rc, _ = _quantize(capsys, str(source), "--out", str(out_parent / "out"))
    assert rc == 0
    assert [p.name for p in out_parent.iterdir()] == ["out"]
    assert _snapshot(source) == before
    umask = os.umask(0)
    os.umask(umask)
    assert (out_parent / "out").stat().st_mode & 0o777 == 0o777 & ~umask  # not mkdtemp's 0700
    assert "consolidated.safetensors" not in {p.name for p in (out_parent / "out").iterdir()}


def test_missing_config(capsys, tmp_path, source):
    (source / "config.json").unlink()
    msg = _fails_cleanly(capsys, tmp_path, source)
    assert "config.json: missing" in msg


def test_malformed_config(capsys, tmp_path, source):
    (source / "config.json").write_text('{"model_type": "mistral3",')
    msg = _fails_cleanly(capsys, tmp_path, source)
    assert "config.json: not valid JSON" in msg


def test_unknown_architecture(capsys, tmp_path, source):
    cfg = json.loads((source / "config.json").read_text())
    (source / "config.json").write_text(json.dumps({**cfg, "model_type": "gpt_oss"}))
    msg = _fails_cleanly(capsys, tmp_path, source)
    assert "config.json: unknown architecture model_type='gpt_oss'" in msg


def test_truncated_safetensors(capsys, tmp_path, source):
    shard = source / SHARD1
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    msg = _fails_cleanly(capsys, tmp_path, source)
    assert f"{SHARD1}: truncated safetensors file" in msg


def test_corrupt_safetensors_header(capsys, tmp_path, source):
    shard = source / SHARD1
    data = bytearray(shard.read_bytes())
    data[8:20] = b"not json at " 
    shard.write_bytes(bytes(data))
    msg = _fails_cleanly(capsys, tmp_path, source)
    assert f"{SHARD1}: corrupt safetensors header" in msg


def test_missing_shard_listed_in_index(capsys, tmp_path, source):
    (source / SHARD1).unlink()
    msg = _fails_cleanly(capsys, tmp_path, source)
    assert f"{SHARD1}: missing (listed in model.safetensors.index.json)" in msg


def test_shapes_not_divisible_by_the_group_size(capsys, tmp_path):
    src = build_checkpoint(tmp_path / "odd", hidden=96, intermediate=192, heads=3, kv_heads=1, head_dim=32, vocab=4096)
    msg = _fails_cleanly(capsys, tmp_path, src, "--group-size", "64")
    assert ".safetensors: tensor " in msg and "not divisible by group size 64" in msg and "--group-size 32" in msg


def test_missing_tokenizer(capsys, tmp_path, source):
    (source / "tekken.json").unlink()
    msg = _fails_cleanly(capsys, tmp_path, source)
    assert "tekken.json: missing tokenizer" in msg


def test_not_enough_disk_space(capsys, tmp_path, source, monkeypatch):
    monkeypatch.setattr(convert_mod.shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10**12, 10**12, 1000))
    msg = _fails_cleanly(capsys, tmp_path, source)
    assert "not enough free disk space" in msg and "outputs" in msg


def test_level_that_does_not_fit_target_ram_is_refused_unless_forced(capsys, tmp_path, source):
    msg = _fails_cleanly(capsys, tmp_path, source, "--target-ram", "1MB", "--context", "1000")
    assert "--force" in msg and "4-bit, group size 64 needs" in msg and "1 MiB of RAM" in msg
    rc, _ = _quantize(capsys, str(source), "--out", str(tmp_path / "outputs" / "forced"), "--target-ram", "1MB",
                      "--force")
    assert rc == 0 and (tmp_path / "outputs" / "forced" / "magimac-manifest.json").is_file()


def test_existing_output_is_kept_without_force_and_replaced_with_it(capsys, tmp_path, source):
    out = tmp_path / "outputs" / "out"
    assert _quantize(capsys, str(source), "--out", str(out))[0] == 0
    before = _snapshot(out)
    rc, msg = _quantize(capsys, str(source), "--out", str(out), "--bits", "8")
    assert rc == 1 and msg == f"magimac: {out}: already exists; pass --force to replace it"
    assert _snapshot(out) == before
    rc, _ = _quantize(capsys, str(source), "--out", str(out), "--force", "--bits", "8")
    assert rc == 0 and json.loads((out / "magimac-manifest.json").read_text())["bits"] == 8
    assert [p.name for p in out.parent.iterdir()] == ["out"]


def _tree(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() if p.is_file() else b"<dir>" for p in sorted(d.rglob("*"))}


def _force_is_refused(capsys, source: Path, out: Path) -> str:
    """`quantize --force` into ``out`` fails with one line and leaves ``out`` byte for byte."""
    before = _tree(out)
    rc, msg = _quantize(capsys, str(source), "--out", str(out), "--force")
    assert rc == 1 and msg.startswith(f"magimac: {out}: ") and "--force only replaces a model magimac wrote" in msg
    assert _tree(out) == before
    assert [p.name for p in out.parent.iterdir()] == [out.name], "something was left beside it"
    return msg


def test_force_never_deletes_a_folder_of_models(capsys, tmp_path, source):
    """Issue 14: `mkdir mymodels; cp -r s3 s8 mymodels/; quantize ckpt --out mymodels --force`."""
    mymodels = tmp_path / "outputs" / "mymodels"
    for bits in ("3", "8"):
        assert _quantize(capsys, str(source), "--out", str(mymodels / f"s{bits}"), "--bits", bits)[0] == 0
    msg = _force_is_refused(capsys, source, mymodels)
    assert "no magimac-manifest.json" in msg


def test_force_never_deletes_a_folder_of_the_persons_files(capsys, tmp_path, source):
    thesis = tmp_path / "outputs" / "thesis"
    thesis.mkdir(parents=True)
    (thesis / "thesis.txt").write_text("four years of work")
    _force_is_refused(capsys, source, thesis)
    empty = tmp_path / "outputs2" / "made-by-me"
    empty.mkdir(parents=True)
    _force_is_refused(capsys, source, empty)


def test_force_never_replaces_a_conversion_with_foreign_files_added(capsys, tmp_path, source):
    out = tmp_path / "outputs" / "out"
    assert _quantize(capsys, str(source), "--out", str(out))[0] == 0
    (out / "notes.md").write_text("my notes on this model")
    msg = _force_is_refused(capsys, source, out)
    assert "holds notes.md, which magimac did not write" in msg


def test_output_inside_the_source_is_refused(capsys, tmp_path, source):
    rc, msg = _quantize(capsys, str(source), "--out", str(source / "mlx"))
    assert rc == 1 and "outside the source checkpoint" in msg and not (source / "mlx").exists()


def test_ctrl_c_leaves_nothing_that_looks_complete(capsys, tmp_path, source, monkeypatch):
    calls = []
    real = convert_mod.write_chunk

    def interrupted(chunk, *args):
        calls.append(chunk.job.name)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(chunk, *args)

    monkeypatch.setattr(convert_mod, "write_chunk", interrupted)
    out_parent = tmp_path / "outputs"
    out_parent.mkdir()
    rc = magimac_main(["quantize", str(source), "--out", str(out_parent / "out"), "--quiet"])
    assert rc == 130 and "interrupted" in capsys.readouterr().err
    assert list(out_parent.iterdir()) == []


def test_crash_while_writing_removes_the_temporary_directory(tmp_path, source, monkeypatch):
    def boom(*a, **kw):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(convert_mod, "verify_output", boom)
    with pytest.raises(RuntimeError, match="disk on fire"):
        convert_mod.convert(source, tmp_path / "outputs" / "out", progress=False, log=lambda s: None)
    assert not (tmp_path / "outputs").exists()  # the folder it made for the output is gone too


def test_unknown_source_and_offline_hub_id_are_one_line_errors(capsys, tmp_path):
    rc, msg = _quantize(capsys, "./no/such/dir", "--out", str(tmp_path / "o"))
    assert rc == 1 and "no such directory, registry model or hub id" in msg
    rc, msg = _quantize(capsys, "someone/some-model", "--out", str(tmp_path / "o"))  # HF_HUB_OFFLINE=1
    assert rc == 1 and msg.startswith("magimac: someone/some-model: download failed") and "\n" not in msg
    assert not (tmp_path / "o").exists()


def test_registry_name_downloads_config_first_then_only_needed_files(capsys, tmp_path, tiny_source, monkeypatch):
    import huggingface_hub

    calls = []

    def fake_snapshot_download(repo_id, revision=None, allow_patterns=None, **kw):
        calls.append((repo_id, list(allow_patterns)))
        snap = tmp_path / "hub" / "snapshots" / "0123abcd"
        if not snap.exists():
            shutil.copytree(tiny_source, snap, ignore=shutil.ignore_patterns("consolidated.safetensors", "params.json"))
        return str(snap)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    rc, _ = _quantize(capsys, "magistral-small-1.2", "--out", str(tmp_path / "o"))
    assert rc == 0
    assert calls[0] == ("mistralai/Magistral-Small-2509", ["config.json"])  # sizes and fit check first
    repo, patterns = calls[1]
    assert repo == "mistralai/Magistral-Small-2509" and "tekken.json" in patterns
    assert not any("consolidated" in p or p in ("*", "*.safetensors") for p in patterns)
    manifest = json.loads((tmp_path / "o" / "magimac-manifest.json").read_text())
    assert manifest["source"] == "mistralai/Magistral-Small-2509" and manifest["revision"] == "0123abcd"


def test_a_level_too_big_is_refused_before_downloading_weights(capsys, tmp_path, tiny_source, monkeypatch):
    import huggingface_hub

    calls = []

    def fake_snapshot_download(repo_id, revision=None, allow_patterns=None, **kw):
        calls.append(list(allow_patterns))
        return str(tiny_source)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    rc, msg = _quantize(capsys, "mistralai/Magistral-Small-2509", "--out", str(tmp_path / "o"), "--target-ram", "1MB")
    assert rc == 1 and "pass --force" in msg
    assert calls == [["config.json"]] and not (tmp_path / "o").exists()


def test_an_already_quantized_model_and_bad_recipe_options_are_one_line_errors(capsys, tmp_path, source):
    cfg = json.loads((source / "config.json").read_text())
    (source / "config.json").write_text(json.dumps({**cfg, "quantization": {"group_size": 64, "bits": 4}}))
    assert "already quantized;" in _fails_cleanly(capsys, tmp_path / "a", source)
    assert _fails_cleanly(capsys, tmp_path / "b", source, "--recipe", "nope") == (
        "magimac: unknown recipe 'nope' (known: uniform, mlx-vlm, mixed_2_6, mixed_3_4, mixed_3_6, mixed_4_6; "
        "see --list-recipes)")
    assert "fixes its own bits" in _fails_cleanly(capsys, tmp_path / "c", source, "--recipe", "mixed_3_6", "--bits", "8")


def test_a_new_run_sweeps_partials_of_dead_runs_beside_its_output(capsys, tmp_path, source):
    """Conversions killed with SIGKILL leave `.NAME.partial-PID-*`; the next run into that folder
    removes every one whose process is gone, of any output, but never the partial of a live run,
    another output's old copy (it may be that model's only copy) or a name `make` does not give;
    and it notes the folder for `magimac doctor`."""
    import subprocess
    import sys

    from magimac.core import staging

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # its pid now names no process
    out_parent = tmp_path / "outputs"
    out_parent.mkdir()
    dead = out_parent / f".out.partial-{gone.pid}-k1lled9x"
    live = out_parent / f".out.partial-{os.getpid()}-runn1ng0"
    other = out_parent / f".other.partial-{gone.pid}-n0tm1ne0"
    old_copy = out_parent / f".other.old-{gone.pid}-0ldc0py0"
    foreign = out_parent / ".mine.partial-not-a-pid"
    for d in (dead, live, other, old_copy, foreign):
        d.mkdir()
        (d / SHARD1).write_bytes(b"half written")
    rc, _ = _quantize(capsys, str(source), "--out", str(out_parent / "out"))
    assert rc == 0
    assert sorted(p.name for p in out_parent.iterdir()) == sorted(["out", live.name, old_copy.name, foreign.name])
    assert (live / SHARD1).read_bytes() == b"half written"
    assert staging.remembered_places()[0] == out_parent


def test_a_partial_whose_pid_now_names_a_newer_process_is_stale(tmp_path):
    """After a reboot (or pid reuse) the pid in a partial's name may run again: a process that
    started after the directory last changed is not its owner."""
    import psutil

    from magimac.core import staging

    prefix = ".out.partial-"
    parent = tmp_path / "outputs"
    parent.mkdir()
    mine = staging.make(parent, prefix)
    assert mine.name.startswith(f"{prefix}{os.getpid()}-") and staging.owner_alive(mine, prefix)
    before_me = psutil.Process().create_time() - 3600
    os.utime(mine, (before_me, before_me))  # written an hour before this process started
    assert not staging.owner_alive(mine, prefix)
    foreign = parent / f"{prefix}somebody"  # not named by `make`: never judged stale
    foreign.mkdir()
    assert staging.sweep_stale(parent, prefix) == [mine]
    assert [p.name for p in parent.iterdir()] == [foreign.name]
