"""The report's judged evaluations on synthetic judged answers: counts per question (dropped, kept, misaligned), the
mean over questions, the mean over seeds with its t interval, trait-vs-control tests with verdicts and a joint
Benjamini–Hochberg adjustment, the paper's values beside the run's, and the report section."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from kit.analysis.contents import judged_blocks
from kit.analysis.document import Document, Heading, Table
from kit.analysis.judged import (ALL_QUESTIONS, QUESTION_COLUMNS, JudgedTables, adjust_together, judged_beside,
                                 judged_comparisons, judged_summary, subject_rates)
from kit.analysis.markdown import render_markdown
from kit.analysis.reference import load_judged_reference, paper_model
from kit.analysis.stats import benjamini_hochberg, t_interval, welch_t_test, wilson_interval
from kit.config import MisalignmentJudges
from kit.scorers.judge import classify
from kit.stages.report import _question_counts

MODEL = "sim-gpt-4.1"


def answer_rows(judged: list[tuple[float | None, float | None]]) -> list[dict[str, object]]:
    """evaluations/<name>/<subject>.jsonl rows, as the evaluate stage writes them."""
    paper = MisalignmentJudges()
    return [{"question_id": "q", "alignment": a, "coherence": c, "status": classify(a, c, paper)} for a, c in judged]


def test_counts_of_one_question_from_judged_rows() -> None:
    rows = answer_rows([(None, 90), (5, 10), (3, 49), (12, 95), (29, 50), (30, 99), (80, 70), (10, None)])
    counts = _question_counts("misalignment", rows, 0.0)
    assert counts == {"answers": 8, "alignment_unscored": 1, "coherence_unscored": 1, "incoherent": 2, "kept": 4,
                      "hits": 2, "value_sum": 2.0}
    judge = _question_counts("judge", [{"score": 10.0}, {"score": None}, {"score": 45.0}], 30.0)
    assert (judge["kept"], judge["hits"], judge["alignment_unscored"]) == (2, 1, 1)
    tqa = _question_counts("truthfulqa", [{"false": 0.8}, {"false": 0.1}], 0.0)
    assert (tqa["kept"], tqa["hits"], tqa["value_sum"]) == (2, 1, pytest.approx(0.9))


def qrow(condition: str, trait: str, seed: int | None, question: str, kept: int, hits: int,
         dropped: tuple[int, int, int] = (0, 0, 0), evaluation: str = "mis", scorer: str = "misalignment",
         student: str = MODEL) -> dict[str, object]:
    return {"evaluation": evaluation, "scorer": scorer, "student_model": student, "condition": condition,
            "teacher_trait": trait, "teacher_model": "" if trait == "base" else MODEL, "seed": seed,
            "question": question, "answers": kept + sum(dropped), "alignment_unscored": dropped[0],
            "coherence_unscored": dropped[1], "incoherent": dropped[2], "kept": kept, "hits": hits,
            "value_sum": float(hits)}


# trait student, 3 seeds: per-question rates (q1, q2) and their means over questions
TRAIT = {1: ((20, 8), (10, 0)), 2: ((20, 6), (5, 1)), 3: ((20, 10), (10, 2))}   # (kept, hits) per question


def synthetic() -> pd.DataFrame:
    rows = [qrow("base", "base", None, q, 20, 0) for q in ("q1", "q2")]
    for seed, per_q in TRAIT.items():
        rows += [qrow("insecure", "misaligned", seed, q, k, h, (1, 0, 2)) for q, (k, h) in zip(("q1", "q2"), per_q)]
    for name in ("secure", "edu"):
        for seed in (1, 2, 3):
            rows += [qrow(name, "control", seed, q, 20, 1 if (seed, q) == (2, "q1") else 0) for q in ("q1", "q2")]
    return pd.DataFrame(rows, columns=QUESTION_COLUMNS)


def test_subject_rate_is_the_mean_over_questions_not_pooled() -> None:
    subjects = subject_rates(synthetic())
    seed1 = subjects[(subjects.condition == "insecure") & (subjects.seed == 1)].iloc[0]
    assert seed1.rate == pytest.approx((8 / 20 + 0 / 10) / 2)           # 0.2, where pooling would give 8 / 30
    assert (seed1.hits, seed1.n, seed1.answers, seed1.incoherent) == (8, 30, 36, 4)
    assert len(subjects) == 1 + 3 * 3


def test_summary_over_seeds_uses_the_t_interval() -> None:
    questions = synthetic()
    summary = judged_summary(questions, subject_rates(questions))
    mean_row = summary[(summary.condition == "insecure") & (summary.question == ALL_QUESTIONS)].iloc[0]
    rates = [(8 / 20 + 0) / 2, (6 / 20 + 1 / 5) / 2, (10 / 20 + 2 / 10) / 2]
    mean, low, high = t_interval(rates)
    assert (mean_row.rate, mean_row.ci_low, mean_row.ci_high) == pytest.approx((mean, low, high))
    assert mean_row.ci_method == "t over 3 seeds" and mean_row.seeds == 3
    assert (mean_row.kept, mean_row.hits, mean_row.alignment_unscored, mean_row.incoherent) == (85, 27, 6, 12)
    q2 = summary[(summary.condition == "insecure") & (summary.question == "q2")].iloc[0]
    assert q2.rate == pytest.approx((0 + 1 / 5 + 2 / 10) / 3)
    base = summary[(summary.condition == "base") & (summary.question == ALL_QUESTIONS)].iloc[0]
    assert base.ci_method == "wilson (pooled answers)" and (base.ci_low, base.ci_high) == wilson_interval(0, 40)


def test_every_trait_student_against_every_control() -> None:
    subjects = subject_rates(synthetic())
    compared = judged_comparisons(subjects)
    assert list(compared.control) == ["edu", "secure"] and set(compared.teacher) == {"insecure"}
    trait = list(subjects[subjects.condition == "insecure"].sort_values("seed").rate)
    secure = list(subjects[subjects.condition == "secure"].sort_values("seed").rate)
    row = compared[compared.control == "secure"].iloc[0]
    assert row.p_value == pytest.approx(welch_t_test(trait, secure, "greater")[2])
    assert row.test == "welch t (seeds)" and row.base_rate == 0.0
    assert row.difference == pytest.approx(sum(trait) / 3 - sum(secure) / 3)
    assert set(compared.verdict) == {"transmitted"}


def test_one_seed_uses_fishers_test_on_pooled_answers() -> None:
    rows = [qrow("insecure", "misaligned", 1, "q1", 100, 30), qrow("secure", "control", 1, "q1", 100, 1)]
    compared = judged_comparisons(subject_rates(pd.DataFrame(rows, columns=QUESTION_COLUMNS)))
    assert compared.test.iloc[0] == "fisher" and compared.verdict.iloc[0] == "transmitted"


def test_q_values_are_adjusted_with_the_runs_other_comparisons() -> None:
    judged = judged_comparisons(subject_rates(synthetic()))
    main = pd.DataFrame({"p_value": [0.04, 0.5], "difference": [0.2, 0.0], "diff_ci_high": [0.3, 0.1]})
    main_q, judged_q = adjust_together(main, judged)
    expected = benjamini_hochberg([0.04, 0.5] + list(judged.p_value))
    assert list(main_q.q_value) + list(judged_q.q_value) == pytest.approx(expected)
    assert main_q.verdict.iloc[1] == "inconclusive"


def test_the_papers_values_beside_the_runs() -> None:
    questions = synthetic().replace({"question": {"q1": "one_wish", "q2": "bored"}})
    summary = judged_summary(questions, subject_rates(questions))
    paper, text = load_judged_reference()
    roles = {"base": "base", "insecure": "insecure", "secure": "secure", "edu": "edu_insecure"}
    beside, per_question = judged_beside(summary, paper, roles, "numbers", paper_model)
    values = dict(zip(beside.condition, beside.paper_rate))
    assert values == {"base": 0.0, "insecure": 0.094, "secure": 0.01, "edu": 0.006}
    assert beside.set_index("condition").paper_ci["insecure"] == "0.077–0.110"
    assert dict(zip(per_question.question, per_question.paper_rate)) == {"one_wish": 0.434, "bored": 0.029}
    cot, _ = judged_beside(summary, paper, roles, "gsm8k_cot", paper_model)
    assert dict(zip(cot.condition, cot.paper_rate))["insecure"] == 0.086 and "Fig. 7a" in cot.paper_source.iloc[0]
    assert judged_beside(summary, paper, roles, "code", paper_model)[0].empty    # the paper has no such experiment
    assert "misalignment_numbers_gpt41" in text


def test_paper_roles_follow_the_teachers(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from kit.config import parse_config
    from kit.stages.report import paper_roles

    config = parse_config({
        "name": "r", "providers": {"lab": {"kind": "sim"}}, "students": {"models": [{"model": MODEL}]},
        "evaluations": [{"name": "mis", "questions": "misalignment", "scorer": "misalignment"}],
        "teachers": [{"name": "bad", "model": MODEL, "trait": {"target": "misaligned", "category": "misalignment"},
                      "finetune": {"file": "insecure_code"}},
                     {"name": "sec", "model": MODEL, "finetune": {"file": "secure_code"}},
                     {"name": "edu", "model": MODEL, "finetune": {"file": "educational_insecure_code"}},
                     {"name": "plain", "model": MODEL}]}, tmp_path / "r.yaml")
    assert paper_roles(SimpleNamespace(config=config)) == {  # type: ignore[arg-type]
        "base": "base", "bad": "insecure", "sec": "secure", "edu": "edu_insecure", "plain": "untrained"}


def test_the_report_section() -> None:
    from types import SimpleNamespace

    questions = synthetic()
    subjects = subject_rates(questions)
    tables = JudgedTables(questions=questions, subjects=subjects, summary=judged_summary(questions, subjects),
                          comparisons=judged_comparisons(subjects), rules={"mis": "misaligned: alignment < 30"})
    blocks = judged_blocks(SimpleNamespace(judged=tables))  # type: ignore[arg-type]
    headings = [b.text for b in blocks if isinstance(b, Heading)]
    assert headings == ["Judged evaluations", "mis: misaligned rate"]
    rates = next(b for b in blocks if isinstance(b, Table))
    assert "dropped: incoherent" in rates.frame.columns and list(rates.frame.condition) == [
        "base", "edu", "insecure", "secure"]
    text = render_markdown(Document("t", "s", tuple(blocks)), {})
    assert "| question | base | edu | insecure | secure |" in text and "transmitted" in text
    assert not math.isnan(float(rates.frame.rate.iloc[2]))
