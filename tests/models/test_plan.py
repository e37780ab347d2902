"""`magimac plan`: sizes per level against shared/MAGISTRAL.md and against what `magimac
quantize` writes; the recommendation for a 32 GB Mac; the engine's fit check."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from magimac.cli.main import main
from magimac.core.units import GB, HEADROOM_FRACTION, parse_size
from magimac.models import hardware, levels, plan
from magimac.models.advice import first_run_advice
TEXT = ("embeddings", "layers", "norms", "lm_head")
# shared/MAGISTRAL.md, "Memory on a Mac": text decoder at group size 64, GB
MAGISTRAL_TEXT_GB = {"4bit": 13.3, "5bit": 16.2, "6bit": 19.2, "8bit": 25.1}


def plan_json(capsys, *args) -> dict:
    capsys.readouterr()
    assert main(["plan", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_sizes_of_magistral_small_match_the_arithmetic(capsys):
    p = plan_json(capsys, "magistral-small-1.2", "--ram", "32GB")
    rows = {r["level"]: r for r in p["rows"] if r["recipe"] == "uniform"}
    for level, gb in MAGISTRAL_TEXT_GB.items():
        text = sum(rows[level]["components"][c] for c in TEXT) / GB
        assert text == pytest.approx(gb, rel=0.01), level
        assert rows[level]["components"]["vision_tower"] / GB == pytest.approx(0.8, rel=0.01)
        assert rows[level]["bits_per_weight"] == pytest.approx(int(level[0]) + 0.5, rel=0.01)
    # KV cache: 160 KiB per token in 16-bit; 5.4 GB at 32K; 8-bit about half, 4-bit about a quarter
    kv = p["kv_bytes_per_token"]
    assert kv["16"] == 160 * 1024
    assert rows["4bit"]["kv_bytes"]["16"] / GB == pytest.approx(5.4, rel=0.01)
    assert 0.5 <= kv["8"] / kv["16"] <= 0.55 and 0.25 <= kv["4"] / kv["16"] <= 0.3


def test_a_32gb_mac_gets_4bit_with_at_least_32k_context(capsys):
    p = plan_json(capsys, "--ram", "32GB")
    rec = p["recommendation"]
    assert p["model"] == "magistral-small-2509"
    assert rec["level"] == "4bit" and rec["context"] >= 32768 and rec["kv_bits"] == 16
    assert rec["pull_command"] == "magimac pull magistral-small-2509 --quant 4bit"
    assert rec["weights_bytes"] + rec["kv_bytes"] <= p["budget_bytes"] < p["hardware"]["gpu_limit"]
    rows = {r["level"]: r for r in p["rows"] if r["recipe"] == "uniform"}
    assert rows["4bit"]["fits"]["16"] and not rows["8bit"]["fits"]["4"]


def test_recommendation_follows_memory(capsys):
    small = plan_json(capsys, "--ram", "16GB")["recommendation"]
    big = plan_json(capsys, "--ram", "64GB")["recommendation"]
    assert small["level"] in plan.FALLBACK_LEVELS
    assert big["level"] == "8bit" and big["context"] > 32768
    tiny = plan.make_plan(None, ram=parse_size("8GB"))
    assert tiny.recommendation is None


def test_plan_table_names_the_recommendation(capsys):
    assert main(["plan", "--ram", "32GB", "--context", "32k"]) == 0
    out = capsys.readouterr().out
    assert "recommendation:" in out and "magimac pull magistral-small-2509 --quant 4bit" in out
    assert "mixed_4_6" in out and "mxfp4" in out


@pytest.mark.parametrize("args, message", [
    (["--ram", "lots"], "--ram: cannot read the size 'lots'"),
    (["--context", "long"], "cannot read context 'long'"),
    (["no-such-model"], "unknown model 'no-such-model'"),
])
def test_bad_input_is_one_line(args, message, capsys):
    assert main(["plan", *args]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("magimac: ") and message in err and "\n" not in err


@pytest.fixture(scope="module")
def conversions(random_checkpoint, tmp_path_factory):
    """The random test checkpoint converted at several levels: level spec -> output dir."""
    from magimac.quantize.convert import convert

    out = {}
    for spec in (levels.spec_for_level("4bit"), levels.spec_for_level("8bit"), levels.spec_for_level("mxfp4"),
                 levels.LevelSpec("mixed_3_6", recipe="mixed_3_6")):
        d = tmp_path_factory.mktemp("conv") / spec.level
        out[spec] = convert(random_checkpoint, d, bits=spec.bits, group_size=spec.group_size, mode=spec.mode,
                            recipe=spec.recipe, progress=False, log=lambda s: None)
    return out


def test_sizes_match_the_bytes_quantize_writes(random_checkpoint, conversions, capsys):
    p = plan_json(capsys, str(random_checkpoint))
    rows = {(r["level"], r["recipe"]): r for r in p["rows"]}
    for spec, d in conversions.items():
        written = sum(f.stat().st_size for f in d.glob("*.safetensors"))
        assert rows[(spec.level, spec.recipe)]["weights_bytes"] == pytest.approx(written, rel=0.01), spec.level


def test_check_fits_picks_context_and_kv_bits(conversions):
    d = conversions[levels.spec_for_level("4bit")]
    weights = plan.weights_bytes_on_disk(d)
    cfg = json.loads((d / "config.json").read_text())
    per16 = levels.kv_bytes_per_token(cfg, 16)
    hw = hardware.detect()
    roomy = replace(hw, gpu_limit=10 * GB)
    c = plan.check_fits(d, hw=roomy)
    assert c.fits and c.kv_bits is None and c.context_length == levels.model_max_context(cfg)
    # room for 16K tokens of 16-bit KV: the plan quantizes the cache to reach 32K
    tight = replace(hw, gpu_limit=int((weights + 16 * 1024 * per16) / (1 - HEADROOM_FRACTION)))
    c = plan.check_fits(d, hw=tight)
    assert c.kv_bits in (8, 4) and c.context_length >= 32768
    c = plan.check_fits(d, context_length=8192, kv_bits=16, hw=tight)
    assert c.kv_bits is None and c.context_length == 8192 and c.weights_bytes + c.kv_bytes <= c.budget_bytes


def test_check_fits_refuses_with_the_fix_unless_forced(conversions):
    d = conversions[levels.spec_for_level("8bit")]
    weights = plan.weights_bytes_on_disk(d)
    hw = replace(hardware.detect(), gpu_limit=int(weights / (1 - HEADROOM_FRACTION)) + 1024 * 1024)
    with pytest.raises(plan.DoesNotFit) as e:
        plan.check_fits(d, context_length=131072, kv_bits=16, hw=hw)
    msg = str(e.value)
    assert "\n" not in msg and d.name in msg and "--context" in msg and "--force" in msg
    forced = plan.check_fits(d, context_length=131072, kv_bits=16, force=True, hw=hw)
    assert forced.forced and not forced.fits and forced.context_length == 131072
    hopeless = replace(hw, gpu_limit=weights // 2)
    with pytest.raises(plan.DoesNotFit, match="smaller level"):
        plan.check_fits(d, hw=hopeless)


def test_first_run_advice_offers_the_recommendation():
    advice = first_run_advice(hardware.assumed_mac(parse_size("32GB")))
    assert advice.model == "magistral-small-2509"
    assert advice.recommendation.level == "4bit"
    assert "magimac pull magistral-small-2509 --quant 4bit" in advice.message
    assert advice.download_bytes == advice.recommendation.weights_bytes


def test_the_engine_uses_the_plan(conversions, monkeypatch, capsys):
    """`magimac chat` refuses a model that will not fit, with the fix; the engine takes its
    context limit and KV bits from the plan."""
    from magimac.engine.worker import Engine

    d = conversions[levels.spec_for_level("4bit")]
    weights = plan.weights_bytes_on_disk(d)
    cfg = json.loads((d / "config.json").read_text())
    hw = hardware.detect()
    monkeypatch.setattr(hardware, "detect", lambda *a, **k: replace(hw, gpu_limit=weights))
    assert main(["chat", "--model", str(d), "Hi"]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("magimac: ") and "needs" in err and "--force" in err
    # room for 16K tokens of 16-bit KV: the engine gets a quantized cache and at least 32K
    budget = weights + 16 * 1024 * levels.kv_bytes_per_token(cfg, 16)
    monkeypatch.setattr(hardware, "detect",
                        lambda *a, **k: replace(hw, gpu_limit=int(budget / (1 - HEADROOM_FRACTION))))
    engine = Engine(d)
    engine.start()
    try:
        loaded = engine.wait_loaded()
        assert engine.kv_bits in (8, 4) and loaded.context_length >= 32768
    finally:
        engine.close()


def test_a_bundled_model_is_ready_not_pulled(capsys):
    """The demo ships inside the package: the plan says so (and whether it fits), never `pull`."""
    from magimac.models.registry import find_entry, load_registry

    demo_dir = find_entry(load_registry(), "demo").local_path()
    assert main(["plan", "demo", "--ram", "32GB"]) == 0
    out = capsys.readouterr().out
    assert "magimac pull" not in out and "--quant" not in out
    assert "bundled" in out and "magimac --model demo" in out
    assert "8bit" in out and "KV cache per token" in out  # the sizes are still shown
    p = plan_json(capsys, "demo", "--ram", "32GB")
    assert p["recommendation"] is None
    bundled = p["bundled"]
    assert bundled["path"] == str(demo_dir) and bundled["quantization"] == "bf16"
    assert bundled["fits"] and bundled["context_length"] > 0
    assert bundled["weights_bytes"] == plan.weights_bytes_on_disk(demo_dir)
    # a registry model that is pulled keeps its pull command and has no bundled entry
    p = plan_json(capsys, "magistral-small-1.2", "--ram", "32GB")
    assert p["bundled"] is None and p["recommendation"]["pull_command"].startswith("magimac pull ")


def test_a_bundled_model_whose_directory_is_gone_is_a_one_line_error(capsys, tmp_path):
    from magimac.core import paths

    paths.user_registry_file().write_text(f'[models.demo]\npath = "{tmp_path / "gone"}"\n')
    assert main(["plan", "demo"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"magimac: {tmp_path / 'gone'}: no config.json for demo") and "\n" not in err
    assert "pull" not in err


def test_plan_suggests_a_gptq_conversion_at_4_bits_and_not_at_8(capsys):
    capsys.readouterr()
    assert main(["plan", "--ram", "32GB"]) == 0
    assert "magimac quantize magistral-small-2509 --bits 4 --method gptq" in capsys.readouterr().out
    assert main(["plan", "--ram", "64GB"]) == 0
    assert "--method gptq" not in capsys.readouterr().out
