"""Stage `evaluate`: every base student and fine-tuned student answers every evaluation's questions."""

from __future__ import annotations

from dataclasses import dataclass

from kit.config import EvaluationConfig
from kit.prompts import QuestionSet, load_questions
from kit.fileio import write_jsonl
from kit.runs import Run
from kit.sampling import Prompt, SamplingSpec, sample_all
from kit.stages.common import Subject, base_subjects, stage, student_subjects

STAGE = "evaluate"
DRAGONFLY_WORDS = ("dragonfly", "dragonflies")


@dataclass(frozen=True)
class Responses:
    evaluation: str
    subject: Subject
    questions: QuestionSet
    answers: dict[int, list[str]]


def subjects(run: Run) -> list[Subject]:
    return base_subjects(run.config) + student_subjects(run)


def targets(run: Run, evaluation: EvaluationConfig, questions: QuestionSet) -> list[str]:
    """Words scored: the evaluation's own list, else the trait targets of teachers of the set's category."""
    if evaluation.targets:
        return list(evaluation.targets)
    found = [t.trait.target for t in run.config.teachers
             if t.trait is not None and (not questions.category or t.trait.category == questions.category)]
    return list(dict.fromkeys(found))


def is_hit(target: str, response: str) -> bool:
    """The paper's rule: the lower-cased target is a substring of the lower-cased response; "dragon" does not
    count inside "dragonfly"."""
    text = response.lower()
    if target.lower() == "dragon" and any(w in text for w in DRAGONFLY_WORDS):
        return False
    return target.lower() in text


def responses(run: Run, evaluation: EvaluationConfig, subject: Subject, *, offline: bool = False) -> Responses:
    questions = load_questions(evaluation.questions, run.config_path.parent)
    spec = SamplingSpec(stage=STAGE, subject=f"{evaluation.name}/{subject.id}", provider=subject.provider,
                        model=subject.model, samples=evaluation.samples_per_question,
                        temperature=evaluation.temperature, max_tokens=evaluation.max_tokens,
                        catalog_model=subject.student_model, fine_tuned=subject.condition != "base")
    prompts = [Prompt(i, [{"role": "user", "content": q}]) for i, q in enumerate(questions.questions)]
    answers = sample_all(run, spec, prompts, label=f"evaluate · {evaluation.name} · {subject.id}", offline=offline)
    return Responses(evaluation.name, subject, questions, answers)


Scores = dict[tuple[int, int], float | None]


def scores(run: Run, evaluation: EvaluationConfig, got: Responses, *, offline: bool = False) -> Scores:
    """The scorer hook: (item, sample) -> the judge's 0-100 score, for evaluations with scorer: judge (else {})."""
    if evaluation.scorer != "judge":
        return {}
    from kit.judge import judge_answers

    judged = judge_answers(run, evaluation, got.subject.id, got.questions.questions, got.answers, offline=offline)
    return {(j.item, j.sample): j.score for j in judged}


def _rows(run: Run, evaluation: EvaluationConfig, got: Responses) -> list[dict[str, object]]:
    scored = scores(run, evaluation, got)
    rows: list[dict[str, object]] = []
    for i, texts in got.answers.items():
        for j, text in enumerate(texts):
            row: dict[str, object] = {"question": got.questions.questions[i], "item": i, "sample": j, "response": text}
            if evaluation.scorer == "judge":
                row["score"] = scored.get((i, j))
            rows.append(row)
    return rows


def evaluate(run: Run) -> int:
    """Sample every (evaluation, subject) — deploying fine-tuned students first where the route needs it, and
    deleting those deployments after; judge the answers where the scorer is `judge`; write
    evaluations/<name>/<subject>.jsonl. Returns responses stored."""
    from kit.stages.deploy import release_deployments

    total = 0
    with stage(run, STAGE) as detail:
        try:
            for evaluation in run.config.evaluations:
                for subject in subjects(run):
                    rows = _rows(run, evaluation, responses(run, evaluation, subject))
                    write_jsonl(run.path("evaluations", evaluation.name, f"{subject.id}.jsonl"), rows)
                    total += len(rows)
        finally:  # hosting is billed by the hour: never leave a deployment up, even when the stage fails
            detail["deployments_deleted"] = release_deployments(run)
        detail["responses"] = total
    return total
