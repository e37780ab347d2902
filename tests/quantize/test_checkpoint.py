"""The test checkpoint is in Magistral's real format and loads where the real one does."""

import json

import mlx.core as mx
from mistral_common.protocol.instruct.messages import UserMessage
from mistral_common.protocol.instruct.request import ChatCompletionRequest
from mistral_common.tokens.tokenizers.base import SpecialTokenPolicy
from mistral_common.tokens.tokenizers.mistral import MistralTokenizer

from magimac.testing.checkpoint import Script, script_tokens


def test_layout_matches_the_hub_repo(random_checkpoint):
    names = {p.name for p in random_checkpoint.iterdir()}
    assert {"config.json", "generation_config.json", "SYSTEM_PROMPT.txt", "tekken.json",
            "model.safetensors.index.json", "consolidated.safetensors"} <= names
    shards = sorted(n for n in names if n.startswith("model-") and n.endswith(".safetensors"))
    assert shards == ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    cfg = json.loads((random_checkpoint / "config.json").read_text())
    assert cfg["model_type"] == "mistral3" and cfg["architectures"] == ["Mistral3ForConditionalGeneration"]
    assert cfg["text_config"]["model_type"] == "mistral" and cfg["vision_config"]["model_type"] == "pixtral"
    index = json.loads((random_checkpoint / "model.safetensors.index.json").read_text())
    wm = index["weight_map"]
    assert "lm_head.weight" in wm and "model.language_model.embed_tokens.weight" in wm
    assert "model.vision_tower.transformer.layers.0.attention.q_proj.weight" in wm
    assert "model.multi_modal_projector.patch_merger.merging_layer.weight" in wm
    assert set(wm.values()) == set(shards)


def test_tekken_loads_in_mistral_common_with_think_control_tokens(random_checkpoint):
    mt = MistralTokenizer.from_file(str(random_checkpoint / "tekken.json"))
    tok = mt.instruct_tokenizer.tokenizer
    assert tok.version.value == "v13" and tok.n_words == 131072
    assert tok.get_special_token("[THINK]") == 34 and tok.get_special_token("[/THINK]") == 35
    # typed control-token text stays text
    ids = tok.encode("[THINK] hi", bos=False, eos=False)
    assert 34 not in ids and all(i >= 1000 for i in ids)


def test_loads_with_mlx_lm_and_mlx_vlm(random_checkpoint):
    import mlx_lm
    import mlx_vlm

    model, tok = mlx_lm.load(str(random_checkpoint))
    assert model.layers and tok.eos_token_id == 2
    vmodel, processor = mlx_vlm.load(str(random_checkpoint))
    assert hasattr(vmodel, "vision_tower")


def test_scripted_checkpoint_emits_its_script_exactly(scripted_checkpoint):
    import mlx_lm
    from mlx_lm.generate import generate_step
    from mlx_lm.sample_utils import make_sampler

    model, _ = mlx_lm.load(str(scripted_checkpoint))
    mt = MistralTokenizer.from_file(str(scripted_checkpoint / "tekken.json"))
    prompt = mt.encode_chat_completion(ChatCompletionRequest(messages=[UserMessage(content="Salut !")])).tokens
    out = []
    for t, _ in generate_step(mx.array(prompt), model, max_tokens=64, sampler=make_sampler(0.7, 0.95)):
        out.append(int(t))
        if out[-1] == 2:
            break
    assert out == script_tokens(scripted_checkpoint / "tekken.json", Script())
    text = mt.instruct_tokenizer.tokenizer.decode(out, special_token_policy=SpecialTokenPolicy.KEEP)
    assert text == f"[THINK]{Script().reasoning}[/THINK]{Script().answer}</s>"
