"""Benchmark the prompt cache on disk: reopening a long conversation in a new process.

Model: a Magistral-format checkpoint with random weights and Magistral Small's attention widths
(hidden 5120, 32 heads, 8 KV heads, head_dim 128: the KV per token and layer is the real one,
4 KiB at 16-bit), ``--layers`` text layers (default 1), ``--intermediate`` (default 2048: the real
32768 makes a 16K prefill take many minutes on a CPU; it changes compute, not the KV) and the first
32768 ids of the Tekken vocabulary (`magimac.testing.checkpoint`), text only.

For each history length (``--contexts``, default 8192 and 16384 tokens: a user message of that
many tokens and a short stored answer), three processes share one cache directory:

- **build**: the engine prefills the history (1 token generated), then the follow-up F1 runs at
  once in the same process (memory cache: TTFT "in process"; its decode tokens/s while the writer
  thread saves the history's blocks), then, the writes finished, F1 again (decode tokens/s with no
  writes: the ratio's baseline).  The worker's time copying blocks for the writer after each turn's
  Done, and the writer's time, are measured too.
- **reopen**: a new process asks F2 (same history, another question of the same length): the
  history comes from disk.  TTFT "reopened".
- **prefill**: a new process with the disk cache off asks F2: the whole history is prefilled.

Then a 2K-token conversation at 8-bit and 4-bit KV is written and reopened (disk bytes per token).
Goals (issue 19): reopened TTFT <= 1.5 x in process; decode ratio with / without writes >= 0.98.
Disk cost per 1K tokens is scaled to Magistral Small's 40 layers and compared with
shared/MAGISTRAL.md's 160 KiB per token (16-bit).

Prints a table and writes ``bench/out/disk_cache.json``; the checkpoint is cached under
``bench/out/models/``.  Usage::

    python bench/bench_disk_cache.py [--contexts 8192,16384] [--layers 1] [--intermediate 2048]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
OUT_JSON = OUT / "disk_cache.json"
WIDTHS = dict(hidden=5120, heads=32, kv_heads=8, head_dim=128, vocab=32768, vision=False)
WORDS = ("river mountain quantum ledger violet harbor engine lantern orbit canvas meadow signal "
         "copper whisper glacier pixel saffron tundra anchor mosaic").split()
MAGISTRAL_LAYERS = 40
KIB_PER_TOKEN = 160  # shared/MAGISTRAL.md: 16-bit KV of Magistral Small, 40 layers
F1 = "Which word comes up most often in my message, and why might that be?"
F2 = "Which word comes up least often in my message, and why might that be?"


def checkpoint(layers: int, intermediate: int) -> Path:
    from magimac.testing.checkpoint import build_checkpoint

    path = OUT / "models" / f"random-h5120-kv8-l{layers}-i{intermediate}-v32k"
    if not (path / "config.json").is_file():
        print(f"building {path} ...", file=sys.stderr)
        build_checkpoint(path, layers=layers, intermediate=intermediate, shards=1, **WIDTHS)
    return path


# ---- the child processes -----------------------------------------------------------------


def _document(engine, tokens: int) -> str:
    """A user message of about ``tokens`` tokens (words of `WORDS`, ids < 32768)."""
    words = [WORDS[(j * 7 + j * j) % len(WORDS)] for j in range(tokens)]
    per_word = engine.count_tokens(" ".join(words[:1000])) / 1000
    return " ".join(words[: int(tokens / per_word)])


def _turn(engine, messages, max_tokens: int):
    from magimac.core.events import Done
    from magimac.core.settings import GenerationSettings

    settings = GenerationSettings(temperature=0, seed=0, max_tokens=max_tokens)
    for ev in engine.submit(messages, settings):
        if isinstance(ev, Done):
            if ev.finish_reason == "error":
                raise SystemExit(f"turn failed: {ev.error}")
            return ev.stats


def _timed(obj, name: str, log: list[float]) -> None:
    """Wrap ``obj.name`` to append each call's seconds to ``log``."""
    inner = getattr(obj, name)

    def wrapper(*a, **k):
        t = time.perf_counter()
        try:
            return inner(*a, **k)
        finally:
            log.append(time.perf_counter() - t)

    setattr(obj, name, wrapper)


def child(args) -> dict:
    from dataclasses import asdict

    from magimac.core.conversation import Message
    from magimac.engine.disk_index import DiskIndex
    from magimac.core.settings import DiskCacheSettings
    from magimac.engine.worker import Engine

    disk = DiskCacheSettings(enabled=args.child != "prefill", directory=args.cache_dir)
    engine = Engine(args.model, context_length=32768, kv_bits=args.kv_bits, disk_cache=disk)
    engine.wait_loaded()
    doc = _document(engine, args.context)
    history = [Message("user", doc), Message("assistant", "Noted: a long list of words.")]
    out: dict = {}
    try:
        if args.child == "build":
            runner = engine._runner
            saves, writes = [], []
            _timed(runner.disk, "save", saves)
            _timed(runner.disk, "_write", writes)
            out["build"] = asdict(_turn(engine, [Message("user", doc)], 1))
            out["follow_writing"] = asdict(_turn(engine, history + [Message("user", F1)], args.decode_tokens))
            engine.wait_idle()  # the history's blocks and F1's are written: nothing to write in F1 again
            out["follow_quiet"] = asdict(_turn(engine, history + [Message("user", F1)], args.decode_tokens))
            engine.wait_idle()
            out["save_copy_s"], out["write_s"] = saves, sum(writes)
        else:
            out["follow"] = asdict(_turn(engine, history + [Message("user", F2)], args.decode_tokens))
    finally:
        engine.close()  # finishes the writes
    if args.child != "prefill":
        usage = DiskIndex(args.cache_dir).usage()
        out["disk_bytes"], out["disk_blocks"], out["disk_tokens_stored"] = usage.bytes, usage.blocks, usage.tokens
    return out


def run_child(model: Path, kind: str, context: int, cache_dir: Path, decode_tokens: int, kv_bits=None) -> dict:
    cmd = [sys.executable, __file__, "--child", kind, "--model", str(model), "--context", str(context),
           "--cache-dir", str(cache_dir), "--decode-tokens", str(decode_tokens)]
    if kv_bits:
        cmd += ["--kv-bits", str(kv_bits)]
    t = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    if p.returncode != 0:
        raise SystemExit(f"{kind} child failed:\n{p.stderr[-3000:]}")
    res = json.loads(p.stdout.strip().splitlines()[-1])
    res["process_s"] = time.perf_counter() - t
    return res


# ---- the parent --------------------------------------------------------------------------


def per_1k_tokens_mib(run: dict, layers: int) -> float:
    """MiB of files (headers included) per 1000 tokens stored, scaled from ``layers`` to 40."""
    return run["disk_bytes"] / run["disk_tokens_stored"] * 1000 * MAGISTRAL_LAYERS / layers / 2**20


def context_rows(model: Path, context: int, layers: int, decode_tokens: int, work: Path) -> dict:
    cache = work / f"cache-{context}"
    build = run_child(model, "build", context, cache, decode_tokens)
    reopen = run_child(model, "reopen", context, cache, decode_tokens)
    prefill = run_child(model, "prefill", context, cache, decode_tokens)
    inproc, reopened, full = build["follow_writing"], reopen["follow"], prefill["follow"]
    return {
        "context": context, "prompt_tokens": reopened["prompt_tokens"],
        "ttft_in_process_s": inproc["ttft_s"], "ttft_reopened_s": reopened["ttft_s"],
        "ttft_prefill_s": full["ttft_s"], "reopened_disk_tokens": reopened["disk_tokens"],
        "reopened_prefilled_tokens": reopened["prefilled_tokens"],
        "in_process_memory_tokens": inproc["memory_tokens"],
        "reopened_over_in_process": reopened["ttft_s"] / inproc["ttft_s"],
        "prefill_over_reopened": full["ttft_s"] / reopened["ttft_s"],
        "decode_tps_while_writing": inproc["decode_tps"], "decode_tps_quiet": build["follow_quiet"]["decode_tps"],
        "decode_ratio": inproc["decode_tps"] / build["follow_quiet"]["decode_tps"],
        "worker_copy_s": build["save_copy_s"], "writer_s": build["write_s"],
        "history_prefill_s": build["build"]["ttft_s"],
        "disk_mib_per_1k_tokens_40_layers": per_1k_tokens_mib(build, layers),
        "raw": {"build": build, "reopen": reopen, "prefill": prefill},
    }


def quantized_rows(model: Path, layers: int, work: Path) -> list[dict]:
    rows = []
    for bits in (8, 4):
        cache = work / f"cache-q{bits}"
        build = run_child(model, "reopen", 2048, cache, 4, kv_bits=bits)  # writes
        again = run_child(model, "reopen", 2048, cache, 4, kv_bits=bits)  # reads
        rows.append({"kv_bits": bits, "reopened_disk_tokens": again["follow"]["disk_tokens"],
                     "disk_mib_per_1k_tokens_40_layers": per_1k_tokens_mib(build, layers)})
    return rows


def print_table(result: dict) -> None:
    ref = KIB_PER_TOKEN * 1000 / 1024
    print("\nReopen a conversation (seconds to first token; machine shared with other work)")
    print(f"{'history':>8} {'prompt':>7} {'in process':>11} {'reopened':>9} {'re-prefill':>11} "
          f"{'reopen/in':>10} {'prefill/reopen':>15} {'from disk':>10} {'decode ratio':>13} {'copy s':>7}")
    for r in result["contexts"]:
        print(f"{r['context']:>8} {r['prompt_tokens']:>7} {r['ttft_in_process_s']:>11.2f} {r['ttft_reopened_s']:>9.2f} "
              f"{r['ttft_prefill_s']:>11.2f} {r['reopened_over_in_process']:>10.2f} {r['prefill_over_reopened']:>15.1f} "
              f"{r['reopened_disk_tokens']:>10} {r['decode_ratio']:>13.3f} {max(r['worker_copy_s']):>7.3f}")
    print(f"\nDisk per 1K tokens, scaled to {MAGISTRAL_LAYERS} layers (MAGISTRAL.md: {ref:.1f} MiB at 16-bit)")
    print(f"{'KV':>6} {'MiB/1K tok':>11} {'vs 160 KiB/token':>17}")
    r16 = result["contexts"][-1]["disk_mib_per_1k_tokens_40_layers"]
    print(f"{'16-bit':>6} {r16:>11.1f} {r16 / ref:>17.3f}")
    for q in result["quantized"]:
        m = q["disk_mib_per_1k_tokens_40_layers"]
        print(f"{str(q['kv_bits']) + '-bit':>6} {m:>11.1f} {m / ref:>17.3f}   (reopened: {q['reopened_disk_tokens']} tokens from disk)")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--contexts", default="8192,16384")
    p.add_argument("--layers", type=int, default=1)
    p.add_argument("--intermediate", type=int, default=2048)
    p.add_argument("--decode-tokens", type=int, default=32)
    p.add_argument("--child"), p.add_argument("--model"), p.add_argument("--context", type=int)
    p.add_argument("--cache-dir"), p.add_argument("--kv-bits", type=int)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(child(args)))
        return 0
    model = checkpoint(args.layers, args.intermediate)
    with tempfile.TemporaryDirectory(prefix="magimac-disk-bench-") as work:
        result = {"layers": args.layers, "intermediate": args.intermediate, "widths": WIDTHS,
                  "contexts": [context_rows(model, int(c), args.layers, args.decode_tokens, Path(work))
                               for c in args.contexts.split(",")],
                  "quantized": quantized_rows(model, args.layers, Path(work))}
    OUT.mkdir(parents=True, exist_ok=True)
    OUT_JSON.write_text(json.dumps(result, indent=2))
    print_table(result)
    print(f"\nwrote {OUT_JSON}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
