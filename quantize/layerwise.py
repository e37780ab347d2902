"""Calibrated quantization (GPTQ or AWQ) one decoder layer at a time.

The embedding is quantized first (`magimac.quantize.affine.quantize_clipped`) and the
calibration tokens (`magimac.quantize.calibration`) are embedded through it (as the
output quantizes it), then for each decoder layer in turn: its tensors are read from the source
shards into the layer module of the model skeleton (`layout.build_model`: mlx-lm's ``llama``
block for ``mistral``/``llama`` text, mlx-vlm's Pixtral-``Mistral`` block for ``mistral3``; the
same code that runs the model later), the method quantizes its linears group by group (inputs
shared: q/k/v, o, gate/up, down; each group's inputs are captured by running the layer, through
the groups already quantized, up to that group and no further), the quantized tensors are
written, and the hidden states of every sample go through the *quantized* layer to feed the
next one.  Then the layer is dropped.  The final norm and ``lm_head`` are calibrated last, on
the final hidden states.  Peak memory: one layer's weights, the hidden states twice
(``samples x tokens x hidden x 2`` bytes each in bf16: 0.67 GB for 128 x 512 at Magistral's
5120) and one group's statistics (GPTQ: a float32 Hessian of its input width, 4.3 GB at
``down_proj``'s 32768), flat in the number of layers.

What magimac adds over mlx-lm's `mlx_lm.quant` (which holds the whole model and every
Hessian, or raises "NYI" for ``mistral3`` in AWQ): this streaming, and the output written
straight into the planned shards, so the result is an ordinary MLX affine model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from magimac.quantize import awq
from magimac.quantize.gptq import Hessian, inverse_cholesky, quantize_rows
from magimac.quantize.layout import is_vision
from magimac.quantize.chunk_reader import read_tensor

METHODS = ("rtn", "gptq", "awq")
BATCH_TOKENS = 1024  # tokens per forward batch (bounds the MLP's temporaries: 1024 x 32768 x 4 B each)
DENSE_BYTES = 256 << 20  # float32 bytes of dequantized weight per block of `_DenseOnCPU`
AWQ_SEARCH_TOKENS = 8192  # tokens of the calibration set AWQ's searches run on (AWQ paper: 128 x 512)
# (operation before the group, the group's linears), in the order of the forward pass.
GROUPS = (("input_layernorm", ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj")),
          ("self_attn.v_proj", ("self_attn.o_proj",)),
          ("post_attention_layernorm", ("mlp.gate_proj", "mlp.up_proj")),
          ("mlp.up_proj", ("mlp.down_proj",)))
NO_CLIP = ("q_proj", "k_proj")  # AWQ: clipping queries/keys hurts attention (AWQ, mlx-lm)
_LAYER = re.compile(r"^(?P<prefix>.+)\.layers\.(?P<index>\d+)\.(?P<rest>.+)$")


class _Stop(Exception):
    """Raised by a `_Tap` to end a forward pass once the group's input is captured."""


class _Tap(nn.Module):
    """Stands in for a linear: hands its input to ``sink`` and stops the forward pass."""

    def __init__(self, inner: nn.Module, sink: Callable[[mx.array], None]):
        super().__init__()
        self.inner = inner
        self._sink = sink

    def __call__(self, x, *args, **kwargs):
        self._sink(x)
        raise _Stop


def get(module, path: str):
    """The submodule at dotted ``path`` (integers index lists)."""
    for part in path.split("."):
        module = module[int(part)] if part.isdigit() else getattr(module, part)
    return module


def put(module, path: str, value) -> None:
    """Set the submodule at dotted ``path`` to ``value``."""
    parent, _, leaf = path.rpartition(".")
    setattr(get(module, parent) if parent else module, leaf, value)


@dataclass
class Parts:
    """The jobs of a conversion split for the layer-by-layer pass: ``layers`` (layer index ->
    jobs), ``head`` (final norm, lm_head), ``stream`` (everything else but a quantized
    embedding, which the calibrated pass writes: converted as RTN),
    ``embed`` (the embedding's job), ``text`` (the text model's module path, e.g.
    ``language_model.model``)."""

    text: str
    layers: dict[int, list] = field(default_factory=dict)
    head: list = field(default_factory=list)
    stream: list = field(default_factory=list)
    embed: object = None


def split_jobs(jobs: list) -> Parts:
    """Sort `magimac.quantize.jobs.Job` s into `Parts` (raises ValueError without an embedding)."""
    embed = next((j for j in jobs if j.name.endswith("embed_tokens.weight") and not is_vision(j.name)), None)
    if embed is None:
        raise ValueError("no text embedding (embed_tokens.weight) in the checkpoint")
    text = embed.name.rsplit(".embed_tokens.", 1)[0]
    parts = Parts(text, embed=embed)
    head_names = {f"{text}.norm.weight", f"{text.rpartition('.')[0] + '.' if '.' in text else ''}lm_head.weight"}
    for j in jobs:
        m = _LAYER.match(j.name)
        if m and m["prefix"] == text:
            parts.layers.setdefault(int(m["index"]), []).append(j)
        elif j.name in head_names:
            parts.head.append(j)
        elif j is not embed or j.quant is None:  # a quantized embedding is written by the calibrated pass
            parts.stream.append(j)
    return parts


def load(job) -> mx.array:
    """A job's source tensor as an MLX array (its source dtype; bf16 for Magistral)."""
    if job.info is None:
        mx.eval(job.lazy)
        return job.lazy
    data = read_tensor(job.info)
    x = mx.array(data).reshape(job.shape)
    return x.view(mx.bfloat16) if job.info.dtype == "BF16" else x


@dataclass
class Context:
    """What the pass needs besides the layer: the ``plan`` (module path -> params), where to
    ``write`` a tensor (name, array), ``progress`` (step name, samples done) and the
    ``method`` (``gptq`` or ``awq``)."""

    plan: dict
    write: Callable[[str, mx.array], None]
    progress: Callable[[str, int], None]
    method: str


def batches(x: mx.array, tokens: int) -> list[mx.array]:
    """``x`` (``(samples, tokens, hidden)``) in forward batches of about `BATCH_TOKENS` tokens."""
    n = max(1, BATCH_TOKENS // tokens)
    return [x[i:i + n] for i in range(0, x.shape[0], n)]


def capture(layer, path: str, xs: list[mx.array], sink: Callable[[mx.array], None],
            advance: Callable[[int], None] = lambda n: None) -> None:
    """Run ``layer`` on each batch of ``xs`` up to the linear at ``path``, handing its input to
    ``sink`` (the layers before it run as they are: quantized ones quantized)."""
    inner = get(layer, path)
    put(layer, path, _Tap(inner, sink))
    try:
        for x in xs:
            try:
                layer(x, "causal")
            except _Stop:
                pass
            advance(x.shape[0])
    finally:
        put(layer, path, inner)


class _DenseOnCPU(nn.QuantizedLinear):
    """An `nn.QuantizedLinear` whose forward pass, on MLX's CPU backend, dequantizes its weight
    `DENSE_BYTES` of float32 output rows at a time and multiplies in NumPy (float32, the BLAS SciPy and
    NumPy ship), returning the input's dtype; on a GPU (Metal, CUDA) it is the plain layer.

    Why: on Linux, MLX's CPU `mx.quantized_matmul` ran at 0.1 GFLOP/s, its bf16 matmul at 2.7
    and NumPy's float32 matmul at 40.8 on the same shapes (``(256, 5120) x (4096, 5120)``,
    4-bit, group 64, this project's 2-core machine; ``mlx[cpu]`` links the reference BLAS), so
    a calibration pass through Magistral's quantized ``gate_proj``/``up_proj`` took hours.  The
    result is the float32 product of the dequantized weight (``scales * codes + biases``, as
    `mx.dequantize` gives it), rounded once to the input's dtype; the temporaries are one row
    block of the weight in float32 (at most `DENSE_BYTES`) and the float32 input and
    output.  It is also closer to the exact product than MLX's CPU layer: on the test's
    ``(14, 128) x (300, 128)`` case, largest error 0.0039 (bf16 rounding) against 0.075.
    """

    def __call__(self, x):
        if mx.default_device().type != mx.DeviceType.cpu:
            return super().__call__(x)
        a = np.asarray(x.reshape(-1, x.shape[-1]).astype(mx.float32))
        out = np.empty((a.shape[0], self["weight"].shape[0]), np.float32)
        biases = self.get("biases")
        step = max(1, DENSE_BYTES // (4 * a.shape[1]))
        for r in range(0, out.shape[1], step):
            e = r + step
            w = mx.dequantize(self["weight"][r:e], self["scales"][r:e], None if biases is None else biases[r:e],
                              group_size=self.group_size, bits=self.bits, mode=self.mode)
            out[:, r:e] = a @ np.asarray(w.astype(mx.float32)).T
        return mx.array(out).astype(x.dtype).reshape(*x.shape[:-1], out.shape[1])


def quantized_linear(linear: nn.Linear, arrays: list[mx.array], params: dict) -> nn.QuantizedLinear:
    """An `nn.QuantizedLinear` holding ``arrays`` (``[weight, scales(, biases)]`` of
    `mx.quantize`), for the calibration pass (`_DenseOnCPU`)."""
    out_dims, in_dims = linear.weight.shape
    q = _DenseOnCPU(in_dims, out_dims, bias=False, group_size=params["group_size"], bits=params["bits"],
                    mode=params.get("mode", "affine"))
    q.weight, q.scales = arrays[0], arrays[1]
    if len(arrays) > 2:
        q.biases = arrays[2]
    return q


def rtn(w: mx.array, params: dict) -> list[mx.array]:
    """Round-to-nearest, as the streaming conversion does (bf16 input)."""
    return list(mx.quantize(w.astype(mx.bfloat16), group_size=params["group_size"], bits=params["bits"],
                            mode=params.get("mode", "affine")))


def gptq_group(layer, prefix: str, names: tuple[str, ...], xs: list[mx.array], ctx: Context) -> None:
    """GPTQ the linears ``names`` of ``layer`` (one shared Hessian), installing them quantized."""
    todo = [n for n in names if f"{prefix}.{n}" in ctx.plan]
    if not todo:
        return
    hess = Hessian(get(layer, todo[0]).weight.shape[1])
    capture(layer, todo[0], xs, hess.add, lambda n: ctx.progress(f"{todo[0]} inputs", n))
    u = inverse_cholesky(hess)
    for n in todo:
        p = ctx.plan[f"{prefix}.{n}"]
        lin = get(layer, n)
        put(layer, n, quantized_linear(lin, quantize_rows(lin.weight, u, p), p))
        ctx.progress(f"{n} quantized", 0)
    del u


def _gather(layer, path: str, xs: list[mx.array]) -> list[mx.array]:
    got: list[mx.array] = []

    def keep(x):
        mx.eval(x)
        got.append(x)

    capture(layer, path, xs, keep)
    return got


def _awq_runner(layer, prev: str, names: tuple[str, ...]):
    """The module whose output AWQ's scale search compares, as a function of the group's input."""
    if names[0].endswith("q_proj"):
        return lambda x: layer.self_attn(x, "causal")
    if names[0].endswith("gate_proj"):
        return lambda x: layer.mlp(x)
    return lambda x: get(layer, names[0])(x)


def _kv_expand(layer):
    """(reduce, expand) between o_proj's input channels and v_proj's output channels."""
    attn = layer.self_attn
    kv, rep = attn.n_kv_heads, attn.n_heads // attn.n_kv_heads

    def reduce(stat):
        return stat.reshape(kv, rep, -1).mean(axis=1).reshape(-1)

    def expand(s):
        return mx.broadcast_to(s.reshape(kv, 1, -1), (kv, rep, s.size // kv)).reshape(-1)

    return reduce, expand


def awq_scale_group(layer, prefix: str, prev: str, names: tuple[str, ...], xs: list[mx.array], ctx: Context) -> None:
    """Search and fold AWQ's scale for one group (weights stay float; quantized later)."""
    todo = [n for n in names if f"{prefix}.{n}" in ctx.plan]
    if not todo:
        return
    inputs = _gather(layer, names[0], xs)
    run_one = _awq_runner(layer, prev, names)
    run = lambda: [run_one(x) for x in inputs]  # noqa: E731
    ref = run()
    mx.eval(ref)
    reduce, expand = _kv_expand(layer) if prev.endswith("v_proj") else ((lambda s: s), (lambda s: s))
    linears = [get(layer, n) for n in names]
    params = [ctx.plan.get(f"{prefix}.{n}") or ctx.plan[f"{prefix}.{todo[0]}"] for n in names]
    s = awq.search_scale(reduce(awq.channel_stat(inputs)), linears, params, run, ref, expand)
    se = expand(s)
    before = get(layer, prev)
    if isinstance(before, nn.Linear):
        before.weight = (before.weight.astype(mx.float32) / s[:, None]).astype(before.weight.dtype)
    else:
        before.weight = (before.weight.astype(mx.float32) / s).astype(before.weight.dtype)
    for m in linears:
        m.weight = (m.weight.astype(mx.float32) * se).astype(m.weight.dtype)
    ctx.progress(f"{names[0]} scaled", 0)


def awq_finish(layer, prefix: str, xs: list[mx.array], ctx: Context) -> None:
    """Clip-search and quantize every planned linear of ``layer`` (after the scales)."""
    for _, names in GROUPS:
        todo = [n for n in names if f"{prefix}.{n}" in ctx.plan]
        if not todo:
            continue
        x = mx.concatenate([a.reshape(-1, a.shape[-1]) for a in _gather(layer, names[0], xs)], axis=0)
        for n in todo:
            p = ctx.plan[f"{prefix}.{n}"]
            lin = get(layer, n)
            w = lin.weight if n.rsplit(".", 1)[-1] in NO_CLIP else awq.search_clip(lin.weight, x, p)
            put(layer, n, quantized_linear(lin, rtn(w, p) if w is lin.weight else _quant_f32(w, p), p))
        ctx.progress(f"{names[0]} clipped", 0)


def _quant_f32(w: mx.array, params: dict) -> list[mx.array]:
    arrays = list(mx.quantize(w, group_size=params["group_size"], bits=params["bits"], mode=params.get("mode", "affine")))
    return [arrays[0], *(a.astype(mx.bfloat16) if a.dtype == mx.float32 else a for a in arrays[1:])]
