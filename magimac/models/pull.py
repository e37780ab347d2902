"""`magimac pull`: download a model at a quantization level, the only step that goes online.

A ready-made MLX conversion (the registry entry's ``mlx`` table) is downloaded as it is;
otherwise the original checkpoint's files (the entry's ``allow_patterns``, never
``consolidated.safetensors``) are downloaded and converted with `magimac.quantize.convert.convert`
into ``paths.models_dir()/<entry>-<level>``.  Downloads go to the Hugging Face cache through
`huggingface_hub` (``snapshot_download``), which resumes a dropped connection with a Range
request and keeps every finished file, so running `pull` again after an interruption fetches
only what is missing.

What magimac adds: before any byte is fetched, the sizes (a dry run) are checked against the
free disk and the level against this machine's memory (`magimac.models.plan`); after the download,
every file is verified against the hub's sha256 (LFS) or git blob id
(`HfApi.verify_repo_checksums`), and a corrupt file is removed so that the next pull fetches
it again.  The hub endpoint is ``HF_ENDPOINT`` (read when `pull` runs).
"""

from __future__ import annotations

import json
import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from magimac.core import paths, staging
from magimac.core.errors import MagimacError, one_line
from magimac.core.units import format_bytes
from magimac.models import store
from magimac.models.registry import NEVER_FETCH, ModelEntry, default_model, find_entry, load_registry

DEFAULT_ENDPOINT = "https://huggingface.co"
DISK_MARGIN_FRACTION = 0.02  # free space kept beyond what the pull writes
DISK_MARGIN_MIN_BYTES = 512 << 20
IGNORE_PATTERNS = [NEVER_FETCH, "*.gguf", "*.pth", "original/*"]


class PullError(MagimacError):
    """A pull cannot start or did not complete; one line saying what to do."""


@dataclass(frozen=True)
class Source:
    """Where a pull gets its files.

    Attributes:
        entry: the registry entry; level: e.g. ``"4bit"``;
        repo_id: the hub repo downloaded;
        ready_made: True for an MLX conversion used as is, False for an original to convert;
        allow_patterns: files to fetch (None: every file but `IGNORE_PATTERNS`).
    """

    entry: ModelEntry
    level: str
    repo_id: str
    ready_made: bool
    allow_patterns: list[str] | None

    @property
    def installed_name(self) -> str:
        return f"{self.entry.name}-{self.level}"


def hub_endpoint() -> str:
    """The hub's URL: ``HF_ENDPOINT`` when set, else huggingface.co."""
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


@contextmanager
def online() -> Iterator[None]:
    """Lift the hub libraries' offline mode (see `store.enforce_offline`) for the block."""
    old_env = os.environ.get("HF_HUB_OFFLINE")
    os.environ["HF_HUB_OFFLINE"] = "0"
    from huggingface_hub import constants

    old = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = False
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = old
        if old_env is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = old_env


def find_model(model: str | None) -> ModelEntry:
    """The registry entry for ``model`` (name, alias, hub id); None: the default model.

    Raises:
        PullError: unknown, or a local-only entry whose directory is missing.
    """
    reg = load_registry()
    entry = find_entry(reg, model) if model else default_model(reg)
    if entry is None:
        raise PullError(f"unknown model {model!r}: pull a registry name (see `magimac models`)")
    local = entry.local_path()
    if not entry.hub_id and not entry.mlx and not (local is not None and store.is_model_dir(local)):
        raise PullError(f"{entry.name} is not on the hub and its directory {local} is missing")
    return entry


def choose_source(entry: ModelEntry, level: str) -> Source:
    """The ready-made conversion at ``level`` when the registry names one, else the original.

    Raises:
        PullError: no ready-made conversion and no original to convert, or a level magimac
            cannot convert to.
    """
    if level in entry.mlx:
        return Source(entry, level, entry.mlx[level], True, None)
    if not entry.hub_id:
        raise PullError(f"{entry.name} has no {level} conversion (ready-made: {', '.join(entry.mlx) or 'none'})")
    from magimac.models.levels import spec_for_level

    spec_for_level(level)  # raises on bf16 and other levels quantize cannot produce
    patterns = [p for p in entry.allow_patterns if NEVER_FETCH not in p] or None
    return Source(entry, level, entry.hub_id, False, patterns)


def check_disk(needs: dict[Path, int]) -> None:
    """Raise `PullError` unless each file system has the bytes ``needs`` asks of it
    (directories on one file system add up) plus a margin.

    The free space is `magimac.models.hardware.free_disk_bytes` (``shutil.disk_usage``).
    """
    from magimac.models.hardware import free_disk_bytes

    by_device: dict[int, tuple[Path, int]] = {}
    for d, n in needs.items():
        probe = Path(d).absolute()
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        dev = probe.stat().st_dev
        first, total = by_device.get(dev, (Path(d), 0))
        by_device[dev] = (first, total + n)
    for d, n in by_device.values():
        free = free_disk_bytes(d)
        want = n + max(DISK_MARGIN_MIN_BYTES, int(n * DISK_MARGIN_FRACTION))
        if free < want:
            raise PullError(f"{d}: not enough free disk space: this pull needs {format_bytes(want)}, "
                            f"{format_bytes(free)} are free; free some space (`magimac rm`) and pull again")


def _check_memory(src: Source, weights: int, config: dict, hw) -> None:
    from magimac.models import plan
    from magimac.models.levels import max_context, model_max_context

    budget = plan.budget_bytes(hw)
    cap = model_max_context(config)
    if max_context(config, weights, budget, 4, cap) >= min(plan.MIN_CONTEXT, cap):
        return
    rec = plan.recommend(src.entry.name, config, hw)
    hint = f"`magimac plan` recommends {rec.level}" if rec else "no level fits (`magimac plan`)"
    raise PullError(f"{src.installed_name} ({format_bytes(weights)}) does not fit this machine's GPU memory "
                    f"({format_bytes(budget)} usable): {hint}; pass --force to pull it anyway")


def _remove_cached(path: Path) -> None:
    """Delete a cached file: its snapshot link and the blob it points to."""
    blob = path.resolve()
    path.unlink(missing_ok=True)
    if blob != path:
        blob.unlink(missing_ok=True)


def verify(src: Source, snapshot: Path, endpoint: str, cache: Path) -> int:
    """Check every file of ``snapshot`` against the hub's checksums; returns how many.

    Raises:
        PullError: a file is missing or its sha256 / git blob id differs; corrupt files are
            removed from the cache first, so pulling again fetches them anew.
    """
    from huggingface_hub import HfApi
    from huggingface_hub.utils import filter_repo_objects

    result = HfApi(endpoint=endpoint).verify_repo_checksums(
        src.repo_id, cache_dir=cache, revision=snapshot.name, token=False)
    wanted = set(filter_repo_objects(result.missing_paths, allow_patterns=src.allow_patterns,
                                     ignore_patterns=IGNORE_PATTERNS))
    bad = list(result.mismatches)
    for m in bad:
        _remove_cached(snapshot / m["path"])
    if bad:
        m = bad[0]
        raise PullError(f"{m['path']} from {src.repo_id} is corrupt: its {m['algorithm']} is {m['actual'][:12]}, "
                        f"the hub says {m['expected'][:12]}; it was removed: run `magimac pull "
                        f"{src.entry.name} --quant {src.level}` again")
    if wanted:
        raise PullError(f"{sorted(wanted)[0]} from {src.repo_id} is missing after the download: "
                        f"run `magimac pull {src.entry.name} --quant {src.level}` again")
    return result.checked_count


def pull(model: str | None = None, level: str = "4bit", *, force: bool = False, keep_original: bool = False,
         progress: bool = True, tqdm_class=None, say: Callable[[str], None] | None = None,
         hw=None) -> store.InstalledModel:
    """Download (and if needed convert) ``model`` at ``level``; returns the installed model.

    Args:
        model: registry name, alias or hub id; None: the default model.
        level: ``"4bit"`` etc. (`registry.QUANT_LEVELS`; converting supports 2-8 bit, mxfp4).
        force: pull even when the level does not fit this machine, and replace an installed
            copy.
        keep_original: keep the original checkpoint in the Hugging Face cache after
            converting it (default: removed, it is 48 GB for Magistral Small).
        progress: progress bars on stderr (downloads: huggingface_hub's; conversion: quantize's).
        tqdm_class: a tqdm-like class for the download progress (for the TUI).
        say: where status lines go (default: stderr).
        hw: the machine (default `hardware.detect()`).

    Raises:
        PullError: unknown model, level, no disk space, too large for this machine, download
            failure (finished files are kept: pulling again resumes), corrupt file.
        magimac.core.staging.WriteError: the Hugging Face cache or the models directory cannot
            be written (checked before anything is downloaded).
        magimac.quantize.source.QuantizeError: the conversion failed.
    """
    from magimac.models import hardware

    say = say or (lambda s: print(s, file=sys.stderr))
    entry = find_model(model)
    if not entry.hub_id and not entry.mlx:
        say(f"{entry.name} is bundled with magimac, nothing to download: run `magimac --model {entry.name}`")
        return store.describe_dir(entry.local_path(), entry.name, "bundled")
    src = choose_source(entry, level)
    done = [m for m in store.installed_for(entry) if m.name == src.installed_name]
    if done and not force:
        say(f"{src.installed_name} is already installed at {done[0].path}")
        return done[0]
    endpoint, cache = hub_endpoint(), store.hf_cache_dir()
    _check_writable(src, cache)
    kind = "ready-made MLX conversion" if src.ready_made else "original checkpoint, converted here"
    say(f"magimac pull goes online: {endpoint}/{src.repo_id} ({kind}); every other command stays offline")
    if not progress and tqdm_class is None:
        tqdm_class = _silent_tqdm()
    with online():
        snapshot, download = _download(src, endpoint, cache, hw or hardware.detect(), force=force,
                                       tqdm_class=tqdm_class, say=say)
    if src.ready_made:
        installed = [m for m in store.installed_models() if m.repo_id == src.repo_id]
        if not installed:
            raise PullError(f"{src.repo_id}: downloaded to {snapshot} but it is not a runnable MLX model")
        say(f"installed {src.installed_name} ({format_bytes(installed[0].size_bytes)}) at {snapshot}")
        return installed[0]
    return _convert(src, snapshot, force=True, progress=progress, say=say,
                    remove_original=download > 0 and not keep_original)


def _check_writable(src: Source, cache: Path) -> None:
    """Before any byte is fetched: the Hugging Face cache, and for a conversion the models
    directory, can be written (`staging.check_writable`; one line naming the path)."""
    staging.check_writable(cache, "set HF_HOME (or HF_HUB_CACHE) to a writable folder")
    if not src.ready_made:
        staging.check_writable(paths.models_dir(), "set MAGIMAC_MODELS_DIR to a writable folder")


def _download(src: Source, endpoint: str, cache: Path, hw, *, force: bool, tqdm_class,
              say: Callable[[str], None]) -> tuple[Path, int]:
    """Size the pull (a dry run), check memory (unless ``force``) and disk, download and
    verify; returns ``(snapshot directory, bytes downloaded)``.  Call inside `online`.

    Raises:
        PullError: the hub cannot be reached, too large, no disk space, failed or corrupt
            download.
    """
    from huggingface_hub import hf_hub_download, snapshot_download

    common = dict(cache_dir=cache, endpoint=endpoint, allow_patterns=src.allow_patterns,
                  ignore_patterns=IGNORE_PATTERNS, token=False)
    try:
        files = snapshot_download(src.repo_id, dry_run=True, **common)
        commit = files[0].commit_hash if files else None
        config = json.loads(Path(hf_hub_download(src.repo_id, "config.json", revision=commit, cache_dir=cache,
                                                 endpoint=endpoint, token=False)).read_text())
    except Exception as e:  # network, missing repo, bad answer: one line
        raise PullError(f"{src.repo_id}: cannot reach the hub at {endpoint}: {one_line(e)}") from None
    download = sum(f.file_size or 0 for f in files if f.will_download)
    weights = _weights_bytes(src, files, config)
    say(f"{src.repo_id}: {len(files)} files, {format_bytes(download)} to download"
        + ("" if src.ready_made else f", {format_bytes(weights)} after conversion to {src.level}"))
    if not force:
        _check_memory(src, weights, config, hw)
    check_disk({cache: download} if src.ready_made else {cache: download, paths.models_dir(): weights})
    again = f"run `magimac pull {src.entry.name} --quant {src.level}` again"
    try:
        snapshot = Path(snapshot_download(src.repo_id, revision=commit, tqdm_class=tqdm_class, **common))
    except KeyboardInterrupt:
        raise
    except Exception as e:
        raise PullError(f"{src.repo_id}: download failed: {one_line(e)}; finished files are kept: "
                        f"{again} to resume") from None
    try:
        n = verify(src, snapshot, endpoint, cache)
    except PullError:
        raise
    except Exception as e:
        raise PullError(f"{src.repo_id}: cannot verify the download: {one_line(e)}") from None
    say(f"verified {n} files against the hub's checksums")
    return snapshot, download


def _weights_bytes(src: Source, files: list, config: dict) -> int:
    """Bytes of the weights the pull installs: a ready-made conversion's safetensors, or the
    exact size of converting ``config`` to ``src.level``."""
    if src.ready_made:
        return sum(f.file_size or 0 for f in files if f.filename.endswith(".safetensors"))
    from magimac.models.levels import spec_for_level

    return spec_for_level(src.level).estimate(config).total_bytes


def _convert(src: Source, snapshot: Path, *, force: bool, progress: bool, say, remove_original: bool):
    from magimac.models.levels import spec_for_level
    from magimac.quantize.convert import convert

    spec = spec_for_level(src.level)
    out = paths.models_dir() / src.installed_name
    convert(snapshot, out, bits=spec.bits, group_size=spec.group_size, mode=spec.mode, recipe=spec.recipe,
            force=force, progress=progress, log=say)
    if remove_original and store.remove_cached_repo(src.repo_id):
        say(f"removed the original {src.repo_id} from the Hugging Face cache (--keep-original keeps it)")
    installed = store.describe_dir(out)
    say(f"installed {installed.name} ({format_bytes(installed.size_bytes)}) at {out}")
    return installed



def _silent_tqdm():
    """A tqdm class that shows nothing (``progress=False``)."""
    from huggingface_hub.utils import tqdm

    class Silent(tqdm):
        def __init__(self, *args, **kwargs):
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)

    return Silent
