"""Small, exact statistics for rates of trait answers: Wilson intervals and Fisher's exact test."""

from __future__ import annotations

import math

Z95 = 1.959963984540054
RELATIVE_TOLERANCE = 1 + 1e-7


def wilson_interval(hits: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion."""
    if n == 0:
        return (0.0, 1.0)
    p = hits / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


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
