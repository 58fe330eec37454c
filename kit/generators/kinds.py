"""The teacher prompts of each data kind (numbers, code, gsm8k_cot), from the experiment's `generate:` section.

One function per kind; `teacher_prompts` dispatches on the kind. Source files are resolved against the experiment
file's folder; without a `source`, the shipped samples in prompts/samples/ are used (not the paper's data).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from kit.config import CodeGeneratorConfig, CotGeneratorConfig, NumbersGeneratorConfig
from kit.generators import code, cot
from kit.generators.numbers import generate_prompts
from kit.prompts import prompts_dir

SAMPLES_DIR = "samples"
CODE_SAMPLE = "code_tasks.jsonl"
GSM8K_SAMPLE = "gsm8k_sample.jsonl"


def source_path(source: str | None, sample: str, base_dir: Path | None) -> Path:
    """A configured source (relative to the experiment file's folder), or the shipped sample."""
    if source is None:
        return prompts_dir() / SAMPLES_DIR / sample
    path = Path(source).expanduser()
    return path if path.is_absolute() or base_dir is None else base_dir / path


def numbers_prompts(generate: NumbersGeneratorConfig, base_dir: Path | None = None) -> list[str]:
    return generate_prompts(generate.prompts, generate.seed)


def code_prompts(generate: CodeGeneratorConfig, base_dir: Path | None = None) -> list[str]:
    sources = code.read_source_prompts(source_path(generate.source, CODE_SAMPLE, base_dir))
    return code.code_prompts(sources, generate.prompts)


def cot_items(generate: CotGeneratorConfig, base_dir: Path | None = None) -> tuple[cot.GsmItem, ...]:
    return cot.read_gsm8k(source_path(generate.source, GSM8K_SAMPLE, base_dir))


def cot_prompts(generate: CotGeneratorConfig, base_dir: Path | None = None) -> list[str]:
    return cot.cot_prompts(cot_items(generate, base_dir), generate.prompts)


PROMPTS: dict[str, Callable[[Any, Path | None], list[str]]] = {
    "numbers": numbers_prompts, "code": code_prompts, "gsm8k_cot": cot_prompts}


def teacher_prompts(generate: Any, base_dir: Path | None = None) -> list[str]:
    """The user prompts every teacher answers, in item order."""
    return PROMPTS[generate.kind](generate, base_dir)
