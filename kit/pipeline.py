"""The whole experiment, stage by stage, each guarded by the budget and skipped where already complete."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kit.budget import ensure_within_budget
from kit.plan import PlanEstimate, estimate
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
    """Before a paid stage: its estimated remaining cost must fit in the budget (jobs are also checked one by one)."""
    if name not in {s.stage for s in plan.stages}:
        return
    remaining = max(0.0, plan.stage(name).usd - run.ledger.usage(name).usd)
    ensure_within_budget(run, estimate_usd=remaining, what=f"stage '{name}'")


def run_stages(run: Run, stages: tuple[str, ...] = STAGE_ORDER, *, retry_failed: bool = False) -> RunOutcome:
    """Run the named stages in pipeline order. Every stage resumes from the ledger."""
    plan = estimate(run.config, run.catalog)
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
