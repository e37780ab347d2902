"""Train a small prose model in Magistral's format, for the quantization benchmark.

Usage (needs the ``train`` extra, PyTorch on the CPU)::

    python bench/train_prose_model.py [--out bench/out/prose-model] [--steps 450] [--batch 8]
        [--seq 512] [--lr 2e-3] [--seed 0] [--threads 1] [--eval-chars 60000]

A second trained model for ``bench/bench_quant_methods.py`` beside the arithmetic demo: a real
(if small) language model of English prose and code.  It is trained from scratch with the
demo's PyTorch `Decoder` (`magimac.demo.train`: RMSNorm, rotate-half RoPE, grouped-query
attention, SiLU MLP, untied ``lm_head``) at ``TEXT``'s sizes and written by the demo's `save`
in the same Hugging Face `mistral3` layout (tiny random Pixtral tower and projector, v13
`tekken.json` keeping the first ``VOCAB - 1000`` = 7192 Tekken BPE ranks, a bigger subset than
the demo's 3096 because prose needs whole words); no `SYSTEM_PROMPT.txt` (it is no chat
model).  After saving, mlx-lm's logits are compared with PyTorch's, as for the demo.

Corpus: the docstrings and comments of CPython's standard library of the Python that runs
this script (``sysconfig.get_paths()["stdlib"]``; PSF-2.0 licence, its ``LICENSE.txt``), one
document per module: the module's docstrings (`ast.get_docstring` of the module, classes
and functions) and comment blocks (consecutive ``#`` lines joined) in source order.  Left out:
``site-packages`` and every path with a part containing ``test`` (test suites are code, not
prose).  Split rule, by module: a module whose relative path (e.g. ``json/decoder.py``) has a
SHA-256 whose integer value is 0 mod 10 is held out (about a tenth), the rest is training text.
Training draws random windows of ``--seq`` tokens from the training modules' token stream
(each module starts with ``<s>``); loss on every token.  Held-out modules are written, in
path order, up to ``--eval-chars`` characters, as ``OUT/eval/stdlib-<module>.txt`` (the
plain-text form of `magimac.engine.evaluate.load_eval_texts`, so the benchmark scores the
model on them: ``bench_quant_methods.py --models OUT`` uses ``OUT/eval`` when present), with
``OUT/eval/SOURCES.md`` naming the source and the licence.  Neither part is the quantization
calibration set (``quantize/calibration/magistral-chats.txt``: chats about other things).

Measured, the defaults (``--steps 450``: 450 x 8 x 512 = 1,843,200 tokens, about 1.5 passes
over the training text), seed 0, on Python 3.11.7's stdlib: 631 training modules (1,226,529
tokens), 73 held out (148,557 tokens; the first 60,000 characters of them, 9 modules, go to
``OUT/eval``); 7.21 M text parameters; 1148 s on this project's 2-core Linux machine shared with
a long benchmark and other jobs (one PyTorch thread, about 2.5 s/step); final training loss 3.14
nats/token (smoothed), held-out loss 2.62 (8 windows of 512 tokens; 5.07 at step 50, 3.15 at
200, 2.77 at 300); mlx-lm vs PyTorch max |logit diff| 0.052.  Greedy after "Return a new list
containing": " the\ntoken class for the same as a list of the same as a list of ...": a small
model, but one whose weights carry the statistics of English text and code, not of arithmetic.
Caveat: ``encodings/`` (the codecs' character-map tables, comments such as ``LATIN CAPITAL
LETTER A WITH ACUTE``) is 19.5% of the training characters and 31% of the held-out ones, which
is why the held-out loss above is low; ``OUT/eval`` (``_markupbase`` .. ``codecs``) holds none
of it, and there the bf16 model's perplexity is about 90 (``bench_quant_methods.py``).

Its KL table (``bench_quant_methods.py --models bench/out/prose-model --levels 3|4 --layers``,
default calibration ``magistral-chats.txt`` of 2026-12-01: 24 x 512 tokens; method KL / RTN KL,
own held-out prose / bundled set): 3-bit GPTQ 0.56 / 0.70, AWQ 1.00 / 0.99; 4-bit GPTQ 0.53 /
0.66, AWQ 0.98 / 0.98 (AWQ kept RTN in layers 0 and 1, where its scales raised the layer's error,
and leaves ``lm_head``, 29% of this model's weights, to RTN).
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from prose_corpus import corpus, stdlib_root, token_stream, write_eval  # noqa: E402  (bench/, beside this file)
from magimac.demo import train  # noqa: E402  (after the path: run from a source checkout)
from magimac.testing import checkpoint as ck  # noqa: E402
from magimac.text.prompt import load_tokenizer  # noqa: E402

DEFAULT_OUT = ROOT / "bench" / "out" / "prose-model"
VOCAB = 8192  # 1000 control ids + the first 7192 Tekken BPE ranks
TEXT = dict(hidden=256, layers=4, intermediate=768, heads=8, kv_heads=2, head_dim=32)
CONTEXT = 1024  # tokens (RoPE table, config); training windows are --seq tokens


def windows(stream: np.ndarray, starts: list[int], seq: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and next-token targets, int64 ``[len(starts), seq]`` each."""
    x = np.stack([stream[s:s + seq + 1] for s in starts])
    return torch.from_numpy(x[:, :-1].copy()), torch.from_numpy(x[:, 1:].copy())


@torch.no_grad()
def held_out_loss(model, stream: np.ndarray, seq: int, n: int = 8) -> float:
    """Mean next-token loss (nats/token) on ``n`` evenly spaced held-out windows."""
    model.eval()
    step = max(1, (len(stream) - seq - 1) // n)
    loss = float(train.loss_fn(model, *windows(stream, [i * step for i in range(n)], seq)))
    model.train()
    return loss


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output checkpoint directory")
    p.add_argument("--steps", type=int, default=450, help="schedule length (cosine decay over it)")
    p.add_argument("--batch", type=int, default=8, help="windows per step")
    p.add_argument("--seq", type=int, default=512, help="tokens per window")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="PyTorch CPU threads")
    p.add_argument("--eval-every", type=int, default=50, help="steps between held-out losses")
    p.add_argument("--eval-chars", type=int, default=60000, help="characters of held-out text written to OUT/eval")
    a = p.parse_args(argv)

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    rng = random.Random(a.seed)
    root = stdlib_root()
    train_docs, held = corpus(root)
    config = train.model_config(ck, vocab=VOCAB, text=TEXT, context=CONTEXT)
    work = Path(tempfile.mkdtemp(prefix="magimac-prose-tok-"))
    ck.write_tekken(work, vocab_size=VOCAB, image=True, max_image_size=config["vision_config"]["image_size"])
    tok = load_tokenizer(work)
    raw = tok.instruct_tokenizer.tokenizer
    stream, held_stream = token_stream(raw, train_docs), token_stream(raw, held)
    print(f"prose: {root}: {len(train_docs)} training modules ({len(stream)} tokens), {len(held)} held out "
          f"({len(held_stream)} tokens)", flush=True)

    model = train.Decoder(vocab=VOCAB, context=CONTEXT, **TEXT)
    opt, sched = train.make_optimizer(model, a.lr, a.steps)
    n_params = sum(v.numel() for v in model.parameters())
    print(f"prose: {n_params / 1e6:.2f} M text parameters, {a.steps} steps x {a.batch} x {a.seq} tokens", flush=True)
    t0, avg, seen = time.time(), None, 0
    for step in range(1, a.steps + 1):
        starts = [rng.randrange(len(stream) - a.seq - 1) for _ in range(a.batch)]
        loss = train.train_step(model, opt, sched, train.loss_fn(model, *windows(stream, starts, a.seq)))
        seen += a.batch * a.seq
        avg = loss if avg is None else 0.95 * avg + 0.05 * loss
        if step % 10 == 0 or step == a.steps:
            print(f"step {step:5d}  loss {avg:.4f}  lr {sched.get_last_lr()[0]:.2e}  {time.time() - t0:6.0f} s  "
                  f"{seen} tokens", flush=True)
        if a.eval_every and (step % a.eval_every == 0 or step == a.steps):
            print(f"step {step:5d}  held-out loss {held_out_loss(model, held_stream, a.seq):.4f}", flush=True)
    train_s = time.time() - t0

    prompt = raw.encode("Return a new list containing", bos=True, eos=False)
    sample = train.greedy_answer(model, tok, prompt, max_tokens=30)
    train.save(model, config, ck, a.out, a.seed, system_prompt=None,
               extra=lambda d: write_eval(held, d / "eval", a.eval_chars, root))
    diff = train.check_against_mlx(model, a.out, [int(i) for i in held_stream[:64]])
    shutil.rmtree(work, ignore_errors=True)
    print(f"prose: trained in {train_s:.0f} s on {seen} tokens; final loss {avg:.4f} (train, smoothed), "
          f"{held_out_loss(model, held_stream, a.seq):.4f} (held out); wrote {a.out}; "
          f"mlx-lm vs PyTorch max |logit diff| {diff:.3f}", flush=True)
    print(f"prose: greedy after 'Return a new list containing': {sample!r}", flush=True)
    if diff > 0.5:
        raise SystemExit(f"train_prose_model: mlx-lm logits differ from PyTorch's by {diff:.3f}: export mismatch")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
