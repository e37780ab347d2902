"""Build small Magistral-format Hugging Face checkpoints for tests (and as a script).

A checkpoint written here has the layout of `mistralai/Magistral-Small-2509` at tiny sizes:

- `config.json`: `mistral3` / `Mistral3ForConditionalGeneration`, a `mistral` text config and
  a `pixtral` vision config (tiny widths, the real vocabulary of 131072 ids by default);
- `model-0000N-of-0000M.safetensors` shards in bf16 with `model.safetensors.index.json`, using
  the tensor names of the transformers >= 4.52 layout (`model.language_model.*`,
  `model.vision_tower.*`, `model.multi_modal_projector.*`, `lm_head.weight`);
- `generation_config.json`, `SYSTEM_PROMPT.txt` (the wording of the model card) and a v13
  `tekken.json` built from `mistral-common`'s shipped Tekken table with Magistral's control
  tokens (`[THINK]` = 34, `[/THINK]` = 35, see `shared/MAGISTRAL.md`);
- optionally a decoy `consolidated.safetensors`, as the hub repo has one.

Scripted checkpoints: `build_checkpoint(..., script=Script(reasoning, answer))` makes a model
that, after a prompt ending in `[/INST]`, emits exactly ``[THINK] reasoning [/THINK] answer </s>``
at any temperature up to ~1.  Attention and MLP output projections are zero, so the residual
stream is the token embedding; embeddings are one-hot per script token and `lm_head` maps each
token's slot to its successor, so the model is a deterministic bigram chain.  A token may
appear more than once in the script only if it is always followed by the same token.

Tool calls: ``Script(..., tool_calls=(("python", '{"code": "print(2)"}'),), after_tools=T)``
emits ``[THINK] reasoning [/THINK] [TOOL_CALLS]python[ARGS]{...} </s>`` after ``[/INST]``
(the arguments text as given, so malformed JSON can be scripted), and after
``[/TOOL_RESULTS]`` the text ``after_tools`` then ``</s>``; ``repeat_calls=True`` makes it
call the same tools again after every result instead (a model that never stops calling).

Run as a script: ``python -m magimac.testing.checkpoint OUT_DIR [--script-reasoning T --script-answer T]``.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass
from pathlib import Path

import mlx.core as mx
import numpy as np

from magimac.testing.tekken import (ARGS, BOS, END_INST, END_THINK, END_TOOL_RESULTS, EOS, THINK, TOOL_CALLS,
                                    write_tekken)

# The wording of SYSTEM_PROMPT.txt in mistralai/Magistral-Small-2509 (model card).
SYSTEM_PROMPT = (
    "First draft your thinking process (inner monologue) until you arrive at a response. Format "
    "your response using Markdown, and use LaTeX for any mathematical equations. Write both your "
    "thoughts and the response in the same language as the input.\n\nYour thinking process must "
    "follow the template below:[THINK]Your thoughts or/and draft, like working through an exercise "
    "on scratch paper. Be as casual and as long as you want until you are confident to generate "
    "the response to the user.[/THINK]Here, provide a self-contained response."
)

DEFAULT_SCRIPT_REASONING = "The user greets me; reply warmly in French and Chinese, with a café."
DEFAULT_SCRIPT_ANSWER = "Hello! 🦊 Ça va? 你好"


@dataclass(frozen=True)
class Script:
    """What a scripted checkpoint emits after ``[/INST]``: reasoning, then answer."""

    reasoning: str = DEFAULT_SCRIPT_REASONING
    answer: str = DEFAULT_SCRIPT_ANSWER
    think: bool = True  # False: the model skips reasoning and answers at once
    tool_calls: tuple[tuple[str, str], ...] = ()  # (name, arguments text) calls instead of the answer
    after_tools: str = "Done."  # the answer after [/TOOL_RESULTS]
    repeat_calls: bool = False  # after [/TOOL_RESULTS], the same calls again


def tiny_config(
    *,
    hidden: int = 128,
    layers: int = 2,
    intermediate: int = 256,
    heads: int = 4,
    kv_heads: int = 2,
    head_dim: int = 32,
    vocab: int = 131072,
    vision: bool = True,
    vision_hidden: int = 32,
    vision_layers: int = 1,
    image_size: int = 112,
) -> dict:
    """A Magistral-shaped `config.json` dict at the given (small) sizes."""
    text = {
        "attention_dropout": 0.0,
        "head_dim": head_dim,
        "hidden_act": "silu",
        "hidden_size": hidden,
        "initializer_range": 0.02,
        "intermediate_size": intermediate,
        "max_position_embeddings": 131072,
        "model_type": "mistral",
        "num_attention_heads": heads,
        "num_hidden_layers": layers,
        "num_key_value_heads": kv_heads,
        "rms_norm_eps": 1e-05,
        "rope_theta": 1000000000.0,
        "sliding_window": None,
        "tie_word_embeddings": False,
        "use_cache": True,
        "vocab_size": vocab,
    }
    if not vision:
        return {**text, "architectures": ["MistralForCausalLM"], "torch_dtype": "bfloat16"}
    return {
        "architectures": ["Mistral3ForConditionalGeneration"],
        "image_token_index": 10,
        "model_type": "mistral3",
        "multimodal_projector_bias": False,
        "projector_hidden_act": "gelu",
        "spatial_merge_size": 2,
        "text_config": text,
        "torch_dtype": "bfloat16",
        "transformers_version": "4.56.1",
        "vision_config": {
            "attention_dropout": 0.0,
            "head_dim": vision_hidden // 2,
            "hidden_act": "silu",
            "hidden_size": vision_hidden,
            "image_size": image_size,
            "initializer_range": 0.02,
            "intermediate_size": vision_hidden * 2,
            "model_type": "pixtral",
            "num_attention_heads": 2,
            "num_channels": 3,
            "num_hidden_layers": vision_layers,
            "patch_size": 14,
            "rope_theta": 10000.0,
        },
        "vision_feature_layer": -1,
    }


def tensor_shapes(config: dict) -> dict[str, tuple[int, ...]]:
    """HF tensor names and shapes of a Magistral checkpoint with this config.

    Works for tiny and for real-shaped configs (the real 2509 config gives 23.57 B text
    parameters).  Conv weights are in PyTorch layout [out, in, kh, kw].
    """
    vision = config.get("model_type") == "mistral3"
    t = config["text_config"] if vision else config
    h, inter, v = t["hidden_size"], t["intermediate_size"], t["vocab_size"]
    hd = t.get("head_dim") or h // t["num_attention_heads"]
    q, kv = t["num_attention_heads"] * hd, t["num_key_value_heads"] * hd
    lm = "model.language_model." if vision else "model."
    shapes: dict[str, tuple[int, ...]] = {f"{lm}embed_tokens.weight": (v, h)}
    for i in range(t["num_hidden_layers"]):
        p = f"{lm}layers.{i}."
        shapes.update({
            p + "input_layernorm.weight": (h,),
            p + "self_attn.q_proj.weight": (q, h),
            p + "self_attn.k_proj.weight": (kv, h),
            p + "self_attn.v_proj.weight": (kv, h),
            p + "self_attn.o_proj.weight": (h, q),
            p + "post_attention_layernorm.weight": (h,),
            p + "mlp.gate_proj.weight": (inter, h),
            p + "mlp.up_proj.weight": (inter, h),
            p + "mlp.down_proj.weight": (h, inter),
        })
    shapes[f"{lm}norm.weight"] = (h,)
    if not t.get("tie_word_embeddings", False):
        shapes["lm_head.weight"] = (v, h)
    if vision:
        vc = config["vision_config"]
        vh, vi, ps = vc["hidden_size"], vc["intermediate_size"], vc["patch_size"]
        m = config.get("spatial_merge_size", 2)
        shapes["model.vision_tower.patch_conv.weight"] = (vh, vc.get("num_channels", 3), ps, ps)
        shapes["model.vision_tower.ln_pre.weight"] = (vh,)
        for i in range(vc["num_hidden_layers"]):
            p = f"model.vision_tower.transformer.layers.{i}."
            shapes.update({
                p + "attention_norm.weight": (vh,),
                p + "attention.q_proj.weight": (vh, vh),
                p + "attention.k_proj.weight": (vh, vh),
                p + "attention.v_proj.weight": (vh, vh),
                p + "attention.o_proj.weight": (vh, vh),
                p + "ffn_norm.weight": (vh,),
                p + "feed_forward.gate_proj.weight": (vi, vh),
                p + "feed_forward.up_proj.weight": (vi, vh),
                p + "feed_forward.down_proj.weight": (vh, vi),
            })
        shapes["model.multi_modal_projector.norm.weight"] = (vh,)
        shapes["model.multi_modal_projector.patch_merger.merging_layer.weight"] = (vh, vh * m * m)
        shapes["model.multi_modal_projector.linear_1.weight"] = (h, vh)
        shapes["model.multi_modal_projector.linear_2.weight"] = (h, h)
    return shapes


def script_tokens(tekken_path: Path, script: Script) -> list[int]:
    """The token ids a scripted checkpoint emits after ``[/INST]`` (ending with ``</s>``)."""
    from mistral_common.tokens.tokenizers.tekken import Tekkenizer

    tok = Tekkenizer.from_file(tekken_path)
    ids: list[int] = []
    if script.think:
        ids += [THINK, *tok.encode(script.reasoning, bos=False, eos=False), END_THINK]
    if script.tool_calls:
        return ids + _call_tokens(tok, script)
    ids += [*tok.encode(script.answer, bos=False, eos=False), EOS]
    return ids


def mlx_lm_reply(model_dir: Path, text: str = "Salut !", max_tokens: int = 64) -> list[int]:
    """The token ids `mlx_lm.load`'s model of ``model_dir`` samples after one user message
    ``text`` (mistral-common's prompt from the model's ``tekken.json``; temperature 0.7,
    top-p 0.95, as Magistral's card advises), up to and including ``</s>`` or ``max_tokens``.
    A scripted checkpoint's script is so peaked that sampling still returns it exactly."""
    import mlx_lm
    from mistral_common.protocol.instruct.messages import UserMessage
    from mistral_common.protocol.instruct.request import ChatCompletionRequest
    from mistral_common.tokens.tokenizers.mistral import MistralTokenizer
    from mlx_lm.generate import generate_step
    from mlx_lm.sample_utils import make_sampler

    model, _ = mlx_lm.load(str(model_dir))
    mt = MistralTokenizer.from_file(str(Path(model_dir) / "tekken.json"))
    prompt = mt.encode_chat_completion(ChatCompletionRequest(messages=[UserMessage(content=text)])).tokens
    out: list[int] = []
    for t, _ in generate_step(mx.array(prompt), model, max_tokens=max_tokens, sampler=make_sampler(0.7, 0.95)):
        out.append(int(t))
        if out[-1] == EOS:
            break
    return out


def _call_tokens(tok, script: Script) -> list[int]:
    """``[TOOL_CALLS]name[ARGS]arguments`` for each call of ``script``, then ``</s>``."""
    ids: list[int] = []
    for name, args in script.tool_calls:
        ids += [TOOL_CALLS, *tok.encode(name, bos=False, eos=False), ARGS, *tok.encode(args, bos=False, eos=False)]
    return ids + [EOS]


def after_tools_tokens(tekken_path: Path, script: Script) -> list[int]:
    """What a scripted checkpoint emits after ``[/TOOL_RESULTS]`` (ending with ``</s>``)."""
    from mistral_common.tokens.tokenizers.tekken import Tekkenizer

    tok = Tekkenizer.from_file(tekken_path)
    if script.repeat_calls:
        return _call_tokens(tok, script)
    return [*tok.encode(script.after_tools, bos=False, eos=False), EOS]


def _bigram_chain(tokens: list[int], prev: int = END_INST, chain: dict[int, int] | None = None) -> dict[int, int]:
    chain = {} if chain is None else chain
    for t in tokens:
        if chain.setdefault(prev, t) != t:
            raise ValueError(
                f"script token {prev} is followed by both {chain[prev]} and {t}; "
                "a scripted checkpoint is a bigram chain: reword the script"
            )
        prev = t
    return chain


def build_checkpoint(
    out: Path | str,
    *,
    script: Script | None = None,
    shards: int = 2,
    seed: int = 0,
    decoy_consolidated: bool = False,
    system_prompt: str | None = SYSTEM_PROMPT,
    logit_scale: float = 4.0,
    **config_kwargs,
) -> Path:
    """Write a Magistral-format checkpoint to directory ``out``.

    Args:
        out: directory (created).
        script: make a scripted checkpoint (see module doc); None gives random weights
            (normal, std 0.02; norms 1).
        shards: number of `model-*.safetensors` files.
        seed: numpy seed for random weights.
        decoy_consolidated: also write a small `consolidated.safetensors` + `params.json`.
        system_prompt: text of `SYSTEM_PROMPT.txt` (None: no file).
        logit_scale: scripted `lm_head` weight; the next token's logit is about
            ``logit_scale * sqrt(hidden)`` above every other.
        **config_kwargs: passed to `tiny_config` (hidden, layers, vocab, vision, ...).

    Returns:
        ``Path(out)``.

    Raises:
        ValueError: a script that is not a bigram chain, or has more distinct tokens than
            the hidden size allows.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    config = tiny_config(**config_kwargs)
    vision = config.get("model_type") == "mistral3"
    text = config["text_config"] if vision else config
    tekken = write_tekken(out, vocab_size=text["vocab_size"], image=vision,
                          max_image_size=config["vision_config"]["image_size"] if vision else 1540)
    shapes = tensor_shapes(config)
    rng = np.random.default_rng(seed)

    arrays: dict[str, np.ndarray] = {}
    for name, shape in shapes.items():
        if name.endswith("norm.weight") or "layernorm" in name:
            arrays[name] = np.ones(shape, np.float32)
        else:
            arrays[name] = rng.normal(0.0, 0.02, size=shape).astype(np.float32)

    if script is not None:
        chain = _bigram_chain(script_tokens(tekken, script))
        if script.tool_calls:
            chain = _bigram_chain(after_tools_tokens(tekken, script), END_TOOL_RESULTS, chain)
        _script_weights(arrays, chain, text["hidden_size"],
                        "model.language_model." if vision else "model.", logit_scale)
    write_shards(out, arrays, shards)
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    (out / "generation_config.json").write_text(
        json.dumps({"bos_token_id": BOS, "eos_token_id": EOS, "pad_token_id": 11,
                    "temperature": 0.7, "top_p": 0.95, "max_length": 131072}, indent=2) + "\n"
    )
    if system_prompt is not None:
        (out / "SYSTEM_PROMPT.txt").write_text(system_prompt, encoding="utf-8")
    if decoy_consolidated:
        mx.save_safetensors(str(out / "consolidated.safetensors"),
                            {"tok_embeddings.weight": mx.zeros((8, 8), dtype=mx.bfloat16)})
        (out / "params.json").write_text(json.dumps({"dim": text["hidden_size"]}) + "\n")
    return out


def _script_weights(arrays: dict[str, np.ndarray], chain: dict[int, int], hidden: int, lm: str,
                    logit_scale: float) -> None:
    """Make ``arrays`` the bigram ``chain`` (token -> next token): one embedding slot per token
    whose ``lm_head`` row points at its successor; attention and MLP outputs zeroed (pure residual)."""
    if len(chain) > hidden:
        raise ValueError(f"script has {len(chain)} distinct tokens; hidden size {hidden} allows {hidden}")
    emb = np.zeros(arrays[f"{lm}embed_tokens.weight"].shape, np.float32)
    head = np.zeros(arrays["lm_head.weight"].shape, np.float32)
    for slot, (tok, nxt) in enumerate(sorted(chain.items())):
        emb[tok, slot] = 1.0
        head[nxt, slot] = logit_scale
    arrays[f"{lm}embed_tokens.weight"] = emb
    arrays["lm_head.weight"] = head
    for name in arrays:
        if name.endswith(("self_attn.o_proj.weight", "mlp.down_proj.weight")):
            arrays[name] = np.zeros_like(arrays[name])


def write_shards(out: Path, arrays: dict[str, np.ndarray], shards: int) -> None:
    """Write float32 ``arrays`` as ``shards`` bf16 safetensors files plus their index."""
    names = list(arrays)
    total = sum(a.size * 2 for a in arrays.values())
    per = math.ceil(total / max(1, shards))
    groups: list[list[str]] = [[]]
    size = 0
    for n in names:
        if size >= per and len(groups) < shards:
            groups.append([])
            size = 0
        groups[-1].append(n)
        size += arrays[n].size * 2
    weight_map = {}
    for i, group in enumerate(groups, 1):
        fname = f"model-{i:05d}-of-{len(groups):05d}.safetensors"
        mx.save_safetensors(
            str(out / fname),
            {n: mx.array(arrays[n]).astype(mx.bfloat16) for n in group},
            metadata={"format": "pt"},
        )
        weight_map.update({n: fname for n in group})
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (out / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Write a small Magistral-format HF checkpoint.")
    p.add_argument("out", type=Path)
    p.add_argument("--scripted", action="store_true", help="emit a fixed reasoning + answer")
    p.add_argument("--script-reasoning", default=DEFAULT_SCRIPT_REASONING)
    p.add_argument("--script-answer", default=DEFAULT_SCRIPT_ANSWER)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--shards", type=int, default=2)
    p.add_argument("--no-vision", action="store_true")
    p.add_argument("--decoy-consolidated", action="store_true")
    a = p.parse_args(argv)
    script = Script(a.script_reasoning, a.script_answer) if a.scripted else None
    build_checkpoint(a.out, script=script, hidden=a.hidden, layers=a.layers, shards=a.shards,
                     vision=not a.no_vision, decoy_consolidated=a.decoy_consolidated)
    print(a.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
