"""`magimac plan [MODEL] [--ram 32GB] [--context 32k] [--json]`: what fits this Mac."""

from __future__ import annotations

import argparse
import json

from magimac.core.errors import MagimacError
from magimac.core.units import HEADROOM_FRACTION, SizeError, format_bytes, parse_size
from magimac.models import plan
from magimac.models.levels import KV_BITS


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", nargs="?", help="registry name or model directory (default: the default model)")
    p.add_argument("--ram", help="plan for a Mac with this much memory instead of this machine: 32GB as Apple "
                                 "sells it (= 32 GiB, as `magimac quantize --target-ram`)")
    p.add_argument("--context", default="32k", help="context to size the KV cache for (default 32k tokens)")
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")


def run(args: argparse.Namespace) -> int:
    ram = None
    if args.ram:
        try:
            ram = parse_size(args.ram)
        except SizeError as e:
            raise MagimacError(f"--ram: {e}") from None
    p = plan.make_plan(args.model, ram=ram, context=plan.parse_context(args.context))
    if args.json:
        print(json.dumps(p.to_dict(), indent=2))
        return 0
    print_plan(p)
    return 0


def print_plan(p: plan.Plan) -> None:
    """Print the plan as rich tables: machine, sizes per level, recommendation."""
    from rich.console import Console
    from rich.table import Table

    hw = p.hardware
    con = Console()
    con.print(f"[bold]{p.model}[/bold]  (sizes from {p.config_source})")
    con.print(f"machine: {hw.chip or hw.machine}, {format_bytes(hw.total_memory, binary=True)} memory, GPU limit "
              f"{format_bytes(hw.gpu_limit)} ({hw.gpu_limit_source}); {format_bytes(p.budget_bytes)} usable after "
              f"{HEADROOM_FRACTION:.0%} headroom", soft_wrap=True)
    t = Table(title=f"weights, and weights + KV cache at {p.context} tokens (✓ fits, ✗ does not)")
    t.add_column("level", no_wrap=True, min_width=12)
    for col in ("bits/w", "weights", "KV 16-bit", "KV 8-bit", "KV 4-bit", "max ctx 16-bit"):
        t.add_column(col, justify="right")
    for r in p.rows:
        name = r.level if r.recipe in ("uniform", r.level) else f"{r.level} {r.recipe}"
        cells = []
        for b in KV_BITS:
            total = format_bytes(r.weights_bytes + r.kv_bytes[b])
            cells.append(f"[green]{total} ✓[/green]" if r.fits[b] else f"[red]{total} ✗[/red]")
        t.add_row(name, f"{r.bits_per_weight:.2f}", format_bytes(r.weights_bytes), *cells, str(r.max_context[16]))
    con.print(t)
    kv = ", ".join(f"{b}-bit {v / 1024:.0f} KiB" for b, v in p.kv_bytes_per_token.items())
    con.print(f"KV cache per token: {kv}; model maximum context {p.model_max_context} tokens")
    for m in p.installed:
        con.print(f"installed: {m['name']} ({m['quantization']}, {format_bytes(m['size_bytes'])}) at {m['path']}")
    if p.bundled is not None:
        b = p.bundled
        con.print(f"[bold]ready:[/bold] {p.model} is bundled at {b.path} ({b.quantization}, "
                  f"{format_bytes(b.weights_bytes)}); nothing to download", soft_wrap=True)
        if b.fits:
            con.print(f"  it fits: context {b.context_length} tokens, {b.kv_bits}-bit KV cache; "
                      f"run it with `magimac --model {p.model}`", soft_wrap=True)
        else:
            con.print(f"  [red]it does not fit this machine's GPU memory[/red] "
                      f"(`magimac --model {p.model}` refuses it without --force)", soft_wrap=True)
        return
    rec = p.recommendation
    if rec is None:
        con.print(f"[red]recommendation: {p.model} does not fit this machine even at 2-bit with a "
                  f"{plan.MIN_CONTEXT}-token 4-bit KV cache[/red]")
        return
    con.print(f"[bold]recommendation:[/bold] {rec.level}, context {rec.context} tokens, {rec.kv_bits}-bit KV cache: "
              f"{rec.reason}")
    if p.in_registry:
        con.print(f"  get it with: {rec.pull_command}", soft_wrap=True)
        if rec.quantize_command:
            con.print(f"  or, with less error at {rec.level}, convert it yourself: {rec.quantize_command}",
                      soft_wrap=True)

