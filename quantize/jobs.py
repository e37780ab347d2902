"""Which source tensor becomes which output tensors: the jobs of a conversion.

mlx-vlm's (or mlx-lm's) ``sanitize`` maps the checkpoint's names and layouts to the model's
parameters; `plan_jobs` matches each sanitized tensor to its parameter, checks its shape, and
pairs it with its quantization params and output specs (`magimac.quantize.layout`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import mlx.core as mx

from magimac.core.errors import one_line
from magimac.quantize.layout import ARCHITECTURES, OUTPUT_FLOAT_DTYPE, TensorSpec, architecture, quantized_specs
from magimac.quantize.source import Checkpoint, QuantizeError, TensorInfo
from magimac.quantize.chunk_reader import NUMPY_DTYPES


@dataclass
class Job:
    """One source tensor to convert.

    ``name``: output tensor name (after sanitize); ``info``: its source bytes when sanitize
    only renamed it (read in chunks), else ``lazy``: the sanitized lazy array (evaluated
    whole; small tensors such as the patch convolution); ``quant``: params or None;
    ``specs``: the output tensors it produces.
    """

    name: str
    source_file: Path
    shape: tuple[int, ...]
    info: TensorInfo | None
    lazy: mx.array | None
    quant: dict | None
    specs: list[TensorSpec]


def _sanitizer(config: dict, model) -> Callable[[dict], dict]:
    """The weight-name/layout fix-ups mlx-vlm (or mlx-lm) apply when loading ``config``'s model."""
    if ARCHITECTURES[architecture(config)] == "mlx_lm":
        return model.sanitize if hasattr(model, "sanitize") else (lambda w: w)
    from mlx_vlm.utils import get_model_and_args, sanitize_weights

    arch, _ = get_model_and_args(config)
    steps = [lambda w: sanitize_weights(model, w)]
    if hasattr(arch, "VisionModel"):
        steps.append(lambda w: sanitize_weights(arch.VisionModel, w, model.config.vision_config))
    if hasattr(arch, "LanguageModel"):
        steps.append(lambda w: sanitize_weights(arch.LanguageModel, w, model.config.text_config))

    def run(weights: dict) -> dict:
        for step in steps:
            weights = step(weights)
        return weights

    return run


def plan_jobs(ckpt: Checkpoint, model, plan: dict[str, dict]) -> list[Job]:
    """Match the checkpoint's (sanitized) tensors to the model's parameters.

    Raises:
        QuantizeError: a tensor the config expects is missing, has the wrong shape, or an
            unexpected tensor is present (each message names the shard file).
    """
    from mlx.utils import tree_flatten

    expected = {k: tuple(v.shape) for k, v in tree_flatten(model.parameters())}
    sanitize = _sanitizer(ckpt.config, model)
    jobs: list[Job] = []
    for shard in ckpt.shards:
        shard_jobs: list[Job] = []
        infos = {n: t for n, t in ckpt.tensors.items() if t.file == shard}
        try:
            lazy = mx.load(str(shard))
        except Exception as e:  # noqa: BLE001 - MLX raises RuntimeError/ValueError
            raise QuantizeError(f"{shard}: cannot read safetensors: {one_line(e)}") from None
        by_id = {id(v): n for n, v in lazy.items()}
        for name, arr in sanitize(dict(lazy)).items():
            if name not in expected:
                raise QuantizeError(f"{shard}: unexpected tensor {name} for this config.json; is it the right checkpoint?")
            if tuple(arr.shape) != expected[name]:
                raise QuantizeError(f"{shard}: tensor {name} has shape {list(arr.shape)}, "
                                    f"config.json implies {list(expected[name])}")
            src = by_id.get(id(arr))
            info = infos.get(src) if src is not None else None
            if info is not None and info.dtype not in NUMPY_DTYPES:
                info = None
            module, _, leaf = name.rpartition(".")
            quant = plan.get(module) if leaf == "weight" else None
            specs = (quantized_specs(module, arr.shape, quant) if quant
                     else [TensorSpec(name, tuple(arr.shape), OUTPUT_FLOAT_DTYPE)])
            shard_jobs.append(Job(name, shard, tuple(arr.shape), info, None if info else arr, quant, specs))
            expected.pop(name)
        jobs += sorted(shard_jobs, key=lambda j: j.info.offset if j.info else float("inf"))  # file order
    if expected:
        missing = sorted(expected)
        raise QuantizeError(f"{ckpt.shards[-1].parent}: checkpoint lacks {len(missing)} tensor(s) config.json "
                            f"needs, e.g. {missing[0]}; download it again")
    return jobs
