"""The output's tokenizer: which files to copy, and the control-token ids they define.

Magistral ships Tekken (`tekken.json`).  Copied verbatim, it loads in `mlx_lm.load` as
transformers' `MistralCommonBackend` (mistral-common underneath): token ids are
mistral-common's, text typed as ``[INST]`` stays text, and mlx-lm's naive streaming
detokenizer keeps spaces and multi-byte characters.  A ``tokenizer.json`` converted from Tekken
(as `processor.save_pretrained` writes) would instead be picked up as a byte-level BPE and lose
spaces in streaming detokenization, so when ``tekken.json`` exists no HF tokenizer files are
copied next to it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

HF_TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "tokenizer_config.json", "special_tokens_map.json")
EXTRA_FILES = ("SYSTEM_PROMPT.txt", "generation_config.json", "chat_template.jinja",
               "preprocessor_config.json", "processor_config.json")


def files_to_copy(source: Path) -> list[Path]:
    """Tokenizer and companion files of ``source`` that go into the output."""
    source = Path(source)
    names = ["tekken.json"] if (source / "tekken.json").is_file() else list(HF_TOKENIZER_FILES)
    names += EXTRA_FILES
    return [source / n for n in names if (source / n).is_file()]


def copy_tokenizer(source: Path, out: Path) -> list[str]:
    """Copy `files_to_copy` into ``out``; returns the names copied."""
    copied = []
    for f in files_to_copy(source):
        shutil.copyfile(f, Path(out) / f.name)
        copied.append(f.name)
    return copied


def control_token_ids(tekken: Path, names: tuple[str, ...] = ("[THINK]", "[/THINK]")) -> dict[str, int | None]:
    """Ids of control tokens as ``tekken.json`` defines them (its ``special_tokens`` list,
    ``rank`` = id); None for a name the file lacks."""
    data = json.loads(Path(tekken).read_text(encoding="utf-8"))
    table = {t["token_str"]: t["rank"] for t in data.get("special_tokens", [])}
    return {n: table.get(n) for n in names}
