"""`magimac quantize --method gptq|awq`: calibrated conversions that stay ordinary MLX models.

Calibration here is tiny (a few samples of 64-128 tokens) to keep the suite fast; the bench
(`bench/bench_quant_methods.py`) measures the shipped defaults.
"""

from __future__ import annotations

from pathlib import Path

import mlx.core as mx
import numpy as np
import pytest

from magimac.cli.main import main as magimac_main
from magimac.quantize import affine
from magimac.quantize.convert import convert
from magimac.quantize.affine import pack_codes, quantize_clipped
from magimac.quantize.gptq import Hessian, gptq
from magimac.quantize.manifest import read_manifest
from magimac.testing.checkpoint import Script, mlx_lm_reply, script_tokens

DEMO = Path(__file__).resolve().parents[2] / "magimac" / "demo" / "model"
TINY = dict(calibration_samples=4, calibration_tokens=64)


def _quiet(_msg: str) -> None:
    pass


class _Lazy(dict):
    def __init__(self, make):
        super().__init__()
        self.make = make

    def __missing__(self, method):
        self[method] = self.make(method)
        return self[method]


@pytest.fixture(scope="module")
def scripted_calibrated(tmp_path_factory, scripted_checkpoint) -> dict[str, Path]:
    """The scripted checkpoint converted with each method on first use."""
    root = tmp_path_factory.mktemp("qcal")
    return _Lazy(lambda m: convert(scripted_checkpoint, root / m, method=m, progress=False, log=_quiet, **TINY))


@pytest.mark.parametrize("method", ["gptq", "awq"])
def test_calibrated_scripted_checkpoint_still_emits_its_script(scripted_calibrated, scripted_checkpoint, method):
    out = scripted_calibrated[method]
    assert mlx_lm_reply(out) == script_tokens(scripted_checkpoint / "tekken.json", Script())
    m = read_manifest(out)
    assert m["method"] == method and len(m["calibration"]["sha256"]) == 64
    assert m["calibration"]["samples"] == 4 and m["calibration"]["tokens_per_sample"] == 64


@pytest.mark.parametrize("method", ["gptq", "awq"])
def test_calibrated_output_loads_in_mlx_vlm_and_is_affine_4bit(scripted_calibrated, method):
    import mlx_vlm

    model, _ = mlx_vlm.load(str(scripted_calibrated[method]))
    q = model.language_model.model.layers[0].self_attn.q_proj
    assert (q.bits, q.group_size, q.mode) == (4, 64, "affine")


def test_gptq_with_an_identity_hessian_is_the_clipped_rtn_and_packs_as_mlx_does():
    rng = np.random.default_rng(0)
    w = mx.array(rng.normal(0, 0.02, (32, 256)).astype(np.float32)).astype(mx.bfloat16).astype(mx.float32)
    for bits in (2, 3, 4, 5, 6, 8):
        p = {"bits": bits, "group_size": 64}
        hess = Hessian(256)
        hess.h[:] = np.eye(256, dtype=np.float32)
        got, clipped, rtn = gptq(w, hess, p), quantize_clipped(w, p), mx.quantize(w.astype(mx.bfloat16), **GS64(bits))
        assert all(mx.array_equal(a, b).item() for a, b in zip(got, clipped))
        err = [mx.square(w - mx.dequantize(*a, **GS64(bits))).sum().item() for a in (got, rtn)]
        assert err[0] <= err[1] and (bits > 3 or err[0] < 0.95 * err[1])
        codes = rng.integers(0, 2 ** bits, (32, 256)).astype(np.uint8)
        ones, zeros = mx.ones((32, 4), dtype=mx.bfloat16), mx.zeros((32, 4), dtype=mx.bfloat16)
        unpacked = mx.dequantize(mx.array(pack_codes(codes, bits, rows=5)), ones, zeros, group_size=64, bits=bits)
        assert np.array_equal(np.asarray(unpacked.astype(mx.float32)), codes.astype(np.float32))


def GS64(bits: int) -> dict:
    return {"group_size": 64, "bits": bits}


def test_the_clipping_search_with_the_full_range_only_is_mlx_rtn(monkeypatch):
    """Factor 1 is `mx.quantize`'s own min/max grid (same scales and biases); the codes are the
    nearest on the grid as stored in bf16 (MLX rounds with its float32 scale, so a few of its
    codes are one step off), so every weight is at least as close as RTN's."""
    monkeypatch.setattr(affine, "GRID", (1.0,))
    rng = np.random.default_rng(3)
    w = mx.array(rng.normal(0, 0.02, (300, 128)).astype(np.float32)).astype(mx.bfloat16)
    for bits in (3, 4):
        got, ref = quantize_clipped(w, GS64(bits)), mx.quantize(w, **GS64(bits))
        assert [a.dtype for a in got] == [a.dtype for a in ref]
        assert mx.array_equal(got[1], ref[1]).item() and mx.array_equal(got[2], ref[2]).item()
        d = [mx.abs(mx.dequantize(q, s.astype(mx.float32), b.astype(mx.float32), **GS64(bits)) - w.astype(mx.float32))
             for q, s, b in (got, ref)]
        assert mx.all(d[0] <= d[1]).item()


def test_gptq_lowers_the_output_error_of_correlated_inputs():
    rng = np.random.default_rng(1)
    x = (rng.normal(size=(2048, 128)) @ rng.normal(size=(128, 128))).astype(np.float32)
    w = rng.normal(0, 0.02, (64, 128)).astype(np.float32)
    hess = Hessian(128)
    hess.add(mx.array(x))
    got = gptq(mx.array(w), hess, {"bits": 3, "group_size": 64})
    rtn = mx.quantize(mx.array(w).astype(mx.bfloat16), group_size=64, bits=3)
    err = [np.linalg.norm((w - np.asarray(mx.dequantize(*a, group_size=64, bits=3).astype(mx.float32))) @ x.T)
           for a in (got, rtn)]
    assert err[0] < 0.85 * err[1]


def _kl(src: Path, variants: list[Path], tmp: Path) -> list[float]:
    from magimac.engine import evaluate, measure

    chunks = evaluate.make_chunks(evaluate.load_eval_texts(measure.load_tokenizer(src)), 256)[::2]
    ref = evaluate.write_reference(measure.for_quality(measure.load(src).model), chunks, tmp / "ref", label="bf16")
    return [evaluate.compare(measure.for_quality(measure.load(v).model), ref, chunks).kl_mean for v in variants]


def test_calibrated_3bit_demo_model_is_closer_to_bf16_than_rtn(tmp_path):
    outs = [convert(DEMO, tmp_path / m, bits=3, method=m, progress=False, log=_quiet,
                    **({} if m == "rtn" else dict(calibration_samples=8, calibration_tokens=128)))
            for m in ("rtn", "gptq")]
    rtn_kl, gptq_kl = _kl(DEMO, outs, tmp_path)
    assert gptq_kl < rtn_kl
    # the embedding, which no activation reaches, is written with the clipping search: closer
    # to the bf16 table than RTN's min/max groups
    table = _embedding(DEMO).astype(mx.float32)
    err = [mx.square(_embedding(o).astype(mx.float32) - table).sum().item() for o in outs]
    assert err[1] < 0.95 * err[0]


def _embedding(path: Path) -> mx.array:
    """The text embedding table of the model at ``path`` as it computes it (dequantized)."""
    from magimac.engine import measure

    emb = measure.load(path).model.language_model.model.embed_tokens
    return emb(mx.arange(emb.weight.shape[0]))


BAD = {
    "empty": (b"", "empty calibration file"),
    "binary": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" * 8, "not UTF-8 text"),
    "short": ("@@ user\nHi\n@@ answer\nHello!\n".encode(), "too short for calibration"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_calibration_file_is_a_one_line_error(scripted_checkpoint, tmp_path, capsys, case):
    data, words = BAD[case]
    f = tmp_path / f"{case}.txt"
    f.write_bytes(data)
    out = tmp_path / "out"
    code = magimac_main(["quantize", str(scripted_checkpoint), "--out", str(out), "--method", "gptq",
                         "--calibration", str(f), "--quiet", "--target-ram", "64GB"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and words in err[-1] and str(f) in err[-1]
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


@pytest.mark.parametrize("args, words", [
    (["--method", "gptq", "--mode", "mxfp4"], "--method gptq works with --mode affine only"),
    (["--calibration-samples", "8"], "apply to --method gptq or awq only"),
])
def test_refused_method_combinations_say_so_in_one_line(scripted_checkpoint, tmp_path, capsys, args, words):
    code = magimac_main(["quantize", str(scripted_checkpoint), "--out", str(tmp_path / "o"), "--quiet", *args])
    assert code != 0 and words in capsys.readouterr().err.strip().splitlines()[-1]


def test_gptq_inverse_cholesky_is_the_papers_factor():
    """The 2n^3/3 route gives the upper Cholesky factor of the damped inverse Hessian that the
    paper's three-step route gives (and U^T U (H + damp) = I)."""
    from magimac.quantize.gptq import DAMP, Hessian, inverse_cholesky

    x = np.random.default_rng(0).standard_normal((400, 96)).astype(np.float32)
    x[:, 5] = 0.0  # an input that never fires
    hess = Hessian(96)
    hess.add(mx.array(x))
    h = x.T.astype(np.float64) @ x
    d = np.diagonal(h).copy()
    d[d == 0] = 1.0
    h[np.diag_indices(96)] = d + DAMP * d.mean()
    want = np.linalg.cholesky(np.linalg.inv(h)).T
    u = inverse_cholesky(hess)
    assert np.allclose(np.triu(u), u)
    np.testing.assert_allclose(u, want, rtol=2e-3, atol=2e-5)
    np.testing.assert_allclose(u.T @ u @ h, np.eye(96), atol=2e-3)


def test_gptq_in_row_blocks_equals_one_block():
    """lm_head goes through GPTQ a block of rows at a time (memory); the result is the same."""
    rng = np.random.default_rng(1)
    x = mx.array(rng.standard_normal((256, 128)).astype(np.float32))
    w = mx.array((rng.standard_normal((200, 128)) * 0.05).astype(np.float32)).astype(mx.bfloat16)
    params = {"bits": 3, "group_size": 64}
    outs = []
    for rows in (1000, 64):
        hess = Hessian(128)
        hess.add(x)
        outs.append(gptq(w, hess, params, rows=rows))
    for a, b in zip(*outs):
        assert a.shape == b.shape and mx.array_equal(a, b).item()


def test_the_calibration_pass_linear_matches_mlx_quantized_linear():
    """On the CPU the calibration pass multiplies quantized linears in NumPy (speed): its output
    is the exact product of the dequantized weight rounded once to bf16, for an uneven row count
    too, and no further from it than MLX's own quantized linear."""
    import mlx.nn as nn

    from magimac.quantize import layerwise

    rng = np.random.default_rng(3)
    lin = nn.Linear(128, 300, bias=False)
    lin.weight = mx.array(rng.normal(0, 0.05, (300, 128)).astype(np.float32)).astype(mx.bfloat16)
    arrays = list(mx.quantize(lin.weight, group_size=64, bits=4))
    ref = nn.QuantizedLinear(128, 300, bias=False, group_size=64, bits=4)
    ref.weight, ref.scales, ref.biases = arrays
    x = mx.array(rng.normal(size=(2, 7, 128)).astype(np.float32)).astype(mx.bfloat16)
    w = np.asarray(mx.dequantize(*arrays, group_size=64, bits=4).astype(mx.float32))
    exact = (np.asarray(x.astype(mx.float32)).reshape(-1, 128) @ w.T).reshape(2, 7, 300)
    old = layerwise.DENSE_BYTES
    layerwise.DENSE_BYTES = 128 * 128 * 4  # blocks of 128 rows
    try:
        got = layerwise.quantized_linear(lin, arrays, {"bits": 4, "group_size": 64})(x)
    finally:
        layerwise.DENSE_BYTES = old
    assert got.shape == (2, 7, 300) and got.dtype == mx.bfloat16
    err = np.abs(np.asarray(got.astype(mx.float32)) - exact).max()
    assert err <= 2 ** -8 * np.abs(exact).max()
    assert err <= np.abs(np.asarray(ref(x).astype(mx.float32)) - exact).max()
