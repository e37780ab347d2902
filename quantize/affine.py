"""MLX's affine quantization in NumPy, for the calibrated methods: a float32 copy of a bf16
weight (`as_float32`), group parameters chosen by the squared error they leave (`clip_params`,
a clipping search), the codes on those grids (`codes`), and the packing `mx.quantize` uses
(`pack_codes`), so what GPTQ and the clipped embedding write is an ordinary MLX quantized tensor.

Why a clipping search: `mx.quantize` (and so plain RTN, as mlx-lm does it) spans each group's
whole range, from its minimum to its maximum; at 3 bits a single outlier then costs every other
weight of the group a coarser grid.  GPTQ's reference code has the same search as an option
(``Quantizer(mse=True)``: the range shrunk by a factor on a grid, the factor with the lowest
error kept per group; https://github.com/IST-DASLab/gptq); AWQ's clip search is its
activation-weighted cousin (`magimac.quantize.awq`).  MLX has none, so this module adds it: for
each factor ``p`` of `GRID` the group is clipped to ``[p * min, p * max]`` and quantized by
`mx.quantize` itself (so ``p = 1`` gives exactly RTN's parameters, zero stays exactly
representable, and values are rounded to bf16 as stored), and the error is measured against
the unclipped weights.  Calibrated conversions use it for GPTQ's groups (from the
error-compensated weights) and for the token embedding, which no activation reaches.

Measured on the demo model at 3-bit (``bench/bench_quant_methods.py``'s held-out demo problems,
mean KL to bf16): GPTQ 0.0696 with min/max groups, 0.0566 with this search; with a bf16
embedding it was 0.0268, so the RTN embedding was most of what was left, and this search on it
took the GPTQ model (before recalibration) to 0.040.
"""

from __future__ import annotations

import mlx.core as mx
import numpy as np

MAX_SHRINK = 0.5  # the smallest range factor tried (mlx-lm's AWQ ``max_shrink``)
GRID = tuple(float(p) for p in np.linspace(1.0, MAX_SHRINK, 11))  # range factors tried (steps of 0.05), 1 (RTN) first
BLOCK_BYTES = 64 << 20  # float32 bytes of weight per block of rows in `quantize_clipped`


def clip_params(w, params: dict, grid: tuple[float, ...] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per group of ``w`` (``(rows, cols)`` float32, NumPy or MLX; ``cols`` a multiple of
    ``group_size``) the affine ``(scales, biases)`` of the range factor of ``grid`` (default
    `GRID`) with the lowest squared error: float32 NumPy ``(rows, cols / group_size)`` arrays of
    bf16-representable values (as MLX stores them); the dequantized weight is
    ``scales * codes + biases`` with `codes`.

    Args:
        params: ``{"bits", "group_size"}`` (affine).

    Runs in MLX (one fused error per factor): on a Mac's GPU it is nearly free; on this
    project's CPUs about 0.24 s per factor per 16.8M weights (measured, 2 cores).
    """
    g, bits = params["group_size"], params["bits"]
    rows, cols = w.shape
    W = mx.array(w, dtype=mx.float32).reshape(rows, cols // g, g)
    lo, hi = W.min(-1, keepdims=True), W.max(-1, keepdims=True)
    best = None
    for p in grid or GRID:
        clipped = mx.clip(W, p * lo, p * hi) if p != 1.0 else W
        _, s, b = mx.quantize(clipped.reshape(rows, cols), group_size=g, bits=bits, mode="affine")
        s, b = (a.astype(mx.bfloat16).astype(mx.float32)[..., None] for a in (s, b))
        e = _error(W, s, b, 2 ** bits - 1)
        if best is not None:
            better = (e < best[2])[..., None]
            s, b, e = mx.where(better, s, best[0]), mx.where(better, b, best[1]), mx.minimum(e, best[2])
        best = (s, b, e)
        mx.eval(best)
    return np.asarray(best[0][..., 0]), np.asarray(best[1][..., 0])


@mx.compile
def _error(w: mx.array, s: mx.array, b: mx.array, top: int) -> mx.array:
    q = mx.clip(mx.round((w - b) / s), 0, top)
    return mx.square(s * q + b - w).sum(-1)


def _codes(w: np.ndarray, s: np.ndarray, b: np.ndarray, bits: int) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.rint((w - b) / s)
    return np.clip(np.nan_to_num(q), 0, 2 ** bits - 1)


def codes(w: np.ndarray, s: np.ndarray, b: np.ndarray, bits: int) -> np.ndarray:
    """The nearest codes of ``w`` (``(rows, cols)``) on the grids ``s * q + b`` of its groups
    (``s``, ``b``: ``(rows, groups)``), uint8 ``(rows, cols)`` in ``0 .. 2**bits - 1``."""
    rows, cols = w.shape
    n = s.shape[1]
    q = _codes(w.reshape(rows, n, cols // n), s[..., None], b[..., None], bits)
    return q.reshape(rows, cols).astype(np.uint8)


def as_float32(w: mx.array, rows: int = 4096) -> np.ndarray:
    """``w`` as a new Fortran-ordered float32 NumPy array, converted a few rows at a time (a
    bf16 weight never exists twice in float32: 671 MB, not 1.3 GB, for ``down_proj``)."""
    out = np.empty(w.shape, np.float32, order="F")
    for r in range(0, w.shape[0], rows):
        part = w[r:r + rows]
        if part.dtype == mx.bfloat16:
            out[r:r + rows] = (np.asarray(part.view(mx.uint16)).astype(np.uint32) << 16).view(np.float32)
        else:
            out[r:r + rows] = np.asarray(part.astype(mx.float32))
    return out


def pack_codes(codes: np.ndarray, bits: int, rows: int = 1024) -> np.ndarray:
    """Pack ``codes`` (``(rows, cols)``, values below ``2**bits``) as `mx.quantize` does: a
    little-endian bit stream per row, ``bits`` bits per value, read as uint32
    (``(rows, cols * bits / 32)``).  Checked against `mx.quantize` for 2-8 bits in the tests.
    Works ``rows`` rows at a time: its uint64 temporary is 8 bytes per code (268 MB for 1024 x
    32768, where the whole of ``down_proj`` at once would be 1.3 GB beside GPTQ's Hessian)."""
    n, cols = codes.shape
    out = np.empty((n, cols * bits // 32), np.uint32)
    for r in range(0, n, rows):
        g = codes[r:r + rows].reshape(-1, cols // 8, 8).astype(np.uint64)
        v = np.zeros(g.shape[:2], np.uint64)
        for k in range(8):
            v |= g[:, :, k] << np.uint64(k * bits)
        stream = v.view(np.uint8).reshape(g.shape[0], cols // 8, 8)[:, :, :bits]
        out[r:r + rows] = np.ascontiguousarray(stream).reshape(g.shape[0], -1).view(np.uint32)
    return out


def quantize_clipped(w: mx.array, params: dict) -> list[mx.array]:
    """``w`` (``(rows, cols)``, any float dtype) as MLX's affine ``[weight (uint32), scales,
    biases (bf16)]`` with `clip_params`' groups, a block of rows at a time (`BLOCK_BYTES` of
    float32; Magistral's 131072 x 5120 embedding in 205 blocks).  Other modes than ``affine``
    (mxfp4, ...) have no bias to clip around: `mx.quantize` as it is."""
    mode = params.get("mode", "affine")
    if mode != "affine":
        return list(mx.quantize(w.astype(mx.bfloat16), group_size=params["group_size"], bits=params["bits"], mode=mode))
    step = max(1, BLOCK_BYTES // (4 * w.shape[1]))
    parts = []
    for r in range(0, w.shape[0], step):
        block = np.ascontiguousarray(as_float32(w[r:r + step]))
        s, b = clip_params(block, params)
        parts.append((mx.array(pack_codes(codes(block, s, b, params["bits"]), params["bits"])),
                      mx.array(s).astype(mx.bfloat16), mx.array(b).astype(mx.bfloat16)))
        mx.eval(*parts[-1])
    return [mx.concatenate([p[k] for p in parts]) if len(parts) > 1 else parts[0][k] for k in range(3)]
