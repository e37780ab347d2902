import subprocess
import sys

import pytest

from magimac.cli.main import main
from magimac.models.registry import RegistryError, default_model, find_entry, load_registry


def test_shipped_registry_has_three_magistral_versions_with_12_default():
    reg = load_registry()
    hub = {e.hub_id: e for e in reg.values() if e.hub_id}
    assert {"mistralai/Magistral-Small-2509", "mistralai/Magistral-Small-2507",
            "mistralai/Magistral-Small-2506"} <= set(hub)
    assert default_model(reg).hub_id == "mistralai/Magistral-Small-2509"
    s12, s10 = hub["mistralai/Magistral-Small-2509"], hub["mistralai/Magistral-Small-2506"]
    assert (s12.reasoning, s12.think_open, s12.think_close, s12.vision) == ("control", "[THINK]", "[/THINK]", True)
    assert (s10.reasoning, s10.think_open, s10.think_close, s10.vision) == ("text", "<think>", "</think>", False)
    for e in hub.values():
        assert (e.temperature, e.top_p) == (0.7, 0.95)
        assert not any("consolidated" in p for p in e.allow_patterns)
        assert any(p.startswith("model-") for p in e.allow_patterns)


def test_user_file_overrides_a_field_and_adds_an_entry(isolated_dirs):
    (isolated_dirs / "config" / "models.toml").write_text(
        '[models.magistral-small-2509]\ntemperature = 0.5\n\n'
        '[models.mine]\nhub_id = "me/my-magistral"\nreasoning = "control"\nthink_open = "[THINK]"\n'
        'think_close = "[/THINK]"\nvision = false\ncontext_length = 32768\ntemperature = 0.7\n'
        'top_p = 0.95\nsystem_prompt = "builtin"\n'
    )
    reg = load_registry()
    assert reg["magistral-small-2509"].temperature == 0.5
    assert reg["magistral-small-2509"].hub_id == "mistralai/Magistral-Small-2509"
    assert find_entry(reg, "me/my-magistral").name == "mine"
    assert find_entry(reg, "magistral-small-1.2").name == "magistral-small-2509"


@pytest.mark.parametrize("body, needle", [
    ('[models.x]\nhub_id = "a/b"\n', "entry 'x', field 'reasoning': missing"),
    ('[models.magistral-small-2509]\ncontext_length = "big"\n', "field 'context_length': expected an integer"),
    ('[models.magistral-small-2509]\nreasoning = "maybe"\n', "field 'reasoning': must be one of"),
    ('[models.magistral-small-2509]\nallow_patterns = ["consolidated.safetensors"]\n', "field 'allow_patterns'"),
    ('[models.magistral-small-2509]\ncolour = "red"\n', "field 'colour': unknown field"),
    ('[models.magistral-small-1.2\n', "not valid TOML"),
])
def test_bad_user_entry_names_file_entry_and_field(isolated_dirs, body, needle):
    f = isolated_dirs / "config" / "models.toml"
    f.write_text(body)
    with pytest.raises(RegistryError) as e:
        load_registry()
    assert str(f) in str(e.value) and needle in str(e.value)
    assert "\n" not in str(e.value)


def test_magimac_models_with_broken_user_file_is_one_line_error(isolated_dirs, capsys):
    (isolated_dirs / "config" / "models.toml").write_text('[models.magistral-small-2509]\ntop_p = 7\n')
    assert main(["models"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("magimac: ") and "top_p" in err and "Traceback" not in err
    assert len(err.splitlines()) == 1


def test_magimac_models_lists_the_three_versions(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "120")
    assert main(["models", "--json"]) == 0
    import json
    rows = json.loads(capsys.readouterr().out)
    by_hub = {r["hub_id"]: r for r in rows}
    for hub in ("mistralai/Magistral-Small-2509", "mistralai/Magistral-Small-2507", "mistralai/Magistral-Small-2506"):
        assert by_hub[hub]["installed"] == []
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "magistral-small-2509 (default)" in out and "magistral-small-2506" in out


def test_console_script_version_and_help():
    exe = [sys.executable, "-m", "magimac"]
    out = subprocess.run(exe + ["--version"], capture_output=True, text=True, check=True).stdout
    assert out.startswith("magimac ")
    out = subprocess.run(exe + ["--help"], capture_output=True, text=True, check=True).stdout
    for cmd in ("chat", "quantize", "models", "plan", "pull", "doctor", "bench"):
        assert cmd in out


def test_a_registry_name_in_another_case_finds_its_entry():
    reg = load_registry()
    assert find_entry(reg, "MAGISTRAL-SMALL-2509") is reg["magistral-small-2509"]
