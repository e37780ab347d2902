"""`magimac pull` / `models` / `rm` against a stand-in hub on 127.0.0.1 (tests/hub_standin.py).

The stand-in serves a tiny Magistral-format original checkpoint (with a decoy
`consolidated.safetensors`) as ``test/tiny`` and its 4-bit MLX conversion as
``test/tiny-MLX-4bit``; a user registry entry ``tiny`` names both.  A full disk is simulated
by a mocked ``shutil.disk_usage`` (what `magimac.models.hardware.free_disk_bytes` reads).
"""

from __future__ import annotations

import io
import json
import shutil
from collections import namedtuple
from dataclasses import replace
from pathlib import Path

import pytest
from magimac.testing.checkpoint import build_checkpoint
from hub_standin import serve

from magimac.models import hardware, store

from magimac.core import paths
from magimac.cli.main import main
from magimac.models.registry import load_registry

SHARD1 = "model-00001-of-00002.safetensors"
SHARD2 = "model-00002-of-00002.safetensors"
MLX_SHARD = "model-00001-of-00001.safetensors"  # the tiny 4-bit conversion has one shard

REGISTRY = """
[models.tiny]
hub_id = "test/tiny"
allow_patterns = ["config.json", "generation_config.json", "model-*.safetensors",
                  "model.safetensors.index.json", "tekken.json", "SYSTEM_PROMPT.txt", "params.json"]
reasoning = "control"
think_open = "[THINK]"
think_close = "[/THINK]"
vision = true
context_length = 131072
temperature = 0.7
top_p = 0.95
system_prompt = "SYSTEM_PROMPT.txt"

[models.tiny.mlx]
4bit = "test/tiny-MLX-4bit"
"""


@pytest.fixture(scope="module")
def original(tmp_path_factory) -> Path:
    return build_checkpoint(tmp_path_factory.mktemp("orig") / "tiny", vocab=2048, decoy_consolidated=True)


@pytest.fixture(scope="module")
def ready_made(original, tmp_path_factory) -> Path:
    from magimac.quantize.convert import convert

    return convert(original, tmp_path_factory.mktemp("mlx") / "tiny-4bit", bits=4, progress=False,
                   log=lambda s: None)


@pytest.fixture
def hub(original, ready_made, monkeypatch):
    """The stand-in hub, with the `tiny` entry in the user registry and HF_ENDPOINT set."""
    (paths.config_dir() / "models.toml").write_text(REGISTRY)
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    with serve({"test/tiny": original, "test/tiny-MLX-4bit": ready_made}) as h:
        monkeypatch.setenv("HF_ENDPOINT", h.endpoint)
        yield h


def models_json(capsys) -> list[dict]:
    """Installed models as `magimac models --json` lists them, less the bundled demo."""
    capsys.readouterr()
    assert main(["models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    return [i for r in rows for i in r["installed"] if r["name"] != "demo"]


def test_pull_ready_made_installs_it_in_the_hf_cache(hub, ready_made, capsys):
    assert main(["pull", "tiny", "--quant", "4bit"]) == 0
    err = capsys.readouterr().err
    assert "goes online" in err and hub.endpoint in err
    assert "verified" in err
    [m] = models_json(capsys)
    assert m["name"] == "tiny-4bit" and m["quantization"] == "4bit" and m["where"] == "hf cache"
    assert m["source"].startswith("hub:test/tiny-MLX-4bit@")
    weights = sum(f.stat().st_size for f in ready_made.glob("*.safetensors"))
    assert m["size_bytes"] >= weights
    assert store.resolve_model("tiny") == Path(m["path"])
    assert (Path(m["path"]) / MLX_SHARD).read_bytes() == (ready_made / MLX_SHARD).read_bytes()
    # pulling again does not download anything
    n = len(hub.log)
    assert main(["pull", "tiny", "--quant", "4bit"]) == 0
    assert "already installed" in capsys.readouterr().err
    assert len(hub.log) == n


def test_pull_original_converts_and_never_fetches_consolidated(hub, original, capsys):
    assert main(["pull", "tiny", "--quant", "8bit"]) == 0
    assert not [p for _m, p, _r in hub.log if "consolidated" in p]
    [m] = models_json(capsys)
    assert m["name"] == "tiny-8bit" and m["quantization"] == "8bit" and m["where"] == "models dir"
    assert Path(m["path"]) == paths.models_dir() / "tiny-8bit"
    assert m["source"].startswith("hub:test/tiny@")
    # the original was removed from the Hugging Face cache after the conversion
    assert not (store.hf_cache_dir() / "models--test--tiny").exists()


def test_dropped_connection_resumes_with_a_range_request(hub, original, monkeypatch, capsys):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", 64 * 1024)  # so bytes arrive before the drop
    hub.drop_once.add(SHARD1)
    assert main(["pull", "tiny", "--quant", "8bit", "--keep-original"]) == 0
    gets = hub.gets(SHARD1)
    assert gets[0] is None and len(gets) == 2
    assert gets[1].startswith("bytes=") and int(gets[1][6:].split("-")[0]) > 0
    snap = next((store.hf_cache_dir() / "models--test--tiny" / "snapshots").iterdir())
    assert (snap / SHARD1).read_bytes() == (original / SHARD1).read_bytes()


def test_interrupted_pull_fetches_only_what_is_missing_next_time(hub, capsys):
    hub.fail.add(SHARD2)
    assert main(["pull", "tiny", "--quant", "8bit"]) == 1
    err = capsys.readouterr().err
    assert "download failed" in err and "again to resume" in err
    assert models_json(capsys) == []
    assert len(hub.gets(SHARD1)) == 1
    hub.fail.clear()
    assert main(["pull", "tiny", "--quant", "8bit"]) == 0
    assert len(hub.gets(SHARD1)) == 1  # kept from the first run
    assert len(hub.gets(SHARD2)) >= 2
    assert [m["name"] for m in models_json(capsys)] == ["tiny-8bit"]


def test_corrupt_file_is_detected_and_removed(hub, capsys):
    hub.corrupt.add(MLX_SHARD)
    assert main(["pull", "tiny", "--quant", "4bit"]) == 1
    err = capsys.readouterr().err
    assert f"{MLX_SHARD} from test/tiny-MLX-4bit is corrupt" in err and "sha256" in err
    assert models_json(capsys) == []
    snap = next((store.hf_cache_dir() / "models--test--tiny-MLX-4bit" / "snapshots").iterdir())
    assert not (snap / MLX_SHARD).exists()
    hub.corrupt.clear()
    assert main(["pull", "tiny", "--quant", "4bit"]) == 0
    assert len(hub.gets(MLX_SHARD)) == 2  # fetched again, the other files were kept
    assert [m["name"] for m in models_json(capsys)] == ["tiny-4bit"]


def test_full_disk_is_refused_before_downloading_weights(hub, monkeypatch, capsys):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10**12, 10**12 - 10**6, 10**6))
    assert main(["pull", "tiny", "--quant", "8bit"]) == 1
    err = capsys.readouterr().err
    assert "not enough free disk space" in err and "magimac rm" in err
    assert not [p for m, p, _r in hub.log if m == "GET" and p.endswith(".safetensors")]
    assert models_json(capsys) == []


def test_level_too_large_for_this_machine_is_refused_unless_forced(hub, monkeypatch, capsys):
    small = replace(hardware.detect(), gpu_limit=100_000)
    monkeypatch.setattr(hardware, "detect", lambda *a, **k: small)
    assert main(["pull", "tiny", "--quant", "8bit"]) == 1
    assert "does not fit this machine's GPU memory" in capsys.readouterr().err
    assert not [p for m, p, _r in hub.log if m == "GET" and p.endswith(".safetensors")]
    assert main(["pull", "tiny", "--quant", "8bit", "--force"]) == 0


def test_unreachable_hub_is_one_line(hub, monkeypatch, capsys):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    assert main(["pull", "tiny", "--quant", "4bit"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("magimac: test/tiny-MLX-4bit: cannot reach the hub at http://127.0.0.1:9")


def test_rm_asks_then_removes(hub, monkeypatch, capsys):
    assert main(["pull", "tiny", "--quant", "4bit"]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("n\n"))
    assert main(["rm", "tiny-4bit"]) == 1
    assert [m["name"] for m in models_json(capsys)] == ["tiny-4bit"]
    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))
    assert main(["rm", "tiny-4bit"]) == 0
    assert models_json(capsys) == []
    assert not (store.hf_cache_dir() / "models--test--tiny-MLX-4bit").exists()


def test_rm_yes_removes_a_converted_model_and_unknown_names_fail(hub, capsys):
    assert main(["pull", "tiny", "--quant", "8bit"]) == 0
    assert main(["rm", "tiny", "--yes"]) == 0
    assert not (paths.models_dir() / "tiny-8bit").exists()
    assert main(["rm", "tiny", "--yes"]) == 1
    assert "no installed model" in capsys.readouterr().err


def test_pull_a_bundled_model_downloads_nothing(hub, ready_made, capsys):
    (paths.config_dir() / "models.toml").write_text(REGISTRY + f"""
[models.local]
path = "{ready_made}"
reasoning = "control"
think_open = "[THINK]"
think_close = "[/THINK]"
vision = true
context_length = 512
temperature = 0.7
top_p = 0.95
system_prompt = "SYSTEM_PROMPT.txt"
""")
    assert main(["pull", "local"]) == 0
    assert "nothing to download" in capsys.readouterr().err
    assert hub.log == []


def test_rm_never_deletes_a_directory_it_did_not_install(random_checkpoint, tmp_path, capsys, monkeypatch):
    mine = tmp_path / "my-checkpoint"
    shutil.copytree(random_checkpoint, mine)
    (mine / "notes.txt").write_text("mine")
    assert main(["rm", "--yes", str(mine)]) == 1
    err = capsys.readouterr().err
    assert "not in magimac's models directory" in err and len(err.strip().splitlines()) == 1
    assert (mine / "notes.txt").exists() and (mine / "config.json").exists()
    assert main(["rm", "--yes", "demo"]) == 1
    assert "bundled with magimac and cannot be removed" in capsys.readouterr().err
    (tmp_path / "demo").mkdir()  # a folder named like the model, holding no model, in the cwd
    monkeypatch.chdir(tmp_path)
    assert main(["rm", "--yes", "demo"]) == 1
    assert "bundled with magimac and cannot be removed" in capsys.readouterr().err
    assert store.resolve_model("demo") == load_registry()["demo"].local_path()  # `--model demo` too
