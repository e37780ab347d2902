"""GPTQ for one linear layer: the Hessian of its inputs, its inverse's Cholesky factor, and
the column-by-column quantization with error compensation (Frantar et al. 2022,
https://arxiv.org/abs/2210.17323, the "lazy batch" blocked form).

Why not mlx-lm's `mlx_lm.quant.gptq`: it keeps every linear's Hessian of the whole model at
once (about 196 GB for Magistral Small; measured at its widths: 16.1 GB with one decoder
layer, killed for memory at 24.4 GB with two, `bench/bench_quant_methods.py`), packs only 2, 4
and 8 bits, and evaluates one MLX graph per column.  Here one Hessian exists at a time and every
large step runs in place:

- `Hessian` accumulates ``X^T X`` (float32, ``n x n``) block column by block column into one
  buffer (no second ``n x n`` temporary: 4.3 GB, not 8.6, at ``down_proj``'s 32768 inputs);
- `inverse_cholesky` damps it (``damp x mean diagonal``, 0.01 as in the paper) and turns it into
  the upper Cholesky factor of its inverse with LAPACK ``spotrf`` and ``strtri`` in the same
  buffer;
- `quantize_weight` runs the blocked update on a Fortran-ordered float32 copy of the weight
  (``sgemm`` in place for the trailing columns).

Group scales and biases are chosen when a group's first column is reached, from its
error-compensated columns, by `magimac.quantize.affine.clip_params` (the range factor with the
lowest squared error, GPTQ's own ``mse`` option; ``mx.quantize``'s min/max when the factor is
1); codes are packed bit for bit as `mx.quantize` packs them, so the result is an ordinary
affine-quantized tensor that `mx.dequantize` and `nn.QuantizedLinear` read.  With an identity
Hessian it is `affine.quantize_clipped` (RTN with the clipping search).
Act-order (columns by decreasing Hessian diagonal) is not used: with group-wise scales it
would need a permutation stored beside the weight, which MLX's format has no place for.
"""

from __future__ import annotations

import mlx.core as mx
import numpy as np
from scipy.linalg import blas, lapack
from threadpoolctl import threadpool_limits

from magimac.quantize.affine import as_float32, clip_params, pack_codes

DAMP = 0.01  # fraction of the mean Hessian diagonal added to it (GPTQ paper, AutoGPTQ default)
ONE_THREAD_FROM = 16384  # Hessian width from which LAPACK runs single-threaded (see `inverse_cholesky`)
BLOCK = 128  # columns per lazy batch update (paper: 128); a multiple of every group size


class Hessian:
    """Running ``sum x x^T`` over the inputs of one linear layer (or several that share them).

    Attributes:
        h: ``(n, n)`` float32 Fortran-ordered; only the upper triangle is kept up to date (the
            diagonal blocks of `COLS` also hold some of the lower one, which nothing reads).
        tokens: rows of input added so far.

    Why column blocks and not one BLAS ``ssyrk``: OpenBLAS's multithreaded ``ssyrk`` (as
    SciPy's wheels ship it) segfaulted at ``down_proj``'s n = 32768 with 1024 input rows (fine
    at 64 rows, or on one thread), which ended every GPTQ run of Magistral at its first
    ``down_proj``.  Each block is a plain ``sgemm`` with a temporary of at most
    ``n x COLS x 4`` bytes (268 MB at 32768).
    """

    COLS = 2048

    def __init__(self, n: int):
        self.h = np.zeros((n, n), np.float32, order="F")
        self.tokens = 0

    def add(self, x: mx.array) -> None:
        """Add inputs ``x`` (``[..., n]``, any float dtype) to the sum, in place."""
        a = np.asarray(x.reshape(-1, x.shape[-1]).astype(mx.float32))
        n = a.shape[1]
        for j in range(0, n, self.COLS):
            e = min(j + self.COLS, n)
            self.h[:e, j:e] += a[:, :e].T @ a[:, j:e]
        self.tokens += a.shape[0]


def inverse_cholesky(hess: Hessian, damp: float = DAMP) -> np.ndarray:
    """The upper Cholesky factor ``U`` of ``(H + damp * mean(diag H) * I)^-1`` (so
    ``U^T U = H^-1``), in ``hess.h``'s buffer (which is consumed).  An input column that never
    saw a non-zero input gets diagonal 1: its weights are rounded to nearest with no
    compensation.  (AutoGPTQ zeroes such weights; here they are kept, since a calibration set
    need not reach every input: the scripted test checkpoints' one-hot embeddings show it.)

    How: the paper's route (Cholesky of ``H``, inverse from it, Cholesky of the inverse) costs
    ``4n^3/3`` flops.  This one costs ``2n^3/3`` and never forms ``H^-1``: with ``J`` the
    reversal permutation, the lower Cholesky factor ``L`` of ``J H J`` gives ``H = V V^T`` with
    ``V = J L J`` upper triangular, so ``U = V^-1 = J L^-1 J`` (LAPACK ``spotrf`` and
    ``strtri``, in place; the two reversals swap columns pairwise in the same buffer).  Same
    factor up to rounding (checked against the three-step route in the tests); at
    ``down_proj``'s 32768 inputs, about 2 minutes instead of 4 on this project's CPUs.

    From `ONE_THREAD_FROM` inputs on, LAPACK runs on one thread: SciPy's multithreaded OpenBLAS
    ``spotrf`` segfaulted, now and then, at ``down_proj``'s 32768 (one thread: 79 s here,
    against 55 s on two, and no crash seen).

    Raises:
        RuntimeError: the damped Hessian is not positive definite (NaN inputs).
    """
    h = hess.h
    hess.h = None
    diag = np.diagonal(h).copy()
    diag[diag == 0] = 1.0
    idx = np.arange(h.shape[0])
    h[idx, idx] = diag + damp * float(diag.mean())
    _reverse(h)  # the upper triangle kept by `Hessian` becomes the lower one
    with threadpool_limits(1 if h.shape[0] >= ONE_THREAD_FROM else None, user_api="blas"):
        h, info = lapack.spotrf(h, lower=1, clean=1, overwrite_a=1)
        if info == 0:
            h, info = lapack.strtri(h, lower=1, overwrite_c=1)
    if info != 0:
        raise RuntimeError(f"GPTQ: the damped Hessian is not positive definite (LAPACK info {info})")
    _reverse(h)
    return h


def _reverse(a: np.ndarray) -> None:
    """``a[i, j] = a[n-1-i, n-1-j]`` for a square Fortran-ordered ``a``, in place (one column
    of temporary memory)."""
    n = a.shape[0]
    for j in range((n + 1) // 2):
        k = n - 1 - j
        col = a[::-1, j].copy()
        a[:, j] = a[::-1, k]
        a[:, k] = col


def quantize_weight(w: np.ndarray, u: np.ndarray, params: dict,
                    block: int = BLOCK) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """GPTQ of weight ``w`` (``(out, in)``, float; a Fortran-ordered float32 array, e.g. from
    `as_float32`, is updated in place instead of copied) given `inverse_cholesky`'s ``u``.

    Args:
        params: ``{"bits", "group_size"}`` (affine).

    Returns:
        ``(codes, scales, biases)``: codes uint8 ``(out, in)`` in ``0 .. 2**bits - 1``; scales and
        biases float32 ``(out, in / group_size)``; the dequantized weight is
        ``scales * codes + biases`` per group.
    """
    g, n_bins = params["group_size"], 2 ** params["bits"] - 1
    rows, cols = w.shape
    W = w if w.dtype == np.float32 and w.flags.f_contiguous else np.asfortranarray(w, np.float32)
    codes = np.empty((rows, cols), np.uint8)
    scales = np.empty((rows, cols // g), np.float32)
    biases = np.empty((rows, cols // g), np.float32)
    block = max(g, block // g * g)
    for i in range(0, cols, block):
        j = min(i + block, cols)
        err = np.empty((rows, j - i), np.float32, order="F")
        for k in range(i, j):
            if k % g == 0:
                s, b = (a[:, 0] for a in clip_params(W[:, k:k + g], params))
                scales[:, k // g], biases[:, k // g] = s, b
            col = W[:, k]
            q = np.clip(np.rint((col - b) / s), 0, n_bins)
            codes[:, k] = q
            e = (col - (q * s + b)) / u[k, k]
            err[:, k - i] = e
            if k + 1 < j:  # rank-1 update of the block's remaining columns, in place (BLAS sger)
                blas.sger(-1.0, e.astype(np.float32), u[k, k + 1:j], a=W[:, k + 1:j], overwrite_a=1)
        if j < cols:
            blas.sgemm(-1.0, err, u[i:j, j:], beta=1.0, c=W[:, j:], overwrite_c=1)
    return codes, scales, biases


ROW_BLOCK_BYTES = 256 << 20  # float32 bytes of weight per `quantize_rows` block


def quantize_rows(w: mx.array, u: np.ndarray, params: dict, rows: int | None = None) -> list[mx.array]:
    """`quantize_weight` of ``w`` (``(out, in)``) with the factor ``u``, ``rows`` rows at a time
    (default: as many as fit in `ROW_BLOCK_BYTES` of float32, 2048 for ``down_proj``'s 32768
    inputs, 13107 for 5120), packed as MLX's affine ``[weight (uint32), scales, biases (bf16)]``.
    Rows are independent given the Hessian, so the float32 copy of Magistral's ``lm_head``
    (131072 x 5120) is 268 MB per block instead of 2.7 GB at once (the measured 1-layer peak,
    9.47 GB, was that step), and ``down_proj``'s is 268 MB, not 671 MB, beside its 4.3 GB
    Hessian.  Same result as one block (tested)."""
    rows = rows or max(1, ROW_BLOCK_BYTES // (4 * w.shape[1]))
    parts = []
    for r in range(0, w.shape[0], rows):
        codes, s, b = quantize_weight(as_float32(w[r:r + rows]), u, params)
        parts.append((mx.array(pack_codes(codes, params["bits"])), mx.array(s).astype(mx.bfloat16),
                      mx.array(b).astype(mx.bfloat16)))
        del codes
    return [mx.concatenate([p[k] for p in parts]) if len(parts) > 1 else parts[0][k] for k in range(3)]


def gptq(w: mx.array, hess: Hessian, params: dict, rows: int | None = None) -> list[mx.array]:
    """GPTQ of ``w`` with the Hessian of its inputs (consumed): `quantize_rows` with
    `inverse_cholesky`'s factor."""
    return quantize_rows(w, inverse_cholesky(hess), params, rows)
