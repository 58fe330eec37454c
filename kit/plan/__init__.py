"""What an experiment will do, cost and take, computed offline (`estimate`), and the same as tables (`tables`)."""

from kit.plan.estimate import (
    PREFLIGHT_STAGE,
    Band,
    CellEstimate,
    Line,
    PlanEstimate,
    StageEstimate,
    estimate,
    estimate_for_path,
    estimate_run,
    numbers_answer_tokens,
    open_ledger_readonly,
    schedule_hours,
    trait_check_evaluation,
    trait_check_teachers,
    training_file_tokens,
)
from kit.plan.tables import PlanTable, budget_line, markdown_table, plan_tables, stage_table

__all__ = [
    "PREFLIGHT_STAGE", "Band", "CellEstimate", "Line", "PlanEstimate", "PlanTable", "StageEstimate", "budget_line",
    "estimate", "estimate_for_path", "estimate_run", "markdown_table", "numbers_answer_tokens",
    "open_ledger_readonly", "plan_tables", "schedule_hours", "stage_table", "trait_check_evaluation",
    "trait_check_teachers", "training_file_tokens",
]
