"""Benchmark `magimac quantize` against `mlx_vlm.convert`, and print the sizes table.

1. Peak RSS and wall time of converting a real-shaped checkpoint (`bench/make_real_shaped.py`:
   Magistral Small 1.2's full widths, vocabulary and vision tower, 1 and 2 text layers) at the
   same settings (4-bit, group size 64; magimac's ``mlx-vlm`` recipe keeps ``lm_head`` in bf16
   as `mlx_vlm.convert -q` does, so both write the same tensors), each conversion in its own
   process (peak RSS = the process's ``VmHWM``, `magimac.bench.memory`), alternating the order over ``--rounds``.
   Ratios are magimac / mlx-vlm in the same run; goals: RSS <= 1 and flat in depth, time <= 1.10.
2. Sizes `magimac quantize` reports (`magimac.quantize.sizes.estimate`) for the real 2509 config at
   each level, next to the ready-made conversions in the registry.

Writes ``bench/out/quantize.json``.  Usage::

    python bench/bench_quantize.py [--layers 1 2] [--rounds 2] [--work /tmp/qbench] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from magimac.bench.memory import peak_rss_bytes  # noqa: E402
OUT_JSON = ROOT / "bench" / "out" / "quantize.json"


def worker(tool: str, src: str, out: str) -> None:
    """Run one conversion in this process and print its peak RSS (bytes) as JSON."""
    if tool == "mlx-vlm":
        from mlx_vlm.convert import convert as vlm_convert

        vlm_convert(src, out, quantize=True, q_bits=4, q_group_size=64)
    else:
        from magimac.quantize.convert import convert

        recipe = "mlx-vlm" if tool == "magimac" else "uniform"
        convert(src, Path(out), recipe=recipe, progress=False, force=True, log=lambda s: None)
    print(json.dumps({"peak_rss_bytes": peak_rss_bytes()}))


def measure(tool: str, src: Path, out: Path) -> dict:
    """Convert ``src`` with ``tool`` in a fresh process; wall seconds, peak RSS, bytes written."""
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, __file__, "--worker", tool, str(src), str(out)],
                          capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - t0
    if proc.returncode:
        raise SystemExit(f"{tool} failed:\n{proc.stderr[-2000:]}")
    peak = json.loads(proc.stdout.strip().splitlines()[-1])["peak_rss_bytes"]
    written = sum(f.stat().st_size for f in out.glob("*.safetensors"))
    shutil.rmtree(out, ignore_errors=True)
    return {"wall_s": wall, "peak_rss_bytes": peak, "weights_bytes": written}


def _warm(src: Path) -> None:
    for f in src.glob("*.safetensors"):
        with open(f, "rb") as fh:
            while fh.read(64 << 20):
                pass


def speed_memory(layers: list[int], rounds: int, work: Path, keep: bool) -> list[dict]:
    from bench.make_real_shaped import make

    rows = []
    for n in layers:
        src = work / f"real-{n}layer"
        if not (src / "config.json").is_file():
            print(f"making {src} ...", file=sys.stderr)
            make(src, n)
        _warm(src)
        runs: dict[str, list[dict]] = {"mlx-vlm": [], "magimac": []}
        for r in range(rounds):
            order = ["mlx-vlm", "magimac"] if r % 2 == 0 else ["magimac", "mlx-vlm"]
            for tool in order:
                res = measure(tool, src, work / f"out-{tool}")
                runs[tool].append(res)
                print(f"  {n} layer(s) {tool:8} {res['wall_s']:7.1f} s  {res['peak_rss_bytes'] / 1e9:6.2f} GB",
                      file=sys.stderr)
        best = {t: {"wall_s": min(x["wall_s"] for x in v), "peak_rss_bytes": max(x["peak_rss_bytes"] for x in v),
                    "weights_bytes": v[0]["weights_bytes"], "runs": v} for t, v in runs.items()}
        rows.append({"layers": n, "source_bytes": sum(f.stat().st_size for f in src.glob("*.safetensors")), **best})
        if not keep:  # a few GB each: do not leave them behind
            shutil.rmtree(src, ignore_errors=True)
    return rows


def sizes_table() -> list[dict]:
    from magimac.models.registry import load_registry
    from magimac.quantize.sizes import estimate

    cfg = json.loads((ROOT / "magimac" / "data" / "magistral-small-2509.json").read_text())
    ready = load_registry()["magistral-small-2509"].mlx
    levels = [("2-bit", {"bits": 2}), ("3-bit", {"bits": 3}), ("4-bit (default)", {}), ("5-bit", {"bits": 5}),
              ("6-bit", {"bits": 6}), ("8-bit", {"bits": 8}), ("mxfp4", {"mode": "mxfp4"}),
              ("nvfp4", {"mode": "nvfp4"}), ("mxfp8", {"mode": "mxfp8"}), ("mixed_3_6", {"recipe": "mixed_3_6"}),
              ("mixed_4_6", {"recipe": "mixed_4_6"}), ("4-bit, vision 4-bit", {"quantize_vision": True})]
    rows = []
    for label, kw in levels:
        e = estimate(cfg, **kw)
        rows.append({"level": label, "total_bytes": e.total_bytes, "bits_per_weight": e.bits_per_weight,
                     "components": e.components})
    for bits in (4, 5, 6):
        e = estimate(cfg, bits=bits, recipe="mlx-vlm")
        repo = ready.get(f"{bits}bit", "-").split("/")[-1].replace("Magistral-Small-2509-", "")
        rows.append({"level": f"{bits}-bit, lm_head bf16 (mlx-vlm, = {repo})",
                     "total_bytes": e.total_bytes, "bits_per_weight": e.bits_per_weight, "components": e.components})
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--worker", nargs=3, metavar=("TOOL", "SRC", "OUT"), help=argparse.SUPPRESS)
    p.add_argument("--layers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--work", type=Path, default=Path("/tmp/magimac-qbench"))
    p.add_argument("--keep", action="store_true", help="keep the generated checkpoints")
    p.add_argument("--sizes-only", action="store_true")
    a = p.parse_args(argv)
    if a.worker:
        worker(*a.worker)
        return 0
    sizes = sizes_table()
    print("Sizes for the real Magistral Small 1.2 config (decimal GB; vision tower bf16 unless noted)")
    print(f"{'level':<52} {'total GB':>9} {'bits/w':>7} {'vision+proj GB':>15}")
    for r in sizes:
        c = r["components"]
        print(f"{r['level']:<52} {r['total_bytes'] / 1e9:9.3f} {r['bits_per_weight']:7.3f} "
              f"{(c.get('vision_tower', 0) + c.get('projector', 0)) / 1e9:15.3f}")
    rows = [] if a.sizes_only else speed_memory(a.layers, a.rounds, a.work, a.keep)
    if rows:
        print("\nConvert a real-shaped checkpoint, 4-bit g64, lm_head bf16 (best wall of rounds, max peak RSS)")
        print(f"{'layers':>6} {'source GB':>9} | {'mlx-vlm s':>9} {'magimac s':>9} {'time x':>7} | "
              f"{'mlx-vlm RSS GB':>14} {'magimac RSS GB':>14} {'RSS x':>6} | {'same bytes':>10}")
        for r in rows:
            v, m = r["mlx-vlm"], r["magimac"]
            print(f"{r['layers']:>6} {r['source_bytes'] / 1e9:9.2f} | {v['wall_s']:9.1f} {m['wall_s']:9.1f} "
                  f"{m['wall_s'] / v['wall_s']:7.2f} | {v['peak_rss_bytes'] / 1e9:14.2f} {m['peak_rss_bytes'] / 1e9:14.2f} "
                  f"{m['peak_rss_bytes'] / v['peak_rss_bytes']:6.2f} | "
                  f"{abs(m['weights_bytes'] - v['weights_bytes']) / v['weights_bytes'] < 0.001!s:>10}")
    OUT_JSON.parent.mkdir(parents=True, exist_ok=True)
    OUT_JSON.write_text(json.dumps({"sizes": sizes, "convert": rows, "cpu_count": os.cpu_count()}, indent=2) + "\n")
    print(f"\nwrote {OUT_JSON}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
