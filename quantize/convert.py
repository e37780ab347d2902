"""Convert a Hugging Face Magistral checkpoint to MLX weights, streaming tensor by tensor.

Built on mlx-vlm/mlx-lm: their model classes give the output names and shapes, their
``sanitize`` maps the checkpoint's names (and transposes the Pixtral patch convolution), their
predicates and recipes choose what to quantize, `mx.quantize` does the quantization (as
`nn.quantize` would), and the output's config.json/layout is theirs, so `mlx_vlm.load` and
`mlx_lm.load` read it.

What magimac adds:
- streaming: each source tensor is read in row chunks straight from its shard on a prefetch
  thread that also hashes the shard (`magimac.quantize.chunk_reader`), quantized, and written at its offset
  in a pre-planned output shard (`magimac.quantize.shards`), so peak memory is a few chunks, flat in
  the number of layers, instead of a whole 5 GB output shard;
- checks before any work (`magimac.quantize.source`), the exact size and the fit check
  (`magimac.quantize.sizes`), free disk space;
- safety: output goes to a hidden temporary directory beside ``out``, is verified (headers and
  a strict lazy load with mlx-vlm and mlx-lm) and renamed into place only then; an existing
  output is replaced only with ``force``, and only when magimac wrote it (its manifest says so,
  `magimac.quantize.manifest.not_ours`); Ctrl-C or an error removes the temporary directory,
  and every run removes those left beside ``out`` by killed processes (`magimac.core.staging`);
- the tokenizer copied so that it works (`magimac.quantize.tokenizer`), and `magimac-manifest.json`.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import mlx.core as mx

from magimac.core import staging
from magimac.quantize import methods
from magimac.quantize.jobs import Job, plan_jobs
from magimac.quantize.layout import ARCHITECTURES, OUTPUT_FLOAT_DTYPE, GroupSizeError, TensorSpec, architecture
from magimac.core.units import format_bytes
from magimac.quantize.manifest import not_ours, write_manifest
from magimac.quantize.shards import BackgroundWrites, ShardWriter, shard_name, split_shards
from magimac.quantize.sizes import Estimate, describe, fit, level_name, plan_for, summarize
from magimac.quantize.source import (Checkpoint, HubSource, QuantizeError, download, fetch_config, hf_blob_sha256,
                                     load_checkpoint, locate, read_header, sha256_file)
from magimac.quantize.chunk_reader import Chunk, SourceReader
from magimac.quantize.tokenizer import control_token_ids, copy_tokenizer

DISK_MARGIN_BYTES = 256 << 20


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
    """Refuse an ``out`` inside the source, an existing one without ``force``, and with
    ``force`` one that is not a conversion magimac wrote (`manifest.not_ours`)."""
    src = ckpt.path.resolve() if ckpt else None
    dst = out.resolve()
    if src and (dst == src or src in dst.parents or dst in src.parents):
        raise QuantizeError(f"{out}: the output must be outside the source checkpoint {ckpt.path} (never modified)")
    if not (out.exists() or out.is_symlink()):
        return
    if not force:
        raise QuantizeError(f"{out}: already exists; pass --force to replace it")
    reason = not_ours(out)
    if reason:
        raise QuantizeError(f"{out}: {reason}; --force only replaces a model magimac wrote: "
                            "choose another --out, or move it away yourself")


def check_disk(parent: Path, needed: int) -> None:
    """Raise `QuantizeError` when ``parent``'s file system has under ``needed`` bytes free."""
    free = shutil.disk_usage(parent).free
    if free < needed:
        raise QuantizeError(f"{parent}: not enough free disk space: {format_bytes(needed)} needed, "
                            f"{format_bytes(free)} free")


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


def _place(tmp: Path, out: Path, force: bool) -> None:
    """Rename ``tmp`` to ``out``; an existing ``out`` (checked again: `_check_out`) is moved
    aside into a staging directory first and removed only after ``tmp`` is in place."""
    if not (out.exists() or out.is_symlink()):
        os.replace(tmp, out)
        return
    _check_out(out, None, force)  # it may have changed while converting
    old = staging.make(out.parent, f".{out.name}.old-")
    os.replace(out, old / out.name)
    os.replace(tmp, out)
    shutil.rmtree(old, ignore_errors=True)


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
    gpu_limit_bytes: int | None = None,
    context: int = 32768,
    force: bool = False,
    progress: bool = True,
    revision: str | None = None,
    log: Callable[[str], None] | None = None,
    method: str = "rtn",
    calibration: Path | None = None,
    calibration_samples: int | None = None,
    calibration_tokens: int | None = None,
) -> Path:
    """Convert ``source`` (checkpoint dir, hub id or `HubSource`) to MLX weights in ``out``.

    Args:
        bits / group_size / mode: the level (affine 2-8 bits at group size 32/64/128, or
            ``mxfp4``/``nvfp4``/``mxfp8`` with their fixed numbers).
        recipe: a name from `magimac.quantize.recipes.RECIPES` (default ``uniform``).
        quantize_vision: quantize the vision tower and projector too (default bf16).
        target_ram_bytes: RAM of the Mac that will run the model (default: this machine's).
        gpu_limit_bytes: that Mac's GPU limit (the CLI passes the one `magimac plan` detects);
            None: macOS's default for ``target_ram_bytes``.
        context: tokens of 16-bit KV cache for the fit check.
        force: replace an existing ``out`` that magimac wrote (never any other folder), and
            convert even when the fit check fails.
        progress: show a progress bar on stderr.
        revision: hub revision for hub sources.
        log: where the size table and notes go (default: print to stderr).
        method: ``rtn`` (round to nearest, streamed), ``gptq`` or ``awq`` (calibrated, one
            decoder layer at a time: `magimac.quantize.methods`).
        calibration / calibration_samples / calibration_tokens: the calibration text (None:
            the shipped set) and its size (`magimac.quantize.calibration`; gptq/awq only).

    Returns:
        ``out``, a complete and verified model directory.

    Raises:
        QuantizeError: bad source, settings, existing output (or, with ``force``, one
            magimac did not write), no fit, no disk space (one line naming the file or value).
        magimac.core.staging.WriteError: ``out`` cannot be written (read-only disk, a file
            in its path); nothing is left behind.
        KeyboardInterrupt: passes through after removing the temporary directory.
    """
    methods.check_numbers(bits=bits, group_size=group_size, mode=mode, context=context,
                          samples=calibration_samples, tokens=calibration_tokens)
    say = log or (lambda s: print(s, file=sys.stderr))
    out = Path(out).expanduser().absolute()
    where = locate(source)
    ckpt = load_checkpoint(where) if isinstance(where, Path) else None
    config = ckpt.config if ckpt else fetch_config(where, revision)  # sizes before any download
    _check_out(out, ckpt, force)
    methods.check(method, mode, config, calibration=calibration,
                  sized=calibration_samples is not None or calibration_tokens is not None)
    model, plan, est = _plan(config, ckpt, where, bits=bits, group_size=group_size, mode=mode,
                             recipe=recipe, quantize_vision=quantize_vision)
    _check_fit(est, config, target_ram_bytes, context, force, say, gpu_limit_bytes)
    if ckpt is None:
        ckpt = download(where, revision)
    jobs = plan_jobs(ckpt, model, plan)
    calibrated = methods.prepare(method, calibration, ckpt, model, plan, samples=calibration_samples,
                                 tokens=calibration_tokens, progress=progress)
    made, tmp = _stage(out, est.total_bytes + DISK_MARGIN_BYTES, say)
    try:
        _write(tmp, ckpt, jobs, est, quantize_vision=quantize_vision, progress=progress, calibrated=calibrated)
        _place(tmp, out, force)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        staging.remove_made(made)
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES):
            raise staging.write_error(out, e, HINT) from None
        raise
    say(f"wrote {out} ({format_bytes(est.total_bytes)})")
    return out


HINT = "choose another --out (a folder on a writable disk with room for the model)"


def _plan(config: dict, ckpt: Checkpoint | None, where, **settings):
    """``(model, plan, estimate)`` of `sizes.plan_for`; errors as one-line `QuantizeError`s
    naming the shard or config.json."""
    try:
        model, plan, params = plan_for(config, **settings)
        est = summarize(model, plan, params, recipe=settings["recipe"], quantize_vision=settings["quantize_vision"])
    except GroupSizeError as e:
        raise QuantizeError(f"{_file_of(ckpt, e.path) if ckpt else where.repo}: {e}") from None
    except ValueError as e:
        raise QuantizeError(f"{ckpt.path / 'config.json' if ckpt else where.repo + '/config.json'}: {e}") from None
    return model, plan, est


def _check_fit(est: Estimate, config: dict, target_ram_bytes: int | None, context: int, force: bool,
               say: Callable[[str], None], gpu_limit_bytes: int | None = None) -> None:
    """Print the size table; refuse (unless ``force``) a level that does not fit a Mac with
    ``target_ram_bytes`` of RAM (default: this machine's) at ``gpu_limit_bytes`` (default:
    macOS's default GPU limit)."""
    if target_ram_bytes is None:
        import psutil

        target_ram_bytes = psutil.virtual_memory().total
    f = fit(est, config, ram_bytes=target_ram_bytes, context=context, gpu_limit_bytes=gpu_limit_bytes)
    say(describe(est, f))
    if not f.fits and not force:
        raise QuantizeError(
            f"{level_name(est)} needs {format_bytes(f.needed_bytes)} with a {context}-token KV cache, over the "
            f"{format_bytes(f.usable_bytes)} a Mac with {format_bytes(target_ram_bytes, binary=True)} of RAM can "
            f"use; pick fewer --bits, a smaller --context, or pass --force")


def _stage(out: Path, needed: int, say: Callable[[str], None]) -> tuple[list[Path], Path]:
    """Make ``out``'s parent (``made``: the folders created), sweep the stale staging directories
    there, make the staging directory and check the free disk; ``(made, tmp)``.

    Raises:
        WriteError: the parent cannot be made or written (one line naming it).
        QuantizeError: not enough free disk space.
    """
    made = staging.make_dirs(out.parent, HINT)
    partial = staging.partial_prefix(out.name)
    # left by runs killed outright: every output's partial, and this output's old copy (another
    # output's may be the only copy of that model, its run killed between two renames)
    for prefix in (staging.partial_prefix(), f".{out.name}.old-"):
        for stale in staging.sweep_stale(out.parent, prefix):
            say(f"removed {stale.name}, an unfinished conversion whose process is gone")
    tmp = None
    try:
        tmp = staging.make(out.parent, partial, HINT)  # first: an unwritable place says so
        check_disk(out.parent, needed)
    except BaseException:
        if tmp is not None:
            tmp.rmdir()
        staging.remove_made(made)
        raise
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes 0700; the finished model is an ordinary directory
    return made, tmp


def _write(tmp: Path, ckpt: Checkpoint, jobs: list[Job], est: Estimate, *, quantize_vision: bool,
           progress: bool, calibrated: methods.Calibrated | None = None) -> None:
    """Write the whole output into ``tmp``: shards, index, config.json, tokenizer, manifest;
    then verify it (`verify_output`).  With ``calibrated``, the decoder layers and the head
    come from its layer-by-layer pass after the streamed rest."""
    reader = writes = None
    try:
        shard_specs = split_shards([j.specs for j in jobs])
        owner = {s.name: i for i, specs in enumerate(shard_specs) for s in specs}
        writers = [ShardWriter(tmp / shard_name(i, len(shard_specs)), specs) for i, specs in enumerate(shard_specs, 1)]
        known = {p.name: h for p in ckpt.shards if (h := hf_blob_sha256(p))}
        streamed = jobs if calibrated is None else calibrated.stream_jobs(jobs)
        reader = SourceReader(ckpt.shards, streamed, known=known)
        writes = BackgroundWrites()
        total = sum(j.info.nbytes if j.info else sum(x.nbytes for x in j.specs) for j in streamed)
        with progress_bar(progress, total) as advance:
            for chunk in reader:
                advance(write_chunk(chunk, writers[owner[chunk.job.specs[0].name]], writes))
        if calibrated is not None:
            calibrated.run(lambda name, a: writes.write(writers[owner[name]], name, a, 0))
        writes.close()
    except BaseException:
        if writes is not None:
            writes.abort()
        if reader is not None:
            reader.close()
        raise
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
    write_manifest(tmp, {**_manifest(ckpt, est, hashes, quantize_vision),
                         **(calibrated.record() if calibrated else {"method": "rtn"})})
    verify_output(tmp, shard_specs, ckpt.config)


def _manifest(ckpt: Checkpoint, est: Estimate, hashes: dict[str, str], quantize_vision: bool) -> dict:
    """The fields of `magimac-manifest.json` that describe this conversion."""
    return {
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


def _file_of(ckpt: Checkpoint, module_path: str) -> Path:
    """The shard holding a module's weight (matched on the layer path's tail), else config.json."""
    tail = module_path.split(".model.", 1)[-1].removeprefix("language_model.")
    for name, info in ckpt.tensors.items():
        if name.endswith(f"{tail}.weight"):
            return info.file
    return ckpt.path / "config.json"

