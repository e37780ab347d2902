"""`magimac models`: the registry's models and what is installed locally."""

from __future__ import annotations

import argparse
import json

from magimac import store
from magimac.registry import load_registry


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _gb(n: int) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"


def run(args: argparse.Namespace) -> int:
    reg = load_registry()
    installed = store.installed_models()
    rows = []
    for e in reg.values():
        inst = [m for m in installed if m.name == e.name or m.name.startswith(e.name + "-")]
        rows.append({
            "name": e.name,
            "display_name": e.display_name,
            "hub_id": e.hub_id,
            "default": e.default,
            "vision": e.vision,
            "reasoning": e.reasoning,
            "installed": [
                {"path": str(m.path), "quantization": m.quantization, "size_bytes": m.size_bytes} for m in inst
            ],
        })
    names = {r["name"] for r in rows}
    for m in installed:
        if not any(m.name == n or m.name.startswith(n + "-") for n in names):
            rows.append({"name": m.name, "display_name": m.name, "hub_id": "", "default": False, "vision": None,
                         "reasoning": None, "installed": [{"path": str(m.path), "quantization": m.quantization,
                                                           "size_bytes": m.size_bytes}]})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    t = Table(title="magimac models")
    for col in ("name", "hub id", "images", "installed"):
        t.add_column(col, overflow="fold")
    for r in rows:
        inst = ", ".join(f"{i['quantization']} {_gb(i['size_bytes'])}" for i in r["installed"]) or "no"
        name = r["name"] + (" (default)" if r["default"] else "")
        images = "yes" if r["vision"] else ("no" if r["vision"] is False else "?")
        t.add_row(name, r["hub_id"], images, inst)
    Console().print(t)
    return 0
