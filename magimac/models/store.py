"""Installed models: find them, and resolve what a person typed to a model directory.

Models live in two places: `paths.models_dir()` (what `magimac quantize` and `magimac pull`
convert) and the Hugging Face cache (ready-made MLX conversions `magimac pull` downloads,
and any other MLX conversion there, e.g. from `mlx_lm` or `hf download`).

A model directory is *converted* (runnable) when it holds `config.json` and its safetensors
weights (every shard its `model.safetensors.index.json` names, when it has one).  Only
converted models of the Hugging Face cache (a ``quantization`` entry in config.json, or a
repo named in the registry's ``mlx`` tables) are listed; original bf16 checkpoints there are
`magimac quantize` sources, not installed models.

Offline by design: `enforce_offline` puts the hub libraries in offline mode for every
command except those in `ONLINE_COMMANDS`; nothing here touches the network.
"""

from __future__ import annotations

from magimac.core.errors import MagimacError

import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from magimac.core import paths
from magimac.models.registry import ModelEntry, default_model, find_entry, load_registry

ONLINE_COMMANDS = ("pull", "quantize")  # the only commands that may download


class ModelNotFound(MagimacError, LookupError):
    """No installed model matches; the message says what to run."""


class UnknownModel(ModelNotFound):
    """The name is neither a model directory nor a registry name; the message lists the close
    matches."""


@dataclass(frozen=True)
class InstalledModel:
    """A converted model on disk.

    Attributes:
        path: the directory; name: its registry-style name (``<entry>-<level>`` for
        registry models, else the directory name or hub repo id);
        quantization: e.g. ``"4bit"``, ``"bf16"``, ``"mixed"``; size_bytes: bytes of its files;
        source: where it came from (``"hub:owner/repo@commit"``, the manifest's source, or
        ``"local"``); where: ``"models dir"``, ``"hf cache"`` or ``"bundled"``;
        repo_id: the hub repo of an HF-cache model (``""`` otherwise).
    """

    path: Path
    name: str
    quantization: str
    size_bytes: int
    source: str = "local"
    where: str = "models dir"
    repo_id: str = ""


def enforce_offline(command: str | None) -> None:
    """Put `huggingface_hub` (and so transformers, mlx-lm, mlx-vlm) in offline mode unless
    ``command`` is one of `ONLINE_COMMANDS`.  Call before the hub libraries are imported;
    if they already are, their offline flag is set too."""
    if command in ONLINE_COMMANDS:
        return
    os.environ["HF_HUB_OFFLINE"] = "1"
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None:
        constants.HF_HUB_OFFLINE = True


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache, read from the environment now (``HF_HUB_CACHE``, else
    ``HF_HOME/hub``, else ``$XDG_CACHE_HOME/huggingface/hub``, as `huggingface_hub` does)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "huggingface")
    return Path(home).expanduser() / "hub"


def is_model_dir(path: Path) -> bool:
    """True when ``path`` holds a config.json and safetensors weights, including every shard
    its ``model.safetensors.index.json`` names (an interrupted download is not a model)."""
    path = Path(path)
    if not (path / "config.json").is_file() or not any(path.glob("*.safetensors")):
        return False
    index = path / "model.safetensors.index.json"
    if index.is_file():
        try:
            shards = set(json.loads(index.read_text()).get("weight_map", {}).values())
        except (OSError, json.JSONDecodeError, AttributeError):
            return False
        return all((path / s).is_file() for s in shards)
    return True


def _config(path: Path) -> dict:
    try:
        return json.loads((path / "config.json").read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def _manifest(path: Path) -> dict:
    from magimac.quantize.manifest import read_manifest

    m = read_manifest(path)
    return m if isinstance(m, dict) else {}


def quantization_label(path: Path) -> str:
    """``"4bit"``, ``"mxfp4"``, a recipe name, ``"mixed"`` or ``"bf16"`` from a model's
    config.json (and its magimac manifest's recipe, when not uniform)."""
    cfg = _config(path)
    if not cfg:
        return "?"
    q = cfg.get("quantization") or cfg.get("quantization_config")
    if not q:
        return "bf16"
    recipe = _manifest(path).get("recipe")
    if isinstance(recipe, str) and recipe not in ("uniform", ""):
        return recipe
    mode = q.get("mode", "affine")
    if mode != "affine":
        return mode
    bits = q.get("bits")
    mixed = any(isinstance(v, dict) and v.get("bits") not in (None, bits) for v in q.values())
    return "mixed" if mixed or not bits else f"{bits}bit"


def _dir_size(path: Path) -> int:
    """Bytes of the files under ``path`` (symlinks followed, as in the HF cache)."""
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def describe_dir(path: Path, name: str | None = None, where: str = "models dir") -> InstalledModel:
    """An `InstalledModel` for a converted model directory; its source comes from the
    `magimac quantize` manifest (a Hugging Face cache snapshot reads ``hub:owner/repo@commit``)."""
    m = _manifest(path)
    src = str(m.get("source") or "local")
    parts = Path(src).parts
    if len(parts) >= 3 and parts[-2] == "snapshots" and parts[-3].startswith("models--"):
        src = f"hub:{parts[-3][len('models--'):].replace('--', '/')}@{parts[-1][:7]}"
    elif m.get("revision") and "/" in src and not Path(src).is_absolute():
        src = f"hub:{src}@{str(m['revision'])[:7]}"
    return InstalledModel(Path(path), name or Path(path).name, quantization_label(path), _dir_size(path), src, where)


def _hf_cache_models(registry: dict[str, ModelEntry]) -> list[InstalledModel]:
    root = hf_cache_dir()
    if not root.is_dir():
        return []
    from huggingface_hub import scan_cache_dir

    known = {repo.lower(): (e.name, level) for e in registry.values() for level, repo in e.mlx.items()}
    found = []
    for repo in sorted(scan_cache_dir(root).repos, key=lambda r: r.repo_id):
        if repo.repo_type != "model" or not repo.revisions:
            continue
        rev = next((r for r in repo.revisions if "main" in r.refs), None) or max(
            repo.revisions, key=lambda r: r.last_modified)
        snap = rev.snapshot_path
        if not is_model_dir(snap):
            continue
        cfg = _config(snap)
        entry = known.get(repo.repo_id.lower())
        if entry is None and not (cfg.get("quantization") or cfg.get("quantization_config")):
            continue  # an original checkpoint kept for `magimac quantize`
        name = f"{entry[0]}-{entry[1]}" if entry else repo.repo_id
        found.append(InstalledModel(snap, name, quantization_label(snap), rev.size_on_disk,
                                    f"hub:{repo.repo_id}@{rev.commit_hash[:7]}", "hf cache", repo.repo_id))
    return found


def installed_models() -> list[InstalledModel]:
    """Converted models: `paths.models_dir()`, then the Hugging Face cache, then registry
    entries with a local path (the bundled demo)."""
    reg = load_registry()
    found: list[InstalledModel] = []
    root = paths.models_dir()
    if root.is_dir():
        for d in sorted(root.iterdir()):
            if d.is_dir() and not d.name.startswith(".") and is_model_dir(d):
                found.append(describe_dir(d))
    found += _hf_cache_models(reg)
    for e in reg.values():
        p = e.local_path()
        if p and is_model_dir(p):
            found.append(describe_dir(p, e.name, "bundled"))
    return found


def entry_named(registry: dict[str, ModelEntry], name: str) -> ModelEntry | None:
    """The registry entry a model folder's or an installed model's ``name`` belongs to: the
    entry whose name or alias ``name`` is, or starts with followed by ``-`` (a level, as in
    ``magistral-small-1.2-4bit``), case ignored; the longest such name wins; None: no entry."""
    low = name.lower()
    names = [(len(n), e) for e in registry.values() for n in map(str.lower, (e.name, *e.aliases))
             if low == n or low.startswith(n + "-")]
    return max(names, key=lambda x: x[0])[1] if names else None


def entry_for_dir(path: Path) -> ModelEntry | None:
    """The registry entry the model directory ``path`` belongs to: the entry whose bundled
    ``path`` it is, else `entry_named` of the folder's name; None when none is, or when the
    registry cannot be read (the model then runs on its own config)."""
    try:
        reg = load_registry()
    except MagimacError:
        return None
    target = Path(path).resolve()
    bundled = [e for e in reg.values() if e.local_path() is not None and e.local_path().resolve() == target]
    return bundled[0] if bundled else entry_named(reg, Path(path).name)


def installed_for(entry: ModelEntry) -> list[InstalledModel]:
    """Installed conversions of a registry entry: those `entry_named` gives it (a name or an
    alias, case ignored) and those of its MLX repos."""
    reg, repos = load_registry(), {r.lower() for r in entry.mlx.values()}
    return [m for m in installed_models() if m.repo_id.lower() in repos
            or getattr(entry_named(reg, m.name), "name", None) == entry.name]


def find_installed(name_or_dir: str) -> list[InstalledModel]:
    """Installed models matching a directory, an installed name, a hub repo id, or a
    registry name / alias (all of its conversions)."""
    p = Path(name_or_dir).expanduser()
    models = installed_models()
    if p.is_dir() and (is_model_dir(p) or any(m.path.resolve() == p.resolve() for m in models)):
        rp = p.resolve()
        return [m for m in models if m.path.resolve() == rp] or [describe_dir(p)]
    # else a name (a folder of the same name that holds no model does not hide it)
    low = name_or_dir.lower()
    exact = [m for m in models if low in (m.name.lower(), m.repo_id.lower())]
    if exact:
        return exact
    entry = find_entry(load_registry(), name_or_dir)
    return installed_for(entry) if entry else []


def check_removable(model: InstalledModel) -> None:
    """Raise unless `remove` may delete ``model``.

    Raises:
        ModelNotFound: the model is bundled with magimac, or is a directory outside
            `paths.models_dir()` (magimac deletes only what it installed, never a source
            checkpoint or a folder of the person's own files).
    """
    if model.where == "bundled":
        raise ModelNotFound(f"{model.name} is bundled with magimac and cannot be removed")
    if model.where == "hf cache":
        return
    root = paths.models_dir().resolve()
    target = model.path.resolve()
    if target == root or root not in target.parents:
        raise ModelNotFound(f"{model.path}: not in magimac's models directory ({root}); "
                            "magimac rm only deletes models it installed, delete this one yourself")


def remove(model: InstalledModel) -> None:
    """Delete an installed model: its directory, or every cached revision of its hub repo.

    Raises:
        ModelNotFound: see `check_removable`.
    """
    check_removable(model)
    if model.where == "hf cache":
        remove_cached_repo(model.repo_id)
        return
    shutil.rmtree(model.path.resolve())


def remove_cached_repo(repo_id: str) -> int:
    """Delete every revision of hub repo ``repo_id`` from the Hugging Face cache (through
    `huggingface_hub.scan_cache_dir`); returns the bytes freed (0 when it is not cached)."""
    root = hf_cache_dir()
    if not root.is_dir():
        return 0
    from huggingface_hub import scan_cache_dir

    info = scan_cache_dir(root)
    hashes = [r.commit_hash for repo in info.repos if repo.repo_id == repo_id for r in repo.revisions]
    if not hashes:
        return 0
    strategy = info.delete_revisions(*hashes)
    strategy.execute()
    return strategy.expected_freed_size


def resolve_model(name_or_dir: str | None) -> Path:
    """Turn ``--model`` into a converted model directory.

    Order: a model directory; an installed model by name or hub repo id; a registry name
    or alias with an installed conversion (the first of `installed_for`: models dir, then the
    Hugging Face cache); with None: the default registry model if installed, else the demo.

    Raises:
        ModelNotFound: nothing installed matches; the message names the command to run.
    """
    if name_or_dir:
        p = Path(name_or_dir).expanduser()
        if p.is_dir() and is_model_dir(p):
            return p
        found = find_installed(name_or_dir)
        if found:
            return found[0].path
        if p.is_dir():  # a folder, and no model is installed under that name
            raise ModelNotFound(f"{p}: not a model directory (no config.json and *.safetensors)")
        entry = find_entry(load_registry(), name_or_dir)
        if entry is None:
            raise UnknownModel(unknown_model_message(name_or_dir))
        raise ModelNotFound(f"{entry.name} is not installed: run `magimac pull {entry.name}`")
    reg = load_registry()
    default = default_model(reg)
    inst = installed_for(default)
    if inst:
        return inst[0].path
    if "demo" in reg:
        p = reg["demo"].local_path()
        if p and is_model_dir(p):
            return p
    raise ModelNotFound(f"no model installed: run `magimac pull {default.name}`")


def close_matches(name: str, limit: int = 3) -> list[str]:
    """The names `magimac models` lists (registry entries and installed models) that look like
    ``name``, best first, at most ``limit``: difflib's ratio >= 0.6 against each name and alias,
    an alias standing for its entry's name."""
    import difflib

    known: dict[str, str] = {}  # name or alias -> the name shown
    for entry in load_registry().values():
        known.update({a: entry.name for a in (entry.name, *entry.aliases)})
    known.update({m.name: m.name for m in installed_models()})
    near = difflib.get_close_matches(name, sorted(known), n=len(known), cutoff=0.6)
    return list(dict.fromkeys(known[n] for n in near))[:limit]


def unknown_model_message(name: str) -> str:
    """The one line for a ``--model`` that is neither a directory nor a known name."""
    near = close_matches(name)
    hint = f"did you mean {', '.join(near)}?" if near else "see `magimac models` for the names"
    return f"unknown model {name!r}: not a model directory nor a registry name; {hint}"


def is_demo(path: Path) -> bool:
    """Whether ``path`` is the bundled demo model."""
    demo = load_registry().get("demo")
    p = demo.local_path() if demo else None
    return p is not None and Path(path).resolve() == p.resolve()


DEMO_SCOPE = ("the demo is a 3 MB model that only does two-digit arithmetic, comparisons and unit "
              "conversions (in English or French), and 3-digit x 2-digit products with the python tool")


def demo_notice(name_or_dir: str | None, path: Path) -> str | None:
    """The line to show a person when ``resolve_model(name_or_dir)`` gave the bundled demo
    model because no Magistral model is installed (None when they asked for it by name)."""
    if name_or_dir or not is_demo(path):
        return None
    return (f"no Magistral model installed: using the bundled demo model; {DEMO_SCOPE}; "
            "`magimac plan` says what fits this Mac and `magimac pull magistral-small-2509` gets Magistral")

