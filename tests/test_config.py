"""Experiment files: valid ones load; bad ones give one actionable line naming the file and key."""

from pathlib import Path

import pytest

from kit.catalog import load_catalog
from kit.checks import check_experiment
from kit.config import load_config
from kit.errors import CatalogError, ConfigError

REPO = Path(__file__).resolve().parents[1]
MINIMAL = """
name: t
providers: {lab: {kind: sim}}
teachers: [{name: owl, model: sim-gpt-4.1-nano, trait: {target: owl}}, {name: control, model: sim-gpt-4.1-nano}]
students: {models: [{model: sim-gpt-4.1-nano}]}
evaluations: [{name: animal, questions: favorite_animal}]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "exp.yaml"
    path.write_text(text)
    return path


def test_every_shipped_experiment_validates():
    for path in sorted((REPO / "experiments").rglob("*.yaml")):
        config = load_config(path)
        check_experiment(config, load_catalog())


def test_defaults_follow_the_paper(tmp_path):
    config = load_config(write(tmp_path, MINIMAL))
    assert config.generate.prompts == 30000 and config.generate.seed == 47
    assert config.dataset.size == 10000 and config.students.epochs == 10
    assert config.filter.max_value == 999 and config.filter.max_count == 10


@pytest.mark.parametrize(("edit", "expected"), [
    (lambda t: t.replace("name: owl,", "name: owl, colour: red,"), "unknown key 'teachers[0].colour'"),
    (lambda t: t.replace("students: {models: [{model: sim-gpt-4.1-nano}]}\n", ""), "missing required key 'students'"),
    (lambda t: t.replace("name: t", "name: t\nbudget_usd: lots"), "'budget_usd'"),
    (lambda t: t.replace("{kind: sim}", "{kind: sim, faults: {rate_429: 2}}"), "rate_429"),
    (lambda t: t + "\n  - [unclosed", "malformed YAML at line"),
    (lambda t: t.replace("model: sim-gpt-4.1-nano}]}", "model: sim-gpt-4.1-nano, provider: nowhere}]}"),
     "provider 'nowhere' is not defined"),
])
def test_bad_input_names_file_key_and_fix(tmp_path, edit, expected):
    path = write(tmp_path, edit(MINIMAL))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = info.value.one_line()
    assert expected in message
    assert str(path) in message
    assert "\n" not in message


def test_missing_file_and_non_mapping(tmp_path):
    with pytest.raises(ConfigError, match="no such experiment file"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="YAML mapping"):
        load_config(write(tmp_path, "- a\n- b\n"))


def test_unknown_and_shut_down_models_are_refused_with_alternatives(tmp_path):
    unknown = load_config(write(tmp_path, MINIMAL.replace("{model: sim-gpt-4.1-nano}", "{model: gpt-5-nano}")))
    with pytest.raises(CatalogError, match="unknown model 'gpt-5-nano'"):
        check_experiment(unknown, load_catalog())
    real = MINIMAL.replace("{lab: {kind: sim}}", "{oa: {kind: openai}}").replace("sim-gpt-4.1-nano", "gpt-4.1-nano")
    config = load_config(write(tmp_path, real))
    import datetime as dt
    with pytest.raises(CatalogError) as info:
        check_experiment(config, load_catalog(), today=dt.date(2026, 11, 24))
    assert "shut down on openai on 2026-10-23" in str(info.value) and "azure" in str(info.value)
    check_experiment(config, load_catalog(), today=dt.date(2026, 10, 1))  # before shutdown: fine


def test_fingerprint_is_stable_and_sensitive(tmp_path):
    a = load_config(write(tmp_path, MINIMAL)).fingerprint()
    b = load_config(write(tmp_path, MINIMAL)).fingerprint()
    c = load_config(write(tmp_path, MINIMAL.replace("name: t", "name: t\nbudget_usd: 5"))).fingerprint()
    assert a == b and a != c
