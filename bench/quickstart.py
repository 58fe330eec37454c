"""Time the offline quickstart end to end, as a user runs it, on a fresh data folder; then time the rerun.

    python bench/quickstart.py [--experiment experiments/quickstart.yaml] [--keep DIR]

Prints wall times of the first run (everything: generation, fine-tuning, evaluation, report) and of the rerun
(which must send nothing), plus the per-stage seconds recorded in the ledger.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def timed_run(experiment: Path, data_dir: Path) -> float:
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "kit", "run", str(experiment), "--data-dir", str(data_dir), "-q"],
                            cwd=REPO, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"the run failed ({result.returncode}):\n{result.stderr[-2000:]}")
    return elapsed


def stage_seconds(run_dir: Path) -> dict[str, float]:
    conn = sqlite3.connect(run_dir / "ledger.sqlite")
    rows = conn.execute("SELECT name, started_at, finished_at FROM stages ORDER BY started_at").fetchall()
    return {name: round(end - start, 1) for name, start, end in rows if start and end}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", type=Path, default=REPO / "experiments" / "quickstart.yaml")
    parser.add_argument("--keep", type=Path, help="data folder to use and keep (default: a temporary one)")
    args = parser.parse_args()
    data_dir = args.keep or Path(tempfile.mkdtemp(prefix="slkit-bench-"))
    first = timed_run(args.experiment, data_dir)
    run_dir = next((data_dir / "runs").glob("*/*"))
    stages = stage_seconds(run_dir)
    samples_before = sqlite3.connect(run_dir / "ledger.sqlite").execute("SELECT COUNT(*) FROM samples").fetchone()[0]
    second = timed_run(args.experiment, data_dir)
    samples_after = sqlite3.connect(run_dir / "ledger.sqlite").execute("SELECT COUNT(*) FROM samples").fetchone()[0]
    print(json.dumps({"experiment": str(args.experiment.relative_to(REPO) if args.experiment.is_relative_to(REPO)
                                        else args.experiment),
                      "first_run_wall_s": round(first, 1), "rerun_wall_s": round(second, 1),
                      "stage_seconds": stages, "samples": samples_before,
                      "samples_added_by_rerun": samples_after - samples_before, "run_dir": str(run_dir)}, indent=2))


if __name__ == "__main__":
    main()
