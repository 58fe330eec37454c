"""Small, exact statistics for rates of trait answers, with no dependency beyond the standard library.

- `wilson_interval`: the Wilson score interval of one proportion (one model, one seed).
- `newcombe_interval`: Newcombe's hybrid score interval of a difference of two proportions (built from Wilson).
- `fisher_exact`: Fisher's exact test on a 2x2 table (trait student vs control student within one seed).
- `t_interval`, `welch_t_test`, `welch_interval`: the seed as the unit of replication (per-seed rates).
- `benjamini_hochberg`: adjusted p-values (q-values) across a grid of comparisons.

Student's t distribution is computed from the regularised incomplete beta function (Lentz continued fraction),
accurate to ~1e-12, so no SciPy is needed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

Z95 = 1.959963984540054
RELATIVE_TOLERANCE = 1 + 1e-7
BETA_ITERATIONS = 300
BETA_EPSILON = 3e-16
TINY = 1e-300
QUANTILE_STEPS = 200


def wilson_interval(hits: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion (0 hits: the interval starts at exactly 0; n hits: ends at 1)."""
    if n == 0:
        return (0.0, 1.0)
    p = hits / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    low = 0.0 if hits == 0 else max(0.0, centre - half)      # exact ends: no 1e-17 above 0 from rounding
    high = 1.0 if hits == n else min(1.0, centre + half)
    return (low, high)


def newcombe_interval(hits1: int, n1: int, hits2: int, n2: int, z: float = Z95) -> tuple[float, float]:
    """Newcombe's hybrid score interval (his method 10) for p1 - p2, from the two Wilson intervals."""
    p1, p2 = (hits1 / n1 if n1 else 0.0), (hits2 / n2 if n2 else 0.0)
    l1, u1 = wilson_interval(hits1, n1, z)
    l2, u2 = wilson_interval(hits2, n2, z)
    diff = p1 - p2
    return (diff - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), diff + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2))


def _log_hypergeom(k: int, row1: int, col1: int, total: int) -> float:
    def log_comb(n: int, r: int) -> float:
        return math.lgamma(n + 1) - math.lgamma(r + 1) - math.lgamma(n - r + 1)
    return log_comb(col1, k) + log_comb(total - col1, row1 - k) - log_comb(total, row1)


def fisher_exact(a: int, b: int, c: int, d: int, alternative: str = "two-sided") -> float:
    """p-value of Fisher's exact test on the table [[a, b], [c, d]] (rows: groups; columns: hit, miss).

    alternative: "two-sided", "greater" (first group's rate higher) or "less".
    """
    row1, col1, total = a + b, a + c, a + b + c + d
    low, high = max(0, row1 + col1 - total), min(row1, col1)
    probs = {k: math.exp(_log_hypergeom(k, row1, col1, total)) for k in range(low, high + 1)}
    if alternative == "greater":
        p = sum(v for k, v in probs.items() if k >= a)
    elif alternative == "less":
        p = sum(v for k, v in probs.items() if k <= a)
    else:
        observed = probs[a] * RELATIVE_TOLERANCE
        p = sum(v for v in probs.values() if v <= observed)
    return min(1.0, p)


# --- Student's t distribution ------------------------------------------------------------------------------------


def _beta_fraction(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > TINY else TINY)
    h = d
    for m in range(1, BETA_ITERATIONS + 1):
        m2 = 2 * m
        for numerator in (m * (b - m) * x / ((qam + m2) * (a + m2)), -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > TINY else TINY)
            c = 1.0 + numerator / c
            c = c if abs(c) > TINY else TINY
            h *= d * c
        if abs(d * c - 1.0) < BETA_EPSILON:
            break
    return h


def regularized_beta(x: float, a: float, b: float) -> float:
    """I_x(a, b), the regularised incomplete beta function."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _beta_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_fraction(b, a, 1.0 - x) / b


def t_sf(t: float, df: float) -> float:
    """P(T > t) for Student's t with `df` degrees of freedom (df may be fractional, as in Welch's test)."""
    if math.isinf(t):
        return 0.0 if t > 0 else 1.0
    tail = 0.5 * regularized_beta(df / (df + t * t), df / 2.0, 0.5)
    return tail if t >= 0 else 1.0 - tail


def t_quantile(probability: float, df: float) -> float:
    """The t value with P(T <= t) = probability (bisection on `t_sf`; exact to ~1e-12)."""
    if not 0.0 < probability < 1.0:
        raise ValueError("probability must be strictly between 0 and 1")
    if probability < 0.5:
        return -t_quantile(1.0 - probability, df)
    low, high = 0.0, 1.0
    while t_sf(high, df) > 1.0 - probability:
        high *= 2.0
    for _ in range(QUANTILE_STEPS):
        mid = (low + high) / 2.0
        if t_sf(mid, df) > 1.0 - probability:
            low = mid
        else:
            high = mid
        if high - low < 1e-13 * max(1.0, high):
            break
    return (low + high) / 2.0


def mean_and_variance(values: Sequence[float]) -> tuple[float, float]:
    """Mean and unbiased sample variance (variance 0 for a single value)."""
    n = len(values)
    mean = sum(values) / n
    return mean, (sum((v - mean) ** 2 for v in values) / (n - 1) if n > 1 else 0.0)


def t_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): the t interval of the mean of `values` (e.g. per-seed rates), df = k - 1.

    With a single value the interval is that value (there is no spread to estimate): callers should use a
    within-seed interval (Wilson) instead.
    """
    if not values:
        raise ValueError("t_interval needs at least one value")
    mean, variance = mean_and_variance(values)
    if len(values) < 2:
        return mean, mean, mean
    half = t_quantile(0.5 + confidence / 2.0, len(values) - 1) * math.sqrt(variance / len(values))
    return mean, mean - half, mean + half


def _welch_parts(a: Sequence[float], b: Sequence[float]) -> tuple[float, float, float]:
    """(difference of means, standard error, Welch–Satterthwaite df)."""
    if len(a) < 2 or len(b) < 2:
        raise ValueError("Welch's test needs at least two values in each group")
    mean_a, var_a = mean_and_variance(a)
    mean_b, var_b = mean_and_variance(b)
    va, vb = var_a / len(a), var_b / len(b)
    se = math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1)) if se > 0 else float(len(a) + len(b) - 2)
    return mean_a - mean_b, se, df


def welch_t_test(a: Sequence[float], b: Sequence[float], alternative: str = "two-sided") -> tuple[float, float, float]:
    """(t, df, p) of Welch's unequal-variance t-test of mean(a) - mean(b).

    alternative: "two-sided", "greater" (a's mean higher) or "less". When both groups have no spread at all, t is
    +/-inf (or 0 for equal means) and p is 0 or 1 accordingly.
    """
    diff, se, df = _welch_parts(a, b)
    if se == 0:
        t = math.copysign(math.inf, diff) if diff else 0.0
        if not diff:
            return t, df, 1.0
    else:
        t = diff / se
    if alternative == "greater":
        p = t_sf(t, df)
    elif alternative == "less":
        p = t_sf(-t, df)
    else:
        p = min(1.0, 2.0 * t_sf(abs(t), df))
    return t, df, p


def welch_interval(a: Sequence[float], b: Sequence[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """(difference, low, high): the Welch t interval of mean(a) - mean(b)."""
    diff, se, df = _welch_parts(a, b)
    half = t_quantile(0.5 + confidence / 2.0, df) * se if se > 0 else 0.0
    return diff, diff - half, diff + half


def benjamini_hochberg(p_values: Sequence[float]) -> list[float]:
    """Benjamini–Hochberg adjusted p-values (step-up, made monotone, capped at 1); NaN stays NaN and is not
    counted among the tests."""
    indexed = sorted(((p, i) for i, p in enumerate(p_values) if not math.isnan(p)), reverse=True)
    m = len(indexed)
    adjusted = [math.nan] * len(p_values)
    running = 1.0
    for rank_from_top, (p, i) in enumerate(indexed):
        rank = m - rank_from_top
        running = min(running, p * m / rank)
        adjusted[i] = min(1.0, running)
    return adjusted
