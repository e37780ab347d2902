"""A v13 `tekken.json` for test checkpoints: mistral-common's shipped Tekken BPE table with
Magistral's control tokens (`[THINK]` = 34, `[/THINK]` = 35; see `shared/MAGISTRAL.md`)."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

# Magistral's v13 control tokens that matter (shared/MAGISTRAL.md); other ids below 1000 are
# filler `<SPECIAL_n>` tokens, as in the real tekken.json.
CONTROL_TOKENS = {
    0: "<unk>", 1: "<s>", 2: "</s>", 3: "[INST]", 4: "[/INST]", 5: "[AVAILABLE_TOOLS]",
    6: "[/AVAILABLE_TOOLS]", 7: "[TOOL_RESULTS]", 8: "[/TOOL_RESULTS]", 9: "[TOOL_CALLS]",
    10: "[IMG]", 11: "<pad>", 12: "[IMG_BREAK]", 13: "[IMG_END]", 14: "[PREFIX]", 15: "[MIDDLE]",
    16: "[SUFFIX]", 17: "[SYSTEM_PROMPT]", 18: "[/SYSTEM_PROMPT]", 19: "[TOOL_CONTENT]",
    32: "[ARGS]", 33: "[CALL_ID]", 34: "[THINK]", 35: "[/THINK]",
}
NUM_SPECIAL = 1000
BOS, EOS, INST, END_INST, THINK, END_THINK = 1, 2, 3, 4, 34, 35
TOOL_CALLS, ARGS, TOOL_RESULTS, END_TOOL_RESULTS = 9, 32, 7, 8


def tekken_table_path() -> Path:
    """mistral-common's shipped Tekken BPE table (v3, 131072-id layout)."""
    return Path(str(resources.files("mistral_common") / "data" / "tekken_240911.json"))


def magistral_special_tokens() -> list[dict]:
    """The 1000 control-token entries of a v13 tekken.json (ids 0-999)."""
    return [
        {"rank": i, "token_str": CONTROL_TOKENS.get(i, f"<SPECIAL_{i}>"), "is_control": True}
        for i in range(NUM_SPECIAL)
    ]


def write_tekken(out: Path, vocab_size: int = 131072, image: bool = True, max_image_size: int = 1540) -> Path:
    """Write a v13 `tekken.json` into directory ``out``.

    Args:
        out: directory.
        vocab_size: total ids including the 1000 control tokens; smaller than 131072 keeps
            the first ``vocab_size - 1000`` BPE ranks (a valid, smaller BPE vocabulary).
        image: include Pixtral's image config (patch 14, spatial merge 2).
        max_image_size: longest image side in pixels (1540 in Magistral; a tiny vision tower
            needs its own `image_size` here, or its 2-D RoPE table overflows).

    Returns:
        the path written.
    """
    table = json.loads(tekken_table_path().read_text(encoding="utf-8"))
    n_bpe = vocab_size - NUM_SPECIAL
    if not 256 <= n_bpe <= len(table["vocab"]):
        raise ValueError(f"vocab_size {vocab_size} must leave 256..{len(table['vocab'])} BPE ids")
    table["vocab"] = table["vocab"][:n_bpe]
    table["config"] = dict(
        table["config"],
        version="v13",
        default_vocab_size=vocab_size,
        num_vocab_tokens=n_bpe,
        default_num_special_tokens=NUM_SPECIAL,
    )
    table["special_tokens"] = magistral_special_tokens()
    if image:
        table["image"] = {"image_patch_size": 14, "max_image_size": max_image_size, "spatial_merge_size": 2}
    else:
        table.pop("image", None)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "tekken.json"
    path.write_text(json.dumps(table, ensure_ascii=False), encoding="utf-8")
    return path


def drop_think_control_tokens(ckpt: Path) -> None:
    """Make ``ckpt/tekken.json`` like Magistral 1.0's: ids 34/35 become filler `<SPECIAL_n>`
    tokens, so the model has no `[THINK]`/`[/THINK]` control tokens and reasons in
    ``<think>`` … ``</think>`` text."""
    path = Path(ckpt) / "tekken.json"
    tk = json.loads(path.read_text(encoding="utf-8"))
    for t in tk["special_tokens"]:
        if t["token_str"] in ("[THINK]", "[/THINK]"):
            t["token_str"] = f"<SPECIAL_{t['rank']}>"
    path.write_text(json.dumps(tk, ensure_ascii=False), encoding="utf-8")
