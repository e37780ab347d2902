"""Convert a Hugging Face Magistral checkpoint to MLX weights, streaming tensor by tensor.

Built on mlx-vlm/mlx-lm: their model classes give the output names and shapes, their
``sanitize`` maps the checkpoint's names (and transposes the Pixtral patch convolution), their
predicates and recipes choose what to quantize, `mx.quantize` does the quantization (as
`nn.quantize` would), and the output's config.json/layout is theirs, so `mlx_vlm.load` and
`mlx_lm.load` read it.

What magimac adds:
- streaming: each source tensor is read in row chunks straight from its shard on a prefetch
  thread that also hashes the shard (`magimac.quantize.stream`), quantized, and written at its offset
  in a pre-planned output shard (`magimac.quantize.shards`), so peak memory is a few chunks, flat in
  the number of layers, instead of a whole 5 GB output shard;
- checks before any work (`magimac.quantize.source`), the exact size and the fit check
  (`magimac.quantize.sizes`), free disk space;
- safety: output goes to a hidden temporary directory beside ``out``, is verified (headers and
  a strict lazy load with mlx-vlm and mlx-lm) and renamed into place only then; an existing
  output is replaced only with ``force``; Ctrl-C or an error removes the temporary directory,
  and the next run on ``out`` removes one left by a killed process (`magimac.core.staging`);
- the tokenizer copied so that it works (`magimac.quantize.tokenizer`), and `magimac-manifest.json`.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import mlx.core as mx

from magimac.core import staging
from magimac.quantize.layout import (
    ARCHITECTURES,
    OUTPUT_FLOAT_DTYPE,
    GroupSizeError,
    TensorSpec,
    architecture,
    quantized_specs,
)
from magimac.quantize.manifest import write_manifest
from magimac.quantize.shards import BackgroundWrites, ShardWriter, shard_name, split_shards
from magimac.quantize.sizes import Estimate, describe, fit, human_bytes, level_name, plan_for, summarize
from magimac.quantize.source import (Checkpoint, HubSource, QuantizeError, download, fetch_config, hf_blob_sha256, load_checkpoint, locate,
                             read_header, sha256_file, TensorInfo)
from magimac.quantize.stream import NUMPY_DTYPES, Chunk, SourceReader
from magimac.quantize.tokenizer import control_token_ids, copy_tokenizer

DISK_MARGIN_BYTES = 256 << 20


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
            raise QuantizeError(f"{shard}: cannot read safetensors: {str(e).splitlines()[0]}") from None
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


def _convert_chunk(x: mx.array, quant: dict | None) -> list[mx.array]:
    x = x.astype(OUTPUT_FLOAT_DTYPE)
    if quant is None:
        return [x]
    return list(mx.quantize(x, group_size=quant["group_size"], bits=quant["bits"], mode=quant["mode"]))


def write_chunk(chunk: Chunk, writer: ShardWriter, writes: BackgroundWrites) -> int:
    """Quantize (or cast to bf16) one chunk of a source tensor and queue it for ``writer`` at
    its rows on ``writes``; returns the source bytes it covered."""
    job = chunk.job
    if chunk.data is None:
        x = job.lazy
    else:
        x = mx.array(chunk.data).reshape(chunk.rows, *job.shape[1:]) if job.shape else mx.array(chunk.data)[0]
        if job.info.dtype == "BF16":
            x = x.view(mx.bfloat16)
    outs = _convert_chunk(x, job.quant)
    mx.eval(outs)
    for spec, a in zip(job.specs, outs):
        writes.write(writer, spec.name, a, chunk.row)
    if chunk.data is None:
        job.lazy = None
        return job.info.nbytes if job.info else sum(s.nbytes for s in job.specs)
    return chunk.data.nbytes


@contextmanager
def progress_bar(enabled: bool, total: int) -> Iterator[Callable[[int], None]]:
    """Yield ``advance(bytes)`` for a rich progress bar over ``total`` source bytes (bytes done,
    rate, elapsed and remaining time) on stderr; a no-op when not ``enabled``."""
    if not enabled:
        yield lambda n: None
        return
    from rich.console import Console
    from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn,
                               TimeRemainingColumn, TransferSpeedColumn)

    with Progress(TextColumn("quantizing"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                  TimeElapsedColumn(), TimeRemainingColumn(), console=Console(stderr=True)) as bar:
        task = bar.add_task("quantize", total=total)
        yield lambda n: bar.advance(task, n)


def _check_out(out: Path, ckpt: Checkpoint | None, force: bool) -> None:
    src = ckpt.path.resolve() if ckpt else None
    dst = out.resolve()
    if src and (dst == src or src in dst.parents or dst in src.parents):
        raise QuantizeError(f"{out}: the output must be outside the source checkpoint {ckpt.path} (never modified)")
    if out.exists() and not force:
        raise QuantizeError(f"{out}: already exists; pass --force to replace it")
    if out.exists() and not out.is_dir():
        raise QuantizeError(f"{out}: exists and is not a directory")


def check_disk(parent: Path, needed: int) -> None:
    """Raise `QuantizeError` when ``parent``'s file system has under ``needed`` bytes free."""
    free = shutil.disk_usage(parent).free
    if free < needed:
        raise QuantizeError(f"{parent}: not enough free disk space: {human_bytes(needed)} needed, "
                            f"{human_bytes(free)} free")


def verify_output(tmp: Path, shard_specs: list[list[TensorSpec]], config: dict) -> None:
    """Reload check: every shard header matches its plan and the file size, and the model loads
    strictly (lazily, no weights read) with mlx-vlm (vision models) and mlx-lm (text).

    Raises:
        RuntimeError: anything differs (a bug, not a user error).
    """
    n = len(shard_specs)
    for i, specs in enumerate(shard_specs, 1):
        got = read_header(tmp / shard_name(i, n))
        want = {s.name: (s.shape, s.nbytes) for s in specs}
        have = {k: (t.shape, t.nbytes) for k, t in got.items()}
        if want != have:
            raise RuntimeError(f"{shard_name(i, n)}: written tensors differ from the plan")
    import mlx_lm.utils

    mlx_lm.utils.load_model(tmp, lazy=True, strict=True)
    if ARCHITECTURES[architecture(config)] == "mlx_vlm":
        import mlx_vlm.utils

        mlx_vlm.utils.load_model(tmp, lazy=True)


def _write_config(tmp: Path, config: dict, est: Estimate) -> None:
    from mlx_vlm.utils import save_config

    cfg = json.loads(json.dumps(config))
    cfg.pop("quantization_config", None)
    cfg["quantization"] = est.quantization
    save_config(cfg, config_path=tmp / "config.json")


def _place(tmp: Path, out: Path) -> None:
    """Rename ``tmp`` to ``out``, replacing an existing ``out`` only after ``tmp`` is in place."""
    if out.exists():
        old = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.old-"))
        os.replace(out, old / out.name)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)


def convert(
    source: str | Path | HubSource,
    out: Path,
    *,
    bits: int = 4,
    group_size: int = 64,
    mode: str = "affine",
    recipe: str | None = None,
    quantize_vision: bool = False,
    target_ram_bytes: int | None = None,
    context: int = 32768,
    force: bool = False,
    progress: bool = True,
    revision: str | None = None,
    log: Callable[[str], None] | None = None,
) -> Path:
    """Convert ``source`` (checkpoint dir, hub id or `HubSource`) to MLX weights in ``out``.

    Args:
        bits / group_size / mode: the level (affine 2-8 bits at group size 32/64/128, or
            ``mxfp4``/``nvfp4``/``mxfp8`` with their fixed numbers).
        recipe: a name from `magimac.quantize.recipes.RECIPES` (default ``uniform``).
        quantize_vision: quantize the vision tower and projector too (default bf16).
        target_ram_bytes: RAM of the Mac that will run the model (default: this machine's).
        context: tokens of 16-bit KV cache for the fit check.
        force: replace an existing ``out`` and convert even when the fit check fails.
        progress: show a progress bar on stderr.
        revision: hub revision for hub sources.
        log: where the size table and notes go (default: print to stderr).

    Returns:
        ``out``, a complete and verified model directory.

    Raises:
        QuantizeError: bad source, settings, existing output, no fit, no disk space
            (one line naming the file or value).
        KeyboardInterrupt: passes through after removing the temporary directory.
    """
    say = log or (lambda s: print(s, file=sys.stderr))
    out = Path(out).expanduser().absolute()
    where = locate(source)
    ckpt = load_checkpoint(where) if isinstance(where, Path) else None
    config = ckpt.config if ckpt else fetch_config(where, revision)  # sizes before any download
    _check_out(out, ckpt, force)
    try:
        model, plan, params = plan_for(config, bits=bits, group_size=group_size, mode=mode,
                                       recipe=recipe, quantize_vision=quantize_vision)
        est = summarize(model, plan, params, recipe=recipe, quantize_vision=quantize_vision)
    except GroupSizeError as e:
        raise QuantizeError(f"{_file_of(ckpt, e.path) if ckpt else where.repo}: {e}") from None
    except ValueError as e:
        raise QuantizeError(f"{ckpt.path / 'config.json' if ckpt else where.repo + '/config.json'}: {e}") from None
    if target_ram_bytes is None:
        import psutil

        target_ram_bytes = psutil.virtual_memory().total
    f = fit(est, config, ram_bytes=target_ram_bytes, context=context)
    say(describe(est, f))
    if not f.fits and not force:
        raise QuantizeError(
            f"{level_name(est)} needs {human_bytes(f.needed_bytes)} with a {context}-token KV cache, over the "
            f"{human_bytes(f.usable_bytes)} a Mac with {human_bytes(target_ram_bytes)} of RAM can use; pick fewer --bits, "
            f"a smaller --context, or pass --force")
    if ckpt is None:
        ckpt = download(where, revision)
    jobs = plan_jobs(ckpt, model, plan)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = f".{out.name}.partial-"
    for stale in staging.sweep_stale(out.parent, partial):  # left by a run killed outright
        say(f"removed {stale.name}, an unfinished conversion whose process is gone")
    check_disk(out.parent, est.total_bytes + DISK_MARGIN_BYTES)

    tmp = staging.make(out.parent, partial)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes 0700; the finished model is an ordinary directory
    reader = writes = None
    try:
        shard_specs = split_shards([j.specs for j in jobs])
        owner = {s.name: i for i, specs in enumerate(shard_specs) for s in specs}
        writers = [ShardWriter(tmp / shard_name(i, len(shard_specs)), specs) for i, specs in enumerate(shard_specs, 1)]
        known = {p.name: h for p in ckpt.shards if (h := hf_blob_sha256(p))}
        reader = SourceReader(ckpt.shards, jobs, known=known)
        writes = BackgroundWrites()
        with progress_bar(progress, ckpt.weight_bytes) as advance:
            for chunk in reader:
                advance(write_chunk(chunk, writers[owner[chunk.job.specs[0].name]], writes))
        writes.close()
        hashes = reader.hashes()
        hashes.update({p.name: sha256_file(p) for p in ckpt.files if p not in ckpt.shards})
        for w in writers:
            w.close()
        index = {"metadata": {"total_size": sum(s.nbytes for specs in shard_specs for s in specs)},
                 "weight_map": dict(sorted((s.name, shard_name(i, len(shard_specs)))
                                           for i, specs in enumerate(shard_specs, 1) for s in specs))}
        (tmp / "model.safetensors.index.json").write_text(json.dumps(index, indent=4) + "\n")
        _write_config(tmp, ckpt.config, est)
        copy_tokenizer(ckpt.path, tmp)
        manifest = {
            "source": ckpt.hub_id or str(ckpt.path.resolve()),
            "revision": ckpt.revision,
            "source_files": {p.name: hashes[p.name] for p in ckpt.files},
            "recipe": est.recipe, "bits": est.bits, "group_size": est.group_size, "mode": est.mode,
            "quantize_vision": quantize_vision,
            "bits_per_weight": round(est.bits_per_weight, 4),
            "bytes": {**est.components, "total": est.total_bytes},
            "quantization": est.quantization,
            "tokenizer": {"file": ckpt.tokenizer.name,
                          **({"control_ids": control_token_ids(ckpt.tokenizer)} if ckpt.tokenizer.name == "tekken.json" else {})},
        }
        write_manifest(tmp, manifest)
        verify_output(tmp, shard_specs, ckpt.config)
        _place(tmp, out)
    except BaseException:
        if writes is not None:
            writes.abort()
        if reader is not None:
            reader.close()
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    say(f"wrote {out} ({est.total_gb:.2f} GB)")
    return out


def _file_of(ckpt: Checkpoint, module_path: str) -> Path:
    """The shard holding a module's weight (matched on the layer path's tail), else config.json."""
    tail = module_path.split(".model.", 1)[-1].removeprefix("language_model.")
    for name, info in ckpt.tensors.items():
        if name.endswith(f"{tail}.weight"):
            return info.file
    return ckpt.path / "config.json"

