"""Embedding models: the ``[embedders.NAME]`` tables of the registry and where they install.

They sit in the same ``models.toml`` files as the chat models (shipped, then the user's, which
may add entries or override fields) but in their own table, since they share no field with a
chat model. An entry installs into ``<models dir>/embedders/NAME`` (`magimac pull NAME`); the
library search uses the first installed entry, in file order.

Fields: ``display_name``; ``hub_id`` (an MLX conversion on the hub: ``config.json``,
``*.safetensors``, ``tokenizer.json``); ``allow_patterns``; ``dim`` (vector length);
``query_prefix`` / ``passage_prefix`` (what the model card says to put before questions and
passages); ``languages`` (a note for people).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from magimac.core import paths
from magimac.models.registry import RegistryError, shipped_registry_file

_FIELDS = {"display_name": str, "hub_id": str, "allow_patterns": list, "dim": int,
           "query_prefix": str, "passage_prefix": str, "languages": str}


@dataclass(frozen=True)
class EmbedderEntry:
    """One embedding model (see the module doc for the fields); ``source``: its file."""

    name: str
    display_name: str
    hub_id: str
    allow_patterns: tuple[str, ...]
    dim: int
    query_prefix: str = ""
    passage_prefix: str = ""
    languages: str = ""
    source: str = ""

    def install_dir(self) -> Path:
        """``<models dir>/embedders/NAME`` (`paths.models_dir`)."""
        return paths.models_dir() / "embedders" / self.name

    def installed(self) -> bool:
        """Whether the install folder holds a config, weights and a tokenizer."""
        d = self.install_dir()
        return (d / "config.json").is_file() and (d / "tokenizer.json").is_file() and \
            any(d.glob("*.safetensors"))


def load_embedders(user_file: Path | None = None) -> dict[str, EmbedderEntry]:
    """The ``[embedders.*]`` entries of the shipped registry merged with the user's.

    Raises:
        RegistryError: a file is not TOML, or an entry has an unknown, missing or mistyped
            field (named with the file and entry).
    """
    merged: dict[str, tuple[dict, str]] = {}
    user_file = user_file if user_file is not None else paths.user_registry_file()
    for f in (shipped_registry_file(), user_file):
        if not f.is_file():
            continue
        try:
            data = tomllib.loads(f.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, OSError) as e:
            raise RegistryError(f"{f}: cannot read the registry: {e}") from None
        for name, raw in (data.get("embedders") or {}).items():
            merged[name] = ({**merged.get(name, ({}, ""))[0], **raw}, str(f))
    return {name: _entry(name, raw, where) for name, (raw, where) in merged.items()}


def _entry(name: str, raw: dict, where: str) -> EmbedderEntry:
    for key, value in raw.items():
        if key not in _FIELDS:
            raise RegistryError(f"{where}: embedder '{name}', field '{key}': unknown field "
                                f"(known: {', '.join(sorted(_FIELDS))})")
        if not isinstance(value, _FIELDS[key]) or isinstance(value, bool):
            raise RegistryError(f"{where}: embedder '{name}', field '{key}': wrong type {type(value).__name__}")
    for key in ("hub_id", "dim"):
        if key not in raw:
            raise RegistryError(f"{where}: embedder '{name}', field '{key}': missing")
    return EmbedderEntry(name=name, display_name=raw.get("display_name", name), hub_id=raw["hub_id"],
                         allow_patterns=tuple(raw.get("allow_patterns", [])), dim=raw["dim"],
                         query_prefix=raw.get("query_prefix", ""), passage_prefix=raw.get("passage_prefix", ""),
                         languages=raw.get("languages", ""), source=where)


def installed_embedder() -> EmbedderEntry | None:
    """The first installed embedding model in registry order, or None."""
    return next((e for e in load_embedders().values() if e.installed()), None)


def pull_embedder(entry: EmbedderEntry, say) -> Path:
    """Download ``entry`` from the hub into its `install_dir` (the only step that goes online;
    `huggingface_hub.snapshot_download` resumes an interrupted download).

    Raises:
        magimac.models.pull.PullError: the hub cannot be reached or the download failed.
    """
    from huggingface_hub import snapshot_download

    from magimac.core.errors import one_line
    from magimac.models.pull import PullError, hub_endpoint, online

    endpoint = hub_endpoint()
    say(f"magimac pull goes online: {endpoint}/{entry.hub_id} (embedding model); every other command stays offline")
    target = entry.install_dir()
    with online():
        try:
            snapshot_download(entry.hub_id, local_dir=target, endpoint=endpoint, token=False,
                              allow_patterns=list(entry.allow_patterns) or None)
        except Exception as e:  # network, missing repo: one line
            raise PullError(f"{entry.hub_id}: download failed: {one_line(e)}; "
                            f"run `magimac pull {entry.name}` again to resume") from None
    if not entry.installed():
        raise PullError(f"{entry.hub_id}: downloaded to {target} but it lacks config.json, "
                        "tokenizer.json or safetensors weights")
    say(f"installed {entry.name} at {target}; 'magimac library update NAME' adds its vectors to a library")
    return target
