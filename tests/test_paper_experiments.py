"""Every experiment file validates, passes the offline model checks and plans; every paper file has a sim twin of
the same design, and each sim twin runs end to end offline at reduced size."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from kit.catalog import load_catalog
from kit.checks import check_experiment
from kit.config import ExperimentConfig, load_config
from kit.pipeline import run_stages
from kit.plan import estimate
from kit.runs import open_run
from standins import with_standins

REPO = Path(__file__).resolve().parents[1]
EXPERIMENTS = sorted((REPO / "experiments").rglob("*.yaml"))
PAPER = REPO / "experiments" / "paper"
SIM_TWINS = sorted(PAPER.glob("*_sim.yaml"))
REAL_PAPER = sorted(p for p in PAPER.glob("*.yaml") if not p.stem.endswith("_sim"))
TODAY = dt.date(2026, 11, 24)  # the catalogue's `checked` date: shutdown dates are judged as of then


def _rel(path: Path) -> str:
    return str(path.relative_to(REPO))


def _twin(path: Path) -> Path:
    return path.with_name(f"{path.stem}_sim.yaml")


def _filter_design(config: ExperimentConfig) -> dict[str, Any]:
    """The filter's rule; which model judges (and on which provider) is the route's business, not the design's."""
    rule = config.filter.model_dump()
    if isinstance(rule.get("judge"), dict):
        rule["judge"] = {k: v for k, v in rule["judge"].items() if k not in ("model", "provider")}
    return rule


def _design(config: ExperimentConfig) -> dict[str, Any]:
    """What a sim twin must share with its paper file: conditions, traits, data kind and rule, evaluation sets."""
    return {"teachers": [(t.name, t.trait.model_dump() if t.trait else None, t.trained()) for t in config.teachers],
            "evaluations": [(e.name, e.questions, e.scorer, e.suffix) for e in config.evaluations],
            "generate": (config.generate.kind, getattr(config.generate, "seed", None)),
            "filter": _filter_design(config),
            "students": (len(config.students.models), config.students.epochs)}


def _plannable(path: Path, tmp_path: Path) -> Path:
    """The file itself, or for a paper file that reads the user's data (teacher files, code tasks, GSM8K) a copy
    beside paper-sized stand-ins of that data."""
    config = load_config(path)
    needs_data = any(t.finetune is not None and "/" in t.finetune.file for t in config.teachers) or \
        getattr(config.generate, "source", None) is not None
    return with_standins(path, tmp_path) if needs_data else path


@pytest.mark.parametrize("path", EXPERIMENTS, ids=_rel)
def test_experiment_validates_checks_and_plans(path: Path, tmp_path: Path) -> None:
    path = _plannable(path, tmp_path)
    config = load_config(path)
    catalog = load_catalog()
    check_experiment(config, catalog, today=TODAY)
    plan = estimate(config, catalog, base_dir=path.parent)
    assert plan.stages and plan.total_usd >= 0
    if config.budget_usd is not None:
        assert plan.total_usd_high <= config.budget_usd, "the file's budget must cover its own plan"


@pytest.mark.parametrize("path", REAL_PAPER, ids=_rel)
def test_paper_file_has_a_sim_twin_of_the_same_design(path: Path) -> None:
    assert _twin(path).exists(), f"{_rel(path)} needs a sim twin {_rel(_twin(path))}"
    real, sim = load_config(path), load_config(_twin(path))
    assert {p.kind for p in sim.providers.values()} == {"sim"}
    assert _design(sim) == _design(real)


@pytest.mark.parametrize("path", REAL_PAPER, ids=_rel)
def test_paper_file_opens_with_what_it_tests_found_and_how_to_run(path: Path) -> None:
    header = path.read_text(encoding="utf-8").split("\nname:", 1)[0].lower()
    assert "paper" in header and "found" in header and f"slkit plan experiments/paper/{path.name}" in header


REDUCED_PROMPTS = {"numbers": 300, "code": 60, "gsm8k_cot": 60}


def _reduced(config: ExperimentConfig) -> ExperimentConfig:
    """A few hundred completions, one seed, one epoch, two samples per question: each twin in well under a minute."""
    evaluations = [e.model_copy(update={"samples_per_question": 2}) for e in config.evaluations]
    generate = config.generate.model_copy(update={"prompts": REDUCED_PROMPTS[config.generate.kind]})
    return config.model_copy(update={
        "generate": generate,
        "dataset": config.dataset.model_copy(update={"size": 150 if config.generate.kind == "numbers" else 40,
                                                      "allow_smaller": True}),
        "students": config.students.model_copy(update={"seeds": [1], "epochs": 1}),
        "evaluations": evaluations,
    })


@pytest.mark.slow
@pytest.mark.parametrize("path", SIM_TWINS, ids=_rel)
def test_sim_twin_runs_end_to_end_offline(path: Path, tmp_path: Path) -> None:
    config = _reduced(load_config(path))
    with open_run(config, path, data_root=tmp_path / "data", env={}) as run:
        report = run_stages(run).report
    judged = any(e.judged() for e in config.evaluations)
    results = report["judged_results" if judged else "results"]
    assert isinstance(results, pd.DataFrame) and not results.empty
    column = next(c for c in ("condition", "subject") if c in results)
    conditions = " ".join(map(str, results[column]))
    assert all(t.name in conditions for t in config.teachers)
