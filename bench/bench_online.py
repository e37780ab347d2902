"""Benchmark an online turn's overhead: `OnlineEngine` (the mistralai SDK, one pydantic model
per event, a queue between threads, through `TurnRun`) against reading the same stream with
bare `httpx2` and `json.loads`, both from the API stand-in on 127.0.0.1
(`magimac.testing.api_standin`), which sends ``--events`` answer chunks with no delay.

The ratio (engine events/s over bare events/s, median of ``--rounds`` alternating rounds) says
what the SDK and the session layer cost per event; the real API sends tens to a few hundred
events per second, so anything above ~1000 events/s is far from the bottleneck.

Prints a table and writes ``bench/out/online.json``. Usage::

    python bench/bench_online.py [--events 2000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"


def bare(url: str, key: str) -> tuple[int, float]:
    """(events, seconds) reading the stream with httpx2 alone."""
    import httpx2

    body = {"model": "mistral-medium-latest", "messages": [{"role": "user", "content": "Hi"}], "stream": True}
    t0, n = time.perf_counter(), 0
    with httpx2.Client() as c, c.stream("POST", url + "/v1/chat/completions", json=body,
                                         headers={"Authorization": f"Bearer {key}"}) as r:
        for line in r.iter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                json.loads(line[6:])
                n += 1
    return n, time.perf_counter() - t0


def engine(session) -> tuple[int, float]:
    """(events, seconds) of one turn through the session layer and `OnlineEngine`."""
    from magimac.core.conversation import Message

    t0 = time.perf_counter()
    n = sum(1 for _ in session.turn([Message("user", "Hi")]))
    return n, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    from magimac.session.model import open_model
    from magimac.testing.api_standin import KEY, ApiStandIn, Reply, serve

    state = ApiStandIn()
    server, _thread = serve(state)
    os.environ.update(MAGIMAC_MISTRAL_API_URL=state.url, MISTRAL_API_KEY=KEY)
    reply = lambda: Reply(reasoning=["r"] * (args.events // 2), answer=["a"] * (args.events // 2))  # noqa: E731
    session = open_model("mistral-medium-latest")
    state.replies.append(reply())
    engine(session)  # warm-up: the SDK's imports
    rows = []
    for i in range(args.rounds):
        pair = {}
        for name in (("bare", "engine") if i % 2 == 0 else ("engine", "bare")):
            state.replies.append(reply())
            n, s = bare(state.url, KEY) if name == "bare" else engine(session)
            pair[name] = n / s
        rows.append(pair)
    server.shutdown()
    result = {name: statistics.median(r[name] for r in rows) for name in ("bare", "engine")}
    result["ratio"] = statistics.median(r["engine"] / r["bare"] for r in rows)
    print(f"{'reader':<28}{'events/s':>12}")
    print(f"{'httpx2 + json.loads (bare)':<28}{result['bare']:>12.0f}")
    print(f"{'OnlineEngine via TurnRun':<28}{result['engine']:>12.0f}")
    print(f"{'ratio engine / bare':<28}{result['ratio']:>12.2f}")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "online.json").write_text(json.dumps({"events": args.events, "rounds": args.rounds, **result}, indent=2))


if __name__ == "__main__":
    main()
