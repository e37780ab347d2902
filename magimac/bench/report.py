"""What `magimac bench` writes and prints: ``bench.json`` (the whole run), ``bench.csv`` (one row
per variant), ``quality_vs_size.png`` and ``speed_vs_size.png``, the terminal tables and
text plots, and the lines about the caches. Sizes in bytes in the files, decimal GB on screen.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import platform
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from magimac.core.units import format_bytes
from magimac.engine import evaluate, measure
from magimac.bench.measure import Row
from magimac.bench.reference import CacheEntry
from magimac.bench.settings import Settings

SCHEMA = 1


@dataclass
class RunInfo:
    """The facts of a run that bench.json records besides the rows.

    Attributes:
        source: the source checkpoint; ref_label / ref_path / ref_dir: the reference model and
        its stored log-probs; reference: the stored reference; brand: the chip's name;
        bandwidth / bandwidth_source: GB/s and where it came from; recipes, lengths: as
        measured; texts, chunks: the evaluation set.
    """

    source: Path
    ref_label: str
    ref_path: Path
    ref_dir: Path
    reference: evaluate.Reference
    brand: str | None
    bandwidth: float | None
    bandwidth_source: str | None
    recipes: list
    lengths: list[int]
    texts: list[evaluate.EvalText]
    chunks: list[evaluate.Chunk]


def document(s: Settings, info: RunInfo, rows: list[Row]) -> dict:
    """The bench.json document (schema `SCHEMA`)."""
    meta = info.reference.meta
    return {
        "schema": SCHEMA,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "model": s.model,
        "source": str(info.source),
        "reference": {"label": info.ref_label, "path": str(info.ref_path),
                      "logprobs": str(info.ref_dir), "logprobs_dtype": meta["dtype"]},
        "machine": {"platform": platform.platform(), "chip": info.brand,
                    "bandwidth_gbs": info.bandwidth, "bandwidth_source": info.bandwidth_source,
                    **measure.runtime()},
        "settings": {"levels": s.levels, "recipes": info.recipes, "methods": s.methods or ["rtn"], "group_size": s.group_size,
                     "mode": s.mode, "prompt_lengths": info.lengths,
                     "decode_tokens": s.decode_tokens, "repeats": s.repeats,
                     "chunk_len": s.chunk_len, "tasks": s.tasks},
        "eval_set": {"texts": [{"name": t.name, "category": t.category, "tokens": len(t.ids)}
                               for t in info.texts],
                     "chunks": len(info.chunks), "scored_tokens": meta["tokens"],
                     "digest": meta["digest"]},
        "variants": [asdict(r) for r in rows],
    }


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + f".tmp-{os.getpid()}")
    try:
        tmp.write_text(text)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def flat_row(r: Row) -> dict:
    """One CSV row: scalar fields, speed per prompt length, headline quality and task fields."""
    d = {k: v for k, v in asdict(r).items() if k not in ("speed", "quality", "tasks")}
    for s in r.speed:
        n = s["prompt_tokens"]
        d[f"ttft_s@{n}"] = s["ttft_s"]
        d[f"prefill_tps@{n}"] = s["prefill_tps"]
        d[f"decode_tps@{n}"] = s["decode_tps"]
    d.update({k: v for k, v in (r.quality or {}).items() if not k.startswith("by_")})
    d.update({f"tasks_{k}": v for k, v in (r.tasks or {}).items() if not isinstance(v, (list, dict))})
    return d


def write_outputs(out: Path, report: dict, rows: list[Row], plots: bool) -> list[Path]:
    """Write bench.json, bench.csv and (with ``plots``) the two PNG plots into ``out`` (each
    file whole: written beside and renamed); returns the files."""
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "bench.json", out / "bench.csv"]
    _atomic_write(written[0], json.dumps(report, indent=2, default=str))
    flat = [flat_row(r) for r in rows]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(dict.fromkeys(k for d in flat for k in d)))
    w.writeheader()
    w.writerows(flat)
    _atomic_write(written[1], buf.getvalue())
    if plots:
        from magimac.bench.plots import png_plots

        written += png_plots(out, rows)
    return written


def _fmt(x, spec: str) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def _cells(r: Row, has_tasks: bool) -> list[str]:
    q = r.quality or {}
    cells = [r.label + (" (ref)" if r.is_reference else ""), format_bytes(r.disk_bytes),
             format_bytes(r.memory_bytes), _fmt(r.bits_per_weight, ".2f"), _fmt(r.load_s, ".2f"),
             format_bytes(r.peak_memory_bytes), *(_fmt(s["ttft_s"], ".3f") for s in r.speed),
             _fmt(r.speed[-1]["prefill_tps"], ".0f"), _fmt(r.decode_tps, ".1f"),
             _fmt(r.ceiling_share * 100 if r.ceiling_share else None, ".3g"),
             _fmt(q.get("kl_mean"), ".3g"), _fmt(q.get("kl_p99"), ".3g"),
             _fmt(q.get("top1_agreement", 0) * 100, ".1f"), _fmt(q.get("ppl"), ".5g")]
    if has_tasks:
        tk = r.tasks or {}
        cells += [_fmt(tk.get("accuracy", 0) * 100 if tk else None, ".0f"),
                  _fmt(tk.get("mean_reasoning_tokens"), ".0f")]
    return cells


def table(rows: list[Row], reference: str):
    """The terminal table (a rich `Table`)."""
    from rich.table import Table

    t = Table(title=f"magimac bench (quality against {reference})")
    lengths = [s["prompt_tokens"] for s in rows[0].speed] if rows else []
    for col in ("level", "disk", "memory", "bpw", "load s", "peak mem",
                *(f"TTFT s @{n}" for n in lengths), f"prefill t/s @{lengths[-1] if lengths else ''}",
                "decode t/s", "% ceiling", "KL mean", "KL p99", "top-1 %", "PPL"):
        t.add_column(col, justify="right")
    has_tasks = any(r.tasks for r in rows)
    if has_tasks:
        t.add_column("tasks %", justify="right")
        t.add_column("reasoning tok", justify="right")
    for r in rows:
        t.add_row(*_cells(r, has_tasks))
    return t


def category_table(rows: list[Row]):
    """Mean KL divergence and top-1 agreement per text category (a rich `Table`)."""
    from rich.table import Table

    cats = list(dict.fromkeys(c for r in rows if r.quality for c in r.quality["by_category"]))
    t = Table(title="mean KL divergence (nats/token) / top-1 agreement by category")
    t.add_column("level", justify="right")
    for c in cats:
        t.add_column(c, justify="right")
    for r in rows:
        by = (r.quality or {}).get("by_category", {})
        t.add_row(r.label, *(f"{_fmt(by[c]['kl_mean'], '.3g')} / {by[c]['top1_agreement']:.0%}"
                             if c in by else "–" for c in cats))
    return t


def cache_lines(held: list[CacheEntry]) -> list[str]:
    """What the bench caches hold and how to clear them, for the end of a run."""
    lines = [f"cache: {e.name} in {e.path} ({format_bytes(e.size_bytes)})" for e in held]
    lines.append("remove them with: magimac bench --clear-cache (the results in bench/runs stay)")
    return lines
