"""The whole pipeline in-process, against a local server we can count requests on."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from conftest import small_experiment
from kit.config import load_config
from kit.pipeline import run_stages
from kit.runs import open_run
from kit.sim.faults import FaultConfig
from kit.sim.lab import Lab
from kit.sim.server import LocalServer
from kit.sim.store import Store

pytestmark = pytest.mark.slow


def run_experiment(path: Path, data_root: Path) -> tuple[Path, pd.DataFrame]:
    config = load_config(path)
    with open_run(config, path, data_root=data_root, env={}) as run:
        outcome = run_stages(run)
        return run.dir, outcome.report["results"]


def served(tmp_path: Path, faults: FaultConfig | None = None) -> LocalServer:
    return LocalServer(Lab(tmp_path / "lab"), Store(tmp_path / f"store-{id(faults)}"), faults=faults)


def test_run_writes_every_output_and_a_rerun_sends_nothing(tmp_path: Path) -> None:
    with served(tmp_path) as server:
        path = small_experiment(tmp_path, f"    base_url: {server.base_url}")
        run_dir, results = run_experiment(path, tmp_path / "data")
        sent = server.stats.requests_total
        again_dir, again = run_experiment(path, tmp_path / "data")
        assert server.stats.requests_total == sent, "a finished run must send nothing when run again"
    assert again_dir == run_dir
    pd.testing.assert_frame_equal(results, again)

    raw = (run_dir / "teachers/owl/raw.jsonl").read_text().splitlines()
    assert len(raw) == 240 and {"prompt", "completion", "item", "sample"} <= set(json.loads(raw[0]))
    train = [json.loads(line) for line in (run_dir / "teachers/owl/train.jsonl").read_text().splitlines()]
    assert len(train) == 150
    assert [m["role"] for m in train[0]["messages"]] == ["user", "assistant"]  # no system message in training data
    # 2 base models + 2 teachers x 2 students x 1 seed, one target (owl)
    assert len(results) == 6 and set(results.target) == {"owl"} and (results.n == 200).all()
    assert set(results.condition) == {"base", "owl", "control"}
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["config"]["name"] == "small" and manifest["kit_version"]
    assert {"generate", "filter", "finetune", "evaluate", "report"} <= set(manifest["stages"])
    assert (run_dir / "results.csv").read_text().startswith("evaluation,student_model,condition")


def test_injected_faults_do_not_change_results(tmp_path: Path) -> None:
    with served(tmp_path) as server:
        clean = small_experiment(tmp_path, f"    base_url: {server.base_url}", name="clean.yaml")
        _, expected = run_experiment(clean, tmp_path / "clean")
    faults = FaultConfig(rate_429=0.1, rate_500=0.1, retry_after_s=0.01, seed=3)
    with served(tmp_path, faults) as flaky:
        path = small_experiment(tmp_path, f"    base_url: {flaky.base_url}\n    max_attempts: 30", name="flaky.yaml")
        _, got = run_experiment(path, tmp_path / "flaky")
        injected = flaky.stats.faults_total
    assert injected > 20, "the faults must actually have been exercised"
    pd.testing.assert_frame_equal(expected, got)
