"""The statistics against hand-computed values and published tables (SciPy only as an optional cross-check)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kit.analysis.stats import (benjamini_hochberg, fisher_exact, newcombe_interval, t_interval, t_quantile, t_sf,
                                welch_interval, welch_t_test, wilson_interval)


@pytest.mark.parametrize(("df", "value"), [
    (1, 12.706204736174698), (2, 4.302652729749464), (4, 2.7764451051977934), (10, 2.2281388519862744),
    (30, 2.0422724563012373),
])
def test_t_quantile_matches_the_printed_table(df: int, value: float) -> None:
    assert t_quantile(0.975, df) == pytest.approx(value, rel=1e-10)
    assert t_quantile(0.025, df) == pytest.approx(-value, rel=1e-10)


def test_t_tail_closed_forms() -> None:
    # df = 1 is the Cauchy distribution: P(T > t) = 1/2 - atan(t)/pi; df = 2: P(T > t) = (1 - t/sqrt(t^2+2)) / 2.
    for t in (0.0, 0.3, 1.0, 2.5, 40.0):
        assert t_sf(t, 1) == pytest.approx(0.5 - math.atan(t) / math.pi, rel=1e-11)
        assert t_sf(t, 2) == pytest.approx((1 - t / math.sqrt(t * t + 2)) / 2, rel=1e-11)
    assert t_sf(math.inf, 3) == 0.0 and t_sf(-math.inf, 3) == 1.0


def test_t_interval_by_hand() -> None:
    # mean 0.2, s = 0.1, se = 0.1 / sqrt(3); half width = t(0.975, 2) * se = 4.302652729749464 * 0.0577350269...
    mean, low, high = t_interval([0.1, 0.2, 0.3])
    half = 4.302652729749464 * 0.1 / math.sqrt(3)
    assert mean == pytest.approx(0.2)
    assert (low, high) == (pytest.approx(0.2 - half), pytest.approx(0.2 + half))
    assert t_interval([0.4]) == (0.4, 0.4, 0.4)


def test_welch_by_hand() -> None:
    a, b = [0.60, 0.62, 0.58], [0.13, 0.12, 0.16]
    # var(a) = 0.0004, var(b) = 0.00043333..; se^2 = 0.0004/3 + 0.00043333/3 = 0.000277777..; se = 1/60
    # t = (0.6 - 0.136666..) * 60 = 27.8; df = se^4 / ((va/3)^2/2 + (vb/3)^2/2) = 3.99361022...
    t, df, p = welch_t_test(a, b, "greater")
    assert t == pytest.approx(27.8)
    assert df == pytest.approx((0.0004 / 3 + 0.0013 / 9) ** 2 / ((0.0004 / 3) ** 2 / 2 + (0.0013 / 9) ** 2 / 2))
    assert df == pytest.approx(3.9936102236, rel=1e-9)
    assert p == pytest.approx(t_sf(27.8, df))
    assert welch_t_test(a, b)[2] == pytest.approx(2 * p)
    assert welch_t_test(a, b, "less")[2] == pytest.approx(1 - p)
    diff, low, high = welch_interval(a, b)
    assert diff == pytest.approx(0.6 - 0.41 / 3)
    assert high - diff == pytest.approx(t_quantile(0.975, df) / 60)


def test_welch_degenerate_groups() -> None:
    assert welch_t_test([0.5, 0.5], [0.1, 0.1], "greater")[2] == 0.0
    assert welch_t_test([0.1, 0.1], [0.1, 0.1], "greater")[2] == 1.0
    with pytest.raises(ValueError):
        welch_t_test([0.5], [0.1, 0.2])


@pytest.mark.parametrize(("counts", "expected"), [
    # Newcombe (1998), Statistics in Medicine 17:873, Table II, method 10.
    ((56, 70, 48, 80), (0.0524, 0.3339)),
    ((9, 10, 3, 10), (0.1705, 0.8090)),
    ((5, 56, 0, 29), (-0.0381, 0.1926)),
    ((10, 10, 0, 20), (0.6791, 1.0000)),
])
def test_newcombe_interval_matches_the_published_table(counts: tuple[int, int, int, int],
                                                       expected: tuple[float, float]) -> None:
    low, high = newcombe_interval(*counts)
    assert (low, high) == (pytest.approx(expected[0], abs=1e-4), pytest.approx(expected[1], abs=1e-4))


def test_fisher_small_tables_by_hand() -> None:
    # [[2, 0], [0, 2]]: only the observed table is as extreme: C(2,2) C(2,0) / C(4,2) = 1/6.
    assert fisher_exact(2, 0, 0, 2, "greater") == pytest.approx(1 / 6)
    assert fisher_exact(3, 0, 0, 3, "greater") == pytest.approx(1 / 20)
    assert fisher_exact(3, 0, 0, 3) == pytest.approx(2 / 20)


@pytest.mark.parametrize(("p", "q"), [
    ([0.01, 0.04, 0.03, 0.005], [0.02, 0.04, 0.04, 0.02]),    # 0.005*4/1, 0.01*4/2, 0.03*4/3, 0.04*4/4
    ([0.01, 0.02, 0.03, 0.5], [0.04, 0.04, 0.04, 0.5]),
    ([0.001, 0.04, 0.041], [0.003, 0.041, 0.041]),           # step-up: 0.04*3/2 = 0.06 > 0.041 -> 0.041
    ([0.9, 0.95], [0.95, 0.95]),
    ([0.6], [0.6]),
])
def test_benjamini_hochberg_by_hand(p: list[float], q: list[float]) -> None:
    assert benjamini_hochberg(p) == pytest.approx(q)


def test_benjamini_hochberg_skips_missing_values() -> None:
    got = benjamini_hochberg([0.01, math.nan, 0.04])
    assert got[0] == pytest.approx(0.02) and math.isnan(got[1]) and got[2] == pytest.approx(0.04)
    assert benjamini_hochberg([]) == []


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(min_value=0, max_value=1), min_size=1, max_size=30))
def test_benjamini_hochberg_properties(p: list[float]) -> None:
    q = benjamini_hochberg(p)
    assert all(pi <= qi + 1e-12 and qi <= 1.0 for pi, qi in zip(p, q))
    order = sorted(range(len(p)), key=lambda i: p[i])
    assert all(q[order[i]] <= q[order[i + 1]] + 1e-12 for i in range(len(p) - 1))


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 60), st.integers(1, 60), st.integers(0, 60), st.integers(1, 60))
def test_newcombe_contains_the_difference_and_wilson_bounds(h1: int, n1: int, h2: int, n2: int) -> None:
    h1, h2 = min(h1, n1), min(h2, n2)
    low, high = newcombe_interval(h1, n1, h2, n2)
    assert -1.0 <= low <= h1 / n1 - h2 / n2 <= high <= 1.0
    w = wilson_interval(h1, n1)
    assert w[0] <= h1 / n1 <= w[1]


def test_cross_check_with_scipy() -> None:
    stats = pytest.importorskip("scipy.stats")
    a, b = [0.31, 0.35, 0.29, 0.4], [0.1, 0.14, 0.09]
    ours = welch_t_test(a, b, "greater")
    theirs = stats.ttest_ind(a, b, equal_var=False, alternative="greater")
    assert ours[0] == pytest.approx(theirs.statistic) and ours[2] == pytest.approx(theirs.pvalue, rel=1e-8)
    for df in (1.5, 3, 7.25, 60):
        assert t_quantile(0.9, df) == pytest.approx(stats.t.ppf(0.9, df), rel=1e-9)
    p = [0.2, 0.001, 0.03, 0.04, 0.5, 0.0105]
    assert benjamini_hochberg(p) == pytest.approx(list(stats.false_discovery_control(p)))
    assert fisher_exact(148, 1852, 23, 1977, "greater") == pytest.approx(
        stats.fisher_exact([[148, 1852], [23, 1977]], alternative="greater").pvalue, rel=1e-6)
