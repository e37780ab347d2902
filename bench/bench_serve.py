"""Benchmark `magimac serve` against `mlx_lm.server` on the same model, in one run.

1. Aggregate decode tokens/s with 1, 2, 4 and 8 concurrent streaming clients.  Both servers
   run at once (an idle one costs nothing) on a Magistral-format checkpoint with random weights,
   hidden 1024, 4 layers, 32768 ids (`bench_engine.py`'s model: real matrix work, yet short on
   a CPU); each client streams ``--tokens`` tokens at temperature 0 from a prompt of its own
   (the same prompts to both: magimac gets an empty system message, so no system prompt).
   Aggregate = tokens that arrived while all streams were decoding / that window (from the
   last stream's first token to the first stream's end: no prefill inside).  Each round runs both servers back to back, order alternating; the result is the
   median over ``--rounds`` of magimac / mlx_lm.  Goal: at 4 streams, ratio >= 1.
2. Prefill per request for a client that resends its whole 10-turn history while 3 other
   clients talk: on the scripted checkpoint of the same size (each turn reasons and answers a
   fixed text), client A sends turn n = its history (earlier answers as returned) + a new ~150
   token message, while 3 others keep sending their own 2-turn conversations.  Per turn of A:
   prompt tokens, *new* tokens (prompt_n - prompt_(n-1): the previous prompt is a prefix of the
   next) and tokens prefilled (prompt - usage.prompt_tokens_details.cached_tokens).
   Goal: prefilled <= new x 1.05 (turns 2..10).

Prints tables and writes ``bench/out/serve.json``.  Usage::

    python bench/bench_serve.py [--rounds 3] [--tokens 64] [--streams 1,2,4,8] [--turns 10]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from bench_engine import checkpoint, user_message  # noqa: E402  (the same models and messages)

OUT_JSON = ROOT / "bench" / "out" / "serve.json"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(kind: str, model: Path) -> tuple[subprocess.Popen, str]:
    """Start ``kind`` ("magimac" or "mlx_lm") on ``model``; returns (process, base URL)."""
    port = free_port()
    if kind == "magimac":
        cmd = [sys.executable, "-m", "magimac", "serve", "--model", str(model), "--port", str(port),
               "--context-length", "8192"]
    else:
        cmd = [sys.executable, "-m", "mlx_lm.server", "--model", str(model), "--port", str(port)]
    env = dict(os.environ, HF_HUB_OFFLINE="1", MAGIMAC_NO_SERVER="1")
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            with urllib.request.urlopen(url + "/health", timeout=2):
                return proc, url
        except OSError:
            if proc.poll() is not None:
                raise SystemExit(f"{kind} server exited {proc.returncode}")
            time.sleep(0.2)
    raise SystemExit(f"{kind} server did not start")


def model_id(url: str, kind: str) -> str:
    if kind == "mlx_lm":
        return "default_model"  # mlx_lm.server's name for the model it was started with
    with urllib.request.urlopen(url + "/v1/models", timeout=10) as r:
        return json.loads(r.read())["data"][0]["id"]


def post(url: str, body: dict) -> dict:
    req = urllib.request.Request(url + "/v1/chat/completions", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=600) as r:
        return json.loads(r.read())


def stream(url: str, body: dict) -> list[float]:
    """One streamed request: the arrival time of every chunk with text (one per token)."""
    body = {**body, "stream": True}
    req = urllib.request.Request(url + "/v1/chat/completions", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    times = []
    with urllib.request.urlopen(req, timeout=600) as r:
        for raw in r:
            line = raw.strip()
            if not line.startswith(b"data:") or line == b"data: [DONE]":
                continue
            chunk = json.loads(line[5:])
            if chunk.get("choices") and any(v for k, v in chunk["choices"][0]["delta"].items() if k != "role"):
                times.append(time.perf_counter())
    return times


def aggregate(url: str, model: str, n: int, n_tokens: int, tag: str) -> float:
    """Aggregate decode tokens/s of ``n`` concurrent streams: the tokens that arrived while all
    ``n`` were decoding (after the last one's first token, before the first one's end) / that
    window, so no prefill falls in it.  Both servers get the same prompt (magimac: an empty
    system message, so no system prompt)."""
    results: list = [None] * n

    def one(i: int) -> None:
        msg = f"{tag} stream {i}: " + user_message(i, 12)
        results[i] = stream(url, {"model": model, "messages": [{"role": "system", "content": ""},
                                                               {"role": "user", "content": msg}],
                                  "max_tokens": n_tokens, "temperature": 0})

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    start, end = max(r[0] for r in results), min(r[-1] for r in results)
    inside = sum(1 for r in results for t in r if start < t <= end)
    return inside / (end - start) if end > start else float("nan")


def decode_bench(rounds: int, n_tokens: int, streams: list[int]) -> dict:
    path = checkpoint("random-h1024-l4-v32k", scripted=False)
    servers = {k: start(k, path) for k in ("magimac", "mlx_lm")}
    try:
        ids = {k: model_id(url, k) for k, (_, url) in servers.items()}
        for k, (_, url) in servers.items():  # warm up: first calls compile kernels
            aggregate(url, ids[k], 2, 8, "warm")
        rows = []
        for n in streams:
            tps = {"magimac": [], "mlx_lm": []}
            for r in range(rounds):
                order = ("magimac", "mlx_lm") if r % 2 == 0 else ("mlx_lm", "magimac")
                for k in order:
                    tps[k].append(aggregate(servers[k][1], ids[k], n, n_tokens, f"r{r}-{k}"))
            ratios = [a / b for a, b in zip(tps["magimac"], tps["mlx_lm"])]
            rows.append({"streams": n, "magimac_tps": statistics.median(tps["magimac"]),
                         "mlx_lm_tps": statistics.median(tps["mlx_lm"]), "ratio": statistics.median(ratios),
                         "rounds": tps})
        return {"model": path.name, "tokens_per_stream": n_tokens, "rows": rows}
    finally:
        for proc, _ in servers.values():
            proc.terminate()
            proc.wait(30)


def history_bench(turns: int) -> dict:
    path = checkpoint("scripted-h1024-l4-v32k", scripted=True)
    out = {}
    for kind in ("magimac", "mlx_lm"):
        proc, url = start(kind, path)
        try:
            out[kind] = conversation_with_neighbours(url, model_id(url, kind), turns)
        finally:
            proc.terminate()
            proc.wait(30)
    return out


def conversation_with_neighbours(url: str, model: str, turns: int) -> list[dict]:
    stop = threading.Event()

    def neighbour(k: int) -> None:
        i = 0
        while not stop.is_set():
            history = [{"role": "user", "content": f"neighbour {k} says " + user_message(100 + 10 * k + i, 60)}]
            r = post(url, {"model": model, "messages": history, "max_tokens": 40})
            history += [{"role": "assistant", "content": r["choices"][0]["message"]["content"]},
                        {"role": "user", "content": user_message(200 + k + i, 30)}]
            post(url, {"model": model, "messages": history, "max_tokens": 40})
            i += 1

    others = [threading.Thread(target=neighbour, args=(k,), daemon=True) for k in range(3)]
    for t in others:
        t.start()
    history, rows, previous = [], [], 0
    try:
        for n in range(1, turns + 1):
            history.append({"role": "user", "content": user_message(n)})
            r = post(url, {"model": model, "messages": history})
            message = r["choices"][0]["message"]
            sent_back = {"role": "assistant", "content": message.get("content") or ""}
            if message.get("reasoning_content"):
                sent_back["reasoning_content"] = message["reasoning_content"]
            history.append(sent_back)
            u = r["usage"]
            cached = (u.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
            rows.append({"turn": n, "prompt": u["prompt_tokens"], "new": u["prompt_tokens"] - previous,
                         "prefilled": u["prompt_tokens"] - cached})
            previous = u["prompt_tokens"]
    finally:
        stop.set()
        for t in others:
            t.join(120)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--tokens", type=int, default=64, help="tokens each stream decodes")
    p.add_argument("--streams", default="1,2,4,8")
    p.add_argument("--turns", type=int, default=10)
    p.add_argument("--skip-history", action="store_true", help="only the decode table")
    a = p.parse_args(argv)
    result = {"machine": f"{os.cpu_count()} CPUs, shared with other work (numbers are ratios in one run)"}
    result["decode"] = decode_bench(a.rounds, a.tokens, [int(x) for x in a.streams.split(",")])
    print(f"\nAggregate decode tokens/s ({result['decode']['tokens_per_stream']} tokens per stream, "
          f"median of {a.rounds} rounds)")
    print(f"{'streams':>7} {'magimac serve':>14} {'mlx_lm.server':>14} {'ratio':>6}")
    for row in result["decode"]["rows"]:
        print(f"{row['streams']:>7} {row['magimac_tps']:>14.1f} {row['mlx_lm_tps']:>14.1f} {row['ratio']:>6.2f}")
    if a.skip_history:
        return _write(result)
    result["history"] = history_bench(a.turns)
    print(f"\nClient A resends its {a.turns}-turn history while 3 others talk: tokens per request")
    print(f"{'turn':>4} {'prompt':>7} {'new':>5} | {'magimac prefilled':>17} {'ratio':>6} | {'mlx_lm prefilled':>16} {'ratio':>6}")
    for m, x in zip(result["history"]["magimac"], result["history"]["mlx_lm"]):
        print(f"{m['turn']:>4} {m['prompt']:>7} {m['new']:>5} | {m['prefilled']:>17} {m['prefilled'] / m['new']:>6.2f} | "
              f"{x['prefilled']:>16} {x['prefilled'] / max(1, x['new']):>6.2f}")
    for kind, rows in result["history"].items():
        later = rows[1:]
        ratio = sum(r["prefilled"] for r in later) / max(1, sum(r["new"] for r in later))
        result[f"{kind}_prefill_over_new_turns_2_on"] = ratio
        print(f"{kind}: prefilled / new over turns 2..{a.turns} = {ratio:.3f}")
    return _write(result)


def _write(result: dict) -> int:
    OUT_JSON.parent.mkdir(parents=True, exist_ok=True)
    OUT_JSON.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {OUT_JSON}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
