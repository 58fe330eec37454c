"""The whole experiment, stage by stage, each guarded by the budget and skipped where already complete."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kit.budget import ensure_stage_within_budget, store_estimate
from kit.plan import PlanEstimate, estimate_run
from kit.preflight import run_preflight
from kit.runs import Run
from kit.stages import STAGE_ORDER
from kit.stages.evaluate import evaluate
from kit.stages.filter import filter_all
from kit.stages.finetune import finetune
from kit.stages.generate import generate
from kit.stages.report import report
from kit.stages.teachers import train_teachers


@dataclass(frozen=True)
class RunOutcome:
    run_dir: str
    report: dict[str, Any]


def _guard(run: Run, plan: PlanEstimate, name: str) -> None:
    """Before a paid stage: the high end of what is left of its estimate, re-estimated from the ledger now, must
    fit in the budget with what is spent and committed (jobs are also checked one by one)."""
    if name not in {s.stage for s in plan.stages} or run.budget_usd is None:
        return
    ensure_stage_within_budget(run, estimate_run(run).stage(name))


def run_stages(run: Run, stages: tuple[str, ...] = STAGE_ORDER, *, retry_failed: bool = False) -> RunOutcome:
    """Run the named stages in pipeline order. Every stage resumes from the ledger."""
    plan = estimate_run(run)
    if run_preflight(run, plan, stages):
        plan = estimate_run(run)  # refined by the trait check's answers
    store_estimate(run, plan)
    actions: dict[str, Callable[[], Any]] = {
        "teachers": lambda: train_teachers(run, retry_failed=retry_failed),
        "generate": lambda: generate(run),
        "filter": lambda: filter_all(run),
        "finetune": lambda: finetune(run, retry_failed=retry_failed),
        "evaluate": lambda: evaluate(run),
        "report": lambda: report(run),
    }
    reported: dict[str, Any] = {}
    for name in STAGE_ORDER:
        if name in stages:
            _guard(run, plan, name)
            value = actions[name]()
            if name == "report":
                reported = value
    return RunOutcome(run_dir=str(run.dir), report=reported)
