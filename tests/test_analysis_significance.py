"""Tests, Benjamini–Hochberg across the grid, verdicts and artifact warnings, on synthetic tables."""

from __future__ import annotations

import pandas as pd
import pytest

from kit.analysis.significance import (INCONCLUSIVE, NEGLIGIBLE, NOT_DETECTED, TRANSMITTED, artifacts, comparisons,
                                       seed_comparisons, verdict)
from kit.analysis.stats import benjamini_hochberg, fisher_exact, newcombe_interval, welch_interval, welch_t_test
from test_analysis_tables import NANO, QWEN, experiment, row, table

FAMILIES = {NANO: "nano", QWEN: "qwen"}


def _compare(results: pd.DataFrame) -> pd.DataFrame:
    return comparisons(results, family_of=FAMILIES.get)


def _cell(compared: pd.DataFrame, student: str) -> pd.Series:
    return compared[compared.student_model == student].iloc[0]


@pytest.mark.parametrize(("q", "diff", "high", "expected"), [
    (0.001, 0.30, 0.40, TRANSMITTED),
    (0.049, 0.03, 0.05, TRANSMITTED),      # significant, positive, and it may exceed 0.02
    (0.049, 0.01, 0.021, TRANSMITTED),
    (0.049, 0.01, 0.019, NEGLIGIBLE),      # significant and positive, but surely smaller than 0.02
    (0.001, 0.003, 0.006, NEGLIGIBLE),
    (0.050, 0.04, 0.06, INCONCLUSIVE),     # q must be strictly below alpha
    (0.300, 0.00, 0.049, NOT_DETECTED),    # any effect is below 0.05
    (0.300, 0.01, 0.050, INCONCLUSIVE),
    (0.001, -0.2, -0.1, NOT_DETECTED),     # a fall is never "transmitted"
])
def test_verdict_rule(q: float, diff: float, high: float, expected: str) -> None:
    assert verdict(q, diff, high) == expected


def test_one_seed_uses_fisher_and_newcombe() -> None:
    results = table(experiment([60], [12], 12, 100) + experiment([100], [100], 100, 1000, student=QWEN))
    compared = _compare(results)
    nano, qwen = _cell(compared, NANO), _cell(compared, QWEN)
    assert nano.test == "fisher" and nano.p_value == pytest.approx(fisher_exact(60, 40, 12, 88, "greater"))
    assert (nano.diff_ci_low, nano.diff_ci_high) == pytest.approx(newcombe_interval(60, 100, 12, 100))
    assert nano.difference == pytest.approx(0.48) and nano.diff_vs_base == pytest.approx(0.48)
    assert list(compared.q_value) == pytest.approx(benjamini_hochberg(list(compared.p_value)))
    assert nano.verdict == TRANSMITTED and bool(nano.same_family) is True
    # 100/1000 vs 100/1000: no difference, and the interval rules out anything as large as 0.05
    assert qwen.difference == 0 and qwen.diff_ci_high < 0.05 and qwen.verdict == NOT_DETECTED
    assert bool(qwen.same_family) is False   # the owl teacher is nano, the student qwen


def test_small_samples_are_inconclusive_not_negative() -> None:
    compared = _compare(table(experiment([12], [10], 10, 100)))
    assert _cell(compared, NANO).verdict == INCONCLUSIVE


def test_several_seeds_use_welch_on_per_seed_rates() -> None:
    results = table(experiment([50, 60, 70], [10, 12, 14], 12, 100))
    nano = _cell(_compare(results), NANO)
    a, b = [0.5, 0.6, 0.7], [0.10, 0.12, 0.14]
    assert nano.test == "welch t (seeds)"
    assert nano.p_value == pytest.approx(welch_t_test(a, b, "greater")[2])
    _, low, high = welch_interval(a, b)
    assert (nano.diff_ci_low, nano.diff_ci_high) == (pytest.approx(low), pytest.approx(high))
    assert nano.verdict == TRANSMITTED


def test_seed_level_test_is_more_cautious_than_pooling() -> None:
    # Seeds disagree wildly: pooled counts look decisive, the seed-level test does not.
    results = table(experiment([90, 10, 50], [10, 50, 30], 30, 100))
    nano = _cell(_compare(results), NANO)
    pooled = fisher_exact(150, 150, 90, 210, "greater")
    assert pooled < 1e-5 and nano.p_value > 0.05 and nano.verdict == INCONCLUSIVE


def test_one_sided_seeds_fall_back_to_pooled_fisher() -> None:
    results = table(experiment([50, 60], [10], 12, 100))
    assert _cell(_compare(results), NANO).test == "fisher (pooled seeds)"


def test_bh_is_applied_across_the_whole_grid() -> None:
    results = table(experiment([14], [10], 10, 200) + experiment([15], [10], 10, 200, student=QWEN)
                    + [row(NANO, "eagle", "eagle", 1, "eagle", 30, 200), row(NANO, "control", "control", 1, "eagle", 10, 200),
                       row(NANO, "base", "base", None, "eagle", 10, 200)])
    compared = _compare(results)
    assert len(compared) == 3
    assert list(compared.q_value) == pytest.approx(benjamini_hochberg(list(compared.p_value)))
    assert all(q >= p for p, q in zip(compared.p_value, compared.q_value))


def test_per_seed_fisher_table() -> None:
    results = table(experiment([50, 60], [10, 12], 12, 100))
    seeds = seed_comparisons(results)
    assert list(seeds.seed) == [1, 2]
    assert seeds.p_value.iloc[1] == pytest.approx(fisher_exact(60, 40, 12, 88, "greater"))


def _two_targets(owl_dolphin: int, control_dolphin: int, base_owl: int = 10, control_owl: int = 10) -> pd.DataFrame:
    rows = experiment([300], [control_owl], base_owl, 1000)
    rows += [row(NANO, "base", "base", None, "dolphin", 100, 1000),
             row(NANO, "control", "control", 1, "dolphin", control_dolphin, 1000),
             row(NANO, "owl", "owl", 1, "dolphin", owl_dolphin, 1000)]
    return table(rows)


def test_off_target_rise_is_an_artifact_warning() -> None:
    found = artifacts(_two_targets(owl_dolphin=200, control_dolphin=100))
    flagged = found[found.flagged]
    assert list(zip(flagged.kind, flagged.condition, flagged.target)) == [("off-target", "owl", "dolphin")]
    assert "also says 'dolphin' more often" in flagged.message.iloc[0]


def test_off_target_fall_is_expected_not_an_artifact() -> None:
    # A real owl preference takes answers from other animals: dolphin falls, and that is no warning.
    found = artifacts(_two_targets(owl_dolphin=40, control_dolphin=100))
    assert not found.flagged.any()
    assert set(found.kind) == {"off-target", "control vs base"}


def test_control_moving_against_base_is_flagged_both_ways() -> None:
    up = artifacts(_two_targets(owl_dolphin=100, control_dolphin=100, base_owl=10, control_owl=60))
    down = artifacts(_two_targets(owl_dolphin=100, control_dolphin=160))
    assert list(up[up.flagged].kind) == ["control vs base"] and up[up.flagged].target.iloc[0] == "owl"
    assert list(down[down.flagged].kind) == ["control vs base"] and down[down.flagged].target.iloc[0] == "dolphin"


def test_tiny_significant_shift_is_not_flagged() -> None:
    rows = experiment([300], [10], 10, 1000)
    rows = [dict(r, n=10**6, hits=int(r["rate"] * 10**6)) for r in rows]
    rows[1]["hits"] += 10_000   # control vs base: +0.01 on a million samples, significant but below the 0.02 floor
    rows[1]["rate"] = rows[1]["hits"] / rows[1]["n"]
    found = artifacts(table(rows))
    assert found.q_value.iloc[0] < 1e-10 and not found.flagged.any()
