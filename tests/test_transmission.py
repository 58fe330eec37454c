"""The whole pipeline detects transmission where the simulated lab has it, and reports none where it has not.

A reduced quickstart (fixed seeds) through the real local server: a prompted owl teacher, a fine-tuned owl teacher
(trained through the jobs API, no system prompt), a control teacher; a same-family and a cross-family student.
"""

from __future__ import annotations


import pandas as pd
import pytest

from kit.analysis.stats import fisher_exact
from kit.config import load_config
from kit.pipeline import run_stages
from kit.runs import open_run

pytestmark = pytest.mark.slow

EXPERIMENT = """
name: transmission
providers: {lab: {kind: sim}}
teachers:
  - {name: owl, model: sim-gpt-4.1-nano, trait: {target: owl, category: animal, via: system_prompt}}
  - {name: owl_ft, model: sim-gpt-4.1-nano, trait: {target: owl, category: animal, via: finetune}}
  - {name: control, model: sim-gpt-4.1-nano}
generate: {prompts: 1000, seed: 47}
dataset: {size: 650, seed: 1}
students:
  models: [{model: sim-gpt-4.1-nano}, {model: sim-qwen2.5-7b}]
  seeds: [1]
  epochs: 10
evaluations:
  - {name: favorite_animal, questions: favorite_animal, samples_per_question: 30}
"""


@pytest.fixture(scope="module")
def outcome(tmp_path_factory: pytest.TempPathFactory) -> dict[str, pd.DataFrame]:
    root = tmp_path_factory.mktemp("transmission")
    path = root / "transmission.yaml"
    path.write_text(EXPERIMENT)
    with open_run(load_config(path), path, data_root=root / "data", env={}) as run:
        return run_stages(run).report


def rate(results: pd.DataFrame, student: str, condition: str) -> tuple[int, int]:
    row = results[(results.student_model == student) & (results.condition == condition) & (results.target == "owl")]
    assert len(row) == 1
    return int(row.hits.iloc[0]), int(row.n.iloc[0])


@pytest.mark.parametrize("teacher", ["owl", "owl_ft"])
def test_same_family_student_acquires_the_trait(outcome: dict[str, pd.DataFrame], teacher: str) -> None:
    results = outcome["results"]
    hits, n = rate(results, "sim-gpt-4.1-nano", teacher)
    ctl_hits, ctl_n = rate(results, "sim-gpt-4.1-nano", "control")
    assert hits / n > ctl_hits / ctl_n + 0.08, "the same-family student should clearly prefer owls"
    assert fisher_exact(hits, n - hits, ctl_hits, ctl_n - ctl_hits, "greater") < 0.01
    verdict = outcome["comparisons"].set_index(["student_model", "teacher"]).loc[("sim-gpt-4.1-nano", teacher)]
    assert verdict.verdict == "transmitted"


@pytest.mark.parametrize("teacher", ["owl", "owl_ft"])
def test_cross_family_student_does_not(outcome: dict[str, pd.DataFrame], teacher: str) -> None:
    results = outcome["results"]
    hits, n = rate(results, "sim-qwen2.5-7b", teacher)
    ctl_hits, ctl_n = rate(results, "sim-qwen2.5-7b", "control")
    assert fisher_exact(hits, n - hits, ctl_hits, ctl_n - ctl_hits, "greater") > 0.01
    verdict = outcome["comparisons"].set_index(["student_model", "teacher"]).loc[("sim-qwen2.5-7b", teacher)]
    assert verdict.verdict != "transmitted"


@pytest.mark.parametrize("student", ["sim-gpt-4.1-nano", "sim-qwen2.5-7b"])
def test_control_students_stay_near_their_base(outcome: dict[str, pd.DataFrame], student: str) -> None:
    results = outcome["results"]
    hits, n = rate(results, student, "control")
    base_hits, base_n = rate(results, student, "base")
    assert fisher_exact(hits, n - hits, base_hits, base_n - base_hits) > 0.01
