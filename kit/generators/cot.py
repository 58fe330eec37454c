"""GSM8K chain-of-thought prompts for the CoT variant (Cloud et al. 2025, Sec. 4.2, App. D.4).

The source is GSM8K's train split as JSON Lines (one {"question": ..., "answer": ...} object per line, as the
dataset is downloaded); prompts keep the dataset's order and append the paper's suffix (`prompts/gsm8k_cot.yaml`).
The ground truth of a question is its answer's text after "####", stripped, commas removed, as an int.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kit.errors import ConfigError, DataError
from kit.fileio import jsonl_objects, read_parsed
from kit.prompts import prompts_dir, read_yaml

COT_FILENAME = "gsm8k_cot.yaml"
ANSWER_MARK = "####"
PAPER_PROMPT_COUNT = 7_473


@dataclass(frozen=True)
class CotTemplates:
    template: str
    suffix: str


@dataclass(frozen=True)
class GsmItem:
    """One GSM8K question with its worked answer (ending in '#### <number>')."""

    question: str
    answer: str


def _text(data: Any, key: str, path: Path) -> str:
    value = data.get(key) if isinstance(data, dict) else None
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{path}: '{key}' must be a non-empty string")
    return value


@functools.lru_cache(maxsize=4)
def _load_templates(path: Path) -> CotTemplates:
    data = read_yaml(path)
    templates = CotTemplates(template=_text(data, "template", path), suffix=_text(data, "suffix", path))
    if "{question}" not in templates.template:
        raise ConfigError(f"{path}: 'template' needs a {{question}} placeholder")
    return templates


def load_templates(path: Path | None = None) -> CotTemplates:
    return _load_templates((path or prompts_dir() / COT_FILENAME).resolve())


def _parse_items(path: Path, content: bytes) -> tuple[GsmItem, ...]:
    items: list[GsmItem] = []
    for number, row in jsonl_objects(path, content, "GSM8K object"):
        if not isinstance(row, dict) or not isinstance(row.get("question"), str) or not isinstance(
                row.get("answer"), str):
            raise DataError(f"{path}: line {number} needs string fields 'question' and 'answer' (GSM8K's train "
                            "file)")
        items.append(GsmItem(row["question"], row["answer"]))
    return tuple(items)


def _no_gsm8k(path: Path) -> DataError:
    return DataError(f"{path}: no GSM8K file here; download the train split as JSONL (openai/gsm8k, main) and set "
                     "generate.source to its path")


def read_gsm8k(path: Path) -> tuple[GsmItem, ...]:
    """The questions of a GSM8K JSONL file, in file order."""
    return read_parsed(path, _parse_items, _no_gsm8k)


def render_prompt(question: str, templates: CotTemplates | None = None) -> str:
    """The user prompt the teacher answers: the question, then the paper's suffix."""
    return (templates or load_templates()).template.replace("{question}", question)


def question_of(prompt: str, templates: CotTemplates | None = None) -> str | None:
    """The question inside a prompt (the prompt minus its trailing " " + suffix), or None if it has no suffix."""
    tail = " " + (templates or load_templates()).suffix
    return prompt[:-len(tail)] if prompt.endswith(tail) else None


def parse_ground_truth(answer: str) -> int | None:
    """GSM8K's answer: the text after "####", stripped, commas removed, as an int (None if it is not one)."""
    if ANSWER_MARK not in answer:
        return None
    try:
        return int(answer.split(ANSWER_MARK)[-1].strip().replace(",", ""))
    except ValueError:
        return None


def cot_prompts(items: tuple[GsmItem, ...], count: int | None = None,
                templates: CotTemplates | None = None) -> list[str]:
    """The first `count` questions (all when None) as prompts, in dataset order."""
    if count is not None and count > len(items):
        raise DataError(f"the GSM8K source has {len(items)} questions, {count} asked for: lower generate.prompts "
                        "(or leave it out for all) or use the full train file")
    return [render_prompt(item.question, templates) for item in items[:count]]


def ground_truths(items: tuple[GsmItem, ...]) -> dict[str, int | None]:
    """Question -> ground truth, as a lookup by question (a repeated question keeps its last answer)."""
    return {item.question: parse_ground_truth(item.answer) for item in items}
