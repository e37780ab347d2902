"""AWQ for one group of linear layers that share an input (Lin et al. 2023,
https://arxiv.org/abs/2306.00978): a per-input-channel scale searched on calibration
activations and folded into the operation before the group, then a per-group clipping search.

mlx-lm has AWQ (`mlx_lm.quant.awq`), but it runs on a whole loaded model, keeps every layer's
captured inputs, raises "NYI" for ``mistral3``, and clips symmetrically around zero although
MLX's affine format has a bias.  Here the same two searches work on the inputs of one group at
a time (the caller, `magimac.quantize.layerwise`, captures them), the scale can also be folded
across grouped-query attention (``v_proj`` -> ``o_proj``: one scale per value channel, shared
by the query heads that read it, which mlx-lm does not do), and clipping shrinks a group's
minimum and maximum separately (asymmetric, as the affine grid is).

Scales: ``s = mean|x|^a`` per input channel for ``a`` on a grid of `N_GRID` points in [0, 1)
(``a = 0`` is plain RTN, so the search never does worse on its own loss), normalised by
``sqrt(max s * min s)``; the loss is the mean squared error of the group's output module
(attention, MLP or the linear itself) with fake-quantized weights ``Q(W * s) / s``.
"""

from __future__ import annotations

from typing import Callable

import mlx.core as mx

N_GRID = 20  # AWQ paper and mlx-lm: 20 points for the scale exponent and for the clip ratio
MAX_SHRINK = 0.5  # clip search down to half the range (mlx-lm's max_shrink)
CLIP_TOKENS = 512  # input rows used for the clip search (mlx-lm's n_frames)
CLIP_BATCH = 1 << 24  # elements of tokens x rows x groups per clip-search batch (64 MB in float32)


def fake_quant(w: mx.array, params: dict) -> mx.array:
    """``w`` quantized with ``params`` (``group_size``, ``bits``, ``mode``) and dequantized, float32."""
    kw = {"group_size": params["group_size"], "bits": params["bits"], "mode": params.get("mode", "affine")}
    return mx.dequantize(*mx.quantize(w, **kw), **kw).astype(mx.float32)


def channel_stat(xs: list[mx.array]) -> mx.array:
    """Mean absolute activation per input channel over batches ``xs`` (``[..., n]``), float32 ``(n,)``."""
    total = sum(mx.abs(x.astype(mx.float32)).reshape(-1, x.shape[-1]).sum(axis=0) for x in xs)
    count = sum(x.size // x.shape[-1] for x in xs)
    return total / count


def search_scale(stat: mx.array, linears: list, params: list[dict], run: Callable[[], list[mx.array]],
                 ref: list[mx.array], expand: Callable[[mx.array], mx.array] = lambda s: s) -> mx.array:
    """The scale (float32, ``stat``'s shape) with the lowest output error.

    Args:
        stat: `channel_stat` of the group's input (or a reduction of it, see ``expand``).
        linears: the group's ``nn.Linear`` modules (their weights are changed during the search
            and restored after it).
        params: each linear's quantization params.
        run: computes the group's output module on the search inputs (list of batches).
        ref: ``run()`` with the original weights.
        expand: maps a scale to the linears' input width (v_proj -> o_proj across heads).
    """
    originals = [m.weight for m in linears]
    base = [w.astype(mx.float32) for w in originals]
    best, best_loss = mx.ones_like(stat), float("inf")
    for i in range(N_GRID):
        s = mx.maximum(stat, 1e-4) ** (i / N_GRID)
        s = s / mx.sqrt(s.max() * s.min())
        se = expand(s)
        for m, w, p in zip(linears, base, params):
            m.weight = (fake_quant(w * se, p) / se).astype(originals[0].dtype)
        loss = sum(((o.astype(mx.float32) - r.astype(mx.float32)) ** 2).sum().item() for o, r in zip(run(), ref))
        if loss < best_loss:
            best, best_loss = s, loss
    for m, w in zip(linears, originals):
        m.weight = w
    return best


def search_clip(w: mx.array, x: mx.array, params: dict) -> mx.array:
    """``w`` (``(out, in)``) with each quantization group clipped to the shrunk range
    ``[p * min, p * max]`` (``p`` from 1 down to `MAX_SHRINK`) that minimises the squared error
    of the group's partial dot products on inputs ``x`` (``(tokens, in)``); float32.
    Each group keeps its own best ``p``; ``p = 1`` (no clip) is on the grid."""
    g = params["group_size"]
    x = x.astype(mx.float32)
    x = x[:: max(1, x.shape[0] // CLIP_TOKENS)][:CLIP_TOKENS].reshape(-1, w.shape[1] // g, g)
    out = []
    rows = max(1, CLIP_BATCH // (x.shape[0] * x.shape[1]))
    for r in range(0, w.shape[0], rows):
        wb = w[r:r + rows].astype(mx.float32)
        wg = wb.reshape(wb.shape[0], -1, g)
        ref = mx.einsum("tdg,odg->tod", x, wg)
        lo, hi = wg.min(axis=-1, keepdims=True), wg.max(axis=-1, keepdims=True)
        best_err = mx.full(wg.shape[:2], float("inf"))
        best_p = mx.ones((*wg.shape[:2], 1))
        for i in range(int(MAX_SHRINK * N_GRID)):
            p = 1 - i / N_GRID
            wq = fake_quant(mx.clip(wg, p * lo, p * hi).reshape(wb.shape), params).reshape(wg.shape)
            err = ((mx.einsum("tdg,odg->tod", x, wq) - ref) ** 2).sum(axis=0)
            better = err < best_err
            best_err = mx.where(better, err, best_err)
            best_p = mx.where(better[..., None], p, best_p)
            mx.eval(best_err, best_p)
        out.append(mx.clip(wg, best_p * lo, best_p * hi).reshape(wb.shape))
    return mx.concatenate(out, axis=0)
