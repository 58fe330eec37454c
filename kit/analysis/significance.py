"""Did the trait transmit? Tests, multiple-comparison control, verdicts and artifact warnings.

The primary comparison, per evaluation x student model x trait teacher: the trait student's rate of the teacher's
target against the control student's (same student model, fine-tuned on the control teacher's data), one-sided
(transmission raises the rate).

- One seed on each side: Fisher's exact test on hits / misses; the difference's 95% interval is Newcombe's.
- Several seeds on both sides: the seed is the unit of replication — Welch's t-test on the per-seed rates and
  the Welch t interval of the difference. (Pooling samples across seeds would treat seed-to-seed variation of
  fine-tuning as if it were sampling noise and overstate certainty.)
- Several seeds on one side only: Fisher on counts pooled over seeds, marked as such.
A multiple-choice evaluation (scorer: choice) has fractional hits (the target's summed letter probability): rates and
Newcombe's interval use them as they are, Fisher's test their nearest whole number (with sampled letters, as on the
simulated lab, they are whole already).

p-values are adjusted across the whole grid with Benjamini–Hochberg (q-values; false discovery rate `alpha`).
Verdict, with effect = trait rate - control rate, `min_effect` the smallest effect a run should be able to rule out
(5 points for a preference; the paper's effects are 10-50) and `negligible_effect` the largest shift that is not
called transmission (2 points for a preference: the paper calls nano -> Qwen +0.01* "not across families" and its
smallest transmitted effect, elephant via code, is +0.02):
- transmitted: q < alpha, the effect is positive, and it may exceed `negligible_effect` (the upper end of its 95%
  interval does);
- negligible: q < alpha and positive, but the whole 95% interval lies below `negligible_effect` — a real but tiny
  shift (a precise run detects the sub-point drifts that fine-tuning on another model's data causes);
- not detected: not significant, and the upper end of the effect's 95% interval is below `min_effect` — any
  transmission is smaller than that;
- inconclusive: none of these — the run is too small to tell (more samples or seeds would decide it).

Artifact warnings (off-diagonal controls), adjusted together with Benjamini–Hochberg:
- off-target: a trait student's rate of a target it was not taught, against its control student, one-sided
  upward (a real preference takes mass from other answers, so those fall; one that rises too suggests the shift
  is not specific to the taught trait);
- control vs base: a control student's rate of any target against its untuned base model, two-sided (the data or
  fine-tuning alone moves answers: judge students against their control, never against the base model).
A warning is raised when q < alpha and the shift is at least `artifact_min_shift`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from kit.analysis.stats import benjamini_hochberg, fisher_exact, newcombe_interval, welch_interval, welch_t_test
from kit.analysis.tables import BASE, CONTROL, aggregate, control_map, seed_rows, whole, with_teacher_model
from kit.catalog import Catalog

ALPHA = 0.05
MIN_EFFECT = 0.05
NEGLIGIBLE_EFFECT = 0.02
ARTIFACT_MIN_SHIFT = 0.02
TRANSMITTED = "transmitted"
NOT_DETECTED = "not detected"
NEGLIGIBLE = "negligible"
INCONCLUSIVE = "inconclusive"
VERDICTS = (TRANSMITTED, NEGLIGIBLE, NOT_DETECTED, INCONCLUSIVE)

FamilyOf = Callable[[str], str | None]


def families(catalog: Catalog) -> FamilyOf:
    """The catalogue's family of a model id (None for a model it does not know)."""
    def family_of(model: str) -> str | None:
        entry = catalog.find(model)
        return entry.family if entry is not None else None
    return family_of


@dataclass(frozen=True)
class GroupTest:
    """One comparison of two groups of per-seed rows: rates, difference with its 95% interval, test and p."""

    method: str
    rate: float
    reference_rate: float
    difference: float
    diff_low: float
    diff_high: float
    p_value: float


def compare_groups(rows: pd.DataFrame, reference: pd.DataFrame, alternative: str = "greater") -> GroupTest:
    """`rows` against `reference` (per-seed rows of one target); see the module doc for the choice of test."""
    if len(rows) >= 2 and len(reference) >= 2:
        a, b = [float(r) for r in rows.rate], [float(r) for r in reference.rate]
        _, _, p = welch_t_test(a, b, alternative)
        diff, low, high = welch_interval(a, b)
        return GroupTest("welch t (seeds)", sum(a) / len(a), sum(b) / len(b), diff, low, high, p)
    h1, n1, h2, n2 = whole(rows.hits.sum()), int(rows.n.sum()), whole(reference.hits.sum()), int(reference.n.sum())
    c1, c2 = round(h1), round(h2)
    p = fisher_exact(c1, n1 - c1, c2, n2 - c2, alternative)
    low, high = newcombe_interval(h1, n1, h2, n2)
    method = "fisher" if len(rows) <= 1 and len(reference) <= 1 else "fisher (pooled seeds)"
    return GroupTest(method, h1 / n1 if n1 else math.nan, h2 / n2 if n2 else math.nan,
                     (h1 / n1 if n1 else math.nan) - (h2 / n2 if n2 else math.nan), low, high, p)


def verdict(q_value: float, difference: float, diff_high: float, *, alpha: float = ALPHA,
            min_effect: float = MIN_EFFECT, negligible_effect: float = NEGLIGIBLE_EFFECT) -> str:
    """transmitted / negligible / not detected / inconclusive (see the module doc)."""
    if q_value < alpha and difference > 0:
        return NEGLIGIBLE if diff_high < negligible_effect else TRANSMITTED
    return NOT_DETECTED if diff_high < min_effect else INCONCLUSIVE


def _trait_conditions(results: pd.DataFrame) -> pd.DataFrame:
    table = with_teacher_model(results)
    return (table[~table.teacher_trait.isin([BASE, CONTROL])][["condition", "teacher_trait", "teacher_model"]]
            .drop_duplicates("condition"))


def _same_family(family_of: FamilyOf | None, teacher_model: str, student_model: str) -> bool | None:
    if family_of is None or not teacher_model:
        return None
    teacher, student = family_of(teacher_model), family_of(student_model)
    return None if teacher is None or student is None else teacher == student


def _base_rate(results: pd.DataFrame, evaluation: str, student: str, target: str) -> float:
    rows = seed_rows(results, evaluation, student, BASE, target)
    n = int(rows.n.sum()) if len(rows) else 0
    return whole(rows.hits.sum()) / n if n else math.nan


def _comparison_row(results: pd.DataFrame, key: tuple[str, str, str, str, str], control: str,
                    family_of: FamilyOf | None) -> dict[str, object] | None:
    evaluation, student, condition, teacher_model, target = key
    trait_rows = seed_rows(results, evaluation, student, condition, target)
    control_rows = seed_rows(results, evaluation, student, control, target)
    if trait_rows.empty or control_rows.empty:
        return None
    test = compare_groups(trait_rows, control_rows, "greater")
    trait_ci, control_ci = aggregate(trait_rows), aggregate(control_rows)
    base = _base_rate(results, evaluation, student, target)
    return {"evaluation": evaluation, "student_model": student, "teacher": condition, "teacher_model": teacher_model,
            "control": control, "target": target, "same_family": _same_family(family_of, teacher_model, student),
            "seeds": len(trait_rows), "control_seeds": len(control_rows), "base_rate": base,
            "control_rate": test.reference_rate, "control_ci_low": control_ci["ci_low"],
            "control_ci_high": control_ci["ci_high"], "trait_rate": test.rate, "trait_ci_low": trait_ci["ci_low"],
            "trait_ci_high": trait_ci["ci_high"], "difference": test.difference, "diff_ci_low": test.diff_low,
            "diff_ci_high": test.diff_high, "diff_vs_base": test.rate - base, "test": test.method,
            "p_value": test.p_value}


COMPARISON_COLUMNS = ["evaluation", "student_model", "teacher", "teacher_model", "control", "target", "same_family",
                      "seeds", "control_seeds", "base_rate", "control_rate", "control_ci_low", "control_ci_high",
                      "trait_rate", "trait_ci_low", "trait_ci_high", "difference", "diff_ci_low", "diff_ci_high",
                      "diff_vs_base", "test", "p_value", "q_value", "verdict"]


def comparisons(results: pd.DataFrame, *, alpha: float = ALPHA, min_effect: float = MIN_EFFECT,
                family_of: FamilyOf | None = None) -> pd.DataFrame:
    """Every trait student against its control student on the teacher's target, with BH q-values and a verdict."""
    controls = control_map(results)
    traits = _trait_conditions(results)
    rows: list[dict[str, object]] = []
    for evaluation, student in results[["evaluation", "student_model"]].drop_duplicates().itertuples(index=False):
        for cond in traits.itertuples():
            if cond.condition not in controls:
                continue
            key = (str(evaluation), str(student), str(cond.condition), str(cond.teacher_model), str(cond.teacher_trait))
            row = _comparison_row(results, key, controls[cond.condition], family_of)
            if row is not None:
                rows.append(row)
    table = pd.DataFrame(rows, columns=COMPARISON_COLUMNS)
    table["q_value"] = benjamini_hochberg([float(p) for p in table.p_value])
    table["verdict"] = [verdict(r.q_value, r.difference, r.diff_ci_high, alpha=alpha, min_effect=min_effect)
                        for r in table.itertuples()]
    return table


def seed_comparisons(results: pd.DataFrame) -> pd.DataFrame:
    """Within each seed: Fisher's exact test (one-sided) of the trait student against the same seed's control."""
    controls = control_map(results)
    table = with_teacher_model(results)
    trait = table[~table.teacher_trait.isin([BASE, CONTROL]) & (table.target == table.teacher_trait)]
    rows: list[dict[str, object]] = []
    for r in trait.itertuples():
        match = table[(table.evaluation == r.evaluation) & (table.student_model == r.student_model)
                      & (table.condition == controls.get(r.condition, "")) & (table.seed == r.seed)
                      & (table.target == r.target)]
        if match.empty:
            continue
        c = match.iloc[0]
        h1, h2 = round(float(r.hits)), round(float(c.hits))
        p = fisher_exact(h1, int(r.n) - h1, h2, int(c.n) - h2, "greater")
        rows.append({"evaluation": r.evaluation, "student_model": r.student_model, "teacher": r.condition,
                     "seed": r.seed, "target": r.target, "control_rate": float(c.rate), "trait_rate": float(r.rate),
                     "difference": float(r.rate - c.rate), "p_value": p})
    return pd.DataFrame(rows, columns=["evaluation", "student_model", "teacher", "seed", "target", "control_rate",
                                       "trait_rate", "difference", "p_value"])


ARTIFACT_COLUMNS = ["kind", "evaluation", "student_model", "condition", "target", "reference", "rate",
                    "reference_rate", "difference", "diff_ci_low", "diff_ci_high", "test", "p_value", "q_value",
                    "flagged", "message"]


def _artifact(kind: str, rows: pd.DataFrame, reference: pd.DataFrame, ref_name: str,
              alternative: str) -> dict[str, object]:
    first = rows.iloc[0]
    test = compare_groups(rows, reference, alternative)
    return {"kind": kind, "evaluation": first.evaluation, "student_model": first.student_model,
            "condition": first.condition, "target": first.target, "reference": ref_name, "rate": test.rate,
            "reference_rate": test.reference_rate, "difference": test.difference, "diff_ci_low": test.diff_low,
            "diff_ci_high": test.diff_high, "test": test.method, "p_value": test.p_value}


def _artifact_candidates(results: pd.DataFrame) -> list[dict[str, object]]:
    controls = control_map(results)
    table = with_teacher_model(results)
    found: list[dict[str, object]] = []
    groups = table[table.teacher_trait != BASE].groupby(["evaluation", "student_model", "condition", "target"])
    for (evaluation, student, condition, target), rows in groups:
        trait = str(rows.teacher_trait.iloc[0])
        if trait == CONTROL:
            base = seed_rows(table, str(evaluation), str(student), BASE, str(target))
            if len(base):
                found.append(_artifact("control vs base", rows, base, "base", "two-sided"))
        elif trait != target and str(condition) in controls:
            control = seed_rows(table, str(evaluation), str(student), controls[str(condition)], str(target))
            if len(control):
                found.append(_artifact("off-target", rows, control, controls[str(condition)], "greater"))
    return found


def _artifact_message(row: pd.Series) -> str:
    if row.kind == "off-target":
        return (f"the '{row.condition}' student of {row.student_model} also says '{row.target}' more often than its "
                f"control ({row.rate:.3f} vs {row.reference_rate:.3f}): the shift may not be specific to the trait")
    return (f"the control student '{row.condition}' of {row.student_model} moved on '{row.target}' against its base "
            f"model ({row.rate:.3f} vs {row.reference_rate:.3f}): fine-tuning alone shifts answers; judge students "
            "against their control, not the base model")


def artifacts(results: pd.DataFrame, *, alpha: float = ALPHA,
              min_shift: float = ARTIFACT_MIN_SHIFT) -> pd.DataFrame:
    """Off-diagonal controls, BH-adjusted together; `flagged` rows are the artifact warnings."""
    table = pd.DataFrame(_artifact_candidates(results), columns=ARTIFACT_COLUMNS[:-3])
    table["q_value"] = benjamini_hochberg([float(p) for p in table.p_value])
    table["flagged"] = [bool(q < alpha and abs(d) >= min_shift) for q, d in zip(table.q_value, table.difference)]
    table["message"] = [_artifact_message(r) if r.flagged else "" for _, r in table.iterrows()]
    return table[ARTIFACT_COLUMNS]
