"""The budget guard: no stage or job starts whose estimate would take spend past the run's budget.

Spend counts what the ledger has billed (usage rows from `usage` and `trained_tokens`) plus what is committed but
not billed yet: fine-tuning jobs created (or about to be) whose training tokens have not been reported.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from kit.errors import BudgetError, LedgerError
from kit.ledger import LEDGER_FILE, JobRecord, Ledger

if TYPE_CHECKING:
    from kit.plan import PlanEstimate, StageEstimate
    from kit.runs import Run

COMMITTED_STATES = ("intent", "created")
ESTIMATE_META = "estimate"             # the plan stored when the run first started (JSON of PlanEstimate.to_dict)
LATEST_ESTIMATE_META = "estimate_latest"  # the plan of the latest start (refined by what the ledger holds)
AUTO_EPOCHS = 10
EPSILON_USD = 1e-9


def _training_path(run: Run, cell: str) -> Path | None:
    from kit.stages.common import cells, teacher_cell

    for teacher in run.config.teachers:
        if teacher_cell(teacher) == cell:
            return run.path("teachers", teacher.name, "trait_train.jsonl")
    for c in cells(run.config):
        if c.id == cell:
            return run.path("teachers", c.teacher.name, "train.jsonl")
    return None


def job_cost_usd(run: Run, record: JobRecord) -> float:
    """The estimated bill of a created job not yet finished: its training file's tokens x epochs at its price."""
    from kit.plan import training_file_tokens
    from kit.tokens import training_cost_usd

    path = _training_path(run, record.cell)
    tokens = training_file_tokens(path) if path is not None else None
    if tokens is None:
        return 0.0
    epochs = record.hyperparameters.get("n_epochs")
    return training_cost_usd(run.catalog.get(record.base_model).prices,
                             tokens * (epochs if isinstance(epochs, int) else AUTO_EPOCHS))


def committed_usd(run: Run) -> float:
    """Dollars of jobs created (or whose creation is under way) that the provider has not billed yet."""
    return sum(job_cost_usd(run, r) for r in run.ledger.jobs()
               if r.state in COMMITTED_STATES and not r.trained_tokens)


def spent_usd(run: Run) -> float:
    """Billed spend plus committed spend."""
    return run.ledger.usage().usd + committed_usd(run)


def ensure_within_budget(run: Run, *, estimate_usd: float, what: str) -> None:
    """Raise BudgetError (nothing started) when spent + committed + estimate exceeds the budget."""
    if run.budget_usd is None or estimate_usd <= 0:
        return
    spent = spent_usd(run)
    if spent + estimate_usd > run.budget_usd + EPSILON_USD:
        raise BudgetError(
            f"{what} is estimated at up to ${estimate_usd:,.2f}; with ${spent:,.2f} already spent or committed that "
            f"passes the budget of ${run.budget_usd:,.2f}: raise budget_usd (or --budget) or shrink the experiment; "
            "nothing was started")


def ensure_stage_within_budget(run: Run, stage: StageEstimate) -> None:
    """Before a stage: the high end of what is left of its estimate must fit (jobs are checked again one by one)."""
    ensure_within_budget(run, estimate_usd=stage.left_usd_high, what=f"stage '{stage.stage}'")


def ensure_time_allowed(plan: PlanEstimate) -> None:
    """Raise BudgetError when the plan takes longer under the providers' quotas than `max_hours` allows."""
    if plan.max_hours is None or plan.total_hours <= plan.max_hours:
        return
    slowest = max(plan.stages, key=lambda s: s.hours)
    raise BudgetError(
        f"the plan needs ~{plan.total_hours:,.1f} h under the providers' quotas (mostly '{slowest.stage}', "
        f"~{slowest.hours:,.1f} h), more than max_hours {plan.max_hours:g}: raise max_hours, spread fine-tuning "
        "over more accounts, or shrink the experiment; nothing was started")


def store_estimate(run: Run, plan: PlanEstimate) -> None:
    """Keep the first estimate of the run (for estimate-vs-actual reports) and the latest one."""
    text = json.dumps(plan.to_dict(), sort_keys=True)
    run.ledger.meta_default(ESTIMATE_META, text)
    run.ledger.set_meta(LATEST_ESTIMATE_META, text)


@dataclass(frozen=True)
class SpendSummary:
    spent_usd: float
    committed_usd: float
    estimate_usd: float | None
    estimate_usd_high: float | None
    budget_usd: float | None
    by_stage: dict[str, float]


def spend_summary(run_dir: Path) -> SpendSummary:
    """Billed spend by stage, the start estimate and the budget of a run, read from its ledger (read-only)."""
    from kit.plan import open_ledger_readonly

    ledger = open_ledger_readonly(run_dir)
    if ledger is None:
        raise LedgerError(f"{run_dir} has no readable {LEDGER_FILE}: give a run folder such as "
                          "data/runs/<experiment>/<run-id>")
    try:
        stored = ledger.meta(ESTIMATE_META)
        plan = json.loads(stored) if stored else {}
        open_cells = _open_cells(ledger)
        committed = sum(line["usd"] for line in plan.get("lines", [])
                        if line.get("jobs") and line.get("cell") in open_cells)
        return SpendSummary(spent_usd=ledger.usage().usd, committed_usd=committed,
                            estimate_usd=plan.get("total_usd"), estimate_usd_high=plan.get("total_usd_high"),
                            budget_usd=plan.get("budget_usd"),
                            by_stage={name: totals.usd for name, totals in ledger.usage_by_stage().items()})
    finally:
        ledger.close()


def _open_cells(ledger: Ledger) -> set[str]:
    return {r.cell for r in ledger.jobs() if r.state in COMMITTED_STATES and not r.trained_tokens}
