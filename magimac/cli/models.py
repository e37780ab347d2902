"""`magimac models`: the registry's models and what is installed (size, level, source), then,
apart, the online models of Mistral's API (``"kind": "online"`` in ``--json``), with the API's
model id, whether they take images and whether they are current, deprecated or retired."""

from __future__ import annotations

import argparse
import json

from magimac.core.units import format_bytes
from magimac.models import store
from magimac.models.online import load_online
from magimac.models.registry import load_registry


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _installed_dict(m: store.InstalledModel) -> dict:
    return {"name": m.name, "path": str(m.path), "quantization": m.quantization, "size_bytes": m.size_bytes,
            "source": m.source, "where": m.where}


def rows() -> list[dict]:
    """One dict per registry model (with its installed conversions), then one per installed
    model that belongs to no registry entry."""
    reg = load_registry()
    installed = store.installed_models()
    out, claimed = [], set()
    for e in reg.values():
        inst = store.installed_for(e)
        claimed.update(m.path for m in inst)
        out.append({
            "kind": "local", "name": e.name, "display_name": e.display_name, "hub_id": e.hub_id, "default": e.default,
            "vision": e.vision, "reasoning": e.reasoning, "ready_made": sorted(e.mlx),
            "installed": [_installed_dict(m) for m in inst],
        })
    for m in installed:
        if m.path not in claimed:
            out.append({"kind": "local", "name": m.name, "display_name": m.name, "hub_id": m.repo_id, "default": False,
                        "vision": None, "reasoning": None, "ready_made": [], "installed": [_installed_dict(m)]})
    return out + online_rows()


def online_rows() -> list[dict]:
    """One dict per online model: ``kind`` "online", ``api_model``, ``vision``, ``status``
    (`OnlineModel.status`), ``retired`` / ``successor`` (None when current), ``installed`` []."""
    return [{"kind": "online", "name": m.name, "display_name": m.display_name, "hub_id": "", "default": False,
             "api_model": m.api_model, "api_url": m.api_url, "vision": m.vision, "reasoning": "api",
             "status": m.status(), "retired": m.retired.isoformat() if m.retired else None,
             "successor": m.successor, "ready_made": [], "installed": []}
            for m in load_online().values()]


def _online_table(data: list[dict]):
    from rich.table import Table

    t = Table(title="online models (Mistral's API: only when named, and confirmed; key: `magimac key set mistral`)")
    t.add_column("name (online)", no_wrap=True)  # the names are what people type: never cut
    t.add_column("images")
    t.add_column("status", overflow="fold")
    for r in data:
        if r["kind"] == "online":  # the API's model id under the name when it differs
            name = r["name"] if r["api_model"] == r["name"] else f"{r['name']}\n  API id {r['api_model']}"
            t.add_row(name, "yes" if r["vision"] else "no", r["status"])
    return t


def run(args: argparse.Namespace) -> int:
    data = rows()
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    con = Console()
    t = Table(title="installed models")
    for col in ("name", "level", "size", "source", "path"):
        t.add_column(col, overflow="fold")
    for r in data:
        for i in r["installed"]:
            t.add_row(i["name"], i["quantization"], format_bytes(i["size_bytes"]), i["source"], i["path"])
    if t.row_count:
        con.print(t)
    else:
        con.print("no model installed: `magimac plan` says what fits, `magimac pull` gets it")
    t = Table(title="registry")
    for col in ("name", "hub id", "images", "ready-made MLX", "installed"):
        t.add_column(col, overflow="fold")
    for r in data:
        if (r["display_name"] == r["name"] and r["reasoning"] is None) or r["kind"] == "online":
            continue  # not a registry model (listed above), or an online one (listed below)
        name = r["name"] + (" (default)" if r["default"] else "")
        images = "yes" if r["vision"] else "no"
        inst = ", ".join(i["quantization"] for i in r["installed"]) or "no"
        t.add_row(name, r["hub_id"], images, ", ".join(r["ready_made"]) or "-", inst)
    con.print(t)
    con.print(_online_table(data))
    return 0
