"""Benchmark: does the chat app cost decode speed, bound its repaints, and stay responsive?

Three measurements, each against a baseline in the same run:

1. Decode tokens/s while the app streams (headless `App.run_test`) against the engine alone,
   same model, prompt and settings (goal: ratio >= 0.95), in a new conversation and in a long
   one (``--earlier`` exchanges whose answers are 31 paragraphs each). Runs alternate (engine,
   app, long app, ...) so machine load drifts hit all alike; the medians are compared. Also the
   UI (main) thread's CPU seconds per second of streaming: the share of a core the app takes
   from the decode when cores are scarce, whatever the machine's load.
2. UI updates and screen repaints per second when a synthetic turn emits tokens at 100, 1000,
   10000 and "as fast as possible" tokens/s: repaints must stay bounded however fast tokens come.
3. Key latency: while an answer streams (real engine, and the fastest synthetic source), keys
   are typed into the composer; the time from the key event to the character being in the
   composer, and to the next screen repaint, is measured (goal: < 50 ms).

Usage: ``python bench/bench_tui.py [--model DIR] [--tokens 200] [--repeats 3] [--earlier 20]``; without
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
    from magimac.testing.checkpoint import build_checkpoint  # noqa: PLC0415  (test-model builder)

    return build_checkpoint(tmp / "random-model")


class SyntheticEngine:
    """Engine stand-in for repaint/latency runs: emits ``n`` answer tokens at ``rate`` tokens/s
    (0: as fast as the queue takes them) after 20 reasoning tokens. Same interface as Engine."""

    def __init__(self, rate: float, n: int) -> None:
        self.rate, self.n = rate, n
        self._cancel = threading.Event()

    def load_events(self):
        from magimac.core.events import Loaded  # noqa: PLC0415

        yield Loaded("synthetic", "", 131072, False, 0)

    def wait_loaded(self, timeout=None):
        return next(iter(self.load_events()))

    def submit(self, messages, settings=None):
        from magimac.engine.worker import Turn  # noqa: PLC0415
        from magimac.core.events import AnswerDelta, Done, ReasoningDelta, Stats  # noqa: PLC0415

        turn = Turn()
        self._cancel.clear()

        def run() -> None:
            start = time.perf_counter()
            for i in range(self.n + 20):
                if self._cancel.is_set():
                    turn.put(Done("cancelled"))
                    return
                if self.rate:
                    delay = start + i / self.rate - time.perf_counter()
                    if delay > 0:
                        time.sleep(delay)
                if i < 20:
                    turn.put(ReasoningDelta(f"thought{i} "))
                else:  # Markdown-like text: a paragraph every 60 tokens
                    turn.put(AnswerDelta(f"word{i}" + ("\n\n" if i % 60 == 0 else " ")))
            turn.put(Done("stop", stats=Stats(answer_tokens=self.n, reasoning_tokens=20)))

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


def engine_alone(engine, n: int, conv: int | None = None) -> float:
    """Decode tokens/s of one turn on the engine alone: ``PROMPT`` after conversation ``conv``'s
    messages (the same prompt, hence the same KV cache length, as the app's turn)."""
    from magimac.core.conversation import Message  # noqa: PLC0415
    from magimac.core.settings import GenerationSettings  # noqa: PLC0415
    from magimac.text.history import History  # noqa: PLC0415

    earlier = [m.to_message() for m in History().messages(conv)] if conv is not None else []
    done = None
    for ev in engine.submit(earlier + [Message("user", PROMPT)], GenerationSettings(max_tokens=n)):
        done = ev
    return done.stats.decode_tps


LONG_ANSWER = "\n\n".join(
    ["Some words of an earlier answer with `code` and **bold** text, long enough to wrap over a "
     "line or two in the view."] * 31 + ["```python\nprint('hello')\n```"])


def conversation(settings: dict, earlier: int = 0) -> int:
    """A new conversation in history with ``earlier`` exchanges of long answers; its id."""
    from magimac.text.history import History  # noqa: PLC0415

    history = History()
    conv = history.new_conversation("bench", settings)
    for i in range(earlier):
        history.add_message(conv.id, "user", f"Question {i}?")
        history.add_message(conv.id, "assistant", LONG_ANSWER, reasoning="Let me think. " * 200)
    return conv.id


async def app_turn(engine, model: Path, n: int, conv: int | None = None, from_first_update: bool = True) -> dict:
    """One turn in the headless app (in conversation ``conv``, else a new one): decode tokens/s,
    UI updates/s, repaints/s and the UI thread's CPU seconds per second (``ui_cpu``), counted
    from the first streamed update (prefill excluded; else from Enter) to the end of the turn."""
    from magimac.tui.app import MagimacApp  # noqa: PLC0415

    if conv is None:
        conv = conversation({"max_tokens": n})
    app = MagimacApp(str(model), engine_factory=lambda _p: engine)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(lambda: app.loaded is not None)
        await app.open_conversation(conv)
        repaints = count_repaints(app)
        app.composer.text = PROMPT
        t0, cpu0 = time.perf_counter(), time.thread_time()  # the app runs on this (main) thread
        updates0, repaints0 = app.ui_updates, repaints[0]
        await pilot.press("enter")
        if from_first_update:
            await wait_for(lambda: app.ui_updates >= 1)
            t0, cpu0 = time.perf_counter(), time.thread_time()
            updates0, repaints0 = app.ui_updates, repaints[0]
        await wait_for(lambda: app.generating is None and app.messages[-1].role == "assistant")
        dt, cpu = time.perf_counter() - t0, time.thread_time() - cpu0
        stats = app.messages[-1].stats
        history_messages(conv, drop_last=2)  # the next run answers the same prompt again
        return {"decode_tps": stats.get("decode_tps", 0.0), "ui_updates_per_s": (app.ui_updates - updates0) / dt,
                "repaints_per_s": (repaints[0] - repaints0) / dt, "ui_cpu": cpu / dt}


def history_messages(conv: int, drop_last: int = 0) -> None:
    """Delete the last ``drop_last`` messages of conversation ``conv`` from history."""
    from magimac.text.history import History  # noqa: PLC0415

    history = History()
    messages = history.messages(conv)
    if drop_last and len(messages) >= drop_last:
        history.delete_messages_from(conv, messages[-drop_last].id)


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


async def key_latency(engine, model: Path, keys: int = 20, earlier: int = 0) -> dict:
    """Key latency in an idle app (baseline), then while a long answer streams."""
    from magimac.tui.app import MagimacApp  # noqa: PLC0415

    conv = conversation({"max_tokens": 100000}, earlier)
    app = MagimacApp(str(model), engine_factory=lambda _p: engine)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(lambda: app.loaded is not None)
        await app.open_conversation(conv)
        idle = await type_keys(app, keys)
        app.composer.text = PROMPT
        await pilot.press("enter")
        await wait_for(lambda: app.ui_updates >= 3)
        streaming = await type_keys(app, keys)
        streaming["still_streaming"] = app.generating is not None
        app.action_stop()
        await wait_for(lambda: app.generating is None, 60)
    return {"idle": idle, "streaming": streaming}


def print_report(a, model, alone, runs, summary, repaint_rows, latency) -> None:
    """The three tables: decode app vs engine, repaints under synthetic tokens, key latency."""
    print(f"\nDecode tokens/s, {a.tokens} tokens x {a.repeats} runs, model {model.name}")
    print(f"{'':26}{'engine':>8}{'app':>8}{'ratio':>8}{'UI cpu':>8}{'updates/s':>11}{'repaints/s':>12}"
          "   runs (engine / app)")
    for name, rows in runs.items():
        r = summary[name]
        print(f"{name:26}{r['engine_alone_tps']:8.1f}{r['decode_tps']:8.1f}{r['ratio']:8.3f}{r['ui_cpu']:8.3f}"
              f"{r['ui_updates_per_s']:11.1f}{r['repaints_per_s']:12.1f}   "
              + ", ".join(f"{e:.1f}/{x['decode_tps']:.1f}" for e, x in zip(alone[name], rows)))
    print("(goal: ratio >= 0.95; UI cpu = UI thread CPU seconds per second of streaming)")
    print("\nRepaints under a synthetic token source")
    print(f"{'tokens/s':>10}{'UI updates/s':>15}{'repaints/s':>12}{'UI cpu':>8}")
    for r in repaint_rows:
        print(f"{str(r['tokens_per_s']):>10}{r['ui_updates_per_s']:15.1f}{r['repaints_per_s']:12.1f}{r['ui_cpu']:8.3f}")
    print("\nKey typed -> in the composer / repainted (ms; goal < 50 while streaming)")
    print(f"{'source':36}{'composer med':>13}{'max':>8}{'repaint med':>13}{'max':>8}")
    for name, both in latency.items():
        for phase in ("idle", "streaming"):
            r = both[phase]
            print(f"{name + ', ' + phase:36}{r['to_composer_ms_median']:13.1f}{r['to_composer_ms_max']:8.1f}"
                  f"{r['to_repaint_ms_median']:13.1f}{r['to_repaint_ms_max']:8.1f}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, help="converted model directory (default: a tiny random one)")
    p.add_argument("--tokens", type=int, default=200, help="tokens per turn (default 200)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--earlier", type=int, default=20,
                   help="earlier exchanges in the long conversation (default 20)")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "bench_tui.json")
    a = p.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="bench-tui-"))
    setup_dirs(tmp)
    model = a.model or build_model(tmp)
    from magimac.engine.worker import Engine  # noqa: PLC0415

    engine = Engine(model)
    engine.start()
    engine.wait_loaded()
    engine_alone(engine, 16)  # warm-up

    convs = {"new conversation": conversation({"max_tokens": a.tokens}),
             f"{a.earlier} earlier exchanges": conversation({"max_tokens": a.tokens}, a.earlier)}
    alone = {name: [] for name in convs}
    runs = {name: [] for name in convs}
    for _ in range(a.repeats):
        for name, conv in convs.items():
            alone[name].append(engine_alone(engine, a.tokens, conv))
            runs[name].append(asyncio.run(app_turn(engine, model, a.tokens, conv)))
            print(f"run ({name}): engine {alone[name][-1]:.1f} tok/s, app {runs[name][-1]['decode_tps']:.1f} tok/s",
                  file=sys.stderr, flush=True)
    med = statistics.median
    summary = {name: {"engine_alone_tps": med(alone[name]),
                      "decode_tps": med(r["decode_tps"] for r in rows),
                      "ratio": med(r["decode_tps"] for r in rows) / med(alone[name]),
                      "ui_cpu": med(r["ui_cpu"] for r in rows),
                      "ui_updates_per_s": med(r["ui_updates_per_s"] for r in rows),
                      "repaints_per_s": med(r["repaints_per_s"] for r in rows)}
               for name, rows in runs.items()}

    repaint_rows = []
    for rate in (100, 1000, 10000, 0):
        synthetic = SyntheticEngine(rate, n=max(300, int(rate * 2)) if rate else 20000)
        r = asyncio.run(app_turn(synthetic, model, synthetic.n, from_first_update=False))
        repaint_rows.append({"tokens_per_s": rate or "max", "ui_updates_per_s": r["ui_updates_per_s"],
                             "repaints_per_s": r["repaints_per_s"], "ui_cpu": r["ui_cpu"]})
        print(f"synthetic {rate or 'max'} tok/s: {r['ui_updates_per_s']:.1f} updates/s, "
              f"{r['repaints_per_s']:.1f} repaints/s", file=sys.stderr, flush=True)

    latency = {"real engine": asyncio.run(key_latency(engine, model)),
               f"real engine, {a.earlier} earlier": asyncio.run(key_latency(engine, model, earlier=a.earlier)),
               "synthetic 1000 tok/s": asyncio.run(key_latency(SyntheticEngine(1000, 10**6), model))}
    engine.close()

    print_report(a, model, alone, runs, summary, repaint_rows, latency)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps({
        "model": str(model), "tokens": a.tokens, "repeats": a.repeats,
        "decode_tps_engine_alone": alone, "app": summary, "app_runs": runs,
        "synthetic_repaints": repaint_rows, "key_latency": latency,
    }, indent=2) + "\n")
    print(f"\nwrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
