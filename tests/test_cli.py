"""The real command line in subprocesses: bad input, crash and resume, secrets."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from conftest import slkit, small_experiment
from kit.errors import EXIT_USAGE

SENTINEL = "sentinel-key-ZZqv81xT0kWj4Rm2pA7"  # a fake key whose leaks the test hunts for


def one_line_error(result) -> str:
    assert result.returncode == EXIT_USAGE, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


@pytest.mark.parametrize(("text", "expected"), [
    ("name: [unclosed\n", "malformed YAML"),
    ("name: x\nbogus: 1\n", "unknown key 'bogus'"),
])
def test_malformed_input_is_one_line_and_writes_nothing(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    line = one_line_error(slkit("run", str(path), "--data-dir", str(tmp_path / "data")))
    assert expected in line
    assert not (tmp_path / "data").exists()


def test_unknown_model_and_missing_key_are_refused_before_anything_is_written(tmp_path: Path) -> None:
    path = small_experiment(tmp_path)
    path.write_text(path.read_text().replace("model: sim-qwen2.5-7b", "model: sim-llama-9"))
    assert "unknown model 'sim-llama-9'" in one_line_error(slkit("run", str(path), "--data-dir", str(tmp_path / "d")))
    keyed = small_experiment(tmp_path, "    api_key_env: SLKIT_TEST_ABSENT_KEY", name="keyed.yaml")
    line = one_line_error(slkit("run", str(keyed), "--data-dir", str(tmp_path / "d")))
    assert "SLKIT_TEST_ABSENT_KEY" in line
    assert not (tmp_path / "d").exists()


def test_unwritable_data_dir(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    line = one_line_error(slkit("run", str(small_experiment(tmp_path)), "--data-dir", str(blocker / "data")))
    assert "cannot write" in line


def test_corrupt_ledger_is_reported(tmp_path: Path) -> None:
    path = small_experiment(tmp_path)
    data = tmp_path / "data"
    result = slkit("plan", str(path), "--json")
    assert result.returncode == 0, result.stderr
    run_root = data / "runs" / "small"
    run_root.mkdir(parents=True)
    from kit.config import load_config
    run_dir = run_root / load_config(path).fingerprint()[:12]
    run_dir.mkdir()
    (run_dir / "ledger.sqlite").write_bytes(b"garbage" * 1000)
    assert "not a readable ledger" in one_line_error(slkit("run", str(path), "--data-dir", str(data)))


def _jobs_in_store(data: Path) -> list[dict]:
    jobs = (json.loads(p.read_text()) for p in (data / "sim" / "server" / "jobs").glob("ftjob-*.json"))
    return [job for job in jobs if isinstance(job, dict) and job.get("object") == "fine_tuning.job"]


@pytest.mark.slow
def test_killed_runs_resume_to_the_same_results_with_one_job_per_cell(tmp_path: Path) -> None:
    path = small_experiment(tmp_path)
    reference = slkit("run", str(path), "--data-dir", str(tmp_path / "ref"), "-q")
    assert reference.returncode == 0, reference.stderr
    data = tmp_path / "crashy"
    for point in ("generate:stored@30", "finetune:after-intent", "finetune:after-create", "finetune:polling",
                  "evaluate:stored@7"):
        killed = slkit("run", str(path), "--data-dir", str(data), "-q", env={"SLKIT_CRASH_AT": point})
        assert killed.returncode == -9, f"{point}: the process was expected to be killed ({killed.stderr[-500:]})"
    final = slkit("run", str(path), "--data-dir", str(data), "-q")
    assert final.returncode == 0, final.stderr
    ref_dir = next((tmp_path / "ref" / "runs" / "small").iterdir())
    run_dir = next((data / "runs" / "small").iterdir())
    assert (run_dir / "results.csv").read_text() == (ref_dir / "results.csv").read_text()
    cells = [job.get("metadata", {}).get("slkit_cell") for job in _jobs_in_store(data)]
    assert len(cells) == 4 and len(set(cells)) == 4, f"one job per cell expected, got {cells}"


@pytest.mark.slow
def test_no_secret_reaches_files_or_output(tmp_path: Path) -> None:
    path = small_experiment(tmp_path, "    api_key_env: SLKIT_SENTINEL_KEY")
    data = tmp_path / "data"
    result = slkit("run", str(path), "--data-dir", str(data), env={"SLKIT_SENTINEL_KEY": SENTINEL})
    assert result.returncode == 0, result.stderr
    assert SENTINEL not in result.stdout + result.stderr
    for file in data.rglob("*"):
        if file.is_file():
            assert SENTINEL.encode() not in file.read_bytes(), f"the key leaked into {file}"
    status = slkit("status", str(next((data / "runs" / "small").iterdir())))
    assert status.returncode == 0 and "succeeded" in status.stdout
    assert os.environ.get("SLKIT_SENTINEL_KEY") is None
