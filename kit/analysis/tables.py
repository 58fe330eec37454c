"""Tables of trait rates (pandas), from the per-seed results table the report stage builds from the ledger.

The per-seed table (`results.csv`) has one row per evaluation x student model x condition x seed x target, with
`hits`, `n` and `rate`; base models have no seed. `summarize` collapses seeds: with one seed the rate is hits / n
with its Wilson interval; with several, the seed is the unit of replication — the rate is the mean of the
per-seed rates and the interval a t interval over seeds (df = seeds - 1), clipped to [0, 1]. Each row also carries
the difference from the student's own base model and from its control student on the same target.
"""

from __future__ import annotations

import math

import pandas as pd

from kit.analysis.stats import t_interval, wilson_interval

BASE = "base"
CONTROL = "control"
GROUP_KEYS = ["evaluation", "student_model", "condition", "teacher_trait", "teacher_model", "target"]
SUMMARY_COLUMNS = GROUP_KEYS + ["seeds", "hits", "n", "rate", "ci_low", "ci_high", "ci_method", "seed_sd",
                                "control", "base_rate", "control_rate", "diff_vs_base", "diff_vs_control"]


def with_teacher_model(results: pd.DataFrame) -> pd.DataFrame:
    """The table with a `teacher_model` column (older results.csv files lack it)."""
    if "teacher_model" in results.columns:
        return results.assign(teacher_model=results.teacher_model.fillna("").astype(str))
    return results.assign(teacher_model="")


def conditions(results: pd.DataFrame) -> pd.DataFrame:
    """One row per condition: condition, teacher_trait, teacher_model."""
    table = with_teacher_model(results)
    return (table[["condition", "teacher_trait", "teacher_model"]].drop_duplicates("condition")
            .sort_values("condition").reset_index(drop=True))


def control_map(results: pd.DataFrame) -> dict[str, str]:
    """Each trait condition's control condition: a control teacher of the same teacher model if there is one,
    else the first control teacher by name. Conditions without any control are left out."""
    table = conditions(results)
    controls = table[table.teacher_trait == CONTROL]
    out: dict[str, str] = {}
    for row in table[~table.teacher_trait.isin([CONTROL, BASE])].itertuples():
        same = controls[controls.teacher_model == row.teacher_model]
        pick = same if len(same) else controls
        if len(pick):
            out[str(row.condition)] = str(pick.condition.iloc[0])
    return out


def whole(value: float) -> int | float:
    """A sum of hits: an int when it is whole (answers counted), else the float (summed probabilities)."""
    value = float(value)
    return int(value) if value.is_integer() else value


def _clip(value: float) -> float:
    return min(1.0, max(0.0, value))


def aggregate(rows: pd.DataFrame) -> dict[str, object]:
    """Rate and 95% interval of one group of per-seed rows (see the module doc)."""
    hits, n, k = whole(rows.hits.sum()), int(rows.n.sum()), len(rows)
    if k >= 2:
        mean, low, high = t_interval([float(r) for r in rows.rate])
        sd = float(pd.Series(rows.rate, dtype=float).std(ddof=1))
        return {"seeds": k, "hits": hits, "n": n, "rate": mean, "ci_low": _clip(low), "ci_high": _clip(high),
                "ci_method": f"t over {k} seeds", "seed_sd": sd}
    low, high = wilson_interval(hits, n)
    return {"seeds": k, "hits": hits, "n": n, "rate": hits / n if n else math.nan, "ci_low": low, "ci_high": high,
            "ci_method": "wilson", "seed_sd": math.nan}


def _grouped(results: pd.DataFrame) -> pd.DataFrame:
    table = with_teacher_model(results)
    rows = [{**dict(zip(GROUP_KEYS, key)), **aggregate(group)}
            for key, group in table.groupby(GROUP_KEYS, sort=True, dropna=False)]
    return pd.DataFrame(rows, columns=GROUP_KEYS + SUMMARY_COLUMNS[len(GROUP_KEYS):-5])


def _lookup(summary: pd.DataFrame) -> dict[tuple[str, str, str, str], float]:
    return {(r.evaluation, r.student_model, r.condition, r.target): float(r.rate) for r in summary.itertuples()}


def summarize(results: pd.DataFrame) -> pd.DataFrame:
    """One row per evaluation x student model x condition x target, with the differences from base and control."""
    summary = _grouped(results)
    rates = _lookup(summary)
    controls = control_map(results)
    control_col, base_col, control_rate_col = [], [], []
    for r in summary.itertuples():
        control = controls.get(r.condition, "")
        base = rates.get((r.evaluation, r.student_model, BASE, r.target), math.nan)
        control_col.append(control)
        base_col.append(math.nan if r.teacher_trait == BASE else base)
        control_rate_col.append(rates.get((r.evaluation, r.student_model, control, r.target), math.nan))
    summary["control"] = control_col
    summary["base_rate"] = base_col
    summary["control_rate"] = control_rate_col
    summary["diff_vs_base"] = summary.rate - summary.base_rate
    summary["diff_vs_control"] = summary.rate - summary.control_rate
    return summary[SUMMARY_COLUMNS]


def seed_rows(results: pd.DataFrame, evaluation: str, student_model: str, condition: str,
              target: str) -> pd.DataFrame:
    """The per-seed rows of one group (base models: their single row)."""
    return results[(results.evaluation == evaluation) & (results.student_model == student_model)
                   & (results.condition == condition) & (results.target == target)]
