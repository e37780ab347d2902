"""Benchmark the engine: decode speed against bare mlx-lm, and multi-turn prefill.

1. Decode tokens/s through `magimac.engine.worker.Engine` against bare `mlx_lm.stream_generate` on
   the same checkpoint, prompt, sampler and seed, alternating over ``--rounds`` (median).
   Model: a Magistral-format checkpoint with random weights, hidden 1024, 4 layers (intermediate
   3072, 8 heads, 2 KV heads, head_dim 128) and the first 32768 ids of the Tekken vocabulary
   (`magimac.testing.checkpoint`): decode is real matrix work, not pure overhead, yet a run stays short
   on a CPU.  The
   engine loads it with mlx-vlm (vision tower) and drives mlx-lm's ``generate_step``; the
   baseline loads it with ``mlx_lm.load``.  Each round runs both back to back (order
   alternating); the result is the median of the per-round ratios, which cancels drift in the
   machine's load.  Goal: engine / bare >= 0.98.
2. A 10-turn conversation on a scripted checkpoint of the same size (each turn reasons and
   answers the same fixed text; user messages of ~150 tokens), four ways:
   - engine (default: earlier reasoning dropped, KV cache reused up to the common prefix);
   - engine with ``keep_reasoning`` (the previous turn is reused whole);
   - mlx_lm.chat's approach: one KV cache, each turn appends only the new message's tokens;
   - re-prefilling the whole history every turn (no cache).
   Per turn: prompt tokens, *new* tokens (tokens after the longest common prefix with the
   previous prompt + generation: what any exact cache must compute), tokens prefilled, and
   time to first token.  Goals: prefilled <= new x 1.05; turn 10's TTFT <= 1.2 x turn 1's.

Prints tables and writes ``bench/out/engine.json``.  Checkpoints are cached under
``bench/out/models/``.  Usage::

    python bench/bench_engine.py [--rounds 5] [--decode-tokens 100] [--turns 10] [--skip-decode] [--skip-turns]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
OUT_JSON = OUT / "engine.json"
SIZE = dict(hidden=1024, layers=4, intermediate=3072, heads=8, kv_heads=2, head_dim=128, vocab=32768)
# what the scripted bench model says each turn (a bigram chain in the 32768-id vocabulary)
SCRIPT = ("The user greets me; reply warmly in French, with a café.", "Hello! Ça va?")
WORDS = ("river mountain quantum ledger violet harbor engine lantern orbit canvas meadow signal "
         "copper whisper glacier pixel saffron tundra anchor mosaic").split()


def checkpoint(name: str, scripted: bool) -> Path:
    """Build (once) a bench checkpoint under bench/out/models/."""
    from magimac.testing.checkpoint import Script, build_checkpoint

    path = OUT / "models" / name
    if not (path / "config.json").is_file():
        print(f"building {path} ...", file=sys.stderr)
        build_checkpoint(path, script=Script(*SCRIPT) if scripted else None, **SIZE)
    return path


def user_message(i: int, n_words: int = 120) -> str:
    """A varied ~150-token user message for turn ``i``."""
    return f"Question {i}: " + " ".join(WORDS[(i * 7 + j * j) % len(WORDS)] for j in range(n_words)) + "?"


# ---- 1. decode speed --------------------------------------------------------------------


def decode_bench(rounds: int, n_tokens: int) -> dict:
    import mlx.core as mx
    from mlx_lm import load, stream_generate
    from mlx_lm.sample_utils import make_sampler

    from magimac.core.conversation import Message
    from magimac.core.settings import DiskCacheSettings, GenerationSettings
    from magimac.engine.worker import Engine
    from magimac.core.events import Done

    path = checkpoint("random-h1024-l4-v32k", scripted=False)
    engine = Engine(path, disk_cache=DiskCacheSettings(enabled=False))  # memory only, as the baseline
    engine.wait_loaded()
    model, tokenizer = load(str(path))
    messages = [Message("user", user_message(0))]
    settings = GenerationSettings(temperature=0.7, top_p=0.95, seed=0, max_tokens=n_tokens)
    prompt = engine.prompt_tokens(messages, settings)

    def bare() -> tuple[float, int]:
        mx.random.seed(0)
        times = []
        for _ in stream_generate(model, tokenizer, prompt, max_tokens=n_tokens, sampler=make_sampler(0.7, 0.95)):
            times.append(time.perf_counter())
        return (len(times) - 1) / (times[-1] - times[0]), len(times)

    def through_engine() -> tuple[float, int]:
        engine.forget_cached_tokens()  # same work as the baseline: full prefill
        done = [ev for ev in engine.submit(messages, settings) if isinstance(ev, Done)][0]
        s = done.stats
        return s.decode_tps, s.reasoning_tokens + s.answer_tokens + (1 if done.finish_reason == "stop" else 0)

    bare(), through_engine()  # warm up both
    rows = []
    for r in range(rounds):
        for name, fn in (("bare", bare), ("engine", through_engine)) if r % 2 == 0 else (
                ("engine", through_engine), ("bare", bare)):
            tps, n = fn()
            rows.append({"round": r, "runner": name, "decode_tps": tps, "tokens": n})
    engine.close()
    med = {k: statistics.median(x["decode_tps"] for x in rows if x["runner"] == k) for k in ("bare", "engine")}
    paired = [next(x["decode_tps"] for x in rows if x["round"] == r and x["runner"] == "engine")
              / next(x["decode_tps"] for x in rows if x["round"] == r and x["runner"] == "bare") for r in range(rounds)]
    return {"model": path.name, "prompt_tokens": len(prompt), "max_tokens": n_tokens, "runs": rows,
            "median_tps": med, "ratio_of_medians": med["engine"] / med["bare"],
            "round_ratios": paired, "ratio": statistics.median(paired)}


# ---- 2. multi-turn ----------------------------------------------------------------------


def _lcp(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def engine_turns(path: Path, turns: int, keep: bool) -> list[dict]:
    from magimac.core.conversation import Message
    from magimac.core.settings import DiskCacheSettings, GenerationSettings
    from magimac.engine.worker import Engine
    from magimac.core.events import Done

    engine = Engine(path, disk_cache=DiskCacheSettings(enabled=False))  # runs must not feed each other
    engine.wait_loaded()
    settings = GenerationSettings(keep_reasoning=keep)
    # warm-up on another conversation without system prompt: only <s> is shared with turn 1
    list(engine.submit([Message("user", "warm up")], GenerationSettings(system_prompt=None)))
    msgs: list[Message] = []
    prev: list[int] = []
    rows = []
    for i in range(1, turns + 1):
        msgs.append(Message("user", user_message(i)))
        prompt = engine.prompt_tokens(msgs, settings)
        done = [ev for ev in engine.submit(msgs, settings) if isinstance(ev, Done)][0]
        s = done.stats
        new = len(prompt) - _lcp(prompt, prev) if prev else len(prompt) - 1
        rows.append({"turn": i, "prompt": len(prompt), "new": new,
                     "prefilled": s.prompt_tokens - s.cached_tokens, "ttft_s": s.ttft_s})
        generated = engine.cached_tokens()[len(prompt):]  # what the turn generated (in the cache)
        prev = prompt + list(generated)
        msgs.append(Message("assistant", SCRIPT[1], reasoning=SCRIPT[0]))
    engine.close()
    return rows


def mlx_lm_turns(path: Path, turns: int, reuse_cache: bool) -> list[dict]:
    """Bare mlx-lm: ``reuse_cache`` = mlx_lm.chat's approach (append each new message to one
    KV cache); else re-prefill the whole history (reasoning dropped) every turn."""
    from mlx_lm import load, stream_generate
    from mlx_lm.models.cache import make_prompt_cache
    from mlx_lm.sample_utils import make_sampler

    from magimac.core.conversation import Message
    from magimac.engine.worker import Engine

    model, tokenizer = load(str(path))
    tok = Engine(path)  # only for mistral-common prompt ids
    sampler = make_sampler(0.7, 0.95)
    list(stream_generate(model, tokenizer, tok.prompt_tokens([Message("user", "warm up")]), max_tokens=4))
    cache = make_prompt_cache(model) if reuse_cache else None
    msgs: list[Message] = []
    rows = []
    for i in range(1, turns + 1):
        msgs.append(Message("user", user_message(i)))
        full = tok.prompt_tokens(msgs)
        if reuse_cache:
            # mlx_lm.chat templates only the new user message: [INST] text [/INST] (after turn 1)
            feed = full if i == 1 else tok.prompt_tokens([msgs[-1]], _no_system())[1:]
            c = cache
        else:
            feed, c = full, make_prompt_cache(model)
        t0 = time.perf_counter()
        ttft = None
        for _ in stream_generate(model, tokenizer, feed, max_tokens=64, sampler=sampler, prompt_cache=c):
            if ttft is None:
                ttft = time.perf_counter() - t0
        rows.append({"turn": i, "prompt": len(full), "prefilled": len(feed), "ttft_s": ttft})
        msgs.append(Message("assistant", SCRIPT[1], reasoning=SCRIPT[0]))
    return rows


def _no_system():
    from magimac.core.settings import GenerationSettings

    return GenerationSettings(system_prompt=None)


def multi_turn_bench(turns: int) -> dict:
    path = checkpoint("scripted-h1024-l4-v32k", scripted=True)
    return {
        "model": path.name,
        "engine": engine_turns(path, turns, keep=False),
        "engine_keep_reasoning": engine_turns(path, turns, keep=True),
        "mlx_lm_chat": mlx_lm_turns(path, turns, reuse_cache=True),
        "reprefill": mlx_lm_turns(path, turns, reuse_cache=False),
    }


# ---- report -----------------------------------------------------------------------------


def print_decode(d: dict) -> None:
    print(f"\nDecode tokens/s, {d['model']}, prompt {d['prompt_tokens']} tokens, up to {d['max_tokens']} tokens")
    print(f"{'round':>5} {'runner':>7} {'tokens':>6} {'tok/s':>8}")
    for r in d["runs"]:
        print(f"{r['round']:>5} {r['runner']:>7} {r['tokens']:>6} {r['decode_tps']:>8.2f}")
    m = d["median_tps"]
    print(f"median: bare {m['bare']:.2f}  engine {m['engine']:.2f}  (ratio of medians {d['ratio_of_medians']:.3f})")
    print(f"engine/bare per round: {' '.join(f'{r:.3f}' for r in d['round_ratios'])}; "
          f"median {d['ratio']:.3f} (goal >= 0.98)")


def print_turns(t: dict) -> None:
    e, k, c, r = t["engine"], t["engine_keep_reasoning"], t["mlx_lm_chat"], t["reprefill"]
    print(f"\n10-turn conversation, {t['model']} (tokens; TTFT in ms)")
    print(f"{'turn':>4} {'prompt':>6} {'new':>5} {'prefill':>7} {'ratio':>5} {'TTFT':>6} | "
          f"{'keep:pref':>9} {'TTFT':>6} | {'chat:pref':>9} {'TTFT':>6} | {'full:pref':>9} {'TTFT':>6}")
    for a, b, cc, rr in zip(e, k, c, r):
        print(f"{a['turn']:>4} {a['prompt']:>6} {a['new']:>5} {a['prefilled']:>7} {a['prefilled'] / a['new']:>5.2f} "
              f"{a['ttft_s'] * 1e3:>6.0f} | {b['prefilled']:>9} {b['ttft_s'] * 1e3:>6.0f} | "
              f"{cc['prefilled']:>9} {cc['ttft_s'] * 1e3:>6.0f} | {rr['prefilled']:>9} {rr['ttft_s'] * 1e3:>6.0f}")
    worst = max(a["prefilled"] / a["new"] for a in e)
    print(f"engine: worst prefilled/new {worst:.3f} (goal <= 1.05); TTFT turn {e[-1]['turn']} / turn 1 "
          f"{e[-1]['ttft_s'] / e[0]['ttft_s']:.2f} (goal <= 1.2); re-prefill: "
          f"{r[-1]['ttft_s'] / r[0]['ttft_s']:.2f}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--decode-tokens", type=int, default=100)
    p.add_argument("--turns", type=int, default=10)
    p.add_argument("--skip-decode", action="store_true")
    p.add_argument("--skip-turns", action="store_true")
    a = p.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    result: dict = {}
    if OUT_JSON.is_file() and (a.skip_decode or a.skip_turns):  # keep the other part's last numbers
        result = json.loads(OUT_JSON.read_text())
    result["cpu_count"] = os.cpu_count()
    if not a.skip_decode:
        result["decode"] = decode_bench(a.rounds, a.decode_tokens)
        print_decode(result["decode"])
    if not a.skip_turns:
        result["turns"] = multi_turn_bench(a.turns)
        print_turns(result["turns"])
    import mlx.core as mx

    result["device"] = str(mx.default_device())
    tmp = OUT_JSON.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    tmp.replace(OUT_JSON)
    print(f"\nwrote {OUT_JSON}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
