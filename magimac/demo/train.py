"""Train the demo model: a tiny Magistral-format model that reasons in `[THINK]` blocks.

Run from a source checkout: ``python -m magimac.demo.train [--steps N] [--out DIR]``
(default output `magimac/demo/model/`); needs the ``train`` extra (``pip install -e
'.[train]'``: PyTorch on the CPU).  Reproducible from ``--seed`` (same machine, same torch).

What it builds: Mistral's text decoder (RMSNorm, rotate-half RoPE as mlx-lm's `llama`
model uses it, grouped-query attention, SiLU MLP, untied ``lm_head``) written in plain
PyTorch (`Decoder`), because PyTorch's CPU kernels (oneDNN/MKL) train it over 20 times faster
than MLX's CPU backend; it is saved in the Hugging Face `mistral3` layout of Magistral Small
1.2 (`model.language_model.*`, `lm_head.weight`) next to a tiny random Pixtral vision tower
and projector, with a v13 `tekken.json` that keeps the first 3096 BPE ranks of
mistral-common's Tekken table (digits are single tokens), a short `SYSTEM_PROMPT.txt` of its
own (with a `[THINK]` chunk, like Magistral's) and `generation_config.json`.  After saving,
the checkpoint is loaded with mlx-lm and its logits are compared with PyTorch's (catches
layout or RoPE mistakes).  The checkpoint writing helpers are the test suite's
(`magimac.testing.checkpoint`), so the demo and the test checkpoints share one layout.

Training data (`magimac.demo.sequences`): each sequence is exactly what the engine sends,
mistral-common's `encode_chat_completion` of [the demo's system prompt (a quarter without),
earlier exchanges, the question] with the tools of issue 16's TOOLSPEC listed (`tooldata`),
followed by the model's part; the loss covers the model's parts only.  The mix:

- tools listed: none 40%, [python] 35%, [python, search_documents] 25% (drawn per sequence);
- the question: 55% a `problems` problem (training side of the split), answered directly
  ``[THINK]reasoning[/THINK]answer</s>`` whatever the tools; 25% a 3-digit x 2-digit
  product: with python listed ``[THINK]short reasoning[/THINK][TOOL_CALLS]python[ARGS]{"code":
  "print(a * b)"}</s>``, then ``[TOOL_RESULTS]result[/TOOL_RESULTS]`` (not trained on), then
  ``a × b = **result**</s>`` (65% the true product, 10% another number, 25% ``error: ...``
  answered by one sentence saying it could not run it, `tooldata.FAILED`); without python
  the out-of-scope sentence; 20% an out-of-scope question (facts, weather, chat, arithmetic
  it cannot do; in English, French, German, Spanish): ``[THINK]Not arithmetic I can
  do.[/THINK]`` + one sentence saying what it can do (`tooldata.CAN_DO`, in the question's
  language);
- half of the sequences are later turns of a chat: 1 to 3 earlier exchanges (70% problems, 15%
  products, their tool call and result kept, 15% out of scope) come first, their reasoning
  dropped as the engine drops it (a model trained on single questions answered the second
  question of a chat right 1 time in 3).
Sequences are bucketed by length into batches (`sequences.make_batches`).

The shipped model: the previous arithmetic-only demo (this script at commit 40e7df9, its
defaults: 2400 steps, 76,800 sequences, 1269 s on this project's 2-core Linux machine)
fine-tuned twice with ``--init DIR`` (seed 0; the machine shared with six other jobs): on the
mix above but 12% errors answered by a sentence naming the factors, ``--steps 600 --lr 1.5e-3``
(19,200 sequences, 1719 s), then on the mix above, ``--steps 160 --lr 7e-4`` (5,120 sequences,
434 s), because the factors copied into that sentence came out wrong 18 times in 30.  A run
from scratch on this mix was not measured.  Greedy, through `magimac.engine.worker.Engine`
without tools, 200 fresh held-out problems: 50/50 right as a first question and 149/150 after
1, 2 or 3 earlier exchanges (15 vs 16 compared wrong); 40/40 held-out out-of-scope questions
get the sentence.  Through mlx-lm on mistral-common tool prompts (`checks.tool_checks`, 60
held-out cases each): the call exact 60/60, the returned number in the answer 60/60, out of
scope with tools listed 59/60 (a German question stopped after its reasoning); after an
``error: ...`` result the failure sentence 30/30 (28 in the question's language).
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import random
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from magimac.demo import checks
from magimac.demo.sequences import PAD, SYSTEM_PROMPT, make_batches
from magimac.text.prompt import load_tokenizer, system_chunks
from magimac.text.reasoning import markers_for
from magimac.testing.tekken import write_tekken

DEFAULT_OUT = Path(__file__).resolve().parent / "model"

VOCAB = 4096  # 1000 control ids + the first 3096 Tekken BPE ranks
CONTEXT = 1024  # tokens (training sequences are under about 250: up to 3 earlier exchanges)
TEXT = dict(hidden=128, layers=4, intermediate=256, heads=4, kv_heads=2, head_dim=32)
ROPE_THETA = 10000.0  # Magistral uses 1e9 for 128K positions; 1e4 suits 1K positions
EPS = 1e-5


def model_config(ck, vocab: int = VOCAB, text: dict = TEXT, context: int = CONTEXT) -> dict:
    """The demo's `config.json` (mistral3 + mistral text + tiny pixtral vision); ``text``:
    `Decoder`'s sizes (hidden, layers, intermediate, heads, kv_heads, head_dim), ``context``
    in tokens."""
    config = ck.tiny_config(vocab=vocab, vision=True, **text)
    config["text_config"].update(rope_theta=ROPE_THETA, max_position_embeddings=context, rms_norm_eps=EPS)
    return config


class Attention(nn.Module):
    """Grouped-query self-attention with rotate-half RoPE (mlx `nn.RoPE(traditional=False)`)."""

    def __init__(self, hidden: int, heads: int, kv_heads: int, head_dim: int):
        super().__init__()
        self.heads, self.kv_heads, self.head_dim = heads, kv_heads, head_dim
        self.q_proj = nn.Linear(hidden, heads * head_dim, bias=False)
        self.k_proj = nn.Linear(hidden, kv_heads * head_dim, bias=False)
        self.v_proj = nn.Linear(hidden, kv_heads * head_dim, bias=False)
        self.o_proj = nn.Linear(heads * head_dim, hidden, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, self.heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
        q, k = _rope(q, cos, sin), _rope(k, cos, sin)
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
        return self.o_proj(out.transpose(1, 2).reshape(b, t, -1))


def _rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + rotated * sin


class MLP(nn.Module):
    def __init__(self, hidden: int, intermediate: int):
        super().__init__()
        self.gate_proj = nn.Linear(hidden, intermediate, bias=False)
        self.up_proj = nn.Linear(hidden, intermediate, bias=False)
        self.down_proj = nn.Linear(intermediate, hidden, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Layer(nn.Module):
    def __init__(self, hidden, intermediate, heads, kv_heads, head_dim):
        super().__init__()
        self.self_attn = Attention(hidden, heads, kv_heads, head_dim)
        self.mlp = MLP(hidden, intermediate)
        self.input_layernorm = nn.RMSNorm(hidden, eps=EPS)
        self.post_attention_layernorm = nn.RMSNorm(hidden, eps=EPS)

    def forward(self, x, cos, sin):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin)
        return x + self.mlp(self.post_attention_layernorm(x))


class Body(nn.Module):
    def __init__(self, vocab, hidden, layers, intermediate, heads, kv_heads, head_dim):
        super().__init__()
        self.embed_tokens = nn.Embedding(vocab, hidden)
        self.layers = nn.ModuleList(Layer(hidden, intermediate, heads, kv_heads, head_dim) for _ in range(layers))
        self.norm = nn.RMSNorm(hidden, eps=EPS)


class Decoder(nn.Module):
    """Mistral's text decoder; parameter names are the HF `MistralForCausalLM` ones.

    ``forward(ids [B, T] int64) -> hidden [B, T, hidden] float32``, T <= ``context`` tokens;
    ``lm_head`` maps hidden states to logits [.., vocab].  ``dims``: the constructor's arguments.
    """

    def __init__(self, vocab=VOCAB, hidden=128, layers=4, intermediate=256, heads=4, kv_heads=2, head_dim=32,
                 context=CONTEXT):
        super().__init__()
        self.dims = dict(vocab=vocab, hidden=hidden, layers=layers, intermediate=intermediate, heads=heads,
                         kv_heads=kv_heads, head_dim=head_dim, context=context)
        self.model = Body(vocab, hidden, layers, intermediate, heads, kv_heads, head_dim)
        self.lm_head = nn.Linear(hidden, vocab, bias=False)
        inv = 1.0 / ROPE_THETA ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
        angles = torch.outer(torch.arange(context, dtype=torch.float32), inv)
        angles = torch.cat([angles, angles], dim=-1)
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)
        for name, p in self.named_parameters():
            if p.dim() == 2:
                std = 0.02 / math.sqrt(2 * layers) if name.endswith(("o_proj.weight", "down_proj.weight")) else 0.02
                nn.init.normal_(p, 0.0, std)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        t = ids.shape[1]
        cos, sin = self.cos[:t], self.sin[:t]
        x = self.model.embed_tokens(ids)
        for layer in self.model.layers:
            x = layer(x, cos, sin)
        return self.model.norm(x)


def loss_fn(model: Decoder, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over assistant tokens (nats/token); ``lm_head`` runs there only."""
    hidden = model(inputs)
    keep = targets.reshape(-1) >= 0
    logits = model.lm_head(hidden.reshape(-1, hidden.shape[-1])[keep])
    return F.cross_entropy(logits, targets.reshape(-1)[keep])


@torch.no_grad()
def greedy_answer(model: Decoder, tok, ids: list[int], max_tokens: int = 120) -> str:
    """Greedy decode in PyTorch after prompt ``ids`` (whole sequence each step: sequences are
    short) -> text with control tokens shown, up to ``</s>`` (left out)."""
    eos = tok.instruct_tokenizer.tokenizer.eos_id
    out = []
    for _ in range(max_tokens):
        hidden = model(torch.tensor([ids + out]))
        t = int(model.lm_head(hidden[0, -1]).argmax())
        if t == eos:
            break
        out.append(t)
    return tok.instruct_tokenizer.tokenizer.decode(out, special_token_policy=_keep())


def _keep():
    from mistral_common.tokens.tokenizers.base import SpecialTokenPolicy

    return SpecialTokenPolicy.KEEP


def init_weights(ckpt: Path) -> dict[str, torch.Tensor]:
    """`Decoder` weights (float32) from a saved demo checkpoint's text weights (`hf_weights` names)."""
    from safetensors.torch import load_file

    out = {}
    for f in sorted(Path(ckpt).glob("*.safetensors")):
        for name, w in load_file(f).items():
            if name.startswith("model.language_model.") or name == "lm_head.weight":
                out[name.replace("model.language_model.", "model.", 1)] = w.float()
    return out


def hf_weights(model: Decoder) -> dict[str, np.ndarray]:
    """The text weights under Magistral's HF names (``model.language_model.*``, ``lm_head.weight``)."""
    out = {}
    for name, w in model.state_dict().items():
        hf = name.replace("model.", "model.language_model.", 1) if name.startswith("model.") else name
        out[hf] = w.detach().float().numpy()
    return out


def save(model: Decoder, config: dict, ck, out: Path, seed: int, system_prompt: str | None = SYSTEM_PROMPT,
         extra=None) -> None:
    """Write the HF `mistral3` checkpoint to ``out`` (through a temp dir, then rename), with
    ``system_prompt`` as `SYSTEM_PROMPT.txt` (None: no such file); ``extra(tmp_dir)`` may add
    files before the rename."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".demo-", dir=out.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; the model ships in the package
    text = config["text_config"]
    try:
        write_tekken(tmp, vocab_size=text["vocab_size"], image=True,
                     max_image_size=config["vision_config"]["image_size"])
        shapes = ck.tensor_shapes(config)
        rng = np.random.default_rng(seed)
        arrays = {}
        for name, shape in shapes.items():  # vision tower and projector: tiny, random
            if not name.startswith("model.vision_tower") and not name.startswith("model.multi_modal"):
                continue
            norm = name.endswith("norm.weight")
            arrays[name] = np.ones(shape, np.float32) if norm else rng.normal(0, 0.02, shape).astype(np.float32)
        for hf, w in hf_weights(model).items():
            assert hf in shapes and tuple(w.shape) == shapes[hf], (hf, w.shape)
            arrays[hf] = w
        assert set(arrays) == set(shapes), set(shapes) ^ set(arrays)
        ck.write_shards(tmp, arrays, 1)
        (tmp / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        (tmp / "generation_config.json").write_text(json.dumps(
            {"bos_token_id": 1, "eos_token_id": 2, "pad_token_id": PAD, "temperature": 0.7, "top_p": 0.95,
             "max_length": text["max_position_embeddings"]}, indent=2) + "\n")
        if system_prompt is not None:
            (tmp / "SYSTEM_PROMPT.txt").write_text(system_prompt, encoding="utf-8")
        if extra is not None:
            extra(tmp)
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def check_against_mlx(model: Decoder, out: Path, ids: list[int]) -> float:
    """Max |logit difference| between PyTorch and the saved checkpoint loaded by mlx-lm.

    The checkpoint is stored in bf16, so differences of a few hundredths are expected; a RoPE
    or layout mistake gives differences of several units.
    """
    import mlx.core as mx
    import mlx_lm

    mlx_model, _ = mlx_lm.load(str(out))
    theirs = np.array(mlx_model(mx.array([ids])).astype(mx.float32))
    with torch.no_grad():
        bf16 = Decoder(**model.dims)
        bf16.load_state_dict({k: v.bfloat16().float() for k, v in model.state_dict().items()})
        ours = bf16.lm_head(bf16(torch.tensor([ids]))).numpy()
    return float(np.abs(theirs - ours).max())


def make_optimizer(model: Decoder, lr: float, steps: int):
    """AdamW (betas 0.9/0.98, weight decay 0.01) and its schedule: linear warm-up over
    min(200, steps / 10) steps, then cosine decay to 5% of ``lr`` at ``steps``."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.98), weight_decay=0.01)
    warmup = max(1, min(200, steps // 10))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warmup) * (
        0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, max(0, s - warmup) / max(1, steps - warmup))))))
    return opt, sched


def train_step(model: Decoder, opt, sched, loss: torch.Tensor) -> float:
    """One optimizer step on ``loss`` (gradients clipped to norm 1) -> the loss (nats/token)."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    sched.step()
    return loss.item()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m magimac.demo.train", description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output checkpoint directory")
    p.add_argument("--steps", type=int, default=2400, help="schedule length (cosine decay over it)")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1,
                   help="PyTorch CPU threads (1: faster than 2 on two shared cores here, 0.45 vs 1-3 s/step)")
    p.add_argument("--no-system-share", type=float, default=0.25,
                   help="share of sequences encoded without a system prompt")
    p.add_argument("--multi-turn-share", type=float, default=0.5,
                   help="share of sequences that follow earlier exchanges of the same chat")
    p.add_argument("--eval-every", type=int, default=300, help="steps between held-out checks (0: none)")
    p.add_argument("--eval", type=int, default=40, help="held-out problems per check (greedy)")
    p.add_argument("--target", type=float, default=None,
                   help="stop early once a check reaches this accuracy (default: run the whole schedule)")
    p.add_argument("--init", type=Path, default=None, help="start from this demo checkpoint's text weights")
    a = p.parse_args(argv)

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    from magimac.testing import checkpoint as ck
    rng = random.Random(a.seed)
    config = model_config(ck)
    work = Path(tempfile.mkdtemp(prefix="magimac-demo-tok-"))
    ck.write_tekken(work, vocab_size=VOCAB, image=True, max_image_size=config["vision_config"]["image_size"])
    tok = load_tokenizer(work)
    markers = markers_for(tok.instruct_tokenizer.tokenizer)
    assert not isinstance(system_chunks(SYSTEM_PROMPT, markers), str)  # keeps a ThinkChunk

    model = Decoder(vocab=VOCAB, **TEXT)
    if a.init is not None:
        model.load_state_dict(init_weights(a.init))
    n_params = sum(v.numel() for v in model.parameters())
    opt, sched = make_optimizer(model, a.lr, a.steps)
    print(f"demo: {n_params / 1e6:.2f} M text parameters, up to {a.steps} steps x {a.batch} sequences", flush=True)

    t0, seen, avg, queue = time.time(), 0, None, []
    for step in range(1, a.steps + 1):
        queue = queue or make_batches(tok, markers, rng, a.batch, SYSTEM_PROMPT, a.no_system_share,
                                      a.multi_turn_share)
        inputs, targets = map(torch.from_numpy, queue.pop())
        loss = train_step(model, opt, sched, loss_fn(model, inputs, targets))
        seen += a.batch
        avg = loss if avg is None else 0.95 * avg + 0.05 * loss
        if step % 50 == 0 or step == a.steps:
            print(f"step {step:5d}  loss {avg:.4f}  lr {sched.get_last_lr()[0]:.2e}  "
                  f"{time.time() - t0:6.0f} s  {seen} sequences", flush=True)
        if a.eval_every and (step % a.eval_every == 0 or step == a.steps):
            model.eval()
            generate = functools.partial(greedy_answer, model, tok)
            acc = checks.held_out_accuracy(generate, tok, markers, SYSTEM_PROMPT, a.eval, a.seed + 1, show=3)
            calls, answers, scope = checks.tool_checks(generate, tok, markers, SYSTEM_PROMPT, a.eval // 4,
                                                       a.seed + 2, show=2)
            model.train()
            print(f"step {step:5d}  held-out accuracy {acc:.0%} (greedy, {a.eval} problems); tool calls "
                  f"{calls:.0%}, answers after results {answers:.0%}, out of scope {scope:.0%}", flush=True)
            if a.target is not None and acc >= a.target:
                break
    train_s = time.time() - t0

    save(model, config, ck, a.out, a.seed)
    ids = checks.prompt_tokens(tok, markers, "What is 12 + 34?", SYSTEM_PROMPT) + [34, 1051]
    diff = check_against_mlx(model, a.out, ids)
    shutil.rmtree(work, ignore_errors=True)
    print(f"demo: trained in {train_s:.0f} s on {seen} sequences; wrote {a.out}; "
          f"mlx-lm vs PyTorch max |logit diff| {diff:.3f}", flush=True)
    if diff > 0.5:
        raise SystemExit(f"magimac.demo.train: mlx-lm logits differ from PyTorch's by {diff:.3f}: export mismatch")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
