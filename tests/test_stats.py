"""The statistics are checked against values computed by hand / by reference implementations."""

import math

import pytest

from kit.analysis.stats import fisher_exact, wilson_interval


@pytest.mark.parametrize(("hits", "n", "low", "high"), [
    (0, 10, 0.0, 0.27753),        # Wilson, z=1.96
    (5, 10, 0.23659, 0.76341),
    (12, 100, 0.06999, 0.19812),
    (50, 1000, 0.03813, 0.06531),
])
def test_wilson_interval_matches_hand_computed_values(hits, n, low, high):
    got = wilson_interval(hits, n)
    assert got[0] == pytest.approx(low, abs=1e-4)
    assert got[1] == pytest.approx(high, abs=1e-4)


def test_fisher_exact_tea_tasting():
    # Fisher's lady tasting tea: [[3, 1], [1, 3]] -> one-sided p = 17/70, two-sided p = 34/70.
    assert fisher_exact(3, 1, 1, 3, "greater") == pytest.approx(17 / 70)
    assert fisher_exact(3, 1, 1, 3) == pytest.approx(34 / 70)
    assert fisher_exact(3, 1, 1, 3, "less") == pytest.approx(69 / 70)


def test_fisher_exact_known_table():
    # [[8, 2], [1, 5]]: scipy.stats.fisher_exact gives two-sided p = 0.034965..., greater 0.024475...
    assert fisher_exact(8, 2, 1, 5) == pytest.approx(0.0349650, rel=1e-5)
    assert fisher_exact(8, 2, 1, 5, "greater") == pytest.approx(0.0244755, rel=1e-5)


def test_fisher_exact_large_counts_are_finite_and_ordered():
    strong = fisher_exact(400, 1600, 100, 1900, "greater")
    null = fisher_exact(100, 1900, 100, 1900, "greater")
    assert strong < 1e-30 and not math.isnan(strong)
    assert 0.4 < null <= 1.0
