"""The key (`magimac key set/rm mistral`, in an in-memory keychain), the online entries of the
registry as `magimac models` lists them, and the streamed content's shapes."""

from __future__ import annotations

import io
import json
import sys

import pytest

from magimac.cli.main import main
from magimac.core.events import AnswerDelta, ReasoningDelta
from magimac.models.online import load_online
from magimac.models.registry import RegistryError
from magimac.online.deltas import MalformedEvent, content_events
from magimac.testing.api_standin import KEY


def test_key_set_is_used_then_removed_and_never_printed(api, memory_keyring, capsys, monkeypatch):
    monkeypatch.delenv("MISTRAL_API_KEY")
    monkeypatch.setattr(sys, "stdin", io.StringIO("sk-saved-in-keychain\n"))
    assert main(["key", "set", "mistral"]) == 0
    assert memory_keyring == {("magimac", "mistral"): "sk-saved-in-keychain"}
    assert main(["chat", "--model", "mistral-small-latest", "--online", "Hi"]) == 0
    assert api.requests[0]["headers"]["Authorization"] == "Bearer sk-saved-in-keychain"
    assert api.bodies()[0]["model"] == "mistral-small-latest"
    assert main(["key", "rm", "mistral"]) == 0 and memory_keyring == {}
    assert main(["key", "rm", "mistral"]) == 0
    out, err = capsys.readouterr()
    assert "sk-saved" not in out + err
    assert "removed the saved mistral key" in out and "no mistral key was saved" in out


def test_without_a_keychain_set_says_to_use_the_environment(capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO(KEY + "\n"))
    assert main(["key", "set", "mistral"]) == 1  # the suite's keyring backend refuses everything
    err = capsys.readouterr().err
    assert err.startswith("magimac: cannot save the key in the keychain") and "MISTRAL_API_KEY" in err
    assert KEY not in err


def test_models_lists_online_models_apart(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "140")
    assert main(["models", "--json"]) == 0
    online = {r["name"]: r for r in json.loads(capsys.readouterr().out) if r["kind"] == "online"}
    assert online["magistral-medium-2509"]["retired"] == "2026-07-31"
    assert online["magistral-medium-2509"]["successor"] == "mistral-medium-latest"
    assert online["magistral-small-2509-api"]["successor"] == "mistral-small-latest"
    assert {online[n]["api_model"] for n in ("mistral-medium-latest", "mistral-small-latest")} == \
        {"mistral-medium-latest", "mistral-small-latest"}
    assert all(r["vision"] for r in online.values())
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "online models (Mistral's API" in out and "name (online)" in out and "mistral-medium-latest" in out
    assert "retired 2026-07-31 → mistral-medium-latest" in out


def test_a_user_file_can_move_the_api_and_a_bad_entry_is_one_line(isolated_dirs):
    user = isolated_dirs / "config" / "models.toml"
    user.write_text('[models.mistral-small-latest]\napi_url = "http://127.0.0.1:9"\n')
    assert load_online()["mistral-small-latest"].api_url == "http://127.0.0.1:9"
    user.write_text('[models.mistral-small-latest]\nretired = "soon"\n')
    with pytest.raises(RegistryError) as e:
        load_online()
    assert str(e.value) == (f"{user}: entry 'mistral-small-latest', field 'retired': "
                            "expected a date YYYY-MM-DD, got 'soon'")


def test_content_shapes_of_the_docs():
    thinking = {"type": "thinking", "thinking": [{"type": "text", "text": "end of thought"}]}
    assert content_events([thinking, {"type": "text", "text": "First"}]) == [
        ReasoningDelta("end of thought"), AnswerDelta("First")]
    assert content_events(" then a string") == [AnswerDelta(" then a string")]
    assert content_events(None) == [] and content_events("") == []
    with pytest.raises(MalformedEvent):
        content_events([{"type": "mystery"}])
    with pytest.raises(MalformedEvent):
        content_events({"text": "a dict"})
