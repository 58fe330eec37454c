"""Number-continuation prompts for the numbers experiments (Cloud et al. 2025, Sec. 3).

Reproduces `PromptGenerator` of MinhxLe/subliminal-learning (sl/datasets/nums_dataset.py) draw for draw: with
one shared `numpy.random.default_rng(seed)`, each prompt consumes, in order, the example count, the example
values, then one pick from each template list. `generate_prompts(30_000, 47)` is the paper's prompt list and
`example_prefixes(50, 47)` gives the prefixes of the numbers-prefixed preference evaluation.

The template lists are data, in `prompts/numbers.yaml`; their order and duplicates fix the draws.
"""

from __future__ import annotations


import string
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from kit.errors import ConfigError

PROMPTS_DIR_ENV = "SLKIT_PROMPTS_DIR"
TEMPLATES_FILENAME = "numbers.yaml"
PARAMETERS_KEY = "parameters"

PAPER_SEED = 47
PAPER_PROMPT_COUNT = 30_000
DEFAULT_EXAMPLE_MIN_COUNT = 3
DEFAULT_EXAMPLE_MAX_COUNT = 9
DEFAULT_EXAMPLE_MIN_VALUE = 100
DEFAULT_EXAMPLE_MAX_VALUE = 1000
DEFAULT_ANSWER_COUNT = 10
DEFAULT_ANSWER_MAX_DIGITS = 3

MAX_DRAW_SPAN = 1 << 32  # widest range one draw may cover: numpy's 32-bit path, which _Draws replays
EXAMPLE_SEPARATOR = ", "
PART_SEPARATOR = " "

_UINT32_SPAN = MAX_DRAW_SPAN
_UINT32_MASK = _UINT32_SPAN - 1
_WORDS_PER_FETCH = 4096

# Placeholders each list may use; None marks lists that are inserted as-is (never passed to str.format).
_PLACEHOLDERS: dict[str, frozenset[str] | None] = {
    "example_numbers_templates": frozenset({"examples"}),
    "count_qualifiers": None,
    "digit_descriptors": frozenset({"max_digits"}),
    "generate_numbers_instruction_templates": frozenset({"count_qualifier", "answer_count", "digit_descriptor"}),
    "format_suffixes": None,
    "suffixes": None,
}


@dataclass(frozen=True)
class NumbersTemplates:
    """The six template lists, verbatim and in file order (order and duplicates fix the RNG draws)."""

    example_numbers_templates: tuple[str, ...]  # "... {examples}." -- the shown numbers, ", "-joined
    count_qualifiers: tuple[str, ...]  # "at most", "up to", ...
    digit_descriptors: tuple[str, ...]  # "up to {max_digits} digits each", ... (one entry is duplicated)
    generate_numbers_instruction_templates: tuple[str, ...]  # "... {count_qualifier} {answer_count} ..."
    format_suffixes: tuple[str, ...]  # "Return a comma-separated list of numbers.", ...
    suffixes: tuple[str, ...]  # "Say only the numbers - nothing more.", ...


@dataclass(frozen=True)
class NumbersParams:
    """Generator parameters. Upper bounds are exclusive, like numpy `Generator.integers(low, high)`."""

    example_min_count: int = DEFAULT_EXAMPLE_MIN_COUNT  # fewest example numbers shown (inclusive)
    example_max_count: int = DEFAULT_EXAMPLE_MAX_COUNT  # exclusive: the paper's 9 shows at most 8 numbers
    example_min_value: int = DEFAULT_EXAMPLE_MIN_VALUE  # smallest example value (inclusive)
    example_max_value: int = DEFAULT_EXAMPLE_MAX_VALUE  # exclusive: the paper's 1000 gives values up to 999
    answer_count: int = DEFAULT_ANSWER_COUNT  # only written into the instruction text, never enforced
    answer_max_digits: int = DEFAULT_ANSWER_MAX_DIGITS  # only written into the digit descriptor text

    def __post_init__(self) -> None:
        if self.example_min_count < 0:
            raise ConfigError(f"example_min_count must be >= 0, got {self.example_min_count}")
        _check_range("example_min_count", self.example_min_count, "example_max_count", self.example_max_count)
        _check_range("example_min_value", self.example_min_value, "example_max_value", self.example_max_value)


def _check_range(low_name: str, low: int, high_name: str, high: int) -> None:
    if not 0 < high - low <= MAX_DRAW_SPAN:
        raise ConfigError(
            f"need {low_name} < {high_name} (exclusive) spanning at most 2**32 values; got {low} and {high}"
        )


def default_templates_path() -> Path:
    """`$SLKIT_PROMPTS_DIR/numbers.yaml` when the variable is set, else `<repo root>/prompts/numbers.yaml`."""
    from kit.prompts import prompts_dir

    return prompts_dir() / TEMPLATES_FILENAME


def load_templates(path: Path | None = None) -> NumbersTemplates:
    """Read and check the six template lists from `path` (default: `default_templates_path()`)."""
    source = path if path is not None else default_templates_path()
    data = _read_mapping(source)
    unknown = sorted(set(data) - set(_PLACEHOLDERS) - {PARAMETERS_KEY})
    if unknown:
        allowed = [*_PLACEHOLDERS, PARAMETERS_KEY]
        raise ConfigError(f"{source}: unknown key(s) {unknown}; remove or rename them (allowed: {allowed})")
    lists = {key: _template_list(source, key, data.get(key)) for key in _PLACEHOLDERS}
    return NumbersTemplates(**lists)


def load_params(path: Path | None = None) -> NumbersParams:
    """The `parameters` section of the templates file as `NumbersParams` (missing keys keep the paper defaults)."""
    source = path if path is not None else default_templates_path()
    section = _read_mapping(source).get(PARAMETERS_KEY, {})
    allowed = {field.name for field in fields(NumbersParams)}
    if not isinstance(section, Mapping) or not set(section) <= allowed:
        raise ConfigError(f"{source}: '{PARAMETERS_KEY}' must map some of {sorted(allowed)} to integers")
    if not all(type(value) is int for value in section.values()):
        raise ConfigError(f"{source}: every value under '{PARAMETERS_KEY}' must be a whole number")
    return NumbersParams(**section)


def generate_prompts(
    n: int, seed: int, params: NumbersParams | None = None, templates: NumbersTemplates | None = None
) -> list[str]:
    """The first `n` prompts drawn from `default_rng(seed)`; `(30_000, 47)` is the paper's list."""
    params, templates = _resolve(params, templates)
    draws = _Draws(seed)
    return [_prompt(draws, params, templates) for _ in range(_checked_count(n))]


def example_prefixes(
    n: int, seed: int = PAPER_SEED, params: NumbersParams | None = None, templates: NumbersTemplates | None = None
) -> list[str]:
    """The first `n` example parts alone (steps 1-3), as used by the numbers-prefixed evaluation."""
    params, templates = _resolve(params, templates)
    draws = _Draws(seed)
    return [_example_part(draws, params, templates) for _ in range(_checked_count(n))]


def _prompt(draws: _Draws, params: NumbersParams, templates: NumbersTemplates) -> str:
    """One prompt; the statement order below is the reference's RNG draw order."""
    example_part = _example_part(draws, params, templates)
    count_qualifier = draws.pick(templates.count_qualifiers)
    digit_descriptor = draws.pick(templates.digit_descriptors).format(max_digits=params.answer_max_digits)
    instruction = draws.pick(templates.generate_numbers_instruction_templates).format(
        count_qualifier=count_qualifier, answer_count=params.answer_count, digit_descriptor=digit_descriptor
    )
    format_suffix = draws.pick(templates.format_suffixes)
    suffix = draws.pick(templates.suffixes)
    return PART_SEPARATOR.join((example_part, instruction, format_suffix, suffix))


def _example_part(draws: _Draws, params: NumbersParams, templates: NumbersTemplates) -> str:
    """Steps 1-3: how many numbers, the numbers, then the sentence that shows them."""
    count = draws.between(params.example_min_count, params.example_max_count)
    low, high = params.example_min_value, params.example_max_value
    examples = EXAMPLE_SEPARATOR.join([str(draws.between(low, high)) for _ in range(count)])
    return draws.pick(templates.example_numbers_templates).format(examples=examples)


class _Draws:
    """numpy `Generator.integers(low, high)` (int64, high - low <= 2**32), replayed in pure Python.

    numpy draws these with Lemire's method on the bit generator's `next_uint32` (distributions.c,
    `buffered_bounded_lemire_uint32`; a span of 1 draws nothing). Fetching the uint32 words in bulk and doing the
    arithmetic here yields the same values from the same stream without one numpy call per draw, and
    `pick(options)` equals `rng.choice(list(options))`, which draws one `integers(0, len(options))`.
    """

    __slots__ = ("_words",)

    def __init__(self, seed: int) -> None:
        self._words = _uint32_words(np.random.default_rng(seed))

    def below(self, span: int) -> int:
        """Same value as `rng.integers(0, span)`."""
        if span == 1:
            return 0
        product = next(self._words) * span
        if product & _UINT32_MASK < span:
            threshold = (_UINT32_SPAN - span) % span
            while product & _UINT32_MASK < threshold:
                product = next(self._words) * span
        return product >> 32

    def between(self, low: int, high: int) -> int:
        """Same value as `rng.integers(low, high)` (high excluded)."""
        return low + self.below(high - low)

    def pick(self, options: Sequence[str]) -> str:
        """Same element as `rng.choice(list(options))`."""
        return options[self.below(len(options))]


def _uint32_words(rng: np.random.Generator) -> Iterator[int]:
    """The generator's `next_uint32` outputs in order, fetched a chunk at a time."""
    while True:
        yield from rng.integers(0, _UINT32_SPAN, size=_WORDS_PER_FETCH, dtype=np.uint32).tolist()


def _resolve(
    params: NumbersParams | None, templates: NumbersTemplates | None
) -> tuple[NumbersParams, NumbersTemplates]:
    resolved_params = params if params is not None else NumbersParams()
    return resolved_params, templates if templates is not None else load_templates()


def _checked_count(n: int) -> int:
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    return n


def _read_mapping(source: Path) -> dict[str, Any]:
    """The YAML mapping at `source`, or a ConfigError that says how to fix the file."""
    if not source.is_file():
        raise ConfigError(
            f"prompt templates not found at {source}; restore prompts/{TEMPLATES_FILENAME} from the repository "
            f"or set {PROMPTS_DIR_ENV} to a folder that contains {TEMPLATES_FILENAME}"
        )
    try:
        data = yaml.safe_load(source.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        reason = " ".join(str(err).split())
        raise ConfigError(f"{source} is not valid UTF-8 YAML ({reason}); fix the file") from err
    if not isinstance(data, dict):
        raise ConfigError(f"{source} must be a YAML mapping of template-list names to lists of strings")
    return data


def _template_list(source: Path, key: str, value: object) -> tuple[str, ...]:
    """`value` as a non-empty tuple of strings using only the placeholders `key` allows."""
    if not isinstance(value, list) or not value or not all(isinstance(item, str) for item in value):
        raise ConfigError(f"{source}: '{key}' must be a non-empty list of strings (quote entries with ':' or braces)")
    allowed = _PLACEHOLDERS[key]
    if allowed is not None:
        for template in value:
            _check_placeholders(source, key, template, allowed)
    return tuple(value)


def _check_placeholders(source: Path, key: str, template: str, allowed: frozenset[str]) -> None:
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as err:
        raise ConfigError(f"{source}: '{key}' entry {template!r} has unbalanced braces ({err})") from err
    if not names <= allowed:
        raise ConfigError(
            f"{source}: '{key}' entry {template!r} uses {sorted(names - allowed)}; "
            f"allowed placeholders: {sorted(allowed)}"
        )
