"""What a run has done, is doing and has left, read from its ledger (never creates anything)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kit.errors import LedgerError
from kit.ledger import LEDGER_FILE, JobRecord, Ledger, UsageTotals


@dataclass(frozen=True)
class RunStatus:
    stages: list[dict[str, Any]]
    jobs: list[JobRecord]
    samples: int
    usage: UsageTotals
    usage_by_stage: dict[str, UsageTotals]


def run_status(run_dir: Path) -> RunStatus:
    if not (run_dir / LEDGER_FILE).is_file():
        raise LedgerError(f"{run_dir} has no {LEDGER_FILE}: give a run folder such as data/runs/<experiment>/<run-id>")
    ledger = Ledger.open(run_dir)
    try:
        stages = [{"name": r["name"], "state": r["state"],
                   "seconds": (r["finished_at"] - r["started_at"]) if r["finished_at"] and r["started_at"] else None}
                  for r in ledger.stages()]
        return RunStatus(stages=stages, jobs=ledger.jobs(), samples=ledger.sample_count(), usage=ledger.usage(),
                         usage_by_stage=ledger.usage_by_stage())
    finally:
        ledger.close()
