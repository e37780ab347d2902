"""Benchmark: does the chat app cost decode speed, bound its repaints, and stay responsive?

Three measurements, each against a baseline in the same run:

1. Decode tokens/s while the app streams (headless `App.run_test`) against the engine alone,
   same model, prompt and settings (goal: ratio >= 0.95). Runs alternate (engine, app, ...)
   so machine load drifts hit both alike; the medians are compared.
2. UI updates and screen repaints per second when a synthetic turn emits tokens at 100, 1000,
   10000 and "as fast as possible" tokens/s: repaints must stay bounded however fast tokens come.
3. Key latency: while an answer streams (real engine, and the fastest synthetic source), keys
   are typed into the composer; the time from the key event to the character being in the
   composer, and to the next screen repaint, is measured (goal: < 50 ms).

Usage: ``python bench/bench_tui.py [--model DIR] [--tokens 200] [--repeats 3]``; without
``--model`` a tiny random-weights Magistral-format checkpoint is built in a temp directory
(it writes until ``--tokens``). Prints a table; writes ``bench/out/bench_tui.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROMPT = "Tell me a long story about a fox who learns to cook."


def setup_dirs(tmp: Path) -> None:
    for var, sub in (("MAGIMAC_CONFIG_DIR", "config"), ("MAGIMAC_DATA_DIR", "data"),
                     ("MAGIMAC_MODELS_DIR", "models"), ("HF_HOME", "hf")):
        (tmp / sub).mkdir(parents=True, exist_ok=True)
        os.environ[var] = str(tmp / sub)
    os.environ["HF_HUB_OFFLINE"] = "1"


def build_model(tmp: Path) -> Path:
    sys.path.insert(0, str(ROOT / "tests"))
    from checkpoint import build_checkpoint  # noqa: PLC0415  (test-model builder)

    return build_checkpoint(tmp / "random-model")


class SyntheticEngine:
    """Engine stand-in for repaint/latency runs: emits ``n`` answer tokens at ``rate`` tokens/s
    (0: as fast as the queue takes them) after 20 reasoning tokens. Same interface as Engine."""

    def __init__(self, rate: float, n: int) -> None:
        self.rate, self.n = rate, n
        self._cancel = threading.Event()

    def load_events(self):
        from magimac.events import Loaded  # noqa: PLC0415

        yield Loaded("synthetic", "", 131072, False, 0)

    def wait_loaded(self, timeout=None):
        return next(iter(self.load_events()))

    def submit(self, messages, settings=None):
        from magimac.engine import Turn  # noqa: PLC0415
        from magimac.events import AnswerDelta, Done, ReasoningDelta, Stats  # noqa: PLC0415

        turn = Turn()
        self._cancel.clear()

        def run() -> None:
            start = time.perf_counter()
            for i in range(self.n + 20):
                if self._cancel.is_set():
                    turn._put(Done("cancelled"))
                    return
                if self.rate:
                    delay = start + i / self.rate - time.perf_counter()
                    if delay > 0:
                        time.sleep(delay)
                if i < 20:
                    turn._put(ReasoningDelta(f"thought{i} "))
                else:  # Markdown-like text: a paragraph every 60 tokens
                    turn._put(AnswerDelta(f"word{i}" + ("\n\n" if i % 60 == 0 else " ")))
            turn._put(Done("stop", stats=Stats(answer_tokens=self.n, reasoning_tokens=20)))

        threading.Thread(target=run, daemon=True).start()
        return turn

    def cancel(self) -> None:
        self._cancel.set()

    def close(self) -> None:
        pass


def count_repaints(app) -> list[int]:
    """Patch ``app`` so each screen update it sends to the (headless) display is counted."""
    counter = [0]
    original = app._display

    def counting(*args, **kwargs):
        counter[0] += 1
        return original(*args, **kwargs)

    app._display = counting
    return counter


async def wait_for(cond, limit_s: float = 600.0) -> None:
    end = time.monotonic() + limit_s
    while not cond():
        if time.monotonic() > end:
            raise TimeoutError("the app did not finish in time")
        await asyncio.sleep(0.005)


def engine_alone(engine, n: int) -> float:
    from magimac.conversation import Message  # noqa: PLC0415
    from magimac.engine import GenerationSettings  # noqa: PLC0415

    done = None
    for ev in engine.submit([Message("user", PROMPT)], GenerationSettings(max_tokens=n)):
        done = ev
    return done.stats.decode_tps


async def app_turn(engine, model: Path, n: int) -> tuple[float, float, float]:
    """One turn in the headless app: (decode tokens/s, UI updates/s, repaints/s)."""
    from magimac.history import History  # noqa: PLC0415
    from magimac.tui.app import MagimacApp  # noqa: PLC0415

    conv = History().new_conversation("bench", {"max_tokens": n})
    app = MagimacApp(str(model), engine_factory=lambda _p: engine)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(lambda: app.loaded is not None)
        await app.open_conversation(conv.id)
        repaints = count_repaints(app)
        app.composer.text = PROMPT
        t0 = time.perf_counter()
        await pilot.press("enter")
        await wait_for(lambda: app.generating is None and app.messages[-1].role == "assistant")
        dt = time.perf_counter() - t0
        stats = app.messages[-1].stats
        return stats.get("decode_tps", 0.0), app.ui_updates / dt, repaints[0] / dt


async def type_keys(app, keys: int) -> dict:
    """Type ``keys`` characters into the composer; latencies in ms to the character being in
    the composer and to the next screen repaint."""
    from textual import events  # noqa: PLC0415

    repaints = count_repaints(app)
    to_text, to_paint = [], []
    for i in range(keys):
        before, painted = app.composer.text, repaints[0]
        t0 = time.perf_counter()
        app.composer.post_message(events.Key("x", "x"))
        await wait_for(lambda: app.composer.text != before, 5)
        to_text.append((time.perf_counter() - t0) * 1000)
        await wait_for(lambda: repaints[0] > painted, 5)
        to_paint.append((time.perf_counter() - t0) * 1000)
        await asyncio.sleep(0.03 + 0.01 * (i % 3))
    return {"keys": keys,
            "to_composer_ms_median": statistics.median(to_text), "to_composer_ms_max": max(to_text),
            "to_repaint_ms_median": statistics.median(to_paint), "to_repaint_ms_max": max(to_paint)}


async def key_latency(engine, model: Path, keys: int = 20) -> dict:
    """Key latency in an idle app (baseline), then while a long answer streams."""
    from magimac.history import History  # noqa: PLC0415
    from magimac.tui.app import MagimacApp  # noqa: PLC0415

    conv = History().new_conversation("keys", {"max_tokens": 100000})
    app = MagimacApp(str(model), engine_factory=lambda _p: engine)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(lambda: app.loaded is not None)
        await app.open_conversation(conv.id)
        idle = await type_keys(app, keys)
        app.composer.text = PROMPT
        await pilot.press("enter")
        await wait_for(lambda: app.ui_updates >= 3)
        streaming = await type_keys(app, keys)
        streaming["still_streaming"] = app.generating is not None
        app.action_stop()
        await wait_for(lambda: app.generating is None, 60)
    return {"idle": idle, "streaming": streaming}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, help="converted model directory (default: a tiny random one)")
    p.add_argument("--tokens", type=int, default=200, help="tokens per turn (default 200)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "bench_tui.json")
    a = p.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="bench-tui-"))
    setup_dirs(tmp)
    model = a.model or build_model(tmp)
    from magimac.engine import Engine  # noqa: PLC0415

    engine = Engine(model)
    engine.start()
    engine.wait_loaded()
    engine_alone(engine, 16)  # warm-up

    alone, in_app, ups, fps = [], [], [], []
    for _ in range(a.repeats):
        alone.append(engine_alone(engine, a.tokens))
        tps, u, f = asyncio.run(app_turn(engine, model, a.tokens))
        in_app.append(tps)
        print(f"run: engine {alone[-1]:.1f} tok/s, app {tps:.1f} tok/s", file=sys.stderr, flush=True)
        ups.append(u)
        fps.append(f)
    ratio = statistics.median(in_app) / statistics.median(alone)

    repaint_rows = []
    for rate in (100, 1000, 10000, 0):
        synthetic = SyntheticEngine(rate, n=max(300, int(rate * 2)) if rate else 20000)
        _tps, u, f = asyncio.run(app_turn(synthetic, model, synthetic.n))
        repaint_rows.append({"tokens_per_s": rate or "max", "ui_updates_per_s": u, "repaints_per_s": f})
        print(f"synthetic {rate or 'max'} tok/s: {u:.1f} updates/s, {f:.1f} repaints/s", file=sys.stderr, flush=True)

    latency = {"real engine": asyncio.run(key_latency(engine, model)),
               "synthetic 1000 tok/s": asyncio.run(key_latency(SyntheticEngine(1000, 10**6), model))}
    engine.close()

    print(f"\nDecode tokens/s, {a.tokens} tokens x {a.repeats} runs, model {model.name}")
    print(f"{'':22}{'median':>10}{'runs':>30}")
    print(f"{'engine alone':22}{statistics.median(alone):10.1f}{'  ' + ', '.join(f'{x:.1f}' for x in alone):>30}")
    print(f"{'app streaming':22}{statistics.median(in_app):10.1f}{'  ' + ', '.join(f'{x:.1f}' for x in in_app):>30}")
    print(f"{'ratio (goal >= 0.95)':22}{ratio:10.3f}")
    print(f"{'app UI updates/s':22}{statistics.median(ups):10.1f}   repaints/s {statistics.median(fps):.1f}")
    print("\nRepaints under a synthetic token source")
    print(f"{'tokens/s':>10}{'UI updates/s':>15}{'repaints/s':>12}")
    for r in repaint_rows:
        print(f"{str(r['tokens_per_s']):>10}{r['ui_updates_per_s']:15.1f}{r['repaints_per_s']:12.1f}")
    print("\nKey typed -> in the composer / repainted (ms; goal < 50 while streaming)")
    print(f"{'source':30}{'composer med':>13}{'max':>8}{'repaint med':>13}{'max':>8}")
    for name, both in latency.items():
        for phase in ("idle", "streaming"):
            r = both[phase]
            print(f"{name + ', ' + phase:30}{r['to_composer_ms_median']:13.1f}{r['to_composer_ms_max']:8.1f}"
                  f"{r['to_repaint_ms_median']:13.1f}{r['to_repaint_ms_max']:8.1f}")

    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps({
        "model": str(model), "tokens": a.tokens, "repeats": a.repeats,
        "decode_tps_engine_alone": alone, "decode_tps_app": in_app, "ratio": ratio,
        "app_ui_updates_per_s": ups, "app_repaints_per_s": fps,
        "synthetic_repaints": repaint_rows, "key_latency": latency,
    }, indent=2) + "\n")
    print(f"\nwrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
