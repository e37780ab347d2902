"""`magimac cache` without a model: its words match the README's (blocks of N tokens, partial
blocks, plurals), and the advice for a damaged index works."""

from __future__ import annotations

import json

from magimac.cli.main import main
from magimac.engine.disk_index import DiskIndex, default_directory


def test_cache_says_whole_and_partial_blocks_of_n_tokens(capsys):
    index = DiskIndex(default_directory())
    index.register("m", 256)
    index.add("k1", "m", 45, 180_000, None, 1.0, "m", 45)  # a 45-token prompt: one partial block
    assert main(["cache"]) == 0
    out = capsys.readouterr().out
    assert ("45 tokens of KV of 1 model: 0 whole blocks of 256 tokens and 1 partial block "
            "(a prompt's last tokens, fewer than 256)") in out
    assert "180.0 KB on disk, budget 10.00 GB" in out and "blocks (" not in out
    index.add("k2", "m", 256, 4_000_000, None, 1.0, "m", 256)
    assert main(["cache", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert (d["blocks"], d["partial_blocks"], d["block_tokens"], d["tokens"]) == (2, 1, 256, 301)


def test_a_damaged_index_is_cleared_by_the_command_its_error_names(capsys):
    directory = default_directory()
    (directory / "blocks" / "ab").mkdir(parents=True)
    (directory / "blocks" / "ab" / "ab12.safetensors").write_bytes(b"x" * 1000)
    (directory / "index.db").write_bytes(b"this is not a database" * 100)
    assert main(["cache"]) == 1
    err = capsys.readouterr().err
    assert main(["cache", "--clear"]) == 0
    out = capsys.readouterr().out
    assert str(directory) in err and "`magimac cache --clear`" in err and len(err.splitlines()) == 1
    assert "freed 1.0 KB" in out and "0 tokens of KV of 0 models: 0 whole blocks" in out
    assert main(["cache"]) == 0 and not list(directory.rglob("*.safetensors"))


def test_budget_and_serve_cache_gb_read_the_same_decimal_gb(capsys):
    """`cache --budget 10GB` keeps 10 x 10^9 bytes, printed back as the 10.00 GB it was typed as
    (it read 10 GiB = 10.74 GB before), and `serve --cache-gb 10` means the same bytes."""
    import argparse

    from magimac.cli import serve

    for typed in ("10GB", "10", "10 G"):
        assert main(["cache", "--budget", typed, "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["budget_bytes"] == 10 * 10**9
    assert main(["cache", "--budget", "500MB"]) == 0
    assert "budget 500.0 MB" in capsys.readouterr().out
    assert main(["cache", "--budget", "0", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["budget_bytes"] == 0
    assert serve.cache_bytes(argparse.Namespace(cache_gb="10")) == 10 * 10**9
    assert main(["cache", "--budget=-3GB"]) == 1
    assert capsys.readouterr().err.startswith("magimac: --budget: cannot read the size '-3GB'")
