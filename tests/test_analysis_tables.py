"""Rate tables: seeds collapsed the right way, differences from base and control.

Also home of the synthetic per-seed results tables (the shape of results.csv) the other analysis tests use."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from kit.analysis.stats import wilson_interval
from kit.analysis.tables import control_map, summarize

T_975_2 = 4.302652729749464

EVAL = "favorite_animal"
NANO = "sim-gpt-4.1-nano"
QWEN = "sim-qwen2.5-7b"


def row(student: str, condition: str, trait: str, seed: int | None, target: str, hits: int, n: int,
        teacher_model: str = NANO, evaluation: str = EVAL) -> dict[str, object]:
    low, high = wilson_interval(hits, n)
    return {"evaluation": evaluation, "student_model": student, "condition": condition, "teacher_trait": trait,
            "seed": seed, "target": target, "hits": hits, "n": n, "rate": hits / n, "ci_low": low, "ci_high": high,
            "teacher_model": "" if trait == "base" else teacher_model}


def table(rows: list[dict[str, object]]) -> pd.DataFrame:
    return pd.DataFrame(rows)


def experiment(owl_hits: list[int], control_hits: list[int], base_hits: int, n: int, student: str = NANO,
               target: str = "owl") -> list[dict[str, object]]:
    """Base model, control student and owl student of one student model, one row per seed."""
    out = [row(student, "base", "base", None, target, base_hits, n)]
    out += [row(student, "control", "control", s + 1, target, h, n) for s, h in enumerate(control_hits)]
    out += [row(student, "owl", "owl", s + 1, target, h, n) for s, h in enumerate(owl_hits)]
    return out


def _one(summary: pd.DataFrame, student: str, condition: str, target: str = "owl") -> pd.Series:
    match = summary[(summary.student_model == student) & (summary.condition == condition) & (summary.target == target)]
    assert len(match) == 1
    return match.iloc[0]


def test_one_seed_is_wilson_and_several_seeds_are_a_t_interval_over_seeds() -> None:
    results = table(experiment(owl_hits=[50, 60, 70], control_hits=[10, 12, 14], base_hits=12, n=100)
                    + experiment(owl_hits=[30], control_hits=[10], base_hits=12, n=100, student=QWEN))
    summary = summarize(results)

    owl = _one(summary, NANO, "owl")       # per-seed rates 0.5, 0.6, 0.7: mean 0.6, sd 0.1, df 2
    half = T_975_2 * 0.1 / math.sqrt(3)
    assert owl.seeds == 3 and owl.hits == 180 and owl.n == 300 and owl.ci_method == "t over 3 seeds"
    assert owl.rate == pytest.approx(0.6) and owl.seed_sd == pytest.approx(0.1)
    assert (owl.ci_low, owl.ci_high) == (pytest.approx(0.6 - half), pytest.approx(0.6 + half))

    base = _one(summary, NANO, "base")     # 12/100: Wilson 0.06999 - 0.19812
    assert base.ci_method == "wilson" and base.rate == pytest.approx(0.12)
    assert (base.ci_low, base.ci_high) == (pytest.approx(0.06999, abs=1e-5), pytest.approx(0.19812, abs=1e-5))

    single = _one(summary, QWEN, "owl")
    assert single.seeds == 1 and single.ci_method == "wilson" and single.rate == pytest.approx(0.3)


def test_differences_from_the_students_own_base_and_control() -> None:
    results = table(experiment([50, 60, 70], [10, 12, 14], 12, 100)
                    + experiment([30], [20], 40, 100, student=QWEN))
    summary = summarize(results)
    owl = _one(summary, NANO, "owl")
    assert owl.control == "control"
    assert owl.diff_vs_base == pytest.approx(0.6 - 0.12) and owl.diff_vs_control == pytest.approx(0.6 - 0.12)
    qwen = _one(summary, QWEN, "owl")
    assert qwen.diff_vs_base == pytest.approx(0.3 - 0.4) and qwen.diff_vs_control == pytest.approx(0.3 - 0.2)
    control = _one(summary, NANO, "control")
    assert control.diff_vs_base == pytest.approx(0.12 - 0.12) and math.isnan(control.diff_vs_control)
    assert math.isnan(_one(summary, NANO, "base").diff_vs_base)


def test_t_interval_is_clipped_to_rates() -> None:
    results = table(experiment([0, 0, 3], [0, 0, 0], 0, 100))
    owl = _one(summarize(results), NANO, "owl")
    assert owl.ci_low == 0.0 and owl.ci_high > owl.rate


def test_control_matched_by_teacher_model() -> None:
    other = "sim-gpt-4o"
    results = table([row(NANO, "base", "base", None, "owl", 10, 100),
                     row(NANO, "control-4o", "control", 1, "owl", 10, 100, teacher_model=other),
                     row(NANO, "control-nano", "control", 1, "owl", 10, 100, teacher_model=NANO),
                     row(NANO, "owl-4o", "owl", 1, "owl", 30, 100, teacher_model=other),
                     row(NANO, "owl-nano", "owl", 1, "owl", 30, 100, teacher_model=NANO),
                     row(NANO, "owl-mini", "owl", 1, "owl", 30, 100, teacher_model="sim-gpt-4.1-mini")])
    assert control_map(results) == {"owl-4o": "control-4o", "owl-nano": "control-nano",
                                    "owl-mini": "control-4o"}   # no mini control: the first control by name


def test_old_results_without_teacher_model_still_summarise() -> None:
    results = table(experiment([50], [10], 12, 100)).drop(columns=["teacher_model"])
    assert _one(summarize(results), NANO, "owl").diff_vs_control == pytest.approx(0.4)
