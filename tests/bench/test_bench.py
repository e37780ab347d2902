"""`magimac bench`: end to end on a random-weight checkpoint, and its quality numbers."""

from __future__ import annotations

import contextlib
import csv
import io
import json
from dataclasses import fields
from pathlib import Path

import pytest

from magimac.models import chips
from magimac.engine import evaluate
from magimac.bench.measure import Row
from magimac.bench.variants import plan_variants
from magimac.cli.main import main
from magimac.engine.speed import SpeedSample


@pytest.fixture(scope="module")
def shared_data(tmp_path_factory) -> Path:
    """One data directory for the module, so later runs reuse earlier conversions."""
    return tmp_path_factory.mktemp("data")


def _bench(ckpt, eval_dir, out, *extra) -> int:
    return main(["bench", str(ckpt), "--prompt-lengths", "8,16", "--decode-tokens", "4",
                 "--eval-dir", str(eval_dir), "--chunk-len", "32", "--repeats", "2",
                 "--out", str(out), *extra])


@pytest.fixture(scope="module")
def two_levels(ckpt, eval_dir, shared_data, tmp_path_factory):
    """One bench run at 8 and 3 bits: (report dict, out dir, stdout, stderr, bytes of the
    two caches after it)."""
    out = tmp_path_factory.mktemp("out")
    mp = pytest.MonkeyPatch()  # module scope: conftest's per-test isolation is not active yet
    mp.setenv("MAGIMAC_DATA_DIR", str(shared_data))
    for var in ("MAGIMAC_CONFIG_DIR", "MAGIMAC_MODELS_DIR", "HF_HOME"):
        mp.setenv(var, str(tmp_path_factory.mktemp(var.lower())))
    mp.setenv("HF_HUB_OFFLINE", "1")
    buf, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(err):
        rc = _bench(ckpt, eval_dir, out, "--levels", "8,3", "--bandwidth", "100")
    mp.undo()
    assert rc == 0, buf.getvalue()
    from magimac.bench.reference import tree_bytes

    sizes = {sub: tree_bytes(shared_data / "bench" / sub) for sub in ("reference", "variants")}
    # off a terminal there is no live bar: each step is a log line on stderr instead
    for step in ("converting 8bit", "converting 3bit", "reference log-probs", "measuring 8bit: quality", "writing outputs"):
        assert f"magimac bench: {step}" in err.getvalue(), err.getvalue()
    return json.loads((out / "bench.json").read_text()), out, buf.getvalue(), err.getvalue(), sizes


def test_two_levels_end_to_end_writes_every_field(two_levels):
    report, out, stdout, _err, _sizes = two_levels
    rows = report["variants"]
    assert [r["label"] for r in rows] == ["8bit", "3bit"]
    assert report["reference"]["label"] == "bf16"  # the source fits in RAM, so it is the reference
    row_fields = {f.name for f in fields(Row)}
    quality_fields = {f.name for f in fields(evaluate.Quality)}
    speed_fields = {f.name for f in fields(SpeedSample)}
    for r in rows:
        assert set(r) == row_fields
        assert set(r["quality"]) == quality_fields
        assert [s["prompt_tokens"] for s in r["speed"]] == [8, 16]
        for s in r["speed"]:
            assert set(s) == speed_fields and s["decode_tokens"] == 4
        assert r["disk_bytes"] > 0 and r["memory_bytes"] > 0 and r["peak_memory_bytes"] > 0
        assert r["ceiling_tps"] == pytest.approx(100e9 / r["bytes_per_token"])
        assert r["ceiling_share"] == pytest.approx(r["decode_tps"] / r["ceiling_tps"])
        assert r["quality"]["tokens"] == report["eval_set"]["scored_tokens"] > 0
    assert rows[0]["memory_bytes"] > rows[1]["memory_bytes"]
    assert 8 < rows[0]["bits_per_weight"] < 9 and 3 < rows[1]["bits_per_weight"] < 4
    with open(out / "bench.csv") as f:
        assert [r["label"] for r in csv.DictReader(f)] == ["8bit", "3bit"]
    for png in ("quality_vs_size.png", "speed_vs_size.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
    assert "3bit" in stdout and "KL mean" in stdout and "decode tokens/s" in stdout


def test_kl_grows_from_8_to_3_bits(two_levels):
    q8, q3 = (r["quality"] for r in two_levels[0]["variants"])
    assert 0 < q8["kl_mean"] < q3["kl_mean"]
    assert q8["kl_p99"] < q3["kl_p99"]
    assert q8["top1_agreement"] > q3["top1_agreement"]


def test_variant_against_itself_has_zero_kl_and_reuses_conversion(
        two_levels, ckpt, eval_dir, shared_data, tmp_path, monkeypatch):
    monkeypatch.setenv("MAGIMAC_DATA_DIR", str(shared_data))
    eight = Path(two_levels[0]["variants"][0]["path"])
    stamp = (eight / "config.json").stat().st_mtime_ns
    assert _bench(ckpt, eval_dir, tmp_path, "--levels", "8", "--reference", str(eight),
                  "--no-plots") == 0
    row = json.loads((tmp_path / "bench.json").read_text())["variants"][0]
    assert Path(row["path"]) == eight and row["is_reference"]
    assert (eight / "config.json").stat().st_mtime_ns == stamp  # reused, not converted again
    q = row["quality"]
    assert q["kl_mean"] == q["kl_max"] == 0.0
    assert q["top1_agreement"] == 1.0 and q["ppl"] == q["ppl_ref"]


def test_perplexity_matches_direct_computation(ckpt, eval_dir, tmp_path):
    import mlx.core as mx
    import mlx_lm
    from mlx_lm.perplexity import eval_ppl

    model, tok = mlx_lm.load(str(ckpt))
    texts = [t for t in evaluate.load_eval_texts(tok, eval_dir) if t.name == "prose-en"]
    chunks = evaluate.make_chunks(texts, chunk_len=10_000)
    ref = evaluate.write_reference(model, chunks, tmp_path / "ref", label="bf16")
    q = evaluate.compare(model, ref, chunks)
    ids = [tok.bos_token_id, *tok.encode((eval_dir / "prose-en.txt").read_text(), add_special_tokens=False)]
    direct, _se = eval_ppl(model, mx.array([ids]), batch_size=1)
    assert q.tokens == len(ids) - 1
    assert q.ppl == pytest.approx(direct, rel=1e-4)
    assert q.by_text["prose-en"]["ppl"] == pytest.approx(direct, rel=1e-4)


def test_reasoning_traces_use_control_tokens_and_text_stays_text(ckpt, eval_dir):
    from mlx_lm.utils import load_tokenizer

    tok = load_tokenizer(ckpt)
    trace = next(t for t in evaluate.load_eval_texts(tok, eval_dir) if t.category == "reasoning")
    think, end_think, inst = (tok.convert_tokens_to_ids(s) for s in ("[THINK]", "[/THINK]", "[INST]"))
    assert trace.ids.count(think) == 1 and trace.ids.count(end_think) == 1
    assert trace.ids.count(inst) == 1  # the "[INST]" typed inside the reasoning is plain text
    assert trace.ids[0] == tok.bos_token_id and trace.ids[-1] == tok.eos_token_id


def test_bundled_eval_set_covers_languages_code_math_reasoning(ckpt):
    from mlx_lm.utils import load_tokenizer

    texts = evaluate.load_eval_texts(load_tokenizer(ckpt))
    cats = {t.category for t in texts}
    assert {"prose", "code", "math", "reasoning"} <= cats
    assert len([t for t in texts if t.category == "prose"]) >= 5


@pytest.mark.parametrize("argv, message", [
    (["--levels", "7"], "--levels: '7'"),
    (["--levels", "4", "--prompt-lengths", "0"], "--prompt-lengths"),
    (["--levels", "4", "--eval-dir", "/nonexistent"], "--eval-dir"),
    (["--levels", "4", "--recipes", "nope"], "--recipes: unknown recipe 'nope'"),
])
def test_bad_input_is_one_line_error(ckpt, tmp_path, capsys, argv, message):
    assert main(["bench", str(ckpt), "--out", str(tmp_path / "o"), *argv]) == 1
    err = capsys.readouterr().err
    assert err.startswith("magimac: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "o").exists()


def test_recipes_give_one_variant_per_level_and_one_per_mixed_recipe():
    variants = plan_variants([None, 4, 8], ["uniform", "mixed_3_6"])
    assert [(v.label, v.bits, v.recipe) for v in variants] == [
        ("bf16", None, None), ("8bit-uniform", 8, "uniform"), ("4bit-uniform", 4, "uniform"),
        ("mixed_3_6", None, "mixed_3_6")]
    assert [v.label for v in plan_variants([3, 6], [None])] == ["6bit", "3bit"]


def test_methods_give_variants_side_by_side_at_each_level(tmp_path, capsys):
    variants = plan_variants([None, 4, 3], [None], ["rtn", "gptq", "awq"])
    assert [(v.label, v.bits, v.method) for v in variants] == [
        ("bf16", None, "rtn"), ("4bit", 4, "rtn"), ("4bit-gptq", 4, "gptq"), ("4bit-awq", 4, "awq"),
        ("3bit", 3, "rtn"), ("3bit-gptq", 3, "gptq"), ("3bit-awq", 3, "awq")]
    assert main(["bench", str(tmp_path), "--methods", "rtn,best", "--out", str(tmp_path / "o")]) == 1
    assert "--methods: unknown method 'best'" in capsys.readouterr().err


def test_quantized_source_is_refused(two_levels, tmp_path, capsys):
    eight = two_levels[0]["variants"][0]["path"]
    assert main(["bench", eight, "--levels", "4", "--out", str(tmp_path / "o")]) == 1
    assert "already quantized" in capsys.readouterr().err


def test_chip_table_gives_bandwidth():
    assert chips.find_chip("Apple M4 Pro").bandwidth_gbs == 273
    assert chips.find_chip("Apple M4 Max") is None  # two configurations: needs the GPU cores
    assert chips.find_chip("Apple M4 Max", gpu_cores=40).bandwidth_gbs == 546
    assert chips.find_chip("Intel Xeon") is None
    assert all(c.source and c.bandwidth_gbs > 0 for c in chips.CHIPS)


def test_task_accuracy_judges_the_answer_part_only(scripted_checkpoint):
    import mlx_lm

    from magimac.testing.checkpoint import DEFAULT_SCRIPT_REASONING
    from magimac.engine import tasks

    model, tok = mlx_lm.load(str(scripted_checkpoint))
    # "Hello" is in the scripted answer, "French" only in its reasoning
    problems = [("Say hello", "Hello"), ("Say hello", "French")]
    result = tasks.accuracy(model, tok, scripted_checkpoint, problems,
                            lambda text, expected: expected in text, max_tokens=200)
    assert result["correct"] == 1 and result["accuracy"] == 0.5 and result["unfinished"] == 0
    reasoning_len = len(tok.encode(DEFAULT_SCRIPT_REASONING, add_special_tokens=False))
    assert result["mean_reasoning_tokens"] == reasoning_len


def test_chip_detection_on_a_mac_uses_gpu_cores_when_needed(monkeypatch):
    from magimac.models import hardware

    monkeypatch.setattr(chips.platform, "system", lambda: "Darwin")
    monkeypatch.setattr(hardware, "chip_name", lambda: "Apple M4 Max")
    monkeypatch.setattr(chips, "_gpu_cores", lambda: 32)
    assert chips.detect_chip()[1].bandwidth_gbs == 410
    monkeypatch.setattr(hardware, "chip_name", lambda: "Apple M2 Pro")
    assert chips.detect_chip() == ("Apple M2 Pro", chips.find_chip("M2 Pro"))


def test_help_lists_the_options(capsys):
    with pytest.raises(SystemExit) as e:
        main(["bench", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for opt in ("--levels", "--recipes", "--reference", "--out", "--tasks", "--bandwidth"):
        assert opt in out


def test_quality_is_broken_down_by_category(two_levels):
    report, _out, stdout, _err, _sizes = two_levels
    q3 = report["variants"][1]["quality"]
    assert set(q3["by_category"]) == {"prose", "reasoning"}
    assert sum(c["tokens"] for c in q3["by_category"].values()) == q3["tokens"]
    weighted = sum(c["kl_mean"] * c["tokens"] for c in q3["by_category"].values()) / q3["tokens"]
    assert weighted == pytest.approx(q3["kl_mean"])
    assert "by category" in stdout


def test_tasks_end_to_end_report_accuracy_and_reasoning_length(scripted_checkpoint, eval_dir,
                                                               tmp_path, capsys):
    from mlx_lm.utils import load_tokenizer

    from magimac.testing.checkpoint import DEFAULT_SCRIPT_REASONING

    assert _bench(scripted_checkpoint, eval_dir, tmp_path, "--levels", "bf16", "--tasks", "2",
                  "--task-max-tokens", "64", "--no-plots") == 0
    row = json.loads((tmp_path / "bench.json").read_text())["variants"][0]
    assert row["is_reference"] and row["quality"]["kl_max"] == 0.0
    tok = load_tokenizer(scripted_checkpoint)
    reasoning_len = len(tok.encode(DEFAULT_SCRIPT_REASONING, add_special_tokens=False))
    # the scripted model always gives its one answer (no number): every problem is wrong
    tasks = row["tasks"]
    assert (tasks["problems"], tasks["correct"], tasks["accuracy"], tasks["unfinished"]) == (2, 0, 0.0, 0)
    assert tasks["mean_reasoning_tokens"] == reasoning_len and tasks["mean_answer_tokens"] > 0
    assert "tasks %" in capsys.readouterr().out


SCALARS = ("tokens", "ppl", "ppl_ref", "kl_mean", "kl_median", "kl_p99", "kl_max", "top1_agreement",
           "delta_p_mean", "delta_p_rms")


def test_an_interrupted_or_damaged_reference_is_computed_again(two_levels, ckpt, eval_dir, tmp_path,
                                                               monkeypatch, capsys):
    """Ctrl-C while the reference log-probs are computed, then a cache that lost a file and a
    staging directory left by a killed run: each next run recomputes, with the numbers of an
    uninterrupted run (`two_levels`, another data directory)."""
    import subprocess
    import sys

    from magimac.core import paths

    real, calls = evaluate.log_probs, []

    def interrupted(model, ids):
        calls.append(ids)
        if len(calls) == 2:  # after the first chunk of the reference
            raise KeyboardInterrupt
        return real(model, ids)

    monkeypatch.setattr(evaluate, "log_probs", interrupted)
    assert _bench(ckpt, eval_dir, tmp_path / "a", "--levels", "8", "--no-plots") == 130
    monkeypatch.setattr(evaluate, "log_probs", real)
    refs = paths.data_dir() / "bench" / "reference"
    assert list(refs.iterdir()) == []  # nothing half-written to trust

    want = two_levels[0]["variants"][0]["quality"]

    def run_and_check(out):
        assert _bench(ckpt, eval_dir, out, "--levels", "8", "--no-plots") == 0
        got = json.loads((out / "bench.json").read_text())["variants"][0]["quality"]
        assert {k: got[k] for k in SCALARS} == pytest.approx({k: want[k] for k in SCALARS}, rel=1e-6)

    run_and_check(tmp_path / "b")
    [ref] = refs.iterdir()
    # damage: a chunk's file gone (as a half-finished removal leaves it); a killed run's staging
    (ref / "chunk-0001.npy").unlink()
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    stale = refs / f"{ref.name}.tmp-{gone.pid}-k1lled00"
    stale.mkdir()
    (stale / "chunk-0000.npy").write_bytes(b"half")
    run_and_check(tmp_path / "c")
    assert sorted(refs.iterdir()) == [ref] and (ref / "chunk-0001.npy").is_file()


def test_long_steps_show_how_far_they_are_and_the_time_left(two_levels):
    """Off a terminal, every unit of a long step is a line on stderr: the reference and each
    variant's quality per chunk, speed per prompt length, with an estimate once one is done."""
    err = two_levels[3]
    chunks = two_levels[0]["eval_set"]["chunks"]
    assert chunks >= 3
    assert f"magimac bench: reference log-probs (bf16): 1/{chunks} chunk" in err
    for label in ("8bit", "3bit"):
        assert f"magimac bench: loading {label}: 1/1" in err
        assert f"magimac bench: measuring {label}: speed: 1/2 (8-token prompt), about" in err
        assert f"magimac bench: measuring {label}: quality: {chunks}/{chunks} chunk" in err
        assert f"magimac bench: measuring {label}: quality: 1/{chunks} chunk, about" in err
        assert " s left" in err.split(f"measuring {label}: quality: 1/")[1].splitlines()[0]


def test_the_end_names_the_caches_their_size_and_how_to_clear_them(two_levels, shared_data):
    from magimac.core.units import format_bytes

    stdout, sizes = two_levels[2], two_levels[4]
    assert sizes["reference"] > 0 and sizes["variants"] > 0
    for name, sub in (("reference log-probs", "reference"), ("converted variants", "variants")):
        d = shared_data / "bench" / sub
        assert f"cache: {name} in {d} ({format_bytes(sizes[sub])})" in stdout
    assert "magimac bench --clear-cache" in stdout


def test_ctrl_c_during_a_measurement_leaves_no_temporary_files(ckpt, eval_dir, tmp_path,
                                                               monkeypatch, capsys):
    """Ctrl-C while a variant is scored: exit 130, the caches hold only complete entries
    (the conversion and the reference, both usable by the next run) and no temporary file."""
    from magimac.core import paths
    from magimac.models.store import is_model_dir

    real = evaluate.compare

    def interrupted(model, reference, chunks, advance):
        advance()
        raise KeyboardInterrupt

    monkeypatch.setattr(evaluate, "compare", interrupted)
    assert _bench(ckpt, eval_dir, tmp_path / "out", "--levels", "8", "--no-plots") == 130
    monkeypatch.setattr(evaluate, "compare", real)
    root = paths.data_dir() / "bench"
    [variant] = (root / "variants").iterdir()
    [ref] = (root / "reference").iterdir()
    assert is_model_dir(variant) and (ref / "meta.json").is_file()
    leftovers = [p for p in root.rglob("*") if ".tmp" in p.name or p.name.startswith(".")]
    assert leftovers == []
    assert [p for p in (tmp_path / "out").iterdir() if ".tmp" in p.name] == []
    stamp = (ref / "meta.json").stat().st_mtime_ns
    capsys.readouterr()
    assert _bench(ckpt, eval_dir, tmp_path / "again", "--levels", "8", "--no-plots") == 0
    assert (ref / "meta.json").stat().st_mtime_ns == stamp  # the stored reference was reused
    assert "reference log-probs (bf16): 1/" in capsys.readouterr().err


def test_clear_cache_removes_the_caches_and_keeps_the_results(tmp_path, capsys):
    from magimac.core import paths

    root = paths.data_dir() / "bench"
    for sub in ("variants/ckpt-8bit-abc", "reference/0123", "runs/20250101-000000"):
        (root / sub).mkdir(parents=True)
        (root / sub / "f.bin").write_bytes(b"x" * 1500)
    assert main(["bench", "--clear-cache"]) == 0
    out = capsys.readouterr().out
    assert f"removed reference log-probs: {root / 'reference'} (1.5 KB)" in out
    assert f"removed converted variants: {root / 'variants'} (1.5 KB)" in out
    assert sorted(p.name for p in root.iterdir()) == ["runs"]


def test_no_source_and_no_clear_cache_is_one_line(capsys):
    assert main(["bench"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("magimac: give the SOURCE") and err.count("\n") == 1


def test_clear_cache_with_no_caches_says_nothing_to_remove(capsys):
    from magimac.core import paths

    root = paths.data_dir() / "bench"
    assert main(["bench", "--clear-cache"]) == 0
    out = capsys.readouterr().out
    assert "removed" not in out and "(0 B)" not in out
    assert out.strip() == f"nothing to remove: no bench caches under {root}", out
