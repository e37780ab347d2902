"""`magimac serve`'s options, checked before anything loads."""

from __future__ import annotations

import argparse

import pytest

from magimac.cli import serve
from magimac.cli.main import main
from magimac.core.errors import MagimacError


def args(**kw) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    serve.add_arguments(p)
    ns = p.parse_args([])
    for k, v in kw.items():
        setattr(ns, k, v)
    return ns


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.2"])
def test_loopback_addresses_need_no_key(host, monkeypatch):
    monkeypatch.delenv("MAGIMAC_API_KEY", raising=False)
    assert serve.check_args(args(host=host)) is None


def test_any_other_address_needs_a_key(monkeypatch, capsys):
    monkeypatch.delenv("MAGIMAC_API_KEY", raising=False)
    assert main(["serve", "--host", "0.0.0.0"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("magimac: --host 0.0.0.0 lets other machines in: give --api-key") and err.count("\n") == 1
    assert serve.check_args(args(host="0.0.0.0", api_key="k")) == "k"
    monkeypatch.setenv("MAGIMAC_API_KEY", "from-env")
    assert serve.check_args(args(host="192.168.1.4")) == "from-env"


@pytest.mark.parametrize("kw, words", [(dict(port=70000), "--port"), (dict(max_streams=0), "--max-streams"),
                                       (dict(context_length=0), "--context-length"), (dict(cache_gb=-1), "--cache-gb")])
def test_bad_numbers_are_named(kw, words):
    with pytest.raises(MagimacError, match=words):
        serve.check_args(args(**kw))


def test_a_port_in_use_is_one_line():
    taken = serve.bind("127.0.0.1", 0)
    try:
        with pytest.raises(MagimacError, match="pick another --port"):
            serve.bind("127.0.0.1", taken.getsockname()[1])
    finally:
        taken.close()
