"""Killed runs resume without paying twice, on every route that fine-tunes: the process is SIGKILLed between
recording a job's intent and `create`, between `create` and recording the job id, and while polling; the resumed run
ends with exactly one job per cell at the provider. The same for deployments (Azure OpenAI, Fireworks)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from kit.ledger import Ledger
from kit.sim.server import LocalServer
from kit.sim.store import Store
from routes_common import FINE_TUNING_ROUTES, experiment, finished, killed, run_forked, server  # noqa: F401

CELLS = 4
CRASH_POINTS = ("finetune:after-intent", "finetune:after-create", "finetune:polling")
DEPLOY_CREATES = {"azure": "PUT /subscriptions/{subscription}/resourceGroups/{group}/providers/"
                           "Microsoft.CognitiveServices/accounts/{account}/deployments/{name}",
                  "fireworks": "POST /fireworks/v1/accounts/{account}/deployments"}


def provider_jobs(store: Store) -> Counter[str]:
    """Jobs at the provider, counted by the tag the kit gave them (metadata cell, else the suffix)."""
    tags = [(job.get("metadata") or {}).get("slkit_cell") or str(job.get("user_provided_suffix"))
            for job in store.jobs.all()]
    return Counter(tags)


def ledger_states(run_root: Path) -> list[str]:
    (run_dir,) = list((run_root / "runs" / "routes").iterdir())
    ledger = Ledger.open(run_dir)
    try:
        return [j.state for j in ledger.jobs()]
    finally:
        ledger.close()


@pytest.mark.parametrize("route", FINE_TUNING_ROUTES)
def test_one_job_per_cell_after_kills(tmp_path: Path, server: LocalServer, route: str) -> None:
    path, data = experiment(tmp_path, server, route), tmp_path / "data"
    assert finished(run_forked(path, data, ("generate", "filter")))
    for point in CRASH_POINTS:
        assert killed(run_forked(path, data, ("finetune",), crash_at=point)), f"{route}: not killed at {point}"
    assert finished(run_forked(path, data, ("finetune",)))
    jobs = provider_jobs(Store(tmp_path / "provider"))
    assert len(jobs) == CELLS and set(jobs.values()) == {1}, f"{route}: one job per cell expected, got {jobs}"
    assert ledger_states(data) == ["succeeded"] * CELLS


@pytest.mark.parametrize("route", sorted(DEPLOY_CREATES))
def test_one_deployment_per_cell_after_a_kill(tmp_path: Path, server: LocalServer, route: str) -> None:
    path, data = experiment(tmp_path, server, route), tmp_path / "data"
    assert finished(run_forked(path, data, ("generate", "filter", "finetune")))
    assert killed(run_forked(path, data, ("evaluate",), crash_at="deploy:after-create@2"))
    assert finished(run_forked(path, data, ("evaluate",)))
    assert server.stats.by_route.get(DEPLOY_CREATES[route], 0) == CELLS
