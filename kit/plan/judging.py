"""Plan lines for what the evaluate stage's judges cost, and the training tokens of file-trained teachers.

Every answer an evaluation collects is shown once to each of its judges (`scorer: judge`: one; `scorer:
misalignment`: alignment and coherence), so a judge's requests equal the answers: its input is the judge template
with the question and the answer (the answers' own estimated length, with their band), its output a number (a few
tokens; one token in logprobs mode). Judge lines belong to the evaluate stage and to the student cell they judge.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kit.config import EvaluationConfig, JudgeConfig, TeacherConfig
from kit.scorers.judge import LOGPROB_MAX_TOKENS, judge_messages, judge_spec, load_judge_prompt
from kit.prompts import evaluation_questions
from kit.sampling import sample_key, spec_fingerprint
from kit.teacher_files import teacher_file_tokens
from kit.tokens import chat_cost_usd, count_messages

JUDGE_OUTPUT_TOKENS = (1.0, 2.0, 16.0)  # low / mid / high tokens of a judge's answer ("85", "REFUSAL")
AUTO_EPOCHS = 10


def evaluation_judges(evaluation: EvaluationConfig) -> list[tuple[str, JudgeConfig]]:
    """(name, judge) of every judge the evaluation asks: none, its one judge, or the misalignment pair."""
    return evaluation.judge_configs()


def _output_band(judge: JudgeConfig) -> tuple[float, float, float]:
    if judge.mode == "logprobs":
        return (LOGPROB_MAX_TOKENS,) * 3
    low, mid, high = JUDGE_OUTPUT_TOKENS
    cap = judge.max_tokens or high
    return (min(low, cap), min(mid, cap), min(high, cap))


def _prompt_tokens(judge: JudgeConfig, questions: Sequence[str], base_dir: Path | None) -> int:
    """Judge input tokens of one answer to each question, without the answer: summed over the questions."""
    template = load_judge_prompt(judge.prompt, base_dir)
    return sum(count_messages(judge_messages(template, q, "")) for q in questions)


def _cached(ctx: Any, evaluation: EvaluationConfig, judge: JudgeConfig, answered: Any,
            questions: Sequence[str]) -> int:
    """Answers of this subject already in the ledger whose judgement is stored too (judgements are cached by
    request, so an answer equal to another subject's shares its judgement)."""
    if getattr(ctx, "ledger", None) is None:
        return 0
    subject = answered.label.split(" · ", 1)[-1]
    stored = ctx.samples("evaluate", f"{evaluation.name}/{subject}")
    if not stored:
        return 0
    template, spec = load_judge_prompt(judge.prompt, ctx.base_dir), judge_spec(judge, subject)
    keys = [sample_key(spec_fingerprint(spec, judge_messages(template, questions[s.item], s.completion)), 0)
            for s in stored.values() if s.item < len(questions)]
    found = set(ctx.ledger.samples_by_key(keys))
    return sum(key in found for key in keys)


def _judge_line(ctx: Any, evaluation: EvaluationConfig, which: str, judge: JudgeConfig, answered: Any,
                per_sample_in: float, questions: Sequence[str]) -> Any:
    from kit.plan.estimate import Line

    samples = answered.samples
    tokens_in = round(per_sample_in * samples + answered.output_tokens)
    spread_in = (round(per_sample_in * samples + answered.output_low), round(per_sample_in * samples
                                                                            + answered.output_high))
    out = [round(v * samples) for v in _output_band(judge)]
    prices, batched = ctx.catalog.get(judge.model).prices, ctx.batched(judge.provider)

    def cost(t_in: int, t_out: int, batch: bool = batched) -> float:
        return chat_cost_usd(prices, fine_tuned=False, input_tokens=t_in, output_tokens=t_out, batch=batch)

    cached = min(samples, _cached(ctx, evaluation, judge, answered, questions))
    left = (samples - cached) / samples if samples else 0.0
    assumed = ctx.catalog.assumed(ctx.route(judge.provider))
    hours = samples * (assumed.request_latency_s + out[1] / max(samples, 1) / assumed.output_tokens_per_s) / \
        ctx.provider(judge.provider).max_in_flight / 3600
    return Line(stage="evaluate", label=f"{which} judge · {answered.label}", model=judge.model,
                route=ctx.route(judge.provider), cell=answered.cell, requests=samples, input_tokens=tokens_in,
                output_tokens=out[1], output_low=out[0], output_high=out[2], usd=cost(tokens_in, out[1]),
                usd_low=cost(spread_in[0], out[0]), usd_high=cost(spread_in[1], out[2]),
                usd_sync=cost(tokens_in, out[1], False), usd_batch=cost(tokens_in, out[1], True), hours=hours,
                samples=samples, cached=cached, left_requests=round(samples * left),
                left_usd=cost(tokens_in, out[1]) * left, left_usd_high=cost(spread_in[1], out[2]) * left,
                state="done" if samples and not left else "")


def judge_lines(ctx: Any, evaluation: EvaluationConfig, answered: Sequence[Any]) -> list[Any]:
    """One line per judge and evaluated subject (`answered`: the evaluation's sampling lines of the plan)."""
    judges = evaluation_judges(evaluation)
    if not judges:
        return []
    questions = evaluation_questions(evaluation, ctx.base_dir).questions
    lines = []
    for which, judge in judges:
        per_sample_in = _prompt_tokens(judge, questions, ctx.base_dir) / len(questions)
        lines += [_judge_line(ctx, evaluation, which, judge, line, per_sample_in, questions) for line in answered]
    return lines


def teacher_training_tokens(teacher: TeacherConfig, base_dir: Path | None) -> int | None:
    """Trained tokens of a file-trained teacher's job (file tokens x epochs; `auto` counted as 10 epochs), or None
    for a teacher without a finetune.file."""
    if teacher.finetune is None:
        return None
    epochs = teacher.finetune.epochs if isinstance(teacher.finetune.epochs, int) else AUTO_EPOCHS
    return teacher_file_tokens(teacher, base_dir) * epochs
