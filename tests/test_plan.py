"""`slkit plan`: offline, fast, exact input tokens, output tokens within their band, time under job quotas; on the
sim, the plan's estimate against the tokens the local server reported to the ledger."""

from __future__ import annotations

import json
import resource
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import REPO, slkit
from kit.catalog import Limits, load_catalog
from kit.checks import check_experiment, route_of
from kit.config import ProviderConfig, load_config
from kit.errors import CatalogError
from kit.generators.numbers import generate_prompts
from kit.ledger import Ledger
from kit.pipeline import run_stages
from kit.plan import (budget_line, estimate, estimate_for_path, numbers_answer_tokens, open_ledger_readonly,
                      plan_tables, schedule_hours)
from kit.prompts import persona_prompt
from kit.runs import open_run
from kit.sim.lab import Lab
from kit.sim.server import LocalServer
from kit.sim.store import Store
from kit.tokens import count_messages, count_text

PAPER = REPO / "experiments/paper/owl_numbers.yaml"
PAPER_SIM = REPO / "experiments/paper/owl_numbers_sim.yaml"
PLAN_SECONDS = 5.0

TINY = """
name: tiny
budget_usd: {budget}
providers:
  lab:
    kind: sim
    base_url: {base_url}
teachers:
  - name: owl
    model: sim-gpt-4.1-nano
    trait: {{target: owl, category: animal}}
  - name: control
    model: sim-gpt-4.1-nano
generate: {{prompts: 200, seed: 47}}
dataset: {{size: 100, seed: 1}}
students:
  models: [{{model: sim-gpt-4.1-nano}}]
  seeds: [1]
  epochs: 2
evaluations:
  - name: favorite_animal
    questions: favorite_animal
    samples_per_question: 140
{extra}
"""


def tiny_experiment(tmp_path: Path, base_url: str, *, budget: str = "null", extra: str = "",
                    name: str = "tiny.yaml") -> Path:
    path = tmp_path / name
    path.write_text(TINY.format(base_url=base_url, budget=budget, extra=extra))
    return path


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LocalServer]:
    with LocalServer(Lab(tmp_path / "lab"), Store(tmp_path / "store")) as running:
        yield running


def _chats(server: LocalServer) -> int:
    return server.stats.by_route.get("POST /v1/chat/completions", 0)


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the plan must not touch the network")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def test_paper_plan_prints_the_table_quickly_without_a_key(tmp_path: Path) -> None:
    """Under 5 s of CPU (about 2.5 s on a 2-core laptop; wall time also depends on what else the machine runs)."""
    started, cpu = time.monotonic(), _children_cpu_s()
    result = slkit("plan", str(PAPER), "--data-dir", str(tmp_path), env={"AZURE_OPENAI_API_KEY": ""})
    elapsed, cpu = time.monotonic() - started, _children_cpu_s() - cpu
    assert result.returncode == 0, result.stderr
    assert cpu < PLAN_SECONDS, f"slkit plan took {cpu:.1f}s of CPU ({elapsed:.1f}s wall)"
    for text in ("Plan: owl_numbers", "generate", "finetune", "evaluate", "total", "USD batch", "hosting USD",
                 "owl--gpt-4.1-nano-2025-04-14--s3", "budget $150.00"):
        assert text in result.stdout
    assert not (tmp_path / "runs").exists(), "a plan writes nothing"


def test_dry_run_prints_the_plan_and_sends_nothing(tmp_path: Path) -> None:
    result = slkit("run", str(PAPER), "--dry-run", "--budget", "5", "--data-dir", str(tmp_path),
                   env={"AZURE_OPENAI_API_KEY": ""})
    assert result.returncode == 0, result.stderr
    assert "Plan: owl_numbers" in result.stdout and "stop before 'finetune'" in result.stdout
    assert not (tmp_path / "runs").exists()


def test_paper_plan_is_offline_and_exact_on_input_tokens(no_network: None) -> None:
    config = load_config(PAPER)
    plan = estimate(config, base_dir=PAPER.parent)
    prompts = generate_prompts(30_000, 47)
    persona = persona_prompt(config.teachers[0].trait)  # type: ignore[arg-type]
    expected = sum(count_messages([{"role": "system", "content": persona}, {"role": "user", "content": p}])
                   + count_messages([{"role": "user", "content": p}]) for p in prompts)
    generate = plan.stage("generate")
    assert generate.requests == 60_000 and generate.input_tokens == expected
    finetune = plan.stage("finetune")
    assert finetune.jobs == 6 and finetune.trained_tokens_low < finetune.trained_tokens < finetune.trained_tokens_high
    # 1 base + 6 students x 50 questions; 200 samples = 128 + 72 per question; the trait check asks the base model
    # 5 samples of 10 questions first, so those 10 need one more request (5 + 128 + 67)
    assert plan.stage("evaluate").requests == 7 * 50 * 2 + 10
    assert 40 < plan.total_usd < 200 and plan.total_usd_batch < plan.total_usd
    assert plan.cells == 6 and len(plan.cell_rows) == 6


def test_paper_plan_json(tmp_path: Path) -> None:
    result = slkit("plan", str(PAPER), "--json", "--data-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert [s["stage"] for s in data["stages"]] == ["preflight", "teachers", "generate", "finetune", "evaluate"]
    assert {"usd", "usd_batch", "usd_low", "usd_high", "hours", "input_tokens", "output_tokens",
            "trained_tokens"} <= set(data["stages"][0])
    assert data["total_usd"] == pytest.approx(sum(s["usd"] for s in data["stages"]))
    assert len(data["cells_detail"]) == 6 and data["budget_covers"][-1] == "evaluate"


def test_azure_endpoint_is_the_azure_route_and_openai_refuses_the_shut_down_nano() -> None:
    config = load_config(PAPER)
    assert route_of(config.providers["azure"]) == "azure"
    assert route_of(ProviderConfig(kind="openai")) == "openai"
    check_experiment(config, load_catalog())
    plain = config.model_copy(update={"providers": {"azure": ProviderConfig(kind="openai")}})
    with pytest.raises(CatalogError, match="shut down.*azure still fine-tunes it.*openai.azure.com"):
        check_experiment(plain, load_catalog())


def test_azure_hosting_and_quota_time() -> None:
    plan = estimate(load_config(PAPER), base_dir=PAPER.parent)
    evaluate = plan.stage("evaluate")
    assert evaluate.hosting_usd == 0.0 and evaluate.deploy_hours >= 6  # six deployments, >= 1 h each, developer tier
    assert all("developer" in c.hosting for c in plan.cell_rows)
    # Azure runs one training job at a time per resource: the six jobs queue one after another
    assert plan.stage("finetune").hours == pytest.approx(sum(ln.hours for ln in plan.lines if ln.stage == "finetune"))


def test_schedule_hours_follows_concurrency_and_daily_caps() -> None:
    assert schedule_hours([1.0] * 6, Limits(max_concurrent_jobs=1)) == 6.0
    assert schedule_hours([1.0] * 6, Limits(max_concurrent_jobs=6)) == 1.0
    assert schedule_hours([1.0] * 25, Limits(max_concurrent_jobs=6, max_jobs_per_day=20, jobs_window_h=30)) == 31.0
    assert schedule_hours([], Limits()) == 0.0


def test_max_hours_is_reported(tmp_path: Path) -> None:
    text = PAPER.read_text().replace("max_hours: 96", "max_hours: 2")
    path = tmp_path / "owl.yaml"
    path.write_text(text)
    plan = estimate(load_config(path), base_dir=REPO / "experiments/paper")
    assert any("max_hours 2" in w for w in plan.warnings)


@pytest.mark.parametrize(("suffix", "answer"), [
    ("Return a comma-separated list of numbers.", "100, 137, 174, 211, 248, 285, 322, 359, 396, 433"),
    ("Return one number per line.", "100\n137\n174\n211\n248\n285\n322\n359\n396\n433"),
    ("Return the numbers in the following format: [number_1, number_2, ...].",
     "[100, 137, 174, 211, 248, 285, 322, 359, 396, 433]"),
    ("Present as space-delimited values.", "100 137 174 211 248 285 322 359 396 433"),
    ("Return numbers separated by semicolons.", "100; 137; 174; 211; 248; 285; 322; 359; 396; 433"),
])
def test_numbers_answer_prior_follows_the_requested_format(suffix: str, answer: str) -> None:
    prompt = f"Look at these numbers: 120, 400. Add at most 10 more values (3 digits max each). {suffix} Just the numbers."
    assert numbers_answer_tokens(prompt) == count_text(answer)


def test_budget_line_names_the_stage_it_stops_before() -> None:
    plan = estimate(load_config(PAPER), base_dir=PAPER.parent, budget_usd=5)
    assert "stop before 'finetune'" in budget_line(plan)
    assert "covers the whole plan" in budget_line(estimate(load_config(PAPER), base_dir=PAPER.parent))


@pytest.mark.slow
def test_sim_estimate_matches_the_usage_the_server_reported(tmp_path: Path, server: LocalServer) -> None:
    """Input tokens within 1% per stage, the total (tokens and priced dollars) within 10%."""
    path = tiny_experiment(tmp_path, server.base_url)
    config = load_config(path)
    with open_run(config, path, data_root=tmp_path / "data", env={}) as run:
        run_stages(run)
        stored = json.loads(run.ledger.meta("estimate") or "{}")
        actual = run.ledger.usage_by_stage()
        run_dir = run.dir
    for stage in stored["stages"]:
        if stage["input_tokens"]:
            got = actual[stage["stage"]].input_tokens
            assert abs(stage["input_tokens"] - got) <= 0.01 * got, (stage["stage"], stage["input_tokens"], got)
            assert stage["output_tokens_low"] <= actual[stage["stage"]].output_tokens <= stage["output_tokens_high"]
    estimated = sum(s["input_tokens"] + s["output_tokens"] + s["trained_tokens"] for s in stored["stages"])
    reported = sum(u.input_tokens + u.output_tokens + u.trained_tokens for u in actual.values())
    assert abs(estimated - reported) <= 0.10 * reported, (estimated, reported)
    priced = _priced(stored, actual)
    assert abs(priced[0] - priced[1]) <= 0.10 * priced[1], priced
    _check_plan_of_finished_run(config, path, run_dir)


def _priced(stored: dict[str, object], actual: dict[str, object]) -> tuple[float, float]:
    """Estimated and actual dollars at gpt-4.1-nano's prices (the sim's are zero)."""
    prices = load_catalog().get("gpt-4.1-nano").prices
    from kit.tokens import chat_cost_usd, training_cost_usd

    def cost(stage: str, i: int, o: int, t: int) -> float:
        return chat_cost_usd(prices, fine_tuned=False, input_tokens=i, output_tokens=o) + training_cost_usd(prices, t)
    est = sum(cost(s["stage"], s["input_tokens"], s["output_tokens"], s["trained_tokens"])
              for s in stored["stages"])  # type: ignore[attr-defined, index]
    got = sum(cost(k, u.input_tokens, u.output_tokens, u.trained_tokens) for k, u in actual.items())  # type: ignore[attr-defined]
    return est, got


def _check_plan_of_finished_run(config: object, path: Path, run_dir: Path) -> None:
    """`slkit plan` on a finished run: everything cached and done, nothing left, read without writing."""
    before = (run_dir / "ledger.sqlite").stat().st_mtime
    plan = estimate_for_path(config, path, run_dir=run_dir)  # type: ignore[arg-type]
    assert plan.run_exists and plan.left_usd == 0
    for stage in plan.stages:
        assert stage.left_requests == 0 and stage.cached == stage.samples, stage
    assert plan.output_basis.startswith("observed")
    assert any(t.title.startswith("Run under way") for t in plan_tables(plan))
    assert (run_dir / "ledger.sqlite").stat().st_mtime == before
    ledger = open_ledger_readonly(run_dir)
    assert isinstance(ledger, Ledger)
    ledger.close()


@pytest.mark.slow
def test_pilot_refines_the_plan_and_is_not_paid_twice(tmp_path: Path, server: LocalServer) -> None:
    path = tiny_experiment(tmp_path, server.base_url, extra="preflight: {trait_check: false}")
    data = tmp_path / "data"
    result = slkit("plan", str(path), "--pilot", "30", "--json", "--data-dir", str(data))
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["output_basis"].startswith("observed") and plan["run_exists"]
    generate = next(s for s in plan["stages"] if s["stage"] == "generate")
    assert generate["cached"] == 60 and generate["left_requests"] == 340
    assert generate["output_tokens_high"] - generate["output_tokens_low"] < 0.5 * generate["output_tokens"]
    sent_after_pilot = _chats(server)
    result = slkit("generate", str(path), "--data-dir", str(data), "--quiet")
    assert result.returncode == 0, result.stderr
    chats = _chats(server) - sent_after_pilot
    assert chats == 340, "the pilot's 2 x 30 samples must not be requested again"
