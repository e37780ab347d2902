"""A tiny BERT embedding model with known meanings, for tests and the bench.

`build_embedding_model` writes the on-disk layout `magimac.engine.embed.MlxEmbedder` reads
(what ``mlx-community/multilingual-e5-small-mlx`` holds): ``config.json`` with
``model_type = "bert"``, ``model.safetensors`` in mlx_embeddings' BERT parameter names, and a
Hugging Face ``tokenizer.json`` (a word-level vocabulary, lower-cased, accents stripped) with
``tokenizer_config.json``.

The weights are made, not trained: every word of a concept group (``["invoice", "bill",
"facture"]``) gets the same random unit vector, other words the zero vector; position and
token-type embeddings are zero and each layer's output projections are zero, so the encoder
passes the words through and the mean-pooled vector is the normalised sum of the concepts in
the text. A French question thus lands next to the English passage sharing its concepts, which
is what a real multilingual model does, in a model of a few kilobytes.
"""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import numpy as np

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]


def _norm(word: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFD", word.lower()) if unicodedata.category(c) != "Mn")


def build_embedding_model(out: str | Path, concepts: list[list[str]], hidden: int = 32,
                          seed: int = 0) -> Path:
    """Write a tiny embedding model to ``out`` (created) and return it.

    Args:
        concepts: groups of words that mean the same thing (any language); a word in two
            groups gets the sum of both vectors.
        hidden: vector length (the embedder's ``dim``).
    """
    import mlx.core as mx
    from mlx.utils import tree_flatten
    from mlx_embeddings.models.bert import Model, ModelArgs

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    vocab = {t: i for i, t in enumerate(SPECIALS)}
    for group in concepts:
        for w in group:
            vocab.setdefault(_norm(w), len(vocab))
    config = {"model_type": "bert", "architectures": ["BertModel"], "hidden_size": hidden,
              "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 2 * hidden,
              "max_position_embeddings": 512, "vocab_size": len(vocab), "type_vocab_size": 2,
              "layer_norm_eps": 1e-12, "pad_token_id": 0}
    (out / "config.json").write_text(json.dumps(config, indent=1))
    rng = np.random.default_rng(seed)
    words = np.zeros((len(vocab), hidden), dtype=np.float32)
    for group in concepts:
        v = rng.standard_normal(hidden).astype(np.float32)
        v -= v.mean()  # LayerNorm keeps a zero-mean vector's direction
        v /= np.linalg.norm(v)
        for w in group:
            words[vocab[_norm(w)]] += v
    model = Model(ModelArgs.from_dict(config))
    params = dict(tree_flatten(model.parameters()))
    weights = {}
    for k, v in params.items():
        if k == "embeddings.word_embeddings.weight":
            weights[k] = mx.array(words)
        elif k.endswith(("position_embeddings.weight", "token_type_embeddings.weight")) or \
                (k.endswith(("output.dense.weight", "output.dense.bias"))):
            weights[k] = mx.zeros(v.shape)
        else:
            weights[k] = v
    mx.save_safetensors(str(out / "model.safetensors"), weights, metadata={"format": "mlx"})
    _write_tokenizer(out, vocab)
    return out


def _write_tokenizer(out: Path, vocab: dict[str, int]) -> None:
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordLevel

    tok = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True, strip_accents=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
    tok.save(str(out / "tokenizer.json"))
    (out / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast", "pad_token": "[PAD]", "unk_token": "[UNK]",
        "cls_token": "[CLS]", "sep_token": "[SEP]", "model_max_length": 512}))
