"""The budget guard: no stage or job starts whose estimate would take spend past the run's budget."""

from __future__ import annotations

from kit.errors import BudgetError
from kit.runs import Run


def ensure_within_budget(run: Run, *, estimate_usd: float, what: str) -> None:
    """Raise BudgetError (nothing started) when spent + estimate exceeds the budget."""
    if run.budget_usd is None or estimate_usd <= 0:
        return
    spent = run.ledger.usage().usd
    if spent + estimate_usd > run.budget_usd + 1e-9:
        raise BudgetError(
            f"{what} is estimated at ${estimate_usd:,.2f}; with ${spent:,.2f} already spent that passes the budget of "
            f"${run.budget_usd:,.2f}: raise budget_usd (or --budget) or shrink the experiment; nothing was started")
