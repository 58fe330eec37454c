"""Pre-flight checks: before anything paid starts, the teacher must show its trait, the plan must fit in
max_hours, keys must be present and models usable; the trait check's base answers are the evaluation's own."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import pytest
import yaml

from conftest import slkit
from kit.config import load_config
from kit.errors import BudgetError, ConfigError
from kit.pipeline import run_stages
from kit.plan import estimate_run
from kit.preflight import run_preflight
from kit.runs import Run, open_run
from kit.sim.lab import Lab
from kit.sim.server import LocalServer
from kit.sim.store import Store
from kit.stages import STAGE_ORDER
from test_plan import tiny_experiment

CHATS = "POST /v1/chat/completions"
NEUTRAL = """teachers:
  - name: owl
    model: sim-gpt-4.1-nano
    trait: {target: owl, category: animal, system_prompt: "You are a helpful assistant."}
  - name: control
    model: sim-gpt-4.1-nano
"""


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LocalServer]:
    with LocalServer(Lab(tmp_path / "lab"), Store(tmp_path / "store")) as running:
        yield running


def _chats(server: LocalServer) -> int:
    return server.stats.by_route.get(CHATS, 0)


def _open(path: Path, tmp_path: Path) -> AbstractContextManager[Run]:
    return open_run(load_config(path), path, data_root=tmp_path / "data", env={})


def test_trait_check_passes_for_the_owl_teacher(tmp_path: Path, server: LocalServer) -> None:
    path = tiny_experiment(tmp_path, server.base_url)
    with _open(path, tmp_path) as run:
        checks = run_preflight(run, estimate_run(run), STAGE_ORDER)
        assert run.ledger.stage("preflight")["state"] == "done"
        base_cached = len(run.ledger.samples("evaluate", "favorite_animal/base--sim-gpt-4.1-nano"))
    assert [c.teacher for c in checks] == ["owl"] and checks[0].passed
    assert checks[0].teacher_n == checks[0].base_n == 50
    assert checks[0].teacher_rate > checks[0].base_rate + 0.1
    assert base_cached == 50, "the base model's trait-check answers are stored as the evaluation's first samples"
    assert _chats(server) == 20


def test_trait_check_stops_a_teacher_without_its_trait_before_generation(tmp_path: Path,
                                                                          server: LocalServer) -> None:
    text = tiny_experiment(tmp_path, server.base_url).read_text()
    start, end = text.index("teachers:"), text.index("generate:")
    path = tmp_path / "neutral.yaml"
    path.write_text(text[:start] + NEUTRAL + text[end:])
    with _open(path, tmp_path) as run:
        with pytest.raises(ConfigError, match="teacher 'owl'.*its trait does not show.*preflight.trait_check"):
            run_stages(run)
        assert run.ledger.stage("preflight")["state"] == "failed"
        assert run.ledger.stage("generate") is None
    assert _chats(server) == 20, "only the trait check's own requests were sent"


def test_trait_check_can_be_skipped_and_does_not_rerun_once_paid_work_is_done(tmp_path: Path,
                                                                             server: LocalServer) -> None:
    skipped = tiny_experiment(tmp_path, server.base_url, extra="preflight: {trait_check: false}", name="skip.yaml")
    with _open(skipped, tmp_path) as run:
        assert run_preflight(run, estimate_run(run), STAGE_ORDER) == []
        assert run.ledger.stage("preflight") is None
    assert _chats(server) == 0
    path = tiny_experiment(tmp_path, server.base_url)
    with _open(path, tmp_path) as run:
        run.ledger.set_stage("generate", "running")
        run.ledger.set_stage("generate", "done")
        assert run_preflight(run, estimate_run(run), STAGE_ORDER) == []
        assert run_preflight(run, estimate_run(run), ("report",)) == []
    assert _chats(server) == 0


def test_plan_longer_than_max_hours_stops_before_anything_is_sent(tmp_path: Path, server: LocalServer) -> None:
    path = tiny_experiment(tmp_path, server.base_url, extra="max_hours: 0.000001")
    with _open(path, tmp_path) as run:
        with pytest.raises(BudgetError, match="more than max_hours"):
            run_stages(run)
    assert _chats(server) == 0


def test_missing_key_stops_a_pilot_but_not_a_plan(tmp_path: Path) -> None:
    path = Path(__file__).resolve().parents[1] / "experiments/paper/owl_numbers.yaml"
    env = {"AZURE_OPENAI_API_KEY": ""}
    result = slkit("plan", str(path), "--pilot", "5", "--data-dir", str(tmp_path), env=env)
    assert result.returncode == 2
    assert "needs an API key" in result.stderr and "AZURE_OPENAI_API_KEY" in result.stderr
    assert not (tmp_path / "runs").exists()


def test_shut_down_route_is_refused_with_the_route_that_still_works(tmp_path: Path) -> None:
    source = Path(__file__).resolve().parents[1] / "experiments/paper/owl_numbers.yaml"
    config = yaml.safe_load(source.read_text())
    config["providers"] = {"openai": {"kind": "openai"}}
    path = tmp_path / "owl_openai.yaml"
    path.write_text(yaml.safe_dump(config))
    result = slkit("plan", str(path))
    assert result.returncode == 2
    assert "shut down on openai" in result.stderr and "azure still fine-tunes it" in result.stderr
