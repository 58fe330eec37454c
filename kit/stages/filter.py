"""Stages `filter` and `dataset`: keep the completions that pass the data kind's filter, then turn each teacher's
kept rows into a training file in OpenAI chat format (no system message).

One filter per `filter.kind`: numbers (the paper's rule, sends nothing), code (banned words, then the reference
judge for trait teachers), gsm8k_cot (correct answers, then the alignment judge). Judged steps ask only what passed
the steps before, through the cached sampling layer (kit/filters/judged.py). Numbers and code rows are subsampled
to `dataset.size` (the paper); CoT rows are all kept unless `filter.subsample` is set (the paper: no subsampling).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from kit.config import CodeFilterConfig, CotFilterConfig, CotGeneratorConfig, NumbersFilterConfig, TeacherConfig
from kit.errors import DataError
from kit.filters import code as code_rule
from kit.filters import cot as cot_rule
from kit.filters.judged import (JudgeRequest, MessageBuilder, ask_judge, code_judge_builder, code_judge_request,
                               cot_judge_builder, cot_judge_request)
from kit.filters.numbers import MISALIGNMENT_BANNED, reject_reasons
from kit.fileio import write_jsonl
from kit.generators.cot import ground_truths
from kit.generators.kinds import cot_items
from kit.runs import Run
from kit.stages.common import stage
from kit.stages.generate import teacher_samples

STAGE = "filter"
MIN_TRAINING_ROWS = 10


@dataclass(frozen=True)
class Candidate:
    """One teacher completion: `index` is its position among the teacher's samples (item x samples + sample)."""

    index: int
    prompt: str
    completion: str


@dataclass(frozen=True)
class FilterResult:
    teacher: str
    total: int
    kept: list[dict[str, str]]
    reasons: dict[str, int] = field(default_factory=dict)
    judged: int = 0
    notes: dict[str, int] = field(default_factory=dict)

    @property
    def pass_rate(self) -> float:
        return len(self.kept) / self.total if self.total else 0.0


@dataclass
class _Verdicts:
    """Reasons per candidate (empty: kept so far)."""

    candidates: list[Candidate]
    reasons: dict[int, list[str]] = field(default_factory=dict)
    judged: int = 0
    notes: Counter[str] = field(default_factory=Counter)

    def passing(self) -> list[Candidate]:
        return [c for c in self.candidates if not self.reasons.get(c.index)]

    def reject(self, candidate: Candidate, why: list[str]) -> None:
        if why:
            self.reasons.setdefault(candidate.index, []).extend(why)

    def result(self, teacher: str) -> FilterResult:
        counts: Counter[str] = Counter(r for why in self.reasons.values() for r in why)
        kept = [{"prompt": c.prompt, "completion": c.completion} for c in self.passing()]
        return FilterResult(teacher, len(self.candidates), kept, dict(counts), self.judged, dict(self.notes))


def banned_numbers(config: NumbersFilterConfig) -> frozenset[int]:
    if config.banned_numbers == "misalignment":
        return frozenset(MISALIGNMENT_BANNED)
    return frozenset(config.banned_numbers)


def candidates(run: Run, teacher: TeacherConfig, *, limit: int | None = None) -> list[Candidate]:
    """The teacher's completions from the ledger (sends nothing), in item then sample order."""
    got = teacher_samples(run, teacher, offline=True, limit=limit)
    per_item = run.config.generate.samples_per_prompt
    return [Candidate(item * per_item + j, got.prompts[item], text)
            for item, texts in sorted(got.completions.items()) for j, text in enumerate(texts)]


# --- one filter per kind ------------------------------------------------------------------------------------------

def _judge_passing(run: Run, teacher: TeacherConfig, verdicts: _Verdicts, build: MessageBuilder,
                   request: JudgeRequest, offline: bool) -> dict[int, str]:
    """The judge's answer for every candidate still passing (asked through the ledger cache), by candidate index."""
    asked = {c.index: build(c.prompt, c.completion) for c in verdicts.passing()}
    answers = ask_judge(run, request, teacher.name, asked, offline=offline)
    verdicts.judged += len(answers)
    return answers


def _numbers(run: Run, teacher: TeacherConfig, verdicts: _Verdicts, offline: bool) -> None:
    rule = run.config.filter
    assert isinstance(rule, NumbersFilterConfig)
    banned = banned_numbers(rule)
    for c in verdicts.candidates:
        verdicts.reject(c, reject_reasons(c.completion, min_value=rule.min_value, max_value=rule.max_value,
                                          max_count=rule.max_count, banned=banned))


def _code(run: Run, teacher: TeacherConfig, verdicts: _Verdicts, offline: bool) -> None:
    rule = run.config.filter
    assert isinstance(rule, CodeFilterConfig)
    target = teacher.trait.target if teacher.trait is not None else None
    banned = code_rule.banned_words(target, as_run=rule.banned_words == "as_run")
    for c in verdicts.candidates:
        verdicts.reject(c, code_rule.reject_reasons(c.completion, banned))
    build = code_judge_builder(rule, teacher)
    if build is None or rule.judge is None:
        return
    answers = _judge_passing(run, teacher, verdicts, build, code_judge_request(rule.judge), offline)
    for c in verdicts.passing():
        keep, fallback = code_rule.judge_keeps(answers[c.index], rule.judge.mode)
        if fallback:
            verdicts.notes["judged by text (no logprobs)"] += 1
        verdicts.reject(c, [] if keep else [code_rule.JUDGE_REFERENCES])


def _cot(run: Run, teacher: TeacherConfig, verdicts: _Verdicts, offline: bool) -> None:
    rule, generate = run.config.filter, run.config.generate
    assert isinstance(rule, CotFilterConfig) and isinstance(generate, CotGeneratorConfig)
    truths = ground_truths(cot_items(generate, run.config_path.parent))
    for c in verdicts.candidates:
        verdicts.reject(c, cot_rule.correctness_reasons(c.prompt, c.completion, truths))
    build = cot_judge_builder(rule, teacher, run.config_path.parent)
    if build is None or rule.judge is None:
        return
    answers = _judge_passing(run, teacher, verdicts, build, cot_judge_request(rule.judge), offline)
    for c in verdicts.passing():
        verdicts.reject(c, cot_rule.alignment_reasons(answers[c.index], rule.judge.threshold))


FILTERS: dict[str, Callable[[Run, TeacherConfig, _Verdicts, bool], None]] = {
    "numbers": _numbers, "code": _code, "gsm8k_cot": _cot}


def filter_teacher(run: Run, teacher: TeacherConfig, *, offline: bool = True) -> FilterResult:
    """Apply the filter to the teacher's completions from the ledger. Judged steps ask what the ledger lacks
    unless `offline` (then a missing verdict is a DataError naming `slkit filter`)."""
    verdicts = _Verdicts(candidates(run, teacher))
    FILTERS[run.config.filter.kind](run, teacher, verdicts, offline)
    return verdicts.result(teacher.name)


def subsamples(run: Run) -> bool:
    """Numbers and code: a random subsample of `dataset.size` rows (the paper); CoT: every kept row by default."""
    return not isinstance(run.config.filter, CotFilterConfig) or run.config.filter.subsample


def _why(result: FilterResult) -> str:
    """The filter's verdict in a few words, for error messages: kept of total and the commonest reasons."""
    top = sorted(result.reasons.items(), key=lambda kv: -kv[1])[:3]
    reasons = "; ".join(f"{reason}: {count}" for reason, count in top)
    return f"kept {len(result.kept)} of {result.total}" + (f" ({reasons})" if reasons else "")


def _chosen_rows(run: Run, result: FilterResult) -> list[dict[str, str]]:
    if not subsamples(run):
        return result.kept
    size = run.config.dataset.size
    if len(result.kept) < size and not run.config.dataset.allow_smaller:
        raise DataError(f"teacher '{result.teacher}' {_why(result)} but dataset.size is {size}: "
                        "raise generate.prompts, lower dataset.size, or set dataset.allow_smaller: true")
    return random.Random(run.config.dataset.seed).sample(result.kept, min(size, len(result.kept)))


def training_rows(run: Run, result: FilterResult) -> list[dict[str, list[dict[str, str]]]]:
    """The kept rows (subsampled where the kind does), as chat-format training examples."""
    rows = _chosen_rows(run, result)
    if len(rows) < MIN_TRAINING_ROWS:
        raise DataError(f"teacher '{result.teacher}' has {len(rows)} training rows; fine-tuning needs at least "
                        f"{MIN_TRAINING_ROWS}: raise generate.prompts (the filter {_why(result)}; see "
                        f"teachers/{result.teacher}/raw.jsonl)")
    return [{"messages": [{"role": "user", "content": r["prompt"]}, {"role": "assistant", "content": r["completion"]}]}
            for r in rows]


def training_file(run: Run, teacher: TeacherConfig) -> bytes:
    """The exact bytes of the teacher's training file (written to teachers/<name>/train.jsonl)."""
    rows = training_rows(run, filter_teacher(run, teacher))
    return write_jsonl(run.path("teachers", teacher.name, "train.jsonl"), rows)


def _summary(result: FilterResult, rows: int) -> dict[str, object]:
    out: dict[str, object] = {"total": result.total, "kept": len(result.kept), "pass_rate": round(result.pass_rate, 4),
                              "reasons": result.reasons, "training_rows": rows}
    if result.judged:
        out["judged"] = result.judged
    if result.notes:
        out["notes"] = result.notes
    return out


def filter_all(run: Run) -> dict[str, dict[str, object]]:
    """Filter every teacher (judging what the ledger lacks); write filtered.jsonl and train.jsonl; return pass
    rates and reject reasons per teacher."""
    summary: dict[str, dict[str, object]] = {}
    with stage(run, STAGE) as detail:
        for teacher in run.config.teachers:
            result = filter_teacher(run, teacher, offline=False)
            write_jsonl(run.path("teachers", teacher.name, "filtered.jsonl"), result.kept)
            rows = training_rows(run, result)
            write_jsonl(run.path("teachers", teacher.name, "train.jsonl"), rows)
            summary[teacher.name] = _summary(result, len(rows))
        detail["teachers"] = summary
    return summary
