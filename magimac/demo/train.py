"""Train the demo model: a tiny Magistral-format model that reasons in `[THINK]` blocks.

Run from a source checkout: ``python -m magimac.demo.train [--steps N] [--out DIR]``
(default output `magimac/demo/model/`).  Reproducible from ``--seed``.

What it builds: the text decoder is mlx-lm's `llama` model class with Mistral's settings
(`mistral` config: hidden 128, 4 layers, 4 heads of 32, 2 KV heads, MLP 256, untied
embeddings, RMSNorm, SiLU); it is saved in the Hugging Face `mistral3` layout of Magistral
Small 1.2 (`model.language_model.*`, `lm_head.weight`) next to a tiny random Pixtral vision
tower and projector, with a v13 `tekken.json` that keeps the first 3096 BPE ranks of
mistral-common's Tekken table (digits are single tokens), Magistral's `SYSTEM_PROMPT.txt`
and `generation_config.json`.  The checkpoint writing helpers are the test suite's
(`tests/checkpoint.py`), so the demo and the test checkpoints share one layout.

Training data: `problems.sample_problem` on the training side of the held-out split.  Each
sequence is exactly what the engine sends (`magimac.prompt.encode`, i.e. mistral-common's
`encode_chat_completion` of [Magistral's system prompt with its `ThinkChunk`, question];
a quarter of them without a system prompt) followed by
``[THINK]reasoning[/THINK]answer</s>``; the loss covers the assistant part only.  All
sequences of a batch share their prefix (system prompt or bare ``<s>``), so the prefix runs
once per batch and its keys/values are repeated for every row (`_SharedPrefixCache`).

CPU speed note: the Linux `mlx[cpu]` wheel links the reference BLAS; when a system OpenBLAS
is present (`/lib/x86_64-linux-gnu/libopenblas.so.0`), this script re-executes itself with it
preloaded, which makes matrix products several times faster.  The results are the same.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np
from mlx_lm.models import llama
from mlx_lm.models.base import create_causal_mask

from magimac.conversation import Message
from magimac.demo.problems import Problem, check_answer, sample_problem
from magimac.prompt import encode, load_tokenizer
from magimac.reasoning import markers_for

DEFAULT_OUT = Path(__file__).resolve().parent / "model"
REPO_TESTS = Path(__file__).resolve().parents[2] / "tests"
OPENBLAS = "/lib/x86_64-linux-gnu/libopenblas.so.0"

VOCAB = 4096  # 1000 control ids + the first 3096 Tekken BPE ranks
CONTEXT = 1024  # tokens (training sequences are under 300)
TEXT = dict(hidden=128, layers=4, intermediate=256, heads=4, kv_heads=2, head_dim=32)
ROPE_THETA = 10000.0  # Magistral uses 1e9 for 128K positions; 1e4 suits 1K positions
INST = 3
PAD = 11


def _checkpoint_helpers():
    """`tests/checkpoint.py` (write_tekken, tiny_config, tensor_shapes, ...) from the source tree."""
    if not (REPO_TESTS / "checkpoint.py").is_file():
        raise SystemExit("magimac.demo.train: run it from a source checkout (tests/checkpoint.py not found)")
    sys.path.insert(0, str(REPO_TESTS))
    import checkpoint

    return checkpoint


def model_config(ck) -> dict:
    """The demo's `config.json` (mistral3 + mistral text + tiny pixtral vision)."""
    config = ck.tiny_config(vocab=VOCAB, vision=True, **TEXT)
    config["text_config"].update(rope_theta=ROPE_THETA, max_position_embeddings=CONTEXT)
    return config


def text_model(config: dict) -> llama.Model:
    """mlx-lm's llama/mistral decoder for the text config (float32 parameters)."""
    t = config["text_config"]
    args = llama.ModelArgs(
        model_type="mistral", hidden_size=t["hidden_size"], num_hidden_layers=t["num_hidden_layers"],
        intermediate_size=t["intermediate_size"], num_attention_heads=t["num_attention_heads"],
        num_key_value_heads=t["num_key_value_heads"], head_dim=t["head_dim"], rms_norm_eps=t["rms_norm_eps"],
        vocab_size=t["vocab_size"], rope_theta=t["rope_theta"], tie_word_embeddings=False,
    )
    return llama.Model(args)


class _SharedPrefixCache:
    """Per-layer keys/values of one prefix shared by every row of a batch.

    mlx-lm's `KVCache` keeps one sequence per row; here the prefix is computed once
    (batch 1) and `broadcast(batch)` repeats it, so a batch of B sequences sharing a
    150-token system prompt costs one prefix pass.  Gradients flow through the repeat.
    """

    def __init__(self) -> None:
        self.keys = self.values = None
        self.offset = 0

    def update_and_fetch(self, keys: mx.array, values: mx.array):
        if self.keys is not None:
            keys = mx.concatenate([self.keys, keys], axis=2)
            values = mx.concatenate([self.values, values], axis=2)
        self.keys, self.values, self.offset = keys, values, keys.shape[2]
        return keys, values

    def make_mask(self, n: int, return_array: bool = False, window_size=None):
        return create_causal_mask(n, offset=self.offset)

    def broadcast(self, batch: int) -> None:
        self.keys = mx.repeat(self.keys, batch, axis=0)
        self.values = mx.repeat(self.values, batch, axis=0)


def assistant_tokens(tok, p: Problem) -> list[int]:
    """``[THINK] reasoning [/THINK] answer </s>`` as ids (Magistral's turn format)."""
    t = tok.instruct_tokenizer.tokenizer
    think, end_think = t.get_special_token("[THINK]"), t.get_special_token("[/THINK]")
    return [think, *t.encode(p.reasoning, bos=False, eos=False), end_think,
            *t.encode(p.response, bos=False, eos=False), t.eos_id]


def prompt_tokens(tok, markers, question: str, system_prompt: str | None) -> list[int]:
    """The engine's prompt for one user question (`magimac.prompt.encode`)."""
    return encode(tok, [Message("user", question)], markers, system_prompt).tokens


def make_batch(tok, markers, rng: random.Random, batch: int, system_prompt: str | None):
    """One batch sharing a prefix.

    Returns:
        (prefix [P] int32, inputs [B, T] int32, targets [B, T] int32, rows [N] int32 (flat
        indices of the assistant positions, where the loss counts), problems).  The prefix is everything before the first ``[INST]``.
    """
    problems = [sample_problem(rng) for _ in range(batch)]
    seqs, starts, prefix = [], [], None
    for p in problems:
        prompt = prompt_tokens(tok, markers, p.question, system_prompt)
        cut = prompt.index(INST)
        if prefix is None:
            prefix = prompt[:cut]
        assert prompt[:cut] == prefix
        seqs.append(prompt[cut:] + assistant_tokens(tok, p))
        starts.append(len(prompt) - cut)
    width = max(map(len, seqs)) - 1
    inputs = np.full((batch, width), PAD, np.int32)
    targets = np.full((batch, width), PAD, np.int32)
    mask = np.zeros((batch, width), np.float32)
    for i, (s, a) in enumerate(zip(seqs, starts)):
        inputs[i, : len(s) - 1] = s[:-1]
        targets[i, : len(s) - 1] = s[1:]
        mask[i, a - 1 : len(s) - 1] = 1.0  # predict every assistant token, [THINK] .. </s>
    rows = np.flatnonzero(mask.reshape(-1)).astype(np.int32)
    return mx.array(prefix, mx.int32), mx.array(inputs), mx.array(targets), mx.array(rows), problems


def loss_fn(model, prefix, inputs, targets, rows):
    """Mean cross-entropy over assistant tokens (nats/token)."""
    cache = [_SharedPrefixCache() for _ in model.layers]
    model(prefix[None], cache=cache)
    for c in cache:
        c.broadcast(inputs.shape[0])
    hidden = model.model(inputs, cache=cache).reshape(-1, model.args.hidden_size)
    logits = model.lm_head(hidden[rows]).astype(mx.float32)  # assistant positions only
    return nn.losses.cross_entropy(logits, targets.reshape(-1)[rows]).mean()


def greedy_answer(model, tok, markers, question: str, system_prompt: str | None, max_tokens: int = 160) -> str:
    """Greedy decode (no KV cache reuse tricks: mlx-lm's prompt cache) -> generated text."""
    from mlx_lm.generate import generate_step

    prompt = mx.array(prompt_tokens(tok, markers, question, system_prompt))
    out = []
    eos = tok.instruct_tokenizer.tokenizer.eos_id
    for t, _ in generate_step(prompt, model, max_tokens=max_tokens):
        t = int(t)
        if t == eos:
            break
        out.append(t)
    return tok.instruct_tokenizer.tokenizer.decode(out, special_token_policy=_keep())


def _keep():
    from mistral_common.tokens.tokenizers.base import SpecialTokenPolicy

    return SpecialTokenPolicy.KEEP


def save(model, config: dict, ck, out: Path, seed: int) -> None:
    """Write the HF `mistral3` checkpoint to ``out`` (through a temp dir, then rename)."""
    out = Path(out)
    tmp = Path(tempfile.mkdtemp(prefix=".demo-", dir=out.parent))
    try:
        ck.write_tekken(tmp, vocab_size=VOCAB, image=True, max_image_size=config["vision_config"]["image_size"])
        shapes = ck.tensor_shapes(config)
        rng = np.random.default_rng(seed)
        arrays = {}
        for name, shape in shapes.items():  # vision tower and projector: tiny, random
            if not name.startswith("model.vision_tower") and not name.startswith("model.multi_modal"):
                continue
            norm = name.endswith("norm.weight")
            arrays[name] = np.ones(shape, np.float32) if norm else rng.normal(0, 0.02, shape).astype(np.float32)
        for name, w in nn.utils.tree_flatten(model.parameters()):
            hf = name.replace("model.", "model.language_model.", 1) if name.startswith("model.") else name
            assert hf in shapes and tuple(w.shape) == shapes[hf], (hf, w.shape)
            arrays[hf] = np.array(w.astype(mx.float32))
        assert set(arrays) == set(shapes), set(shapes) ^ set(arrays)
        ck._write_shards(tmp, arrays, 1)
        (tmp / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        (tmp / "generation_config.json").write_text(json.dumps(
            {"bos_token_id": 1, "eos_token_id": 2, "pad_token_id": PAD, "temperature": 0.7, "top_p": 0.95,
             "max_length": CONTEXT}, indent=2) + "\n")
        (tmp / "SYSTEM_PROMPT.txt").write_text(ck.SYSTEM_PROMPT, encoding="utf-8")
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _maybe_fast_blas(argv: list[str] | None) -> None:
    if sys.platform == "linux" and os.path.exists(OPENBLAS) and OPENBLAS not in os.environ.get("LD_PRELOAD", ""):
        env = dict(os.environ, LD_PRELOAD=OPENBLAS)
        args = sys.argv[1:] if argv is None else argv
        os.execve(sys.executable, [sys.executable, "-m", "magimac.demo.train", *args], env)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m magimac.demo.train", description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output checkpoint directory")
    p.add_argument("--steps", type=int, default=360)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-system-share", type=float, default=0.25,
                   help="share of batches encoded without a system prompt")
    p.add_argument("--eval", type=int, default=40, help="held-out problems checked at the end (greedy)")
    a = p.parse_args(argv)
    _maybe_fast_blas(argv)

    ck = _checkpoint_helpers()
    mx.random.seed(a.seed)
    rng = random.Random(a.seed)
    config = model_config(ck)
    work = Path(tempfile.mkdtemp(prefix="magimac-demo-tok-"))
    ck.write_tekken(work, vocab_size=VOCAB, image=True, max_image_size=config["vision_config"]["image_size"])
    tok = load_tokenizer(work)
    markers = markers_for(tok.instruct_tokenizer.tokenizer)

    model = text_model(config)
    mx.eval(model.parameters())
    n_params = sum(v.size for _, v in nn.utils.tree_flatten(model.parameters()))
    warmup = min(100, a.steps // 10)
    schedule = optim.join_schedules(
        [optim.linear_schedule(1e-5, a.lr, warmup), optim.cosine_decay(a.lr, a.steps - warmup, a.lr * 0.03)],
        [warmup])
    opt = optim.AdamW(learning_rate=schedule, weight_decay=0.01)
    value_grad = nn.value_and_grad(model, loss_fn)
    print(f"demo: {n_params / 1e6:.2f} M text parameters, {a.steps} steps x {a.batch} sequences", flush=True)

    t0, seen, tokens, avg = time.time(), 0, 0, None
    for step in range(1, a.steps + 1):
        sp = None if rng.random() < a.no_system_share else ck.SYSTEM_PROMPT
        prefix, inputs, targets, rows, _ = make_batch(tok, markers, rng, a.batch, sp)
        loss, grads = value_grad(model, prefix, inputs, targets, rows)
        grads, _ = optim.clip_grad_norm(grads, 1.0)
        opt.update(model, grads)
        mx.eval(loss, model.parameters(), opt.state)
        seen += a.batch
        tokens += prefix.size + inputs.size
        avg = loss.item() if avg is None else 0.95 * avg + 0.05 * loss.item()
        if step % 25 == 0 or step == a.steps:
            print(f"step {step:5d}  loss {avg:.4f}  lr {opt.learning_rate.item():.2e}  "
                  f"{time.time() - t0:6.0f} s  {seen} sequences", flush=True)
    train_s = time.time() - t0

    save(model, config, ck, a.out, a.seed)
    shutil.rmtree(work, ignore_errors=True)
    print(f"demo: trained in {train_s:.0f} s on {seen} sequences ({tokens} tokens); wrote {a.out}", flush=True)

    if a.eval:
        erng, ok = random.Random(a.seed + 1), 0
        for i in range(a.eval):
            prob = sample_problem(erng, held_out=True)
            text = greedy_answer(model, tok, markers, prob.question, ck.SYSTEM_PROMPT if i % 4 else None)
            answer = text.split("[/THINK]", 1)[-1]
            good = text.startswith("[THINK]") and "[/THINK]" in text and check_answer(answer, prob.answer)
            ok += good
            if i < 4 or not good:
                print(f"{'ok ' if good else 'BAD'} {prob.question!r} -> {text!r}", flush=True)
        print(f"demo: held-out accuracy (greedy, bf16 training weights in float32) {ok}/{a.eval}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
