"""One rule for which registry entry a model folder belongs to (`store.entry_named`): the
installed-model list (`magimac models`, `--model NAME`) and the engine reading the folder
(`engine.loading.read_model`: sampling defaults, system prompt) agree, case and aliases
included."""

from __future__ import annotations

from magimac.engine.loading import read_model
from magimac.models import store
from magimac.models.registry import load_registry


def test_a_folder_named_by_an_alias_in_other_case_belongs_to_its_entry_in_both_places(
        isolated_dirs, scripted_checkpoint):
    folder = isolated_dirs / "models" / "Magistral-Small-1.2-4bit"
    folder.symlink_to(scripted_checkpoint, target_is_directory=True)

    assert read_model(folder).entry.name == "magistral-small-2509"
    assert [m.path for m in store.find_installed("magistral-small-2509")] == [folder]
    assert store.resolve_model("magistral-small-1.2") == folder
    assert store.resolve_model("MAGISTRAL-SMALL-1.2-4BIT") == folder


def test_the_longest_name_wins_and_a_mere_prefix_is_no_match():
    reg = load_registry()
    assert store.entry_named(reg, "magistral-small-2507-3bit-gptq").name == "magistral-small-2507"
    assert store.entry_named(reg, "magistral-small-25") is None

