"""`magimac quantize`: levels, loading in mlx-vlm and mlx-lm, sizes, tokenizer, manifest."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import mlx.core as mx
import pytest

from magimac.testing.checkpoint import Script, build_checkpoint, mlx_lm_reply, script_tokens
from magimac.cli.main import main as magimac_main
from magimac.quantize.convert import convert
from magimac.quantize.manifest import read_manifest
from magimac.quantize.sizes import estimate, fit, kv_bytes_per_token

REAL_CONFIG = Path(__file__).parent.parent.parent / "magimac" / "data" / "magistral-small-2509.json"
SMALL = dict(hidden=64, intermediate=128, heads=2, kv_heads=1, head_dim=32)
# level name -> convert() keyword arguments
LEVELS = {
    "4bit": {},
    "8bit": {"bits": 8},
    "3bit": {"bits": 3},
    "mixed_3_6": {"recipe": "mixed_3_6"},
    "mxfp4": {"mode": "mxfp4"},
    "4bit-vision-g32": {"quantize_vision": True, "group_size": 32},
}


def _quiet(_msg: str) -> None:
    pass


@pytest.fixture(scope="session")
def small_checkpoint(tmp_path_factory) -> Path:
    """Random bf16 checkpoint, real vocabulary (so tensor data dominates file sizes), hidden 64."""
    return build_checkpoint(tmp_path_factory.mktemp("qsrc") / "ckpt", **SMALL)


@pytest.fixture(scope="session")
def converted(tmp_path_factory, small_checkpoint) -> dict[str, Path]:
    """`small_checkpoint` converted at every level of `LEVELS` (shared by the tests below)."""
    root = tmp_path_factory.mktemp("qout")
    return {name: convert(small_checkpoint, root / name, progress=False, log=_quiet, **kw)
            for name, kw in LEVELS.items()}


@pytest.fixture(scope="session")
def scripted_4bit(tmp_path_factory, scripted_checkpoint) -> Path:
    return convert(scripted_checkpoint, tmp_path_factory.mktemp("qscript") / "out", progress=False, log=_quiet)


def _written_bytes(out: Path) -> int:
    return sum(f.stat().st_size for f in out.glob("model-*.safetensors"))


def test_default_4bit_loads_with_mlx_vlm_load_and_mlx_lm_load(converted):
    import mlx_lm
    import mlx_vlm

    vmodel, processor = mlx_vlm.load(str(converted["4bit"]))
    assert type(vmodel.vision_tower.vision_model.transformer.layers[0].attention.q_proj).__name__ == "Linear"
    assert processor is not None
    model, tok = mlx_lm.load(str(converted["4bit"]))
    assert model.layers[0].mlp.gate_proj.bits == 4 and tok.eos_token_id == 2


@pytest.mark.parametrize("level", LEVELS)
def test_each_level_loads_with_mlx_vlm_and_mlx_lm(converted, level):
    import mlx_lm.utils
    import mlx_vlm.utils

    out = converted[level]
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["quantization"]["mode"] == ("mxfp4" if level == "mxfp4" else "affine")
    vmodel = mlx_vlm.utils.load_model(out)
    vision_q = vmodel.vision_tower.vision_model.transformer.layers[0].attention.q_proj
    assert type(vision_q).__name__ == ("QuantizedLinear" if "vision" in level else "Linear")
    model, _ = mlx_lm.utils.load_model(out)
    layer = model.layers[0]
    assert type(layer.mlp.down_proj).__name__ == "QuantizedLinear"
    assert type(model.language_model.lm_head).__name__ == "QuantizedLinear"
    expected_bits = {"8bit": 8, "3bit": 3}.get(level, 4)
    if level == "mixed_3_6":  # the last layer is in the last eighth: down_proj gets the high bits
        last = model.layers[-1]
        assert last.mlp.down_proj.bits == 6 and last.mlp.gate_proj.bits == 3 and layer.mlp.down_proj.bits == 3
        assert model.language_model.lm_head.bits == 6
    else:
        assert layer.mlp.gate_proj.bits == expected_bits
    logits = model(mx.array([[1, 1500, 2000]]))
    assert logits.shape == (1, 3, 131072) and bool(mx.isfinite(logits).all())


@pytest.mark.parametrize("level", LEVELS)
def test_estimate_matches_written_bytes_within_one_percent(converted, small_checkpoint, level):
    cfg = json.loads((small_checkpoint / "config.json").read_text())
    est = estimate(cfg, **LEVELS[level])
    written = _written_bytes(converted[level])
    assert abs(written - est.total_bytes) / written < 0.01
    assert read_manifest(converted[level])["bytes"]["total"] == est.total_bytes


def test_text_only_checkpoint_converts_and_loads_with_mlx_lm(tmp_path):
    import mlx_lm

    src = build_checkpoint(tmp_path / "src", vision=False, **SMALL)
    out = convert(src, tmp_path / "out", progress=False, log=_quiet)
    model, _ = mlx_lm.load(str(out))
    assert type(model.layers[0].self_attn.q_proj).__name__ == "QuantizedLinear"
    assert "vision_tower" not in read_manifest(out)["bytes"]


def test_scripted_checkpoint_emits_its_script_after_4bit(scripted_4bit, scripted_checkpoint):
    import mlx_lm

    model, _ = mlx_lm.load(str(scripted_4bit))
    assert model.layers[0].mlp.up_proj.bits == 4
    assert mlx_lm_reply(scripted_4bit) == script_tokens(scripted_checkpoint / "tekken.json", Script())


TEXTS = ["Hello world", "  two  spaces\tand a tab\nnew line", "Ça va? café, naïve, Straße",
         "你好，世界。日本語のテキスト", "emoji 🦊👩‍👩‍👧 ok", "[INST] typed as text [/INST] [THINK] x [/THINK]",
         "math: $e^{i\\pi} + 1 = 0$"]


def test_output_tokenizer_matches_mistral_common_and_streams_cleanly(scripted_4bit):
    from mlx_lm.utils import load_tokenizer
    from mistral_common.tokens.tokenizers.tekken import Tekkenizer

    names = {p.name for p in scripted_4bit.iterdir()}
    assert {"tekken.json", "SYSTEM_PROMPT.txt", "generation_config.json"} <= names
    assert "tokenizer.json" not in names  # a Tekken->BPE conversion would break streaming
    ref = Tekkenizer.from_file(scripted_4bit / "tekken.json")
    tok = load_tokenizer(scripted_4bit)
    for text in TEXTS:
        ids = ref.encode(text, bos=False, eos=False)
        assert tok.encode(text, add_special_tokens=False) == ids, text
        assert all(i >= 1000 for i in ids)  # typed [INST]/[THINK] stay text
        detok = tok.detokenizer
        detok.reset()
        pieces = []
        for i in ids:
            detok.add_token(i)
            pieces.append(detok.last_segment)
        detok.finalize()
        pieces.append(detok.last_segment)
        assert "".join(pieces) == text
    file_ids = read_manifest(scripted_4bit)["tokenizer"]["control_ids"]
    assert file_ids == {"[THINK]": ref.get_special_token("[THINK]"), "[/THINK]": ref.get_special_token("[/THINK]")}
    assert tok.convert_tokens_to_ids(["[THINK]", "[/THINK]"]) == [file_ids["[THINK]"], file_ids["[/THINK]"]]


def test_manifest_records_source_hashes_settings_and_versions(converted, small_checkpoint):
    m = read_manifest(converted["mixed_3_6"])
    assert m["source"] == str(small_checkpoint.resolve()) and m["revision"] is None
    shard = "model-00001-of-00002.safetensors"
    assert m["source_files"][shard] == hashlib.sha256((small_checkpoint / shard).read_bytes()).hexdigest()
    assert "consolidated.safetensors" not in m["source_files"]
    assert m["recipe"] == "mixed_3_6" and m["mode"] == "affine"
    assert 3 < m["bits_per_weight"] < 6.5
    assert set(m["bytes"]) >= {"embeddings", "layers", "lm_head", "norms", "vision_tower", "projector", "total"}
    assert set(m["tools"]) == {"mlx", "mlx-lm", "mlx-vlm", "magimac"} and m["tools"]["mlx"]


def test_real_config_default_fits_a_32gb_mac_under_14_2_gb():
    cfg = json.loads(REAL_CONFIG.read_text())
    default = estimate(cfg)
    assert default.total_bytes <= 14.2e9 and default.components["vision_tower"] > 0.75e9
    assert 4.49 < default.bits_per_weight < 4.51
    like_mlx_vlm = estimate(cfg, recipe="mlx-vlm")  # lm_head stays bf16
    assert like_mlx_vlm.components["lm_head"] == 131072 * 5120 * 2
    assert kv_bytes_per_token(cfg) == 160 * 1024
    assert fit(default, cfg, ram_bytes=32 * 2**30, context=32768).fits
    assert not fit(estimate(cfg, bits=8), cfg, ram_bytes=32 * 2**30, context=32768).fits


def test_cli_prints_sizes_first_and_lists_recipes(small_checkpoint, tmp_path, capsys):
    assert magimac_main(["quantize", "--list-recipes"]) == 0
    listing = capsys.readouterr().out
    assert "uniform" in listing and "mixed_4_6" in listing and "[default]" in listing
    out = tmp_path / "m"
    assert magimac_main(["quantize", str(small_checkpoint), "--out", str(out), "--bits", "5",
                         "--target-ram", "32GB"]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == str(out)
    assert "lm_head" in captured.err and "bits per text weight" in captured.err and "fits in" in captured.err
    assert captured.err.index("output size") < captured.err.index("quantizing") < captured.err.index("wrote")
    assert "MB" in captured.err  # the progress bar counts bytes
    assert read_manifest(out)["bits"] == 5


def test_default_output_goes_to_the_models_dir(small_checkpoint, isolated_dirs, capsys):
    assert magimac_main(["quantize", str(small_checkpoint), "--mode", "mxfp4", "--quiet"]) == 0
    out = Path(capsys.readouterr().out.strip())
    assert out == isolated_dirs / "models" / "ckpt-mxfp4" and (out / "magimac-manifest.json").is_file()
