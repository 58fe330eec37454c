"""Generation and evaluation through Batch APIs (OpenAI, Azure OpenAI, Anthropic): samples land under the keys live
sampling uses, batches are created at most once across kills, and are billed at the batch discount."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kit.config import load_config
from kit.ledger import Ledger
from kit.runs import open_run
from kit.sampling import plan_requests, sample_key
from kit.sim.server import LocalServer
from kit.stages.generate import _spec
from kit.stages.common import teacher_messages
from kit.generators.numbers import generate_prompts
from kit.sampling import Prompt
from routes_common import experiment, finished, killed, run_forked, run_inline, server  # noqa: F401

BATCH_ROUTES = ("openai", "azure", "anthropic")
BATCH_CREATES = {"openai": "POST /v1/batches", "azure": "POST /openai/batches",
                 "anthropic": "POST /anthropic/v1/messages/batches"}
TEACHERS, PROMPTS = 2, 40
CRASH_POINTS = ("batch:after-intent", "batch:after-create", "batch:polling")


def _ledger(data: Path) -> Ledger:
    (run_dir,) = list((data / "runs" / "routes").iterdir())
    return Ledger.open(run_dir)


@pytest.mark.parametrize("route", BATCH_ROUTES)
def test_batches_survive_kills_and_are_created_once(tmp_path: Path, server: LocalServer, route: str) -> None:
    path, data = experiment(tmp_path, server, route, extra=", batch: true"), tmp_path / "data"
    for point in CRASH_POINTS:
        assert killed(run_forked(path, data, ("generate",), crash_at=point)), f"{route}: not killed at {point}"
    assert finished(run_forked(path, data, ("generate",)))
    assert server.stats.by_route.get(BATCH_CREATES[route], 0) == TEACHERS
    ledger = _ledger(data)
    try:
        assert ledger.sample_count() == TEACHERS * PROMPTS
        assert {b.state for b in ledger.batches()} <= {"done", "failed"}
        assert sum(b.state == "done" for b in ledger.batches()) == TEACHERS
    finally:
        ledger.close()


def test_batch_samples_use_the_live_cache_keys(tmp_path: Path, server: LocalServer) -> None:
    path, data = experiment(tmp_path, server, "openai", extra=", batch: true"), tmp_path / "data"
    run_inline(path, data, ("generate",))
    config = load_config(path)
    with open_run(config, path, data_root=data, env={}) as run:
        for teacher in config.teachers:
            prompts = [Prompt(i, teacher_messages(teacher, text))
                       for i, text in enumerate(generate_prompts(PROMPTS, 47))]
            live = plan_requests(_spec(run, teacher), prompts, set(), 128)
            expected = {sample_key(r.fingerprint, r.start + j) for r in live for j in range(r.count)}
            stored = run.ledger.samples("generate", teacher.name)
            assert set(stored) == expected
        rows = run.ledger._query("SELECT request FROM samples LIMIT 5")
        assert all(json.loads(r["request"]).get("batch") is True for r in rows)
    assert server.stats.by_route.get("POST /v1/chat/completions", 0) == 0


def test_the_batch_discount_is_billed(tmp_path: Path, server: LocalServer, monkeypatch: pytest.MonkeyPatch) -> None:
    from test_budget import SIM_PRICES  # a catalogue in which the sim models cost money

    import yaml

    from kit.catalog import CATALOG_ENV

    packaged = Path(__file__).resolve().parents[1] / "kit/catalog/models.yaml"
    catalog = yaml.safe_load(packaged.read_text())
    for model in catalog["models"]:
        if model["id"].startswith("sim-"):
            model["prices"] = dict(SIM_PRICES)
    priced = tmp_path / "priced.yaml"
    priced.write_text(yaml.safe_dump(catalog))
    monkeypatch.setenv(CATALOG_ENV, str(priced))
    live, batched = tmp_path / "live", tmp_path / "batched"
    (live / "x").mkdir(parents=True)
    (batched / "x").mkdir(parents=True)
    run_inline(experiment(live / "x", server, "openai"), live, ("generate",))
    run_inline(experiment(batched / "x", server, "openai", extra=", batch: true"), batched, ("generate",))
    spent = []
    for data in (live, batched):
        ledger = _ledger(data)
        spent.append(ledger.usage("generate"))
        ledger.close()
    assert spent[1].input_tokens == spent[0].input_tokens > 0
    assert spent[1].usd == pytest.approx(spent[0].usd * 0.5, rel=0.05)
