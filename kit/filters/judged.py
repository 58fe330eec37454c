"""Judged filter steps: each candidate completion is shown to a judge model through the kit's cached sampling
(stage `filter`), so the verdicts land in the ledger under their sample keys, a rerun judges nothing twice, the
budget guard counts them, and `slkit plan` prices them (kit/plan/estimate.py uses the same requests)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from kit.config import CodeFilterConfig, CodeJudgeConfig, CotFilterConfig, CotJudgeConfig, TeacherConfig
from kit.filters import code as code_rule
from kit.filters.code import JUDGE_MAX_TOKENS, JUDGE_TEMPERATURE, JUDGE_TOP_LOGPROBS
from kit.scorers.judge import judge_messages, load_judge_prompt
from kit.providers.base import Message
from kit.runs import Run
from kit.sampling import Prompt, SamplingSpec, sample_all

FILTER_STAGE = "filter"


@dataclass(frozen=True)
class JudgeRequest:
    """How a filter's judge is asked: model, route and sampling."""

    model: str
    provider: str | None
    temperature: float
    max_tokens: int | None
    top_logprobs: int | None = None


def judge_subject(teacher: str) -> str:
    return f"judge/{teacher}"


def filter_judge_spec(request: JudgeRequest, teacher: str) -> SamplingSpec:
    return SamplingSpec(stage=FILTER_STAGE, subject=judge_subject(teacher), provider=request.provider,
                        model=request.model, samples=1, temperature=request.temperature,
                        max_tokens=request.max_tokens, top_logprobs=request.top_logprobs)


def user_message(text: str) -> list[Message]:
    return [{"role": "user", "content": text}]


def ask_judge(run: Run, request: JudgeRequest, teacher: str, messages: Mapping[int, list[Message]], *,
              offline: bool) -> dict[int, str]:
    """The judge's stored answer to each message (keyed like `messages`), sending only what the ledger lacks."""
    if not messages:
        return {}
    prompts = [Prompt(index, m) for index, m in sorted(messages.items())]
    got = sample_all(run, filter_judge_spec(request, teacher), prompts, label=f"filter judge · {teacher}",
                     offline=offline)
    return {index: texts[0] for index, texts in got.items()}


def code_judge_request(judge: CodeJudgeConfig) -> JudgeRequest:
    """The paper's code reference judge: temperature 0, one token, its top-5 logprobs (logprobs mode)."""
    return JudgeRequest(model=judge.model, provider=judge.provider, temperature=JUDGE_TEMPERATURE,
                        max_tokens=JUDGE_MAX_TOKENS,
                        top_logprobs=JUDGE_TOP_LOGPROBS if judge.mode == "logprobs" else None)


def cot_judge_request(judge: CotJudgeConfig) -> JudgeRequest:
    """The paper's CoT alignment judge: one sample at temperature 1, no token cap."""
    return JudgeRequest(model=judge.model, provider=judge.provider, temperature=judge.temperature,
                        max_tokens=judge.max_tokens)


def code_judged(rule: CodeFilterConfig, teacher: TeacherConfig) -> bool:
    """The reference judge reads a trait teacher's code (controls: no banned words and no judge, as the paper)."""
    return rule.judge is not None and teacher.trait is not None


def cot_judged(judge: CotJudgeConfig | None, teacher: TeacherConfig) -> bool:
    """Whether the alignment judge reads this teacher's chains of thought (`apply_to`)."""
    if judge is None:
        return False
    if judge.apply_to == "all":
        return True
    if judge.apply_to == "trait":
        return teacher.trait is not None
    return teacher.name in judge.apply_to


MessageBuilder = Callable[[str, str], list[Message]]


def code_judge_builder(rule: CodeFilterConfig, teacher: TeacherConfig) -> MessageBuilder | None:
    """The reference judge's message for one (prompt, completion) of this teacher, or None if it is not judged."""
    if not code_judged(rule, teacher) or rule.judge is None or teacher.trait is None:
        return None
    template, target = code_rule.reference_template(teacher.trait.category, rule.judge.wording), teacher.trait.target
    return lambda prompt, completion: user_message(code_rule.reference_prompt(template, target, completion))


def cot_judge_builder(rule: CotFilterConfig, teacher: TeacherConfig, base_dir: Path | None) -> MessageBuilder | None:
    """The alignment judge's message ({prompt}: the teacher's whole user prompt), or None if it is not judged."""
    if rule.judge is None or not cot_judged(rule.judge, teacher):
        return None
    prompt = load_judge_prompt(rule.judge.prompt, base_dir)
    return lambda question, completion: judge_messages(prompt, question, completion)
