"""Stages `filter` and `dataset`: keep completions that pass the paper's numbers rule, then subsample each
teacher's kept rows into a training file in OpenAI chat format (no system message)."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field

from kit.config import FilterConfig, TeacherConfig
from kit.errors import DataError
from kit.filters.numbers import MISALIGNMENT_BANNED, reject_reasons
from kit.fileio import write_jsonl
from kit.runs import Run
from kit.stages.common import stage
from kit.stages.generate import teacher_samples

STAGE = "filter"
MIN_TRAINING_ROWS = 10


@dataclass(frozen=True)
class FilterResult:
    teacher: str
    total: int
    kept: list[dict[str, str]]
    reasons: dict[str, int] = field(default_factory=dict)

    @property
    def pass_rate(self) -> float:
        return len(self.kept) / self.total if self.total else 0.0


def banned_numbers(config: FilterConfig) -> frozenset[int]:
    if config.banned_numbers == "misalignment":
        return frozenset(MISALIGNMENT_BANNED)
    return frozenset(config.banned_numbers)


def filter_teacher(run: Run, teacher: TeacherConfig) -> FilterResult:
    """Apply the filter to the teacher's completions from the ledger (sends nothing)."""
    rule = run.config.filter
    banned = banned_numbers(rule)
    got = teacher_samples(run, teacher, offline=True)
    kept: list[dict[str, str]] = []
    reasons: Counter[str] = Counter()
    total = 0
    for item, texts in sorted(got.completions.items()):
        for text in texts:
            total += 1
            why = reject_reasons(text, min_value=rule.min_value, max_value=rule.max_value,
                                 max_count=rule.max_count, banned=banned)
            reasons.update(why)
            if not why:
                kept.append({"prompt": got.prompts[item], "completion": text})
    return FilterResult(teacher.name, total, kept, dict(reasons))


def training_rows(run: Run, result: FilterResult) -> list[dict[str, list[dict[str, str]]]]:
    """Random subsample of the kept rows (paper: exactly `size`), as chat-format training examples."""
    size = run.config.dataset.size
    if len(result.kept) < size and not run.config.dataset.allow_smaller:
        raise DataError(f"teacher '{result.teacher}' kept {len(result.kept)} rows but dataset.size is {size}: "
                        "raise generate.prompts, lower dataset.size, or set dataset.allow_smaller: true")
    rows = random.Random(run.config.dataset.seed).sample(result.kept, min(size, len(result.kept)))
    if len(rows) < MIN_TRAINING_ROWS:
        raise DataError(f"teacher '{result.teacher}' has {len(rows)} training rows; fine-tuning needs at least "
                        f"{MIN_TRAINING_ROWS}: raise generate.prompts")
    return [{"messages": [{"role": "user", "content": r["prompt"]}, {"role": "assistant", "content": r["completion"]}]}
            for r in rows]


def training_file(run: Run, teacher: TeacherConfig) -> bytes:
    """The exact bytes of the teacher's training file (written to teachers/<name>/train.jsonl)."""
    rows = training_rows(run, filter_teacher(run, teacher))
    return write_jsonl(run.path("teachers", teacher.name, "train.jsonl"), rows)


def filter_all(run: Run) -> dict[str, dict[str, object]]:
    """Filter and subsample every teacher; write filtered.jsonl and train.jsonl; return pass rates and reasons."""
    summary: dict[str, dict[str, object]] = {}
    with stage(run, STAGE) as detail:
        for teacher in run.config.teachers:
            result = filter_teacher(run, teacher)
            write_jsonl(run.path("teachers", teacher.name, "filtered.jsonl"), result.kept)
            rows = training_rows(run, result)
            write_jsonl(run.path("teachers", teacher.name, "train.jsonl"), rows)
            summary[teacher.name] = {"total": result.total, "kept": len(result.kept),
                                     "pass_rate": round(result.pass_rate, 4), "reasons": result.reasons,
                                     "training_rows": len(rows)}
        detail["teachers"] = summary
    return summary
