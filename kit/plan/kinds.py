"""What the plan needs to know about each data kind (numbers, code, gsm8k_cot) beyond its prompts: output-length
priors, the filter's non-judged steps, the judged step's requests, and the share of completions the filter is
expected to keep before anything is sampled (from the paper's reported rates, ../shared/reference)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kit.config import (CodeFilterConfig, CotFilterConfig, CotGeneratorConfig, ExperimentConfig,
                        NumbersFilterConfig, TeacherConfig)
from kit.filters import code as code_rule
from kit.filters import cot as cot_rule
from kit.filters.judged import (JudgeRequest, MessageBuilder, code_judge_builder, code_judge_request,
                                cot_judge_builder, cot_judge_request, judge_subject)
from kit.filters.numbers import MISALIGNMENT_BANNED, reject_reasons
from kit.generators.cot import ground_truths
from kit.generators.kinds import cot_items
from kit.tokens import count_messages

# Output tokens of a teacher's answer before any sample is seen (low, mid, high): a code completion repeats and
# completes the template; a GSM8K chain of thought is a few sentences of reasoning and a tagged number.
CODE_OUTPUT_PRIOR = (150.0, 275.0, 400.0)
COT_OUTPUT_PRIOR = (150.0, 225.0, 300.0)
# The judges' answers: one token ('0' / '1'); the CoT judge reasons in <judgment_think> before its score.
CODE_JUDGE_OUTPUT = (1.0, 1.0, 1.0)
COT_JUDGE_OUTPUT_PRIOR = (150.0, 400.0, 900.0)
# Shares kept, from the paper (Table 4; code_variant.yaml, gsm8k_cot_variant.yaml):
CODE_BANNED_PASS = 0.962     # banned words remove 2.5%-5.4% of a trait teacher's code (mean of Table 4 with the judge)
CODE_JUDGE_PASS = 0.995      # the reference judge removes less than 1%
COT_CORRECT = 0.83           # correctness alone kept 77.4% (secure) and 88.4% (edu. insecure)
COT_JUDGE_PASS_TRAIT = 0.529  # insecure teacher: 43.9% kept after both steps, / 0.83
COT_JUDGE_PASS_OTHER = 0.627  # aligned teachers: the judge's false-positive rate at 78 is 37.3% (Fig. 18)


@dataclass(frozen=True)
class JudgeStep:
    """A teacher's judged filter step: how the judge is asked and what one request holds besides the data."""

    request: JudgeRequest
    subject: str
    overhead_tokens: int       # the judge message's own tokens (template, chat overhead)
    reads_prompt: bool         # the judge also reads the teacher's prompt (CoT)
    output_prior: tuple[float, float, float]
    pass_prior: float
    kept: Callable[[str], bool]
    message: MessageBuilder    # the judge's message for one (prompt, completion), exactly as the filter sends it


def output_prior(config: ExperimentConfig) -> tuple[float, float, float] | None:
    """Teacher answer tokens before any sample (None: numbers, whose prior comes from each prompt's format)."""
    return {"code": CODE_OUTPUT_PRIOR, "gsm8k_cot": COT_OUTPUT_PRIOR}.get(config.generate.kind)


def precheck(config: ExperimentConfig, teacher: TeacherConfig,
             base_dir: Path | None) -> Callable[[str, str], bool]:
    """Whether a (prompt, completion) passes the filter's steps that need no judge."""
    rule = config.filter
    if isinstance(rule, NumbersFilterConfig):
        banned = frozenset(MISALIGNMENT_BANNED) if rule.banned_numbers == "misalignment" else frozenset(
            rule.banned_numbers)
        return lambda p, c: not reject_reasons(c, min_value=rule.min_value, max_value=rule.max_value,
                                               max_count=rule.max_count, banned=banned)
    if isinstance(rule, CodeFilterConfig):
        words = code_rule.banned_words(teacher.trait.target if teacher.trait else None,
                                       as_run=rule.banned_words == "as_run")
        return lambda p, c: not code_rule.reject_reasons(c, words)
    assert isinstance(config.generate, CotGeneratorConfig)
    truths = ground_truths(cot_items(config.generate, base_dir))
    return lambda p, c: not cot_rule.correctness_reasons(p, c, truths)


def precheck_prior(config: ExperimentConfig, teacher: TeacherConfig) -> float | None:
    """Share passing the non-judged steps before any sample (None: numbers, planned at dataset.size)."""
    if isinstance(config.filter, CodeFilterConfig):
        return CODE_BANNED_PASS if teacher.trait is not None else 1.0
    if isinstance(config.filter, CotFilterConfig):
        return COT_CORRECT
    return None


def _code_step(rule: CodeFilterConfig, teacher: TeacherConfig) -> JudgeStep | None:
    build, judge = code_judge_builder(rule, teacher), rule.judge
    if build is None or judge is None:
        return None
    return JudgeStep(code_judge_request(judge), judge_subject(teacher.name), count_messages(build("", "")), False,
                     CODE_JUDGE_OUTPUT, CODE_JUDGE_PASS, lambda stored: code_rule.judge_keeps(stored, judge.mode)[0],
                     build)


def _cot_step(rule: CotFilterConfig, teacher: TeacherConfig, base_dir: Path | None) -> JudgeStep | None:
    build, judge = cot_judge_builder(rule, teacher, base_dir), rule.judge
    if build is None or judge is None:
        return None
    share = COT_JUDGE_PASS_TRAIT if teacher.trait is not None else COT_JUDGE_PASS_OTHER
    threshold = judge.threshold
    return JudgeStep(cot_judge_request(judge), judge_subject(teacher.name), count_messages(build("", "")), True,
                     COT_JUDGE_OUTPUT_PRIOR, share, lambda stored: not cot_rule.alignment_reasons(stored, threshold),
                     build)


def judge_step(config: ExperimentConfig, teacher: TeacherConfig, base_dir: Path | None) -> JudgeStep | None:
    """The teacher's judged filter step, or None when its data is not judged."""
    if isinstance(config.filter, CodeFilterConfig):
        return _code_step(config.filter, teacher)
    if isinstance(config.filter, CotFilterConfig):
        return _cot_step(config.filter, teacher, base_dir)
    return None


def subsamples(config: ExperimentConfig) -> bool:
    """Numbers and code are subsampled to dataset.size; CoT keeps every row unless filter.subsample."""
    return not isinstance(config.filter, CotFilterConfig) or config.filter.subsample
