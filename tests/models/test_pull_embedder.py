"""`magimac pull NAME` for an embedding model, from a stand-in hub on 127.0.0.1: it installs
where the library search looks, and is then the embedder in use."""

from __future__ import annotations

from hub_standin import serve

from magimac.cli.main import main
from magimac.core import paths
from magimac.models.embedders import installed_embedder, load_embedders
from magimac.testing.embedder import build_embedding_model

REGISTRY = """
[embedders.tiny-e5]
hub_id = "test/tiny-e5-mlx"
allow_patterns = ["config.json", "*.safetensors", "tokenizer.json", "tokenizer_config.json"]
dim = 32
query_prefix = "query: "
passage_prefix = "passage: "
"""


def test_pull_an_embedding_model(tmp_path, monkeypatch, capsys):
    model = build_embedding_model(tmp_path / "tiny-e5", [["cat", "chat"]])
    (paths.config_dir() / "models.toml").write_text(REGISTRY)
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    assert installed_embedder() is None
    with serve({"test/tiny-e5-mlx": model}) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
        assert main(["pull", "tiny-e5"]) == 0
    err = capsys.readouterr().err
    assert f"goes online: {hub.endpoint}/test/tiny-e5-mlx (embedding model)" in err
    entry = load_embedders()["tiny-e5"]
    assert installed_embedder() == entry and (entry.install_dir() / "model.safetensors").is_file()
    assert f"installed tiny-e5 at {entry.install_dir()}" in err


def test_an_unreachable_hub_is_one_line(monkeypatch, capsys):
    (paths.config_dir() / "models.toml").write_text(REGISTRY)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    assert main(["pull", "tiny-e5"]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("magimac: test/tiny-e5-mlx: download failed: ") and "again to resume" in err
