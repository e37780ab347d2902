"""Benchmark `magimac quantize --method rtn|gptq|awq`: quality, and memory flat in depth.

1. **KL table.** Each model of ``--models`` (default: the demo model) at each level of
   ``--levels`` (3, 4) with each method: mean KL(bf16 || variant) in nats per token, top-1
   agreement and perplexity on magimac's bundled evaluation set (``magimac/data/eval``: held out,
   the calibration set is ``quantize/calibration/magistral-chats.txt``), chunks of 512 tokens,
   through `magimac.engine.evaluate` (as `magimac bench` scores); for the demo model also on 60
   held-out demo problems (its own task, from the split it never trained on); for a model
   directory holding an ``eval/`` folder (`load_eval_texts`' layout: ``*.txt``, ``reasoning.json``)
   also on that, its own held-out text (``bench/train_prose_model.py`` writes one: held-out
   stdlib prose); ``--eval DIR ...`` adds sets scored on every model.  Ratios: method KL / RTN KL at
   the same level, in the same run (goals: <= 0.7 at 3-bit, <= 0.85 at 4-bit).
2. **Memory table.** Random-weight checkpoints built with `magimac.testing.checkpoint`
   (``--width``: ``real`` is `bench/make_real_shaped.py`'s Magistral Small 1.2 with ``n`` text
   layers: 5120 / 32768 / 32 heads / 8 KV heads / 128 head dim / 131072 vocabulary, and the
   vision tower, which every method leaves bf16; ``small`` is 1024 / 4096 / 8 / 2 / 128 with the same
   vocabulary) at ``--layers`` depths; each conversion in its own process (peak RSS =
   ``VmHWM``, `magimac.bench.memory`) at 4-bit: magimac RTN, GPTQ and AWQ (``--calibration-samples`` x 512 tokens),
   and mlx-lm's GPTQ (`mlx_lm.quant.gptq.gptq_quantize`, which holds the whole model and every
   Hessian) on the same calibration tokens; ``mlx-lm-gptq-hessians`` runs it only up to its
   first Cholesky factorization, when every Hessian is held (its peak grows with depth there; at
   real widths the factorizations take hours on MLX's CPU backend).  Ratios: peak RSS at depth
   d / at the smallest depth.
   Calibrated runs also report the peak so far and the time after each layer (``after_layer``).

Writes ``bench/out/quant_methods.json``.  Usage::

    python bench/bench_quant_methods.py [--models DIR ...] [--eval DIR ...] [--levels 3 4] [--skip-kl]
        [--layers 1 2 4] [--width small|real] [--calibration-samples 8] [--work DIR] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from magimac.bench.memory import peak_rss_bytes  # noqa: E402
OUT_JSON = ROOT / "bench" / "out" / "quant_methods.json"
DEMO = ROOT / "magimac" / "demo" / "model"
WIDTHS = {"real": dict(hidden=5120, intermediate=32768, heads=32, kv_heads=8, head_dim=128),
          "small": dict(hidden=1024, intermediate=4096, heads=8, kv_heads=2, head_dim=128)}
METHODS = ("rtn", "gptq", "awq")


def _quiet(_line: str) -> None:
    pass


def demo_problems(work: Path, n: int = 60, seed: int = 1234) -> Path:
    """An evaluation directory of ``n`` held-out demo problems (`magimac.demo.problems`, the
    split the demo model never trained on; not in the calibration set) as ``reasoning.json``."""
    from magimac.demo.problems import sample_problem

    rng = __import__("random").Random(seed)
    turns = [{"name": f"demo-{i}", "user": p.question, "reasoning": p.reasoning, "answer": p.response}
             for i, p in enumerate(sample_problem(rng, held_out=True) for _ in range(n))]
    d = work / "eval-demo-problems"
    d.mkdir(parents=True, exist_ok=True)
    (d / "reasoning.json").write_text(json.dumps(turns, ensure_ascii=False))
    return d


def eval_sets(model: Path, work: Path, extra: list[Path] = ()) -> dict[str, Path | None]:
    """Name -> evaluation directory (None: the bundled set) for ``model``: the bundled set, the
    demo's held-out problems (demo model only), ``model/eval`` when it is a directory, and
    ``extra`` (named ``eval:<folder name>``)."""
    own = Path(model) / "eval"
    return {"bundled": None, **({"demo-problems": demo_problems(work)} if model.resolve() == DEMO else {}),
            **({"own-held-out": own} if own.is_dir() else {}), **{f"eval:{d.name}": d for d in extra}}


def kl_rows(model: Path, levels: list[int], samples: int | None, work: Path, extra: list[Path] = ()) -> list[dict]:
    """Convert ``model`` at each level with each method and score it against bf16 on each of
    `eval_sets`."""
    from magimac.engine import evaluate, measure
    from magimac.quantize.convert import convert

    sets = eval_sets(model, work, extra)
    refs = {}
    for name, d in sets.items():
        chunks = evaluate.make_chunks(evaluate.load_eval_texts(measure.load_tokenizer(model), d), 512)
        refs[name] = (chunks, evaluate.write_reference(measure.for_quality(measure.load(model).model), chunks,
                                                       work / f"ref-{model.name}-{name}", label="bf16"))
    rows = []
    for bits in levels:
        base: dict[str, float] = {}
        for m in METHODS:
            t0 = time.perf_counter()
            out = convert(model, work / f"{model.name}-{bits}-{m}", bits=bits, method=m, force=True,
                          progress=False, log=_quiet, target_ram_bytes=1 << 40,
                          **({} if m == "rtn" else {"calibration_samples": samples}))
            wall = time.perf_counter() - t0
            for name, (chunks, ref) in refs.items():
                q = evaluate.compare(measure.for_quality(measure.load(out).model), ref, chunks)
                base.setdefault(name, q.kl_mean)
                rows.append({"model": model.name, "eval": name, "bits": bits, "method": m, "kl_mean": q.kl_mean,
                             "kl_vs_rtn": q.kl_mean / base[name], "top1": q.top1_agreement, "ppl": q.ppl,
                             "ppl_ref": q.ppl_ref, "convert_s": wall, "tokens": q.tokens})
                print(f"  {model.name} [{name}] {bits}-bit {m:4s}: KL {q.kl_mean:.4f} ({q.kl_mean / base[name]:.2f}x "
                      f"RTN) top-1 {q.top1_agreement:.3f} ppl {q.ppl:.2f} ({wall:.0f} s)", flush=True)
    return rows


def worker(tool: str, src: str, out: str, samples: int, tokens: int = 512) -> None:
    """One conversion in this process; prints its peak RSS (bytes) as JSON."""
    if tool.startswith("mlx-lm-gptq"):
        import mlx.core as mx
        from mlx_lm.quant.gptq import gptq_quantize
        from mlx_lm.utils import load_model

        from magimac.quantize.calibration import load_calibration

        class Stop(Exception):
            pass

        def stop(*_args, **_kwargs):  # called first after every Hessian of the model is evaluated
            print(json.dumps({"phase": "hessians", "peak_rss_bytes": peak_rss_bytes(),
                              "s": time.perf_counter() - t0}), flush=True)
            raise Stop

        t0 = time.perf_counter()
        if tool == "mlx-lm-gptq-hessians":
            mx.linalg.cholesky = stop
        ids = mx.array(load_calibration(None, Path(src), samples=samples, tokens=tokens).ids)
        model, _ = load_model(Path(src), lazy=True)
        try:
            model, _ = gptq_quantize(model, ids, 4, 64, 4, 64, batch_size=1)
            mx.eval(model.parameters())
        except Stop:
            pass
    else:
        from magimac.quantize import calibration_pass as calibrate
        from magimac.quantize.convert import convert

        t0, run_layer = time.perf_counter(), calibrate.run_layer

        def timed_layer(skeleton, parts, index, xs, ctx):  # one JSON line per layer: flat in depth?
            out = run_layer(skeleton, parts, index, xs, ctx)
            print(json.dumps({"layer": index, "peak_rss_bytes": peak_rss_bytes(), "s": time.perf_counter() - t0}),
                  flush=True)
            return out

        calibrate.run_layer = timed_layer
        convert(src, Path(out), bits=4, method=tool, force=True, progress=False, log=_quiet,
                target_ram_bytes=1 << 40,
                **({} if tool == "rtn" else {"calibration_samples": samples, "calibration_tokens": tokens}))
    print(json.dumps({"peak_rss_bytes": peak_rss_bytes()}))


def measure(tool: str, src: Path, out: Path, samples: int, tokens: int) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, __file__, "--worker", tool, str(src), str(out), str(samples), str(tokens)],
                          capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - t0
    shutil.rmtree(out, ignore_errors=True)
    if proc.returncode < 0:  # SIGKILL is what Linux's out-of-memory killer sends
        return {"tool": tool, "error": f"killed by signal {-proc.returncode} (9: out of memory?)", "wall_s": wall}
    if proc.returncode:
        return {"tool": tool, "error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed",
                "wall_s": wall}
    lines = [json.loads(line) for line in proc.stdout.strip().splitlines() if line.startswith("{")]
    return {"tool": tool, "peak_rss_bytes": lines[-1]["peak_rss_bytes"], "wall_s": wall,
            "after_layer": [x for x in lines if "layer" in x], **{x["phase"]: x for x in lines if "phase" in x}}


def _per_layer(r: dict) -> str:
    steps = r.get("after_layer") or []
    if "hessians" in r:
        return f"; stopped at its first Cholesky, every Hessian held, {r['hessians']['s']:.0f} s in"
    return ("; after each layer: " + ", ".join(f"{x['peak_rss_bytes'] / 1e9:.2f} GB at {x['s']:.0f} s" for x in steps)
            if steps else "")


def memory_rows(layers: list[int], width: str, tools: list[str], samples: int, tokens: int, vocab: int,
                work: Path) -> list[dict]:
    import make_real_shaped

    from magimac.testing.checkpoint import build_checkpoint

    rows = []
    for n in layers:
        src = work / f"ckpt-{width}-{n}"
        if not (src / "config.json").exists() and width == "real":
            make_real_shaped.make(src, layers=n)  # streamed: well under 1 GB, whatever the depth
        elif not (src / "config.json").exists():
            build_checkpoint(src, layers=n, vision=False, vocab=vocab, shards=max(1, n), **WIDTHS[width])
        for tool in tools:
            r = {"layers": n, "width": width, "vocab": vocab, "calibration": [samples, tokens],
                 **measure(tool, src, work / "out", samples, tokens)}
            rows.append(r)
            print(f"  {width} x {n} layer(s) {tool:12s}: " + (f"peak RSS {r['peak_rss_bytes'] / 1e9:.2f} GB, "
                  f"{r['wall_s']:.0f} s" + _per_layer(r) if "error" not in r else f"failed: {r['error']}"), flush=True)
        shutil.rmtree(src, ignore_errors=True)
    for r in rows:
        first = next((x for x in rows if x["tool"] == r["tool"] and "peak_rss_bytes" in x), None)
        if first and "peak_rss_bytes" in r:
            r["rss_vs_first_depth"] = r["peak_rss_bytes"] / first["peak_rss_bytes"]
    return rows


def estimate_gptq_peak(width: str = "real", samples: int = 128, tokens: int = 512) -> dict:
    """GPTQ's largest buffers at ``down_proj`` (the widest Hessian) by the code's own sizes, in
    bytes: an estimate for calibration sizes this machine cannot run in time, not a measurement.
    Components: the float32 Hessian of the 32768 inputs (factored in place), one row block of
    the weight in float32 (`ROW_BLOCK_BYTES`) and the codes, the layer's bf16 ``down_proj``
    (q/k/v/o/gate/up are quantized by then, at 4-bit), the hidden states entering the layer
    (bf16; the layer's output is computed after the Hessian is freed), MLX's buffer cache
    (`CACHE_LIMIT`) and the temporaries of one forward batch through gate/up on the CPU path
    (float32 and bf16 outputs of both: 2 x `BATCH_TOKENS` x intermediate x 6 B)."""
    from magimac.quantize.calibration_pass import CACHE_LIMIT
    from magimac.quantize.gptq import ROW_BLOCK_BYTES
    from magimac.quantize.layerwise import BATCH_TOKENS

    w = WIDTHS[width]
    h, i = w["hidden"], w["intermediate"]
    q, kv = w["heads"] * w["head_dim"], w["kv_heads"] * w["head_dim"]
    parts = {"hessian": i * i * 4, "weight_f32_block": min(ROW_BLOCK_BYTES, h * i * 4), "codes": h * i,
             "down_bf16": h * i * 2, "others_4bit": int((2 * h * q + 2 * h * kv + 2 * h * i) * 4.5 / 8),
             "hidden_states": samples * tokens * h * 2, "mlx_cache": CACHE_LIMIT,
             "mlp_batch": 2 * BATCH_TOKENS * i * 6}
    return {**parts, "total": sum(parts.values())}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--worker", nargs=5, help=argparse.SUPPRESS)
    p.add_argument("--models", nargs="*", type=Path, default=[DEMO])
    p.add_argument("--eval", nargs="*", type=Path, default=[],
                   help="more evaluation directories, scored on every model (a model's own DIR/eval is used anyway)")
    p.add_argument("--levels", nargs="*", type=int, default=[3, 4])
    p.add_argument("--skip-kl", action="store_true")
    p.add_argument("--layers", nargs="*", type=int, default=[1, 2, 4])
    p.add_argument("--width", choices=sorted(WIDTHS), default="small")
    p.add_argument("--tools", nargs="*", default=["rtn", "gptq", "awq", "mlx-lm-gptq"])
    p.add_argument("--kl-samples", type=int, default=None, help="calibration samples for the KL table (default: all)")
    p.add_argument("--calibration-samples", type=int, default=8, help="calibration samples for the memory table")
    p.add_argument("--calibration-tokens", type=int, default=512, help="tokens per sample for the memory table")
    p.add_argument("--vocab", type=int, default=131072, help="vocabulary of the memory-table checkpoints")
    p.add_argument("--work", type=Path, default=None)
    p.add_argument("--json", type=Path, default=OUT_JSON, help=f"where the results go (default {OUT_JSON})")
    a = p.parse_args(argv)
    if a.worker:
        worker(a.worker[0], a.worker[1], a.worker[2], int(a.worker[3]), int(a.worker[4]))
        return 0
    work = a.work or Path(tempfile.mkdtemp(prefix="qmbench-"))
    work.mkdir(parents=True, exist_ok=True)
    doc = {"note": "2 shared CPU cores (Linux, MLX CPU backend); times are not a Mac's", "kl": [], "memory": []}
    if not a.skip_kl:
        print("KL to bf16 on the held-out evaluation set:")
        for m in a.models:
            doc["kl"] += kl_rows(m, a.levels, a.kl_samples, work, a.eval)
    if a.layers:
        print(f"peak RSS and wall time, 4-bit, {a.width} widths:")
        doc["memory"] = memory_rows(a.layers, a.width, a.tools, a.calibration_samples, a.calibration_tokens,
                                    a.vocab, work)
    doc["gptq_peak_estimate_real_width"] = {}
    for n, t in sorted({(128, 512), (a.calibration_samples, a.calibration_tokens)}):
        est = doc["gptq_peak_estimate_real_width"][f"{n}x{t}"] = estimate_gptq_peak(samples=n, tokens=t)
        print(f"GPTQ peak buffers at Magistral's widths (estimate, {n} x {t} tokens): {est['total'] / 1e9:.2f} GB "
              f"(+ the Python/MLX process, about 0.5 GB)")
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {a.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
