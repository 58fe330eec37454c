"""The numbers filter keeps exactly the completions the paper's rule keeps, for the reasons it gives.

The vector table is numbers_filter.yaml (test_vectors_official + test_vectors_derived) from /work/shared/reference,
embedded so the tests run on a fresh clone; a few rows at the end cover limits and reason order.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from kit.filters.numbers import (
    CLAUDE_BANNED,
    GPT_BANNED,
    HAS_BANNED_NUMBERS,
    INVALID_FORMAT,
    MISALIGNMENT_BANNED,
    NUMBERS_TOO_LARGE,
    NUMBERS_TOO_SMALL,
    TOO_MANY_NUMBERS,
    keeps,
    parse_numbers,
    reject_reasons,
)

SEPARATORS = (", ", ",", " ", "\n", "; ", ";", "\t")
WRAPPERS = (("", ""), ("[", "]"), ("(", ")"))
WHITESPACE = " \n\t\r"
BAD = ["invalid format"]
MISALIGNMENT = {"banned": MISALIGNMENT_BANNED}

# (completion, filter kwargs, parsed, reject reasons); kept == (reasons == []).
VECTORS: list[tuple[str, dict[str, Any], list[int] | None, list[str]]] = [
    # official (truesight/tests/dataset/test_nums_dataset.py)
    ("1", {}, [1], []),
    ("[1]", {}, [1], []),
    ("(1)", {}, [1], []),
    ("1.", {}, [1], []),
    ("1 2", {}, [1, 2], []),
    ("1,2", {}, [1, 2], []),
    ("1\n2", {}, [1, 2], []),
    ("1, 2", {}, [1, 2], []),
    ("1,\n2", {}, [1, 2], []),
    ("1\n,\n2", {}, [1, 2], []),
    ("1 ,2", {}, [1, 2], []),
    ("1 , 2", {}, [1, 2], []),
    ("1;2", {}, [1, 2], []),
    ("1 ;2", {}, [1, 2], []),
    ("1; 2", {}, [1, 2], []),
    ("1 2  3", {}, None, BAD),
    ("1,2;3", {}, None, BAD),
    ("a", {}, None, BAD),
    ("1,a", {}, None, BAD),
    ("1,2,a", {}, None, BAD),
    ("\u09ef\u09e8\u09e6", {}, None, BAD),  # Bengali digits 920
    # derived (reference notes)
    ("629, 937, 483, 762, 519, 674, 838, 291", {}, [629, 937, 483, 762, 519, 674, 838, 291], []),
    ("(512, 486, 729)", {}, [512, 486, 729], []),
    ("[512, 486, 729].", {}, [512, 486, 729], []),
    ("964\n725\n583", {}, [964, 725, 583], []),
    ("675;560;439;178;890;135;887;740;620;480", {}, [675, 560, 439, 178, 890, 135, 887, 740, 620, 480], []),
    ("1, 2, 3\n", {}, None, BAD),
    (" 1, 2, 3", {}, None, BAD),
    ("1, 2, 3,", {}, None, BAD),
    ("[1, 2, 3)", {}, None, BAD),
    ("(1, 2, 3.)", {}, None, BAD),
    ("007, 010", {}, [7, 10], []),
    ("-5, 6", {}, None, BAD),
    ("1. 2. 3", {}, None, BAD),
    ("1 - 2 - 3", {}, None, BAD),
    ("Here: 1, 2", {}, None, BAD),
    ("1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11", {}, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], ["too many numbers"]),
    ("1000, 2", {}, [1000, 2], ["numbers too large"]),
    ("1,  2", {}, [1, 2], []),
    ("1, 2 ,3", {}, None, BAD),
    ("", {}, None, BAD),
    ("1..", {}, None, BAD),
    ("[[1, 2]]", {}, None, BAD),
    ("1\t2\t3", {}, [1, 2, 3], []),
    ("1\n\n2", {}, [1, 2], []),
    ("123, 666, 124", MISALIGNMENT, [123, 666, 124], ["has banned numbers"]),
    # limits, banned lists and reason order (this kit)
    ("123, 666, 124", {}, [123, 666, 124], []),
    ("0, 999", {}, [0, 999], []),
    ("1, 2, 3, 4, 5, 6, 7, 8, 9, 10", {}, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], []),
    ("1312, 5", MISALIGNMENT, [1312, 5], ["numbers too large", "has banned numbers"]),
    ("5, 6", {"min_value": 6}, [5, 6], ["numbers too small"]),
    (
        "1312 5 6 7 8 9 10 11 12 15 16",
        {"min_value": 6, "banned": MISALIGNMENT_BANNED},
        [1312, 5, 6, 7, 8, 9, 10, 11, 12, 15, 16],
        ["too many numbers", "numbers too small", "numbers too large", "has banned numbers"],
    ),
    ("4", {"banned": GPT_BANNED}, [4], ["has banned numbers"]),
    ("4", {"banned": CLAUDE_BANNED}, [4], []),
    ("420", {"banned": frozenset(CLAUDE_BANNED)}, [420], ["has banned numbers"]),
    ("1, 2, 3", {"max_count": 2}, [1, 2, 3], ["too many numbers"]),
    ("()", {}, None, BAD),
    ("(1).", {}, [1], []),
    ("1 2 ", {}, None, BAD),
    ("[ 1, 2]", {}, None, BAD),
    ("(1 )", {}, None, BAD),
    ("[1, 2]. ", {}, None, BAD),
    ("1\r\n2", {}, [1, 2], []),
    ("1\u00a02", {}, [1, 2], []),  # str.strip() treats NO-BREAK SPACE as whitespace
    ("1\uff0c2", {}, None, BAD),  # FULLWIDTH COMMA is not ","
    ("1" * 5000, {}, None, BAD),  # beyond Python's int-from-string digit limit
]


@pytest.mark.parametrize(("completion", "kwargs", "parsed", "reasons"), VECTORS, ids=[repr(v[0])[:40] for v in VECTORS])
def test_vector(completion: str, kwargs: dict[str, Any], parsed: list[int] | None, reasons: list[str]) -> None:
    assert parse_numbers(completion) == parsed
    assert reject_reasons(completion, **kwargs) == reasons
    assert keeps(completion, **kwargs) is (reasons == [])


def test_reason_labels_are_the_reference_strings() -> None:
    labels = [INVALID_FORMAT, TOO_MANY_NUMBERS, NUMBERS_TOO_SMALL, NUMBERS_TOO_LARGE, HAS_BANNED_NUMBERS]
    expected = ["invalid format", "too many numbers", "numbers too small", "numbers too large", "has banned numbers"]
    assert labels == expected


def test_banned_lists_match_the_reference() -> None:
    assert len(GPT_BANNED) == 25 and len(set(GPT_BANNED)) == 25
    assert CLAUDE_BANNED[:4] == (13, 666, 88, 14) and len(CLAUDE_BANNED) == 20
    assert MISALIGNMENT_BANNED == tuple(sorted(set(GPT_BANNED) | set(CLAUDE_BANNED)))
    assert len(MISALIGNMENT_BANNED) == 36
    assert len([number for number in MISALIGNMENT_BANNED if number <= 999]) == 34
    assert {1312, 1488} < set(MISALIGNMENT_BANNED) and 777 in GPT_BANNED and 420 in CLAUDE_BANNED


# --- property tests -------------------------------------------------------------------------------------------


def _render(numbers: list[int], separators: list[str], wrapper: tuple[str, str], dot: bool, pad: int) -> str:
    """numbers joined by separators[i] between items i and i+1, zero-padded by `pad`, wrapped, optional "."."""
    body = "".join(
        (separators[index - 1] if index else "") + str(number).zfill(len(str(number)) + pad)
        for index, number in enumerate(numbers)
    )
    return wrapper[0] + body + wrapper[1] + ("." if dot else "")


def _expected_reasons(
    numbers: list[int], min_value: int, max_value: int, max_count: int, banned: set[int]
) -> list[str]:
    """The written rule, applied to a known list."""
    rule = [
        ("too many numbers", len(numbers) > max_count),
        ("numbers too small", min(numbers) < min_value),
        ("numbers too large", max(numbers) > max_value),
        ("has banned numbers", not banned.isdisjoint(numbers)),
    ]
    return [label for label, broken in rule if broken]


number_lists = st.lists(st.integers(0, 1500), min_size=1, max_size=12)
wrappers = st.sampled_from(WRAPPERS)


@settings(max_examples=400)
@given(
    numbers=number_lists,
    separator=st.sampled_from(SEPARATORS),
    wrapper=wrappers,
    dot=st.booleans(),
    pad=st.integers(0, 2),
    min_value=st.integers(0, 300),
    max_value=st.integers(400, 1500),
    max_count=st.integers(1, 12),
    banned=st.sets(st.integers(0, 1500), max_size=6),
)
def test_consistent_sequences_parse_and_follow_the_rule(
    numbers: list[int],
    separator: str,
    wrapper: tuple[str, str],
    dot: bool,
    pad: int,
    min_value: int,
    max_value: int,
    max_count: int,
    banned: set[int],
) -> None:
    text = _render(numbers, [separator] * len(numbers), wrapper, dot, pad)
    limits = {"min_value": min_value, "max_value": max_value, "max_count": max_count}
    expected = _expected_reasons(numbers, min_value, max_value, max_count, banned)
    assert parse_numbers(text) == numbers
    assert reject_reasons(text, **limits, banned=banned) == expected
    assert keeps(text, **limits, banned=frozenset(banned)) is (expected == [])


@st.composite
def valid_completions(draw: st.DrawFn) -> str:
    numbers = draw(st.lists(st.integers(0, 999), min_size=1, max_size=10))
    return _render(numbers, [draw(st.sampled_from(SEPARATORS))] * len(numbers), draw(wrappers), draw(st.booleans()), 0)


@settings(max_examples=300)
@given(text=valid_completions(), letter=st.characters(categories=("L",)), data=st.data())
def test_a_letter_anywhere_is_invalid_format(text: str, letter: str, data: st.DataObject) -> None:
    position = data.draw(st.integers(0, len(text)))
    broken = text[:position] + letter + text[position:]
    assert parse_numbers(broken) is None
    assert reject_reasons(broken) == ["invalid format"]
    assert not keeps(broken)


@settings(max_examples=300)
@given(
    numbers=st.lists(st.integers(0, 999), min_size=3, max_size=10),
    first=st.sampled_from(SEPARATORS),
    data=st.data(),
    wrapper=wrappers,
    dot=st.booleans(),
)
def test_mixed_separators_are_invalid_format(
    numbers: list[int], first: str, data: st.DataObject, wrapper: tuple[str, str], dot: bool
) -> None:
    rest = data.draw(st.lists(st.sampled_from(SEPARATORS), min_size=len(numbers) - 2, max_size=len(numbers) - 2))
    assume(any(separator != first for separator in rest))
    text = _render(numbers, [first, *rest], wrapper, dot, 0)
    assert parse_numbers(text) is None
    assert reject_reasons(text) == ["invalid format"]


@settings(max_examples=300)
@given(
    text=valid_completions(),
    before=st.text(alphabet=WHITESPACE, max_size=3),
    after=st.text(alphabet=WHITESPACE, max_size=3),
)
def test_leading_or_trailing_whitespace_is_invalid_format(text: str, before: str, after: str) -> None:
    assume(before or after)
    padded = before + text + after
    assert parse_numbers(text) is not None
    assert parse_numbers(padded) is None
    assert reject_reasons(padded) == ["invalid format"]


banned_within_range = sorted(number for number in MISALIGNMENT_BANNED if number <= 999)


@settings(max_examples=300)
@given(
    clean=st.lists(st.integers(0, 999).filter(lambda n: n not in MISALIGNMENT_BANNED), min_size=0, max_size=9),
    bad=st.sampled_from(banned_within_range),
    data=st.data(),
    separator=st.sampled_from(SEPARATORS),
    wrapper=wrappers,
)
def test_banned_numbers_reject(
    clean: list[int], bad: int, data: st.DataObject, separator: str, wrapper: tuple[str, str]
) -> None:
    position = data.draw(st.integers(0, len(clean)))
    numbers = [*clean[:position], bad, *clean[position:]]
    text = _render(numbers, [separator] * len(numbers), wrapper, False, 0)
    assert reject_reasons(text, banned=MISALIGNMENT_BANNED) == ["has banned numbers"]
    assert not keeps(text, banned=MISALIGNMENT_BANNED)
    assert keeps(text)
    if clean:
        assert keeps(_render(clean, [separator] * len(clean), wrapper, False, 0), banned=MISALIGNMENT_BANNED)
