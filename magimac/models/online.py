"""Models served by Mistral's API: the registry's ``kind = "online"`` entries.

They live in the same `models.toml` files as the local models (the shipped one, and the user's,
which may add entries or override fields such as ``api_url``), and are read here, apart:
`magimac.models.registry.load_registry` leaves them out, so nothing that lists, plans or pulls
local models ever sees them. Nothing here touches the network; `magimac.online` does, and only
once a person chose one of these by name.

Dates (``deprecated``, ``retired``) come from Mistral's platform docs (`shared/MAGISTRAL.md`):
a model past its ``retired`` date answers 404 on the API, so choosing it raises `RetiredModel`
naming the date and the ``successor``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from magimac.core.errors import MagimacError
from magimac.models.registry import ONLINE_KIND, RegistryError, merged_entries

DEFAULT_API_URL = "https://api.mistral.ai"
"""Mistral's API (the SDK's own default server); an entry's ``api_url`` or the environment
variable `API_URL_ENV` overrides it."""
API_URL_ENV = "MAGIMAC_MISTRAL_API_URL"
SERVICE = "Mistral API"
"""How the app and exports name where an online answer came from."""


class RetiredModel(MagimacError, ValueError):
    """An online model that Mistral's API no longer serves was chosen; the message is one line
    with the date, the successor and how to pick it.

    Attributes:
        successor: the successor's registry name, or None. retired: the line's first part
            (``X (name) was retired from Mistral's API on DATE``). successor_label:
            ``mistral-medium-latest (Mistral Medium 3.5)``, or "".
    """

    def __init__(self, message: str, successor: str | None = None, retired: str = "",
                 successor_label: str = "") -> None:
        super().__init__(message)
        self.successor, self.retired, self.successor_label = successor, retired, successor_label


@dataclass(frozen=True)
class OnlineModel:
    """One model of Mistral's API.

    Attributes:
        name: registry key (``mistral-medium-latest``); display_name: what the app shows.
        api_model: the model id the API takes (``"model"`` of the request).
        vision: whether it takes images (sent as image chunks).
        context_length: tokens the API accepts (prompt + answer), as the platform docs give it.
        api_url: the API's base URL (``https://api.mistral.ai``).
        reasoning_effort: sent as ``reasoning_effort`` (``"high"``; ``"none"`` skips the
            reasoning); None: not sent (Magistral Medium always reasons).
        deprecated / retired: dates from the platform docs, or None.
        successor: registry name of the model that replaces it, or None.
        aliases: other names ``--model`` accepts. source: the file the entry came from.
    """

    name: str
    display_name: str
    api_model: str
    vision: bool
    context_length: int
    api_url: str = DEFAULT_API_URL
    reasoning_effort: str | None = None
    deprecated: dt.date | None = None
    retired: dt.date | None = None
    successor: str | None = None
    aliases: tuple[str, ...] = ()
    source: str = ""

    def is_retired(self, today: dt.date | None = None) -> bool:
        """Whether ``today`` (default: the date here) is on or after the ``retired`` date."""
        return self.retired is not None and (today or dt.date.today()) >= self.retired

    def status(self, today: dt.date | None = None) -> str:
        """``current``, ``deprecated 2026-05-22`` or ``retired 2026-07-31 → successor``."""
        if self.is_retired(today):
            return f"retired {self.retired} → {self.successor}" if self.successor else f"retired {self.retired}"
        return f"deprecated {self.deprecated}" if self.deprecated else "current"


_FIELDS: dict[str, tuple[type | tuple[type, ...], bool]] = {  # field: (type, required)
    "kind": (str, True), "display_name": (str, False), "aliases": (list, False),
    "api_model": (str, True), "api_url": (str, False), "vision": (bool, True),
    "context_length": (int, True), "reasoning_effort": (str, False),
    "deprecated": ((str, dt.date), False), "retired": ((str, dt.date), False), "successor": (str, False),
}


def _date(value: Any, bad, key: str) -> dt.date | None:
    if value is None or isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise bad(key, f"expected a date YYYY-MM-DD, got {value!r}") from None


def _validate(name: str, raw: dict[str, Any], where: str) -> OnlineModel:
    def bad(fld: str, why: str) -> RegistryError:
        return RegistryError(f"{where}: entry '{name}', field '{fld}': {why}")

    for key, value in raw.items():
        if key not in _FIELDS:
            raise bad(key, f"unknown field for an online model (known: {', '.join(sorted(_FIELDS))})")
        typ = _FIELDS[key][0]
        if not isinstance(value, typ) or (isinstance(value, bool) and typ is int):
            raise bad(key, f"has the wrong type ({type(value).__name__} {value!r})")
    for key, (_typ, required) in _FIELDS.items():
        if required and key not in raw:
            raise bad(key, "missing")
    if raw["context_length"] <= 0:
        raise bad("context_length", f"must be a positive number of tokens, got {raw['context_length']}")
    url = raw.get("api_url", DEFAULT_API_URL)
    if not url.startswith(("https://", "http://")):
        raise bad("api_url", f"must be an http(s) URL, got {url!r}")
    return OnlineModel(
        name=name, display_name=raw.get("display_name", name), api_model=raw["api_model"],
        vision=raw["vision"], context_length=raw["context_length"], api_url=url.rstrip("/"),
        reasoning_effort=raw.get("reasoning_effort"), deprecated=_date(raw.get("deprecated"), bad, "deprecated"),
        retired=_date(raw.get("retired"), bad, "retired"), successor=raw.get("successor"),
        aliases=tuple(raw.get("aliases", [])), source=where,
    )


def load_online(user_file: Path | None = None) -> dict[str, OnlineModel]:
    """The online entries of the shipped registry merged with the user's file, in file order.

    Raises:
        RegistryError: a file is unreadable, or an online entry or field is invalid (one line
            naming the file, the entry and the field), or a ``successor`` names no online entry.
    """
    merged, origin, _user_file = merged_entries(user_file)
    models = {name: _validate(name, raw, origin[name]) for name, raw in merged.items()
              if raw.get("kind") == ONLINE_KIND}
    for m in models.values():
        if m.successor and m.successor not in models:
            raise RegistryError(f"{m.source}: entry '{m.name}', field 'successor': "
                                f"{m.successor!r} is no online entry")
    return models


def find_online(name: str, models: dict[str, OnlineModel] | None = None) -> OnlineModel | None:
    """The online entry named ``name`` (registry name or alias, any case), or None."""
    models = load_online() if models is None else models
    low = name.lower()
    return next((m for m in models.values() if low == m.name.lower() or low in (a.lower() for a in m.aliases)),
                None)


def check_available(model: OnlineModel, models: dict[str, OnlineModel] | None = None,
                    today: dt.date | None = None) -> OnlineModel:
    """``model`` itself when the API still serves it.

    Raises:
        RetiredModel: it was retired; one line with the date, the successor and how to pick it.
    """
    if not model.is_retired(today):
        return model
    models = load_online() if models is None else models
    line = f"{model.name} ({model.display_name}) was retired from Mistral's API on {model.retired}"
    successor = models.get(model.successor) if model.successor else None
    if successor is None:
        raise RetiredModel(line + "; `magimac models` lists the online models", retired=line)
    label = f"{successor.name} ({successor.display_name})"
    raise RetiredModel(f"{line}: its successor is {label}; pick it with `--model {successor.name}`",
                       successor.name, line, label)
