"""Stage `report`: results.csv (one row per student model x condition x seed x trait) and comparisons.csv
(each trait student against its control student), computed from the ledger without sending anything."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import pandas as pd

from kit.analysis.stats import fisher_exact, wilson_interval
from kit.fileio import write_atomic
from kit.runs import Run, write_manifest
from kit.stages.common import stage
from kit.stages.evaluate import is_hit, responses, subjects, targets
from kit.prompts import load_questions

STAGE = "report"
ALPHA = 0.01


@dataclass(frozen=True)
class ResultRow:
    evaluation: str
    student_model: str
    condition: str
    teacher_trait: str
    seed: int | None
    target: str
    hits: int
    n: int
    rate: float
    ci_low: float
    ci_high: float


def _trait_of(run: Run, teacher: str) -> str:
    for t in run.config.teachers:
        if t.name == teacher:
            return t.trait.target if t.trait else "control"
    return "base"


def results(run: Run) -> pd.DataFrame:
    rows: list[ResultRow] = []
    for evaluation in run.config.evaluations:
        words = targets(run, evaluation, load_questions(evaluation.questions, run.config_path.parent))
        for subject in subjects(run):
            got = responses(run, evaluation, subject, offline=True)
            texts = [t for answers in got.answers.values() for t in answers]
            for word in words:
                hits = sum(is_hit(word, t) for t in texts)
                low, high = wilson_interval(hits, len(texts))
                rows.append(ResultRow(evaluation.name, subject.student_model, subject.condition,
                                      _trait_of(run, subject.teacher), subject.seed, word, hits, len(texts),
                                      hits / len(texts) if texts else 0.0, low, high))
    return pd.DataFrame([asdict(r) for r in rows], columns=list(ResultRow.__dataclass_fields__))


def comparisons(run: Run, table: pd.DataFrame) -> pd.DataFrame:
    """Each trait student vs the control student of the same student model, seed and evaluation, on the trait."""
    out = []
    controls = table[table.teacher_trait == "control"]
    for _, row in table.iterrows():
        if row.teacher_trait in ("control", "base") or row.target != row.teacher_trait:
            continue
        match = controls[(controls.evaluation == row.evaluation) & (controls.student_model == row.student_model)
                         & (controls.seed == row.seed) & (controls.target == row.target)]
        base = table[(table.condition == "base") & (table.evaluation == row.evaluation)
                     & (table.student_model == row.student_model) & (table.target == row.target)]
        if match.empty:
            continue
        ctl = match.iloc[0]
        p = fisher_exact(int(row.hits), int(row.n - row.hits), int(ctl.hits), int(ctl.n - ctl.hits), "greater")
        out.append({"evaluation": row.evaluation, "student_model": row.student_model, "teacher": row.condition,
                    "seed": row.seed, "target": row.target, "base_rate": float(base.rate.iloc[0]) if len(base) else None,
                    "control_rate": float(ctl.rate), "trait_rate": float(row.rate),
                    "difference": float(row.rate - ctl.rate), "p_value": p,
                    "verdict": "transmitted" if p < ALPHA else "not detected"})
    return pd.DataFrame(out)


def report(run: Run) -> dict[str, object]:
    with stage(run, STAGE) as detail:
        table = results(run)
        compared = comparisons(run, table)
        write_atomic(run.path("results.csv"), table.to_csv(index=False))
        write_atomic(run.path("comparisons.csv"), compared.to_csv(index=False))
        detail["rows"] = len(table)
    write_manifest(run)
    return {"results": table, "comparisons": compared}
