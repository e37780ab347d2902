"""The calibrated pass of a conversion: embed the calibration samples, then each decoder layer
(`magimac.quantize.layerwise`), then the final norm and ``lm_head``; every tensor is handed to
``write`` as soon as it is final.

AWQ keeps a layer's result only when its output error on the search samples is below plain
RTN's for that layer (as mlx-lm's AWQ falls back), so a layer is never made worse by the scale
search.  GPTQ needs no such check: its error compensation minimises the same error exactly for
each linear.
"""

from __future__ import annotations

from typing import Callable

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_unflatten

from magimac.quantize.affine import quantize_clipped
from magimac.quantize.calibration import Calibration
from magimac.quantize.gptq import Hessian, gptq
from magimac.quantize.layerwise import (AWQ_SEARCH_TOKENS, GROUPS, Context, Parts, awq_finish, awq_scale_group,
                                        batches, get, gptq_group, load, put, quantized_linear, rtn)

CACHE_LIMIT = 256 << 20  # bytes of freed MLX buffers kept for reuse during the pass


def embed(parts: Parts, ids, write: Callable[[str, mx.array], None]) -> list[mx.array]:
    """Quantize and write the text embedding (`affine.quantize_clipped`: no activation reaches
    it, so its groups get the clipping search and no more), then the calibration samples'
    embeddings as the output model computes them (its quantized rows), bf16, in forward
    batches.  An embedding the plan keeps in bf16 is left to the streaming pass."""
    job, idx = parts.embed, mx.array(ids.reshape(-1))
    table = load(job)
    if job.quant is None:
        rows = table[idx].astype(mx.bfloat16)
    else:
        p = job.quant
        arrays = quantize_clipped(table, p)
        del table
        for spec, a in zip(job.specs, arrays):
            write(spec.name, a)
        picked = [a[idx] for a in arrays]
        rows = mx.dequantize(*picked, group_size=p["group_size"], bits=p["bits"],
                             mode=p.get("mode", "affine")).astype(mx.bfloat16)
    x = rows.reshape(*ids.shape, -1)
    mx.eval(x)
    return batches(x, ids.shape[1])


def _forward(layer, xs: list[mx.array]) -> list[mx.array]:
    out = []
    for x in xs:
        y = layer(x, "causal")
        mx.eval(y)
        out.append(y)
    return out


def _loss(a: list[mx.array], b: list[mx.array]) -> float:
    return sum(((x.astype(mx.float32) - y.astype(mx.float32)) ** 2).sum().item() for x, y in zip(a, b))


def _linears(prefix: str, plan: dict) -> list[str]:
    return [n for _, names in GROUPS for n in names if f"{prefix}.{n}" in plan]


def _awq_layer(layer, prefix: str, xs: list[mx.array], ctx: Context) -> None:
    """AWQ on ``layer`` in place, or RTN where that has the lower output error."""
    tokens = xs[0].shape[1]
    search = xs[: max(1, AWQ_SEARCH_TOKENS // (tokens * xs[0].shape[0]))]
    names = _linears(prefix, ctx.plan)
    lins = {n: get(layer, n) for n in names}
    saved = {n: m.weight for n, m in lins.items()}
    norms = {p: get(layer, p).weight for p, _ in GROUPS if not isinstance(get(layer, p), nn.Linear)}
    ref = _forward(layer, search)
    _rtn_all(layer, prefix, lins, ctx.plan)
    rtn_loss = _loss(_forward(layer, search), ref)
    for n, m in lins.items():
        put(layer, n, m)
    for prev, group in GROUPS:
        awq_scale_group(layer, prefix, prev, group, search, ctx)
    awq_finish(layer, prefix, search, ctx)
    if _loss(_forward(layer, search), ref) <= rtn_loss:
        return
    for n, m in lins.items():  # the scales did not help this layer: plain RTN
        m.weight = saved[n]
    _rtn_all(layer, prefix, lins, ctx.plan)
    for p, w in norms.items():
        get(layer, p).weight = w
    ctx.progress("kept RTN (AWQ did not lower the error)", 0)


def _rtn_all(layer, prefix: str, lins: dict, plan: dict) -> None:
    for n, m in lins.items():
        put(layer, n, quantized_linear(m, rtn(m.weight, plan[f"{prefix}.{n}"]), plan[f"{prefix}.{n}"]))


def _emit(module, job, rel: str, write: Callable[[str, mx.array], None]) -> None:
    """Write ``job``'s output tensors from ``module`` (the converted linear, or the norm)."""
    m = get(module, rel.rpartition(".")[0]) if "." in rel else module
    if job.quant:
        arrays = [m.weight, m.scales] + ([m.biases] if getattr(m, "biases", None) is not None else [])
    else:
        arrays = [getattr(m, rel.rpartition(".")[2]).astype(mx.bfloat16)]
    for spec, a in zip(job.specs, arrays):
        write(spec.name, a)


def run_layer(skeleton, parts: Parts, index: int, xs: list[mx.array], ctx: Context) -> list[mx.array]:
    """Calibrate decoder layer ``index`` on hidden states ``xs``, write it, free it; returns the
    hidden states after the quantized layer."""
    prefix = f"{parts.text}.layers.{index}"
    layer = get(skeleton, prefix)
    jobs = parts.layers[index]
    layer.update(tree_unflatten([(j.name[len(prefix) + 1:], load(j)) for j in jobs]))
    if ctx.method == "gptq":
        for _, names in GROUPS:
            gptq_group(layer, prefix, names, xs, ctx)
    else:
        _awq_layer(layer, prefix, xs, ctx)
    left = {n: get(layer, n) for n in _linears(prefix, ctx.plan) if isinstance(get(layer, n), nn.Linear)}
    _rtn_all(layer, prefix, left, ctx.plan)  # none for mistral/llama blocks: GROUPS covers every linear
    out = _forward(layer, xs)
    ctx.progress("output", 0)
    for j in jobs:
        _emit(layer, j, j.name[len(prefix) + 1:], ctx.write)
    get(skeleton, f"{parts.text}.layers")[index] = nn.Module()  # drop the layer's arrays
    return out


def run_head(skeleton, parts: Parts, xs: list[mx.array], ctx: Context) -> None:
    """GPTQ: calibrate ``lm_head`` on the final hidden states (through the final norm); AWQ:
    `affine.quantize_clipped` (its scale search over a 131072-row head costs more than a
    layer's for little); write both."""
    if not parts.head:
        return
    root = parts.text.rpartition(".")[0]
    for j in parts.head:
        get(skeleton, j.name.rpartition(".")[0]).weight = load(j)
    norm = get(skeleton, f"{parts.text}.norm")
    head_path = f"{root}.lm_head" if root else "lm_head"
    p = ctx.plan.get(head_path)
    if p is not None and any(j.name == f"{head_path}.weight" for j in parts.head):
        head = get(skeleton, head_path)
        hs = [norm(x) for x in xs]
        if ctx.method == "gptq":
            hess = Hessian(head.weight.shape[1])
            for h in hs:
                hess.add(h)
            arrays = gptq(head.weight, hess, p)
        else:  # no AWQ scale search on lm_head (as AutoAWQ and mlx-lm's AWQ): the clipping search only
            arrays = quantize_clipped(head.weight, p)
        put(skeleton, head_path, quantized_linear(head, arrays, p))
        ctx.progress("lm_head", 0)
    for j in parts.head:
        _emit(skeleton, j, j.name, ctx.write)


def run(skeleton, parts: Parts, calibration: Calibration, plan: dict, method: str,
        write: Callable[[str, mx.array], None], progress: Callable[[int, str, int], None]) -> None:
    """The whole calibrated pass (``method`` ``gptq`` or ``awq``).

    Args:
        skeleton: the lazily built model (`layout.build_model`); its layers are filled and dropped.
        write: receives each output tensor (its planned name and the evaluated array).
        progress: ``(layer index or -1 for the head, step, samples done)`` as it goes.

    MLX's buffer cache is held to `CACHE_LIMIT` for the pass (restored after it): freed
    forward-pass temporaries would otherwise stay resident beside GPTQ's Hessian.
    """
    previous = mx.set_cache_limit(CACHE_LIMIT)
    try:
        xs = embed(parts, calibration.ids, write)
        for i in sorted(parts.layers):
            ctx = Context(plan, write, lambda step, n, i=i: progress(i, step, n), method)
            xs = run_layer(skeleton, parts, i, xs, ctx)
        run_head(skeleton, parts, xs, Context(plan, write, lambda step, n: progress(-1, step, n), method))
    finally:
        mx.set_cache_limit(previous)
