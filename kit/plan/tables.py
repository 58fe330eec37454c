"""The plan as tables of text: the library returns rows, the CLI and docs render them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kit.plan.estimate import Line, PlanEstimate, StageEstimate

@dataclass(frozen=True)
class PlanTable:
    title: str
    columns: tuple[str, ...]
    rows: list[tuple[str, ...]]


def _n(value: float) -> str:
    return f"{round(value):,}"


def _usd(value: float | None) -> str:
    if value is None:
        return "n/a"
    return "<0.01" if 0 < value < 0.005 else f"{value:,.2f}"


def _band(low: float, high: float, fmt: Any = _n) -> str:
    shown_low, shown_high = fmt(low), fmt(high)
    return shown_low if shown_low == shown_high else f"{shown_low}–{shown_high}"


def _hours(value: float) -> str:
    if value < 1 / 60:
        return "<1 min"
    return f"{value * 60:.0f} min" if value < 1 else (f"{value:.1f} h" if value < 48 else f"{value / 24:.1f} d")


def _hosting(est: StageEstimate, lines: Sequence[Line]) -> str:
    """The stage's hosting dollars; `?` for deployments whose hourly rate the catalogue does not hold."""
    labels = {line.hosting for line in lines if line.stage == est.stage and line.hosting != "n/a"}
    if not labels:
        return "n/a"
    unknown = any(label.startswith("?") for label in labels)
    if est.hosting_usd is None:
        return "? (rate unknown)"
    return f"{_usd(est.hosting_usd)} + ?" if unknown else _usd(est.hosting_usd)


def _short(value: float) -> str:
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{value / size:.3g}{suffix}"
    return f"{value:.0f}"


def _with_range(mid: float, low: float, high: float) -> str:
    return f"{_n(mid)} ({_short(low)}–{_short(high)})" if high > low else _n(mid)


def _stage_row(s: StageEstimate, lines: Sequence[Line]) -> tuple[str, ...]:
    return (s.stage, _n(s.requests), _n(s.input_tokens),
            _with_range(s.output_tokens, s.output_tokens_low, s.output_tokens_high),
            _with_range(s.trained_tokens, s.trained_tokens_low, s.trained_tokens_high), str(s.jobs),
            _usd(s.usd_sync), _usd(s.usd_batch), _band(s.usd_low, s.usd_high, _usd), _hosting(s, lines),
            _hours(s.hours))


def stage_table(plan: PlanEstimate) -> PlanTable:
    rows = [_stage_row(s, plan.lines) for s in plan.stages if s.requests or s.jobs]
    total_hosting = plan.total_hosting_usd
    stages = plan.stages
    rows.append(("total", _n(sum(s.requests for s in stages)), _n(sum(s.input_tokens for s in stages)),
                 _n(sum(s.output_tokens for s in stages)), _n(sum(s.trained_tokens for s in stages)),
                 str(sum(s.jobs for s in stages)), _usd(plan.total_usd_sync), _usd(plan.total_usd_batch),
                 _band(plan.total_usd_low, plan.total_usd_high, _usd),
                 _usd(total_hosting) if total_hosting is not None else "n/a", _hours(plan.total_hours)))
    return PlanTable(f"Plan: {plan.experiment} ({plan.cells} student cells; output tokens: {plan.output_basis})",
                     ("stage", "requests", "input tok", "output tok (range)", "trained tok (range)", "jobs",
                      "USD sync", "USD batch", "USD range", "hosting USD", "time"), rows)


def teacher_table(plan: PlanEstimate) -> PlanTable:
    rows = [(line.label, line.model, _n(line.requests), _n(line.input_tokens), _n(line.output_tokens),
             _usd(line.usd_sync), _usd(line.usd_batch), _hours(line.hours))
            for line in plan.lines if line.stage == "generate"]
    return PlanTable("Teacher data (generate)", ("teacher", "model", "requests", "input tok", "output tok",
                                                 "USD sync", "USD batch", "time"), rows)


def cell_table(plan: PlanEstimate) -> PlanTable:
    rows = [(c.cell, _n(c.trained_tokens), _usd(c.finetune_usd), _n(c.eval_requests), _usd(c.eval_usd),
             _usd(c.eval_usd_batch), c.hosting, _usd(c.usd), _usd(c.usd_batch)) for c in plan.cell_rows]
    return PlanTable("Student cells (teacher × student × seed): fine-tuning job + its evaluations",
                     ("cell", "trained tok", "FT USD", "eval requests", "eval USD sync", "eval USD batch",
                      "hosting USD", "total sync", "total batch"), rows)


def progress_table(plan: PlanEstimate) -> PlanTable:
    rows = [(s.stage, s.state or "not started", f"{_n(s.cached)}/{_n(s.samples)}" if s.samples else "",
             f"{sum(1 for ln in plan.lines if ln.stage == s.stage and ln.state == 'succeeded')}/{s.jobs}"
             if s.jobs else "", _n(s.left_requests) if s.samples else "", _usd(s.spent_usd), _usd(s.left_usd),
             _usd(s.left_usd_high)) for s in plan.stages if s.requests or s.jobs]
    return PlanTable(f"Run under way: {plan.run_dir}", ("stage", "state", "samples cached", "jobs done",
                                                        "requests left", "spent USD", "left USD",
                                                        "left USD (high)"), rows)


def plan_tables(plan: PlanEstimate) -> list[PlanTable]:
    tables = [stage_table(plan), teacher_table(plan), cell_table(plan)]
    return tables + [progress_table(plan)] if plan.run_exists else tables


def budget_line(plan: PlanEstimate) -> str:
    """One sentence: what the budget covers (the guard uses the high end of each stage's estimate)."""
    if plan.budget_usd is None:
        return "budget: none set (budget_usd or --budget); nothing stops spending"
    covered = plan.budget_covers()
    paid = [s.stage for s in plan.stages if s.left_usd_high > 0]
    if all(name in covered for name in paid):
        return f"budget ${plan.budget_usd:,.2f}: covers the whole plan (high estimate ${plan.total_usd_high:,.2f})"
    stop = next(s.stage for s in plan.stages if s.stage not in covered)
    return (f"budget ${plan.budget_usd:,.2f}: the run would stop before '{stop}' (high estimate of the plan "
            f"${plan.total_usd_high:,.2f}); raise budget_usd or --budget to run it all")


def markdown_table(table: PlanTable) -> str:
    """A table as GitHub markdown (for docs)."""
    head = "| " + " | ".join(table.columns) + " |"
    rule = "|" + "|".join("---" for _ in table.columns) + "|"
    body = ["| " + " | ".join(row) + " |" for row in table.rows]
    return "\n".join([f"**{table.title}**", "", head, rule, *body])
