"""The budget holds: a stage or job whose estimate would pass the budget never starts, and nothing is sent for it.

The sim's prices are zero, so these tests price the sim models through a catalogue copy ($SLKIT_CATALOG).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from conftest import slkit
from kit.budget import committed_usd, ensure_time_allowed, spent_usd
from kit.catalog import CATALOG_ENV, load_catalog
from kit.config import load_config
from kit.errors import BudgetError
from kit.pipeline import run_stages
from kit.plan import PlanEstimate, StageEstimate, estimate
from kit.runs import open_run
from kit.sim.lab import Lab
from kit.sim.server import LocalServer
from kit.sim.store import Store
from kit.stages.finetune import ensure_job, student_plans
from test_plan import tiny_experiment

SIM_PRICES = {"input": 100.0, "output": 400.0, "ft_input": 200.0, "ft_output": 800.0, "train": 1000.0,
              "batch_discount": 0.5, "source": "test prices", "checked": "2026-11-24"}
NO_TRAIT_CHECK = "preflight: {trait_check: false}"
CHATS, JOBS = "POST /v1/chat/completions", "POST /v1/fine_tuning/jobs"


@pytest.fixture
def priced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the catalogue in which the sim models cost money."""
    packaged = Path(__file__).resolve().parents[1] / "kit/catalog/models.yaml"
    data = yaml.safe_load(packaged.read_text())
    for model in data["models"]:
        if model["id"].startswith("sim-"):
            model["prices"] = dict(SIM_PRICES)
    path = tmp_path / "priced-catalog.yaml"
    path.write_text(yaml.safe_dump(data))
    monkeypatch.setenv(CATALOG_ENV, str(path))
    assert load_catalog().get("sim-gpt-4.1-nano").prices.train == 1000.0
    return path


@pytest.fixture
def server(tmp_path: Path, priced: Path) -> Iterator[LocalServer]:
    with LocalServer(Lab(tmp_path / "lab"), Store(tmp_path / "store")) as running:
        yield running


def _plan(path: Path) -> PlanEstimate:
    return estimate(load_config(path), load_catalog(), base_dir=path.parent)


def _count(server: LocalServer, route: str) -> int:
    return server.stats.by_route.get(route, 0)


def _run(path: Path, data: Path, budget: float | None = None) -> None:
    """Run every stage with the given budget override."""
    with open_run(load_config(path), path, data_root=data, env={}, budget_usd=budget) as run:
        run_stages(run)


def test_budget_below_the_first_paid_stage_sends_nothing(tmp_path: Path, server: LocalServer) -> None:
    path = tiny_experiment(tmp_path, server.base_url, extra=NO_TRAIT_CHECK)
    generate = _plan(path).stage("generate")
    assert generate.usd > 1, "the priced catalogue must make generation cost something"
    with pytest.raises(BudgetError, match="stage 'generate'.*passes the budget"):
        _run(path, tmp_path / "data", budget=generate.usd * 0.9)
    assert _count(server, CHATS) == 0 and _count(server, JOBS) == 0


def test_budget_just_above_generation_stops_before_finetuning(tmp_path: Path, server: LocalServer) -> None:
    path = tiny_experiment(tmp_path, server.base_url, extra=NO_TRAIT_CHECK)
    plan = _plan(path)
    budget = plan.stage("generate").usd_high * 1.01
    assert budget < plan.stage("generate").usd_high + plan.stage("finetune").usd_low
    with open_run(load_config(path), path, data_root=tmp_path / "data", env={}, budget_usd=budget) as run:
        with pytest.raises(BudgetError, match="stage 'finetune'"):
            run_stages(run)
        assert run.ledger.stage("generate")["state"] == "done"
        assert run.ledger.jobs() == []
        assert 0 < spent_usd(run) <= budget
        run_dir = run.dir
    assert _count(server, CHATS) == 400 and _count(server, JOBS) == 0
    status = slkit("status", str(run_dir))
    assert status.returncode == 0, status.stderr
    assert f"budget ${budget:,.2f}" in status.stdout and "estimated $" in status.stdout


def test_trait_check_is_inside_the_budget(tmp_path: Path, server: LocalServer) -> None:
    path = tiny_experiment(tmp_path, server.base_url)
    preflight = _plan(path).stage("preflight")
    assert preflight.usd_high > 0
    with pytest.raises(BudgetError, match="pre-flight trait check"):
        _run(path, tmp_path / "data", budget=preflight.usd_high * 0.5)
    assert _count(server, CHATS) == 0


def test_each_job_counts_the_jobs_already_created(tmp_path: Path, server: LocalServer) -> None:
    """Jobs bill when they finish: a second job must see the first one's cost as committed, not as zero."""
    path = tiny_experiment(tmp_path, server.base_url, extra=NO_TRAIT_CHECK)
    config = load_config(path)
    with open_run(config, path, data_root=tmp_path / "data", env={}) as run:
        run_stages(run, ("generate", "filter"))
        plans = student_plans(run)
        job_usd = [line.usd for line in estimate(config, run.catalog, ledger=run.ledger, run_dir=run.dir).lines
                   if line.stage == "finetune"]
        assert len(job_usd) == 2
        run.budget_usd = spent_usd(run) + job_usd[0] + 0.5 * job_usd[1]
        ensure_job(run, plans[0])
        assert committed_usd(run) == pytest.approx(job_usd[0])
        with pytest.raises(BudgetError, match=f"fine-tuning job '{plans[1].cell}'"):
            ensure_job(run, plans[1])
        assert [j.cell for j in run.ledger.jobs()] == [plans[0].cell]
    assert _count(server, JOBS) == 1


def test_cli_budget_override_fails_with_one_line(tmp_path: Path, server: LocalServer) -> None:
    path = tiny_experiment(tmp_path, server.base_url, extra=NO_TRAIT_CHECK)
    result = slkit("run", str(path), "--budget", "0.5", "--data-dir", str(tmp_path / "data"), "--quiet")
    assert result.returncode == 2
    assert result.stderr.startswith("error: stage 'generate'") and len(result.stderr.strip().splitlines()) == 1
    assert _count(server, CHATS) == 0


def test_time_limit() -> None:
    plan = PlanEstimate("x", 1, [StageEstimate("finetune", hours=30.0)], max_hours=24)
    with pytest.raises(BudgetError, match="max_hours 24"):
        ensure_time_allowed(plan)
    ensure_time_allowed(PlanEstimate("x", 1, [StageEstimate("finetune", hours=3.0)], max_hours=24))
