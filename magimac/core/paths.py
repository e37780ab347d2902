"""Where magimac keeps its files, through `platformdirs`.

Every directory can be moved with an environment variable, which is how tests and
people with a separate model disk point magimac elsewhere:

| what | default (macOS) | variable |
| --- | --- | --- |
| user config (`models.toml`) | `~/Library/Application Support/magimac` | `MAGIMAC_CONFIG_DIR` |
| data (history database) | `~/Library/Application Support/magimac` | `MAGIMAC_DATA_DIR` |
| converted models | `<data dir>/models` | `MAGIMAC_MODELS_DIR` |
| the app's exports (Ctrl+S) | `<data dir>/exports` | (`MAGIMAC_DATA_DIR`) |
| prompt cache on disk | `~/Library/Caches/magimac` | `MAGIMAC_CACHE_DIR` |
| runtime files (`magimac serve`'s proof secrets) | `~/Library/Caches/TemporaryItems/magimac` | `MAGIMAC_RUNTIME_DIR` |
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP = "magimac"


def config_dir() -> Path:
    """The user config directory (may not exist yet)."""
    env = os.environ.get("MAGIMAC_CONFIG_DIR")
    return Path(env) if env else Path(platformdirs.user_config_dir(APP, appauthor=False))


def data_dir() -> Path:
    """The user data directory (history database); may not exist yet."""
    env = os.environ.get("MAGIMAC_DATA_DIR")
    return Path(env) if env else Path(platformdirs.user_data_dir(APP, appauthor=False))


def models_dir() -> Path:
    """Where `magimac quantize` and `magimac pull` put converted models by default."""
    env = os.environ.get("MAGIMAC_MODELS_DIR")
    return Path(env) if env else data_dir() / "models"


def exports_dir() -> Path:
    """Where the app writes a conversation exported to Markdown (Ctrl+S): ``<data dir>/exports``;
    may not exist yet."""
    return data_dir() / "exports"


def user_registry_file() -> Path:
    """The user's `models.toml`, which adds or overrides registry entries."""
    return config_dir() / "models.toml"


def cache_dir() -> Path:
    """The user cache directory (the prompt cache on disk, `magimac.engine.disk_index`); may not
    exist yet.  A cache directory, not the data directory: Time Machine skips ``~/Library/Caches``."""
    env = os.environ.get("MAGIMAC_CACHE_DIR")
    return Path(env) if env else Path(platformdirs.user_cache_dir(APP, appauthor=False))


def runtime_dir() -> Path:
    """Files that live only while a process runs (`magimac serve`'s proof secret, one per port:
    `magimac.session.proof`); may not exist yet."""
    env = os.environ.get("MAGIMAC_RUNTIME_DIR")
    return Path(env) if env else Path(platformdirs.user_runtime_dir(APP, appauthor=False))
