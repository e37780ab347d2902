"""The model registry: `models.toml` shipped with magimac, plus the user's own file.

The shipped file lives at the top of the source tree and inside the wheel as
`magimac/models.toml`.  The user file (`paths.user_registry_file()`) may add entries or
override single fields of shipped ones; both are validated the same way and a bad entry
raises `RegistryError` whose message names the file, the entry and the field.
"""

from __future__ import annotations

from magimac.core.errors import MagimacError

import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from magimac.core import paths
from magimac.core.settings import setting_error

REASONING_KINDS = ("control", "text")
SYSTEM_PROMPT_SOURCES = ("SYSTEM_PROMPT.txt", "builtin", "none")
QUANT_LEVELS = ("2bit", "3bit", "4bit", "5bit", "6bit", "8bit", "bf16", "mxfp4")
NEVER_FETCH = "consolidated.safetensors"


class RegistryError(MagimacError, ValueError):
    """A registry file is unreadable or an entry is invalid; the message is one line."""


@dataclass(frozen=True)
class ModelEntry:
    """One model magimac knows.

    Attributes:
        name: registry key, e.g. ``magistral-small-1.2``.
        display_name: human name.
        hub_id: Hugging Face repo of the original checkpoint (may be empty for local-only).
        allow_patterns: glob patterns of files to download from ``hub_id``.
        reasoning: ``"control"`` ([THINK] control tokens) or ``"text"`` (<think> text).
        think_open / think_close: the reasoning markers.
        vision: whether the model accepts images.
        context_length: maximum context, tokens.
        temperature / top_p: recommended sampling.
        system_prompt: ``"SYSTEM_PROMPT.txt"``, ``"builtin"`` or ``"none"``.
        default: the model used when none is named.
        mlx: ready-made MLX conversions, quantization level -> hub repo id.
        path: local directory of an already converted model (e.g. the bundled demo).
        reference_config: name of a packaged ``config.json`` of the real checkpoint
            (``magimac/data/``) used to plan sizes before anything is downloaded.
        source: the file the entry (or its last override) came from.

    Entries with ``kind = "online"`` are models of Mistral's API: `magimac.models.online`
    reads them, and `load_registry` leaves them out.
    """

    name: str
    display_name: str
    hub_id: str
    allow_patterns: tuple[str, ...]
    reasoning: str
    think_open: str
    think_close: str
    vision: bool
    context_length: int
    temperature: float
    top_p: float
    system_prompt: str
    default: bool = False
    aliases: tuple[str, ...] = ()
    mlx: dict[str, str] = field(default_factory=dict)
    path: str | None = None
    reference_config: str | None = None
    source: str = ""

    def local_path(self) -> Path | None:
        """The entry's ``path`` resolved (relative paths are relative to the package)."""
        if not self.path:
            return None
        p = Path(self.path).expanduser()
        if not p.is_absolute():
            p = Path(str(resources.files("magimac"))) / p
        return p

    def reference_config_path(self) -> Path | None:
        """The packaged real ``config.json`` for planning, or None."""
        if not self.reference_config:
            return None
        return Path(str(resources.files("magimac") / "data" / self.reference_config))


_FIELDS: dict[str, tuple[type | tuple[type, ...], bool]] = {
    # field: (type, required)
    "display_name": (str, False),
    "aliases": (list, False),
    "hub_id": (str, False),
    "allow_patterns": (list, False),
    "reasoning": (str, True),
    "think_open": (str, True),
    "think_close": (str, True),
    "vision": (bool, True),
    "context_length": (int, True),
    "temperature": ((int, float), True),
    "top_p": ((int, float), True),
    "system_prompt": (str, True),
    "default": (bool, False),
    "mlx": (dict, False),
    "path": (str, False),
    "reference_config": (str, False),
    "kind": (str, False),
}
ONLINE_KIND = "online"
"""``kind`` of an entry served by Mistral's API (`magimac.models.online`); local ones omit it."""


def shipped_registry_file() -> Path:
    """The registry shipped with magimac (wheel copy first, then the source tree's)."""
    packaged = Path(str(resources.files("magimac"))) / "models.toml"
    if packaged.is_file():
        return packaged
    return Path(__file__).resolve().parents[2] / "models.toml"


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise RegistryError(f"{path}: not valid TOML: {e}") from None
    except OSError as e:
        raise RegistryError(f"{path}: cannot read: {e.strerror}") from None
    models = data.get("models", {})
    if not isinstance(models, dict):
        raise RegistryError(f"{path}: 'models' must be a table of [models.NAME] entries")
    for name, entry in models.items():
        if not isinstance(entry, dict):
            raise RegistryError(f"{path}: entry '{name}' must be a table")
    return models


def _validate(name: str, raw: dict[str, Any], where: str) -> ModelEntry:
    """The `ModelEntry` of registry entry ``name`` (from ``where``), after `_check_types` and
    `_check_values`; raises `RegistryError` naming the file, entry and field."""
    def bad(fld: str, why: str) -> RegistryError:
        return RegistryError(f"{where}: entry '{name}', field '{fld}': {why}")

    _check_types(raw, bad)
    _check_values(raw, bad)
    return ModelEntry(
        name=name,
        display_name=raw.get("display_name", name),
        hub_id=raw.get("hub_id", ""),
        allow_patterns=tuple(raw.get("allow_patterns", [])),
        reasoning=raw["reasoning"],
        think_open=raw["think_open"],
        think_close=raw["think_close"],
        vision=raw["vision"],
        context_length=int(raw["context_length"]),
        temperature=float(raw["temperature"]),
        top_p=float(raw["top_p"]),
        system_prompt=raw["system_prompt"],
        default=raw.get("default", False),
        aliases=tuple(raw.get("aliases", [])),
        mlx=dict(raw.get("mlx", {})),
        path=raw.get("path"),
        reference_config=raw.get("reference_config"),
        source=where,
    )


def _check_types(raw: dict[str, Any], bad) -> None:
    """Every field known, every required one present, each of its `_FIELDS` type."""
    for key in raw:
        if key not in _FIELDS:
            raise bad(key, f"unknown field (known: {', '.join(sorted(_FIELDS))})")
    for key, (typ, required) in _FIELDS.items():
        if key not in raw:
            if required:
                raise bad(key, "missing")
            continue
        value = raw[key]
        if isinstance(value, bool) and typ is not bool and bool not in (typ if isinstance(typ, tuple) else (typ,)):
            raise bad(key, f"expected {_typename(typ)}, got a boolean")
        if not isinstance(value, typ):
            raise bad(key, f"expected {_typename(typ)}, got {type(value).__name__} {value!r}")


def _check_values(raw: dict[str, Any], bad) -> None:
    """The values in range: reasoning kind, system prompt source, sampling, patterns, mlx repos."""
    if raw["reasoning"] not in REASONING_KINDS:
        raise bad("reasoning", f"must be one of {', '.join(REASONING_KINDS)}, got {raw['reasoning']!r}")
    if raw["system_prompt"] not in SYSTEM_PROMPT_SOURCES:
        raise bad("system_prompt", f"must be one of {', '.join(SYSTEM_PROMPT_SOURCES)}, got {raw['system_prompt']!r}")
    if raw["context_length"] <= 0:
        raise bad("context_length", f"must be a positive number of tokens, got {raw['context_length']}")
    for key in ("temperature", "top_p"):  # the ranges of the one settings table
        if problem := setting_error(key, raw[key]):
            raise bad(key, f"{problem}, got {raw[key]}")
    if not all(isinstance(a, str) for a in raw.get("aliases", [])):
        raise bad("aliases", "must be a list of strings")
    patterns = raw.get("allow_patterns", [])
    if not all(isinstance(p, str) for p in patterns):
        raise bad("allow_patterns", "must be a list of strings")
    if any(NEVER_FETCH in p or p in ("*", "*.safetensors") for p in patterns):
        raise bad("allow_patterns", f"must not match {NEVER_FETCH} (48 GB duplicate of the shards)")
    for level, repo in raw.get("mlx", {}).items():
        if level not in QUANT_LEVELS:
            raise bad("mlx", f"unknown quantization level {level!r} (known: {', '.join(QUANT_LEVELS)})")
        if not isinstance(repo, str) or "/" not in repo:
            raise bad("mlx", f"level {level!r} must name a hub repo 'owner/name', got {repo!r}")
    if raw.get("kind", "local") != "local":
        raise bad("kind", f"must be \"local\" or \"{ONLINE_KIND}\", got {raw['kind']!r}")
    if not raw.get("hub_id") and not raw.get("path"):
        raise bad("hub_id", "an entry needs a hub_id or a local path")


def _typename(typ) -> str:
    names = {str: "a string", int: "an integer", bool: "true or false", list: "a list", dict: "a table"}
    if isinstance(typ, tuple):
        return "a number"
    return names.get(typ, typ.__name__)


def load_registry(user_file: Path | None = None) -> dict[str, ModelEntry]:
    """Load and validate the shipped registry merged with the user's file.

    Args:
        user_file: the user registry; default ``paths.user_registry_file()``; a missing
            file is fine.

    Returns:
        name -> ModelEntry, in file order (shipped entries first).

    Raises:
        RegistryError: a file is not valid TOML, or an entry or field is invalid; the
            message names the file, the entry and the field.
    """
    merged, origin, user_file = merged_entries(user_file)
    entries = {name: _validate(name, raw, origin[name]) for name, raw in merged.items()
               if raw.get("kind") != ONLINE_KIND}
    defaults = [e.name for e in entries.values() if e.default]
    if len(defaults) > 1:
        # a user file naming its own default wins over the shipped one
        user_defaults = [n for n in defaults if origin[n] == str(user_file)]
        if len(user_defaults) == 1:
            entries = {
                n: (e if n == user_defaults[0] or not e.default else _replace_default(e)) for n, e in entries.items()
            }
        else:
            raise RegistryError(f"{user_file}: more than one entry has default = true: {', '.join(defaults)}")
    return entries


def merged_entries(user_file: Path | None = None) -> tuple[dict[str, dict[str, Any]], dict[str, str], Path]:
    """The raw entries of the shipped file with the user file's entries and fields laid over
    them (not yet validated): ``(name -> raw table, name -> file it last came from, user file)``.

    Raises:
        RegistryError: a file is not valid TOML or not a table of entries.
    """
    shipped_path = shipped_registry_file()
    merged: dict[str, dict[str, Any]] = {}
    origin: dict[str, str] = {}
    for name, entry in _read_toml(shipped_path).items():
        merged[name] = dict(entry)
        origin[name] = str(shipped_path)
    user_file = user_file if user_file is not None else paths.user_registry_file()
    if user_file.is_file():
        for name, entry in _read_toml(user_file).items():
            base = merged.get(name, {})
            merged[name] = {**base, **entry}
            origin[name] = str(user_file)
    return merged, origin, user_file


def _replace_default(e: ModelEntry) -> ModelEntry:
    from dataclasses import replace

    return replace(e, default=False)


def default_model(registry: dict[str, ModelEntry]) -> ModelEntry:
    """The entry marked ``default = true`` (Magistral Small 1.2 as shipped)."""
    for e in registry.values():
        if e.default:
            return e
    return next(iter(registry.values()))


def find_entry(registry: dict[str, ModelEntry], name: str) -> ModelEntry | None:
    """Look an entry up by registry name, alias, hub id or ready-made MLX repo id (any case)."""
    if name in registry:
        return registry[name]
    low = name.lower()
    for e in registry.values():
        if low == e.name.lower() or low in (a.lower() for a in e.aliases) or e.hub_id.lower() == low or low in (r.lower() for r in e.mlx.values()):
            return e
    return None


def quantize_source(name: str | Path):
    """What `magimac.quantize.convert.convert` should read for ``name``: an existing path as it
    is, a registry name as the `HubSource` of its hub id and allow-patterns, anything else
    unchanged (the library takes ``owner/name`` hub ids and refuses the rest in one line)."""
    from magimac.quantize.source import hub_source

    if Path(name).expanduser().exists():
        return Path(name).expanduser()
    entry = find_entry(load_registry(), str(name))
    if entry is not None and entry.hub_id:
        return hub_source(entry.hub_id, list(entry.allow_patterns))
    return name
