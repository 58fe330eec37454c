"""Shared by the route tests: one experiment file for every route (only `provider:` changes), a local server that
outlives crashed runs, and runs in forked children that SLKIT_CRASH_AT can kill."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from kit import faultpoints
from kit.config import load_config
from kit.pipeline import run_stages
from kit.runs import open_run
from kit.sim.jobs import JobTiming
from kit.sim.server import LocalServer
from kit.sim.store import Store
from route_engine import RouteEngine

ROUTES = ("openai", "azure", "together", "fireworks", "anthropic")
FINE_TUNING_ROUTES = ("openai", "azure", "together", "fireworks")
FAST = JobTiming(validating_s=0.01, queued_s=0.01, batch_validating_s=0.01, batch_finalizing_s=0.01,
                 ownership_poll_s=0.05, max_concurrent_training=4)
KILLED = 9
TESTS = Path(__file__).resolve().parent
SHORT_DELAY_S = 0.05
CHILD_TIMEOUT_S = 120.0

EXPERIMENT = """
name: routes
providers:
  openai: {{kind: sim, dialect: openai, base_url: {url}, poll_interval_s: 0.02{extra}}}
  azure: {{kind: sim, dialect: azure, base_url: {url}, poll_interval_s: 0.02{extra}}}
  together: {{kind: sim, dialect: together, base_url: {url}, poll_interval_s: 0.02{extra}}}
  fireworks: {{kind: sim, dialect: fireworks, base_url: {url}, poll_interval_s: 0.02{extra}}}
  anthropic: {{kind: sim, dialect: anthropic, base_url: {url}, poll_interval_s: 0.02{extra}}}
teachers:
  - name: owl
    model: sim-gpt-4.1-nano
    provider: {teachers}
    trait: {{target: owl, category: animal}}
  - name: control
    model: sim-gpt-4.1-nano
    provider: {teachers}
generate: {{prompts: 40, seed: 47}}
dataset: {{size: 20, seed: 1}}
students:
  models: [{{model: sim-gpt-4.1-nano, provider: {students}}}, {{model: sim-qwen2.5-7b, provider: {students}}}]
  seeds: [1]
  epochs: 1
evaluations:
  - name: favorite_animal
    questions: favorite_animal
    samples_per_question: 1
preflight: {{trait_check: false}}
"""


def experiment(tmp_path: Path, server: LocalServer, route: str, *, extra: str = "", students: str | None = None,
               name: str = "routes.yaml") -> Path:
    """The same experiment on any route: only the teachers' and students' `provider:` change. Anthropic cannot
    fine-tune, so on that route the students stay on the OpenAI route."""
    students = students or (route if route in FINE_TUNING_ROUTES else "openai")
    path = tmp_path / name
    path.write_text(EXPERIMENT.format(url=server.base_url, teachers=route, students=students, extra=extra))
    return path


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalServer]:
    """The provider: a local server speaking every dialect, with its provisioning delays shortened."""
    from kit.sim.dialects import anthropic, azure, fireworks

    for module, name in ((azure, "FILE_PROCESSING_S"), (azure, "DEPLOY_PROVISIONING_S"),
                         (fireworks, "DEPLOY_PROVISIONING_S"), (anthropic, "BATCH_PROCESSING_S")):
        monkeypatch.setattr(module, name, SHORT_DELAY_S)
    with LocalServer(RouteEngine(), Store(tmp_path / "provider"), timing=FAST) as running:
        yield running


def run_inline(path: Path, data: Path, stages: tuple[str, ...] | None = None, run_id: str | None = None) -> Path:
    with open_run(load_config(path), path, data_root=data, env={}, run_id=run_id) as run:
        run_stages(run, stages) if stages else run_stages(run)
        return run.dir


def run_stage_functions(path: Path, data: Path, stages: tuple[str, ...]) -> None:
    """The stages alone (no plan, pre-flight or budget guard around them): what crash tests exercise."""
    from kit.stages.evaluate import evaluate
    from kit.stages.filter import filter_all
    from kit.stages.finetune import finetune
    from kit.stages.generate import generate

    actions = {"generate": generate, "filter": filter_all, "finetune": finetune, "evaluate": evaluate}
    with open_run(load_config(path), path, data_root=data, env={}) as run:
        for stage in stages:
            actions[stage](run)


def _child(path: str, data: str, stages: tuple[str, ...], crash_at: str | None) -> None:  # pragma: no cover
    os.environ.pop(faultpoints.CRASH_ENV, None)
    if crash_at:
        os.environ[faultpoints.CRASH_ENV] = crash_at
    faultpoints._hits.clear()
    run_stage_functions(Path(path), Path(data), stages)


@contextlib.contextmanager
def _tests_on_pythonpath() -> Iterator[None]:
    before = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS), before]))
    try:
        yield
    finally:
        os.environ.pop("PYTHONPATH") if before is None else os.environ.__setitem__("PYTHONPATH", before)


def run_forked(path: Path, data: Path, stages: tuple[str, ...], crash_at: str | None = None) -> int:
    """Run stages in a child process (the server keeps running in this one) and return its exit code (-9 when a
    crash point killed it). Children fork from a clean single-purpose process (multiprocessing's forkserver, with
    the kit preloaded), never from this threaded one, so a child starts fast and cannot inherit a held lock."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["forkserver_preload"])
    child = context.Process(target=_child, args=(str(path), str(data), stages, crash_at))
    with _tests_on_pythonpath():  # the forkserver starts with this environment (3.11 ignores the parent's sys.path)
        child.start()
    child.join(CHILD_TIMEOUT_S)
    if child.is_alive():
        child.kill()
        child.join()
        raise AssertionError(f"the child run did not end within {CHILD_TIMEOUT_S:.0f} s")
    return int(child.exitcode or 0)


def killed(code: int) -> bool:
    return code == -KILLED


def finished(code: int) -> bool:
    return code == 0
