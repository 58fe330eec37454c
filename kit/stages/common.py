"""Bookkeeping shared by the stages: stage state in the ledger, teacher resolution, cells and subjects."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from kit.config import ExperimentConfig, TeacherConfig
from kit.errors import DataError
from kit.providers.base import Message
from kit.prompts import persona_prompt
from kit.runs import Run

SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def safe_name(text: str) -> str:
    return SAFE.sub("_", text).strip("_")


@contextmanager
def stage(run: Run, name: str) -> Iterator[dict[str, Any]]:
    """Mark a stage running, then done (with the detail the body filled in) or failed."""
    detail: dict[str, Any] = {}
    started = time.monotonic()
    run.ledger.set_stage(name, "running")
    try:
        yield detail
    except BaseException as err:
        run.ledger.set_stage(name, "failed", {"error": type(err).__name__})
        raise
    detail["seconds"] = round(time.monotonic() - started, 3)
    run.ledger.set_stage(name, "done", detail)
    run.progress.note(f"{name}: done in {detail['seconds']:.1f}s")


def teacher_cell(teacher: TeacherConfig) -> str:
    return f"teacher--{teacher.name}"


def teacher_model(run: Run, teacher: TeacherConfig) -> str:
    """The model that writes the teacher's data: its base model, or its fine-tuned model for a trained trait."""
    if not teacher.trained():
        return teacher.model
    record = run.ledger.job(teacher_cell(teacher))
    if record is None or record.state != "succeeded" or not record.fine_tuned_model:
        raise DataError(f"teacher '{teacher.name}' has not been fine-tuned yet: run `slkit run` "
                        f"(or `slkit finetune`) on {run.config_path} first")
    return record.fine_tuned_model


def teacher_messages(teacher: TeacherConfig, prompt: str) -> list[Message]:
    """The paper's teacher request: the persona as system message (none for controls and trained traits)."""
    messages: list[Message] = []
    if teacher.trait is not None and teacher.trait.via == "system_prompt":
        messages.append({"role": "system", "content": persona_prompt(teacher.trait)})
    messages.append({"role": "user", "content": prompt})
    return messages


@dataclass(frozen=True)
class Cell:
    """One student fine-tuning job: teacher data x student model x seed."""

    id: str
    teacher: TeacherConfig
    student_model: str
    student_provider: str | None
    seed: int


def cells(config: ExperimentConfig) -> list[Cell]:
    return [Cell(id=f"{t.name}--{safe_name(s.model)}--s{seed}", teacher=t, student_model=s.model,
                 student_provider=s.provider, seed=seed)
            for t in config.teachers for s in config.students.models for seed in config.students.seeds]


@dataclass(frozen=True)
class Subject:
    """A model under evaluation: a student's base model, or a fine-tuned student of one cell."""

    id: str
    model: str
    provider: str | None
    student_model: str
    condition: str
    teacher: str
    seed: int | None


def base_subjects(config: ExperimentConfig) -> list[Subject]:
    seen: dict[str, Subject] = {}
    for s in config.students.models:
        seen.setdefault(s.model, Subject(id=f"base--{safe_name(s.model)}", model=s.model, provider=s.provider,
                                         student_model=s.model, condition="base", teacher="", seed=None))
    return list(seen.values())


def student_subjects(run: Run) -> list[Subject]:
    """Fine-tuned students whose jobs succeeded."""
    out: list[Subject] = []
    for cell in cells(run.config):
        record = run.ledger.job(cell.id)
        if record is not None and record.state == "succeeded" and record.fine_tuned_model:
            out.append(Subject(id=cell.id, model=record.fine_tuned_model, provider=cell.student_provider,
                               student_model=cell.student_model, condition=cell.teacher.name,
                               teacher=cell.teacher.name, seed=cell.seed))
    return out
