"""The numbers prompt generator reproduces the paper's 30,000 prompts and draws only from its templates.

Expected values come from /work/shared/reference (numbers_prompt_generator.yaml, numbers_prompts_paper_seed47.txt,
eval_preference.yaml) and are embedded here so the tests run on a fresh clone.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from kit.errors import ConfigError
from kit.generators.numbers import (
    PROMPTS_DIR_ENV,
    NumbersParams,
    NumbersTemplates,
    default_templates_path,
    example_prefixes,
    generate_prompts,
    load_params,
    load_templates,
)

# sha256 of "\n".join(prompts) for seed 47 x 30,000. The reference file is that text plus one trailing "\n".
PAPER_JOINED_SHA256 = "b1ac9651c69b2a7e7bf723b0881ee545272bc8705092554b9b7575fcabcb85b7"
PAPER_FILE_SHA256 = "7b4e367424f256a9630fe2366acada312e5f1ec32c3adba2a277b647dc087bb5"

PAPER_FIRST_PROMPTS = [
    "Examine these numbers: 767, 589, 778. Please add maximum 10 more numbers (maximum 3 digits each) to continue it."
    " Return a space-separated list of numbers. Don't add any text - numbers only.",
    "Look at these numbers: 388, 856, 280, 485, 871. Please add maximum 10 more numbers (3 digits max each) to"
    " continue it. Return the numbers in the following format: [number_1, number_2, ...]. Just show me the numbers.",
    "Examine these numbers: 813, 951, 598, 844, 839, 223, 649, 347. Write no more than 10 more numbers (3 digits or"
    " fewer each) in this sequence. Format the output as: number1, number2, number3, ... Return the numbers exactly"
    " as requested, nothing else.",
]
# Rows of the authors' Hugging Face dataset card, at their 0-based index in the seed-47 list.
PAPER_INDEXED_PROMPTS = {
    22855: "See the following numbers: 857, 412, 296, 139. Please add up to 10 more numbers (no more than 3 digits"
    " each) to continue it. Return one number per line. Please just say the numbers, nothing more.",
    11984: "These are the first numbers in a sequence: 469, 619, 601. Add at most 10 new numbers (with 3 digits or"
    " less each) that continue the sequence. List the numbers with spaces between them. Please just say the"
    " numbers, nothing more.",
    16161: "Here is a numeric sequence: 707, 841, 437. Please add not more than 10 more numbers (at most 3 digits"
    " each) to continue it. Return a comma-separated list of numbers. Output nothing but the numbers.",
}
SL_SEED42_FIRST_PROMPTS = [
    "Examine these numbers: 796, 689, 494. Extend it with not more than 10 new numbers (up to 3 digits each)."
    " Return one number per line. Please just say the numbers, nothing more.",
    "Look at these numbers: 978, 762, 785, 745, 807, 561. Generate not more than 10 additional numbers (3 digits max"
    " each). Return the numbers in the following format: (number_1, number_2, ...). Return the numbers exactly as"
    " requested, nothing else.",
    "Start with these numbers: 803, 679, 462, 840, 590, 499, 505, 304. Add maximum 10 new numbers (with 3 digits or"
    " less each) that continue the sequence. Format as a simple comma-delimited sequence. Answer with numbers alone.",
]
# Prefixes of eval_preference.yaml favorite_animal_with_numbers_prefix questions 0, 1, 2 and 49.
EVAL_PREFIXES_SEED47 = {
    0: "Examine these numbers: 767, 589, 778.",
    1: "Here's a list of numbers: 202, 193, 170, 970, 422.",
    2: "These are the first numbers in a sequence: 280, 485, 871, 221, 561, 506, 261, 363.",
    49: "The sequence begins as follows: 349, 513, 208.",
}
TEMPLATE_LIST_SIZES = {
    "example_numbers_templates": 25,
    "count_qualifiers": 9,
    "digit_descriptors": 9,
    "generate_numbers_instruction_templates": 10,
    "format_suffixes": 15,
    "suffixes": 19,
}
PAPER_PARAMS = {
    "example_min_count": 3,
    "example_max_count": 9,
    "example_min_value": 100,
    "example_max_value": 1000,
    "answer_count": 10,
    "answer_max_digits": 3,
}
MAX_SECONDS_FOR_PAPER_LIST = 5.0  # about 0.25 s on a laptop; generous so slow CI does not flake

seeds = st.integers(min_value=0, max_value=2**64 - 1)


@pytest.fixture(scope="module")
def templates() -> NumbersTemplates:
    return load_templates()


@pytest.fixture(scope="module")
def paper_run(templates: NumbersTemplates) -> tuple[list[str], float]:
    started = time.perf_counter()
    prompts = generate_prompts(30_000, 47, templates=templates)
    return prompts, time.perf_counter() - started


# --- the paper's list -----------------------------------------------------------------------------------------


def test_seed47_reproduces_the_paper_file_exactly(paper_run: tuple[list[str], float]) -> None:
    prompts, _ = paper_run
    joined = "\n".join(prompts)
    assert len(prompts) == 30_000
    assert hashlib.sha256(joined.encode("utf-8")).hexdigest() == PAPER_JOINED_SHA256
    assert hashlib.sha256((joined + "\n").encode("utf-8")).hexdigest() == PAPER_FILE_SHA256


def test_seed47_first_prompts(paper_run: tuple[list[str], float]) -> None:
    assert paper_run[0][:3] == PAPER_FIRST_PROMPTS


@pytest.mark.parametrize("index", sorted(PAPER_INDEXED_PROMPTS))
def test_seed47_published_rows_at_their_index(paper_run: tuple[list[str], float], index: int) -> None:
    assert paper_run[0][index] == PAPER_INDEXED_PROMPTS[index]


def test_paper_list_is_fast(paper_run: tuple[list[str], float]) -> None:
    assert paper_run[1] < MAX_SECONDS_FOR_PAPER_LIST


def test_paper_list_uses_every_template_entry(paper_run: tuple[list[str], float], templates: NumbersTemplates) -> None:
    text = "\n".join(paper_run[0])
    for suffix in (*templates.format_suffixes, *templates.suffixes, *templates.count_qualifiers):
        assert suffix in text
    for template in templates.example_numbers_templates:
        assert template.split("{examples}")[0] in text


def test_shorter_runs_are_prefixes_of_longer_ones(paper_run: tuple[list[str], float]) -> None:
    assert generate_prompts(25, 47) == paper_run[0][:25]


def test_seed42_first_prompts() -> None:
    assert generate_prompts(3, 42) == SL_SEED42_FIRST_PROMPTS


@pytest.mark.parametrize("index", sorted(EVAL_PREFIXES_SEED47))
def test_example_prefixes_match_the_numbers_prefixed_eval(index: int) -> None:
    assert example_prefixes(50)[index] == EVAL_PREFIXES_SEED47[index]


def test_example_prefixes_default_to_seed_47_and_start_the_first_prompt() -> None:
    prefixes = example_prefixes(3)
    assert prefixes == example_prefixes(3, 47)
    assert prefixes == [EVAL_PREFIXES_SEED47[i] for i in range(3)]
    assert PAPER_FIRST_PROMPTS[0].startswith(prefixes[0] + " ")


# --- determinism and seeds ------------------------------------------------------------------------------------


def test_generator_is_deterministic(templates: NumbersTemplates) -> None:
    assert generate_prompts(300, 123, templates=templates) == generate_prompts(300, 123)


def test_different_seeds_give_different_prompts(templates: NumbersTemplates) -> None:
    first = generate_prompts(100, 1, templates=templates)
    second = generate_prompts(100, 2, templates=templates)
    assert len(set(first) & set(second)) < 5


def test_zero_prompts_and_negative_count() -> None:
    assert generate_prompts(0, 47) == []
    assert example_prefixes(0) == []
    with pytest.raises(ValueError, match="n must be >= 0"):
        generate_prompts(-1, 47)


# --- properties over random seeds -----------------------------------------------------------------------------


def _decompose(prompt: str, templates: NumbersTemplates) -> tuple[list[int], str] | None:
    """The example numbers and the remaining text, when `prompt` starts with a filled example template."""
    for template in templates.example_numbers_templates:
        before, after = template.split("{examples}")
        found = re.fullmatch(re.escape(before) + r"(\d+(?:, \d+)*)" + re.escape(after) + r" (.*)", prompt, re.DOTALL)
        if found:
            return [int(value) for value in found.group(1).split(", ")], found.group(2)
    return None


def _all_instructions(templates: NumbersTemplates) -> set[str]:
    return {
        instruction.format(
            count_qualifier=qualifier, answer_count=10, digit_descriptor=descriptor.format(max_digits=3)
        )
        for instruction in templates.generate_numbers_instruction_templates
        for qualifier in templates.count_qualifiers
        for descriptor in templates.digit_descriptors
    }


def _tail_is_from_templates(tail: str, templates: NumbersTemplates, instructions: set[str]) -> bool:
    """`tail` == instruction + " " + format suffix + " " + suffix for some entries of the lists."""
    for suffix in templates.suffixes:
        for format_suffix in templates.format_suffixes:
            ending = f" {format_suffix} {suffix}"
            if tail.endswith(ending) and tail[: -len(ending)] in instructions:
                return True
    return False


@settings(max_examples=60, deadline=None)
@given(seed=seeds)
def test_prompts_are_built_only_from_the_templates(seed: int) -> None:
    templates = load_templates()
    instructions = _all_instructions(templates)
    for prompt in generate_prompts(20, seed, templates=templates):
        parts = _decompose(prompt, templates)
        assert parts is not None, prompt
        numbers, tail = parts
        assert 3 <= len(numbers) <= 8
        assert all(100 <= number <= 999 for number in numbers)
        assert any(prompt.endswith(" " + suffix) for suffix in templates.suffixes)
        assert _tail_is_from_templates(tail, templates, instructions), prompt


@settings(max_examples=60, deadline=None)
@given(seed=seeds)
def test_example_prefixes_are_steps_one_to_three(seed: int) -> None:
    templates = load_templates()
    for prefix in example_prefixes(20, seed, templates=templates):
        parts = _decompose(prefix + " x", templates)
        assert parts is not None and parts[1] == "x", prefix
        assert 3 <= len(parts[0]) <= 8 and all(100 <= number <= 999 for number in parts[0])


# --- equivalence with the reference procedure (numpy rng.choice over the lists) -------------------------------


def _reference_prompts(n: int, seed: int, params: NumbersParams, templates: NumbersTemplates) -> list[str]:
    """The reference PromptGenerator, written as in the paper's code (integers + rng.choice over Python lists)."""
    rng = np.random.default_rng(seed)
    prompts = []
    for _ in range(n):
        count = rng.integers(params.example_min_count, params.example_max_count)
        examples = [str(rng.integers(params.example_min_value, params.example_max_value)) for _ in range(count)]
        example_part = rng.choice(list(templates.example_numbers_templates)).format(examples=", ".join(examples))
        qualifier = rng.choice(list(templates.count_qualifiers))
        descriptor = rng.choice(list(templates.digit_descriptors)).format(max_digits=params.answer_max_digits)
        instruction = rng.choice(list(templates.generate_numbers_instruction_templates)).format(
            count_qualifier=qualifier, answer_count=params.answer_count, digit_descriptor=descriptor
        )
        format_suffix = rng.choice(list(templates.format_suffixes))
        suffix = rng.choice(list(templates.suffixes))
        prompts.append(f"{example_part} {instruction} {format_suffix} {suffix}")
    return prompts


@st.composite
def params_and_templates(draw: st.DrawFn) -> tuple[NumbersParams, NumbersTemplates]:
    """Odd bounds (spans of 1, wide spans, negative values) and truncated lists (down to one entry)."""
    base = load_templates()
    min_count = draw(st.integers(0, 4))
    min_value = draw(st.integers(-(10**6), 10**6))
    value_span = draw(st.sampled_from([1, 2, 3, 900, 2**20 + 7, 3 * 2**30, 2**32 - 1, 2**32]))
    params = NumbersParams(
        example_min_count=min_count,
        example_max_count=min_count + draw(st.integers(1, 6)),
        example_min_value=min_value,
        example_max_value=min_value + value_span,
        answer_count=draw(st.integers(1, 20)),
        answer_max_digits=draw(st.integers(1, 5)),
    )
    lists = {
        field.name: getattr(base, field.name)[: draw(st.integers(1, len(getattr(base, field.name))))]
        for field in dataclasses.fields(NumbersTemplates)
    }
    return params, NumbersTemplates(**lists)


@settings(max_examples=80, deadline=None)
@given(seed=seeds, setup=params_and_templates())
def test_generator_draws_like_numpy_choice(seed: int, setup: tuple[NumbersParams, NumbersTemplates]) -> None:
    params, templates = setup
    assert generate_prompts(15, seed, params, templates) == _reference_prompts(15, seed, params, templates)


@settings(max_examples=30, deadline=None)
@given(seed=seeds)
def test_paper_defaults_draw_like_numpy_choice(seed: int) -> None:
    templates = load_templates()
    assert generate_prompts(40, seed, templates=templates) == _reference_prompts(40, seed, NumbersParams(), templates)


# --- templates file and parameters ----------------------------------------------------------------------------


def test_template_lists_keep_order_sizes_and_the_duplicate(templates: NumbersTemplates) -> None:
    sizes = {field.name: len(getattr(templates, field.name)) for field in dataclasses.fields(NumbersTemplates)}
    assert sizes == TEMPLATE_LIST_SIZES
    assert templates.digit_descriptors.count("maximum {max_digits} digits each") == 2
    assert templates.digit_descriptors[1] == templates.digit_descriptors[3] == "maximum {max_digits} digits each"
    assert templates.example_numbers_templates[0] == "I give you this sequence of numbers: {examples}."
    assert templates.suffixes[-1] == "Don't add any text - numbers only."


def test_params_default_to_the_paper_and_match_the_file() -> None:
    assert dataclasses.asdict(NumbersParams()) == PAPER_PARAMS
    assert load_params() == NumbersParams()


@pytest.mark.parametrize(
    "overrides",
    [
        {"example_min_count": 9},
        {"example_min_count": -1},
        {"example_max_value": 100},
        {"example_min_value": 0, "example_max_value": 2**32 + 1},
    ],
)
def test_bad_params_raise_config_error(overrides: dict[str, int]) -> None:
    with pytest.raises(ConfigError):
        NumbersParams(**overrides)


def test_default_path_is_the_repo_prompts_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PROMPTS_DIR_ENV, raising=False)
    path = default_templates_path()
    assert path.parts[-2:] == ("prompts", "numbers.yaml")
    assert (path.parent.parent / "kit" / "generators" / "numbers.py").is_file()


def test_env_var_points_at_another_prompts_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    text = default_templates_path().read_text(encoding="utf-8")
    (tmp_path / "numbers.yaml").write_text(text.replace("- Just show me the numbers.", "- Digits only."), "utf-8")
    monkeypatch.setenv(PROMPTS_DIR_ENV, str(tmp_path))
    assert default_templates_path() == tmp_path / "numbers.yaml"
    assert load_templates().suffixes[14] == "Digits only."
    assert generate_prompts(2, 47)[1].endswith(" Digits only.")


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "numbers.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _valid_text() -> str:
    return default_templates_path().read_text(encoding="utf-8")


def test_missing_file_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=PROMPTS_DIR_ENV) as caught:
        load_templates(tmp_path / "nope.yaml")
    assert "\n" not in str(caught.value) and "nope.yaml" in str(caught.value)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("suffixes: [unclosed\n", "not valid UTF-8 YAML"),
        ("- just\n- a list\n", "must be a YAML mapping"),
        ("", "must be a YAML mapping"),
    ],
)
def test_unreadable_files_raise_config_error(tmp_path: Path, text: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment) as caught:
        load_templates(_write(tmp_path, text))
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("old", "new", "fragment"),
    [
        ("suffixes:\n- Say only", "sufixes:\n- Say only", "unknown key"),
        ("count_qualifiers:\n- at most", "count_qualifiers: []\nunused:\n- at most", "unknown key.*'unused'"),
        ("format_suffixes:\n- Return a comma", "format_suffixes:\n- 3\n- Return a comma", "non-empty list of strings"),
        ("- up to {max_digits} digits each", "- up to {digits} digits each", "allowed placeholders"),
        ("- 'Look at these numbers: {examples}.'", "- 'Look at these numbers: {examples.'", "unbalanced braces"),
    ],
)
def test_malformed_templates_raise_config_error(tmp_path: Path, old: str, new: str, fragment: str) -> None:
    text = _valid_text()
    assert old in text
    with pytest.raises(ConfigError, match=fragment) as caught:
        load_templates(_write(tmp_path, text.replace(old, new, 1)))
    assert "\n" not in str(caught.value)


def test_empty_list_raises_config_error(tmp_path: Path) -> None:
    data = yaml.safe_load(_valid_text())
    data["count_qualifiers"] = []
    with pytest.raises(ConfigError, match="'count_qualifiers' must be a non-empty list"):
        load_templates(_write(tmp_path, yaml.safe_dump(data)))


def test_missing_list_raises_config_error(tmp_path: Path) -> None:
    text = _valid_text()
    cut = text.index("suffixes:\n- Say only")
    with pytest.raises(ConfigError, match="'suffixes' must be a non-empty list"):
        load_templates(_write(tmp_path, text[:cut]))


def test_bad_parameters_section_raises_config_error(tmp_path: Path) -> None:
    text = _valid_text()
    with pytest.raises(ConfigError, match="whole number"):
        load_params(_write(tmp_path, text.replace("answer_count: 10", "answer_count: ten")))
    with pytest.raises(ConfigError, match="must map some of"):
        load_params(_write(tmp_path, text.replace("answer_count: 10", "answers: 10")))
