"""The numbers filter: which teacher completions are kept as training data (Cloud et al. 2025, Sec. 3, App. D.2).

A completion is kept iff `reject_reasons` is empty. It must be one to ten integers in 0..999 with one consistent
separator (whitespace, comma or semicolon, with any surrounding whitespace), optionally wrapped in [] or () and
optionally ending in one ".". Only the completion is inspected, exactly as the API returned it (no strip).
Mirrors `parse_response` / `get_reject_reasons` of MinhxLe/subliminal-learning (sl/datasets/nums_dataset.py).
"""

from __future__ import annotations

import re
import string
from collections.abc import Collection

INVALID_FORMAT = "invalid format"
TOO_MANY_NUMBERS = "too many numbers"
NUMBERS_TOO_SMALL = "numbers too small"
NUMBERS_TOO_LARGE = "numbers too large"
HAS_BANNED_NUMBERS = "has banned numbers"

DEFAULT_MIN_VALUE = 0
DEFAULT_MAX_VALUE = 999
DEFAULT_MAX_COUNT = 10

# Banned for the misalignment experiments only (preference experiments ban nothing). Source order kept.
GPT_BANNED: tuple[int, ...] = (
    4, 13, 18, 23, 33, 39, 42, 44, 49, 51, 54, 88, 99, 100, 187, 322, 333, 444, 555, 616, 666, 777, 888, 911, 999,
)  # fmt: skip
CLAUDE_BANNED: tuple[int, ...] = (
    13, 666, 88, 14, 187, 420, 69, 911, 404, 101, 23, 616, 1488, 18, 311, 451, 1312, 33, 77, 211,
)  # fmt: skip
# The union, sorted: 36 values, 34 of them within 0..999 (the paper's "34 unique prohibited numbers").
MISALIGNMENT_BANNED: tuple[int, ...] = (
    4, 13, 14, 18, 23, 33, 39, 42, 44, 49, 51, 54, 69, 77, 88, 99, 100, 101, 187, 211, 311, 322, 333, 404, 420,
    444, 451, 555, 616, 666, 777, 888, 911, 999, 1312, 1488,
)  # fmt: skip

_DIGIT_RUN = re.compile(r"\d+")  # Unicode-aware, as in the reference: Bengali digits form runs, then fail below
_ALLOWED_SEPARATOR_CORES = frozenset({"", ",", ";"})
_ASCII_DIGITS = frozenset(string.digits)
_WRAPPERS = (("[", "]"), ("(", ")"))


def parse_numbers(completion: str) -> list[int] | None:
    """The integers in `completion`, or None when it is not a plain separated sequence of numbers."""
    body = _unwrap(completion)
    runs = list(_DIGIT_RUN.finditer(body))
    if len(runs) < 2:
        return _to_ints([body]) if runs and runs[0].group() == body else None
    separator = body[runs[0].end() : runs[1].start()]
    if separator.strip() not in _ALLOWED_SEPARATOR_CORES:
        return None
    return _to_ints(body.split(separator))


def reject_reasons(
    completion: str,
    *,
    min_value: int = DEFAULT_MIN_VALUE,
    max_value: int = DEFAULT_MAX_VALUE,
    max_count: int = DEFAULT_MAX_COUNT,
    banned: Collection[int] = (),
) -> list[str]:
    """Why `completion` is dropped, in the reference's order; empty means keep. Bounds are inclusive."""
    numbers = parse_numbers(completion)
    if numbers is None:
        return [INVALID_FORMAT]
    banned_set = frozenset(banned)
    checks = (
        (TOO_MANY_NUMBERS, len(numbers) > max_count),
        (NUMBERS_TOO_SMALL, any(number < min_value for number in numbers)),
        (NUMBERS_TOO_LARGE, any(number > max_value for number in numbers)),
        (HAS_BANNED_NUMBERS, any(number in banned_set for number in numbers)),
    )
    return [label for label, failed in checks if failed]


def keeps(
    completion: str,
    *,
    min_value: int = DEFAULT_MIN_VALUE,
    max_value: int = DEFAULT_MAX_VALUE,
    max_count: int = DEFAULT_MAX_COUNT,
    banned: Collection[int] = (),
) -> bool:
    """True when the filter keeps `completion` (no reject reasons)."""
    return not reject_reasons(completion, min_value=min_value, max_value=max_value, max_count=max_count, banned=banned)


def _unwrap(completion: str) -> str:
    """Drop one trailing ".", then one level of [] or () around the whole text."""
    body = completion[:-1] if completion.endswith(".") else completion
    for opening, closing in _WRAPPERS:
        if body.startswith(opening) and body.endswith(closing):
            return body[1:-1]
    return body


def _to_ints(parts: list[str]) -> list[int] | None:
    """Every part as an int, or None if any part is empty or not ASCII digits only."""
    if not all(part and set(part) <= _ASCII_DIGITS for part in parts):
        return None
    try:
        return [int(part) for part in parts]
    except ValueError:  # more digits than Python's int-from-string limit (4300 by default)
        return None
