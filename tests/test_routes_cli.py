"""`slkit run` end to end through each of the five provider routes against the local server (the routes issue's
Done-when): one experiment file, only `provider:` changed. The five runs go in parallel (each is mostly start-up)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO
from kit.ledger import Ledger
from kit.sim.server import LocalServer
from routes_common import ROUTES, experiment, server  # noqa: F401 (fixture)

CELLS = 4  # 2 teachers x 2 student models x 1 seed
SAMPLES = 2 * 40 + 6 * 50  # teacher completions + evaluation answers (2 base models + 4 students, 50 questions)
DEPLOYING = {"azure": "PUT /subscriptions/{subscription}/resourceGroups/{group}/providers/"
                      "Microsoft.CognitiveServices/accounts/{account}/deployments/{name}",
             "fireworks": "POST /fireworks/v1/accounts/{account}/deployments"}
JOB_CREATES = {"openai": "POST /v1/fine_tuning/jobs", "azure": "POST /openai/fine_tuning/jobs",
               "together": "POST /together/v1/fine-tunes",
               "fireworks": "POST /fireworks/v1/accounts/{account}/supervisedFineTuningJobs"}
CHATS = {"openai": "POST /v1/chat/completions", "azure": "POST /openai/deployments/{deployment}/chat/completions",
         "together": "POST /together/v1/chat/completions", "fireworks": "POST /fireworks/inference/v1/chat/completions",
         "anthropic": "POST /anthropic/v1/messages"}


def students_of(route: str) -> str:
    return route if route in JOB_CREATES else "openai"  # Anthropic cannot fine-tune: students stay on OpenAI


def _check_ledger(run_dir: Path, route: str) -> None:
    ledger = Ledger.open(run_dir)
    try:
        jobs, deployments = ledger.jobs(), ledger.deployments()
        assert [j.state for j in jobs] == ["succeeded"] * CELLS and {j.provider for j in jobs} == {students_of(route)}
        assert ledger.sample_count() == SAMPLES
        assert [d.state for d in deployments] == (["deleted"] * CELLS if students_of(route) in DEPLOYING else [])
        assert {s["name"]: s["state"] for s in ledger.stages()} == {
            "generate": "done", "filter": "done", "finetune": "done", "evaluate": "done", "report": "done"}
    finally:
        ledger.close()


@pytest.mark.slow
def test_slkit_run_on_every_route(tmp_path: Path, server: LocalServer) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
    env.pop("SLKIT_CRASH_AT", None)
    runs = {}
    for route in ROUTES:
        (tmp_path / route).mkdir()
        command = [sys.executable, "-m", "kit", "run", str(experiment(tmp_path / route, server, route)),
                   "--data-dir", str(tmp_path / route / "data"), "-q"]
        runs[route] = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                       text=True)
    outputs = {route: process.communicate(timeout=300) for route, process in runs.items()}
    for route, (out, err) in outputs.items():
        assert runs[route].returncode == 0, f"{route}: {err}"
        _check_ledger(Path(out.strip().splitlines()[-1].removeprefix("run folder: ")), route)
    routes = server.stats.by_route
    for route in ROUTES:
        assert routes.get(CHATS[route], 0) >= 2 * 40, route
    assert routes.get(JOB_CREATES["openai"], 0) == 2 * CELLS  # the openai and anthropic runs' students
    for route in ("azure", "together", "fireworks"):
        assert routes.get(JOB_CREATES[route], 0) == CELLS, route
    for route, path in DEPLOYING.items():
        assert routes.get(path, 0) == CELLS, route
