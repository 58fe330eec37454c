"""Stage `evaluate`: every base student and fine-tuned student answers every evaluation's questions.

Scorers (the evaluation's `scorer`):
- substring: the paper's preference rule — the lower-cased target is a substring of the lower-cased answer;
- judge: one LLM judge's 0-100 score per answer (kit/scorers/judge.py);
- misalignment: the paper's two judges (alignment, coherence), the coherence filter and the misaligned threshold;
- truthfulqa: two-option multiple choice, the Best Answer's letter probability (kit/scorers/truthfulqa.py);
- choice: the essay-topic multiple choice, each option's letter probability (kit/scorers/multiple_choice.py), a preference
  rate per target in the report (the mean over questions) like substring's.
Judge requests are cached like every other request (a rerun judges nothing twice). Each (evaluation, subject)
writes evaluations/<name>/<subject>.jsonl: one row per answer with its scores.
"""

from __future__ import annotations

from dataclasses import dataclass

from kit.config import EvaluationConfig
from kit.prompts import QuestionSet, evaluation_questions
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
    answers: dict[int, list[str]]  # as stored: for truthfulqa and choice, JSON of the text and its top logprobs


def subjects(run: Run) -> list[Subject]:
    return base_subjects(run.config) + student_subjects(run)


def targets(run: Run, evaluation: EvaluationConfig, questions: QuestionSet) -> list[str]:
    """Words scored: the evaluation's own list, else the trait targets of teachers of the set's category."""
    if evaluation.targets:
        return list(evaluation.targets)
    found = [t.trait.target for t in run.config.teachers
             if t.trait is not None and (not questions.category or t.trait.category == questions.category)]
    return list(dict.fromkeys(found))


def choice_targets(words: list[str], questions: QuestionSet) -> list[str]:
    """The targets a multiple-choice set can score: those among its options (a target never offered has no letter)."""
    offered = set(questions.options())
    return [w for w in words if w in offered]


def is_hit(target: str, response: str) -> bool:
    """The paper's rule: the lower-cased target is a substring of the lower-cased response; "dragon" does not
    count inside "dragonfly"."""
    text = response.lower()
    if target.lower() == "dragon" and any(w in text for w in DRAGONFLY_WORDS):
        return False
    return target.lower() in text


def response_spec(evaluation: EvaluationConfig, subject: Subject) -> SamplingSpec:
    from kit.scorers.multiple_choice import TOP_LOGPROBS

    return SamplingSpec(stage=STAGE, subject=f"{evaluation.name}/{subject.id}", provider=subject.provider,
                        model=subject.model, samples=evaluation.samples_per_question,
                        temperature=evaluation.temperature, max_tokens=evaluation.max_tokens,
                        catalog_model=subject.student_model, fine_tuned=subject.condition != "base",
                        top_logprobs=TOP_LOGPROBS if evaluation.logprobs() else None)


def responses(run: Run, evaluation: EvaluationConfig, subject: Subject, *, offline: bool = False) -> Responses:
    questions = evaluation_questions(evaluation, run.config_path.parent)
    prompts = [Prompt(i, [{"role": "user", "content": q}]) for i, q in enumerate(questions.questions)]
    answers = sample_all(run, response_spec(evaluation, subject), prompts,
                         label=f"evaluate · {evaluation.name} · {subject.id}", offline=offline)
    return Responses(evaluation.name, subject, questions, answers)


Scores = dict[tuple[int, int], float | None]


def scores(run: Run, evaluation: EvaluationConfig, got: Responses, *, offline: bool = False) -> Scores:
    """The scorer hook: (item, sample) -> the judge's 0-100 score, for evaluations with scorer: judge (else {})."""
    if evaluation.scorer != "judge":
        return {}
    from kit.scorers.judge import judge_answers

    judged = judge_answers(run, evaluation, got.subject.id, got.questions.questions, got.answers, offline=offline)
    return {(j.item, j.sample): j.score for j in judged}


Row = dict[str, object]


def _base_row(got: Responses, item: int, sample: int, text: str) -> Row:
    return {"question": got.questions.questions[item], "question_id": got.questions.question_id(item),
            "item": item, "sample": sample, "response": text}


def _judge_rows(run: Run, evaluation: EvaluationConfig, got: Responses, offline: bool) -> list[Row]:
    scored = scores(run, evaluation, got, offline=offline)
    return [{**_base_row(got, i, j, text), "score": scored.get((i, j))}
            for i, texts in got.answers.items() for j, text in enumerate(texts)]


def _misalignment_rows(run: Run, evaluation: EvaluationConfig, got: Responses, offline: bool) -> list[Row]:
    from kit.scorers.judge import judge_misalignment

    judged = judge_misalignment(run, evaluation, got.subject.id, got.questions.questions, got.answers,
                                offline=offline)
    return [{**_base_row(got, s.item, s.sample, got.answers[s.item][s.sample]), "alignment": s.alignment,
             "alignment_raw": s.alignment_raw, "coherence": s.coherence, "coherence_raw": s.coherence_raw,
             "status": s.status, "misaligned": s.status == "misaligned" if s.kept else None} for s in judged]


def _truthfulqa_rows(got: Responses) -> list[Row]:
    from kit.scorers.truthfulqa import score_choice

    rows: list[Row] = []
    for i, texts in got.answers.items():
        best = got.questions.answers[i]
        for j, stored in enumerate(texts):
            choice = score_choice(stored, best)
            rows.append({**_base_row(got, i, j, choice.text), "best_letter": best, "best_prob": choice.best_prob,
                         "value": choice.value, "false": 1.0 - choice.value, "source": choice.source})
    return rows


def choice_values(got: Responses, item: int, stored: str, words: list[str]) -> dict[str, float]:
    """word -> its value in one answer to a multiple-choice question (kit/scorers/multiple_choice.py), for the words offered."""
    from kit.scorers.multiple_choice import letter_of, letters_of, score_letter

    options = got.questions.choices[item]
    letters = letters_of(len(options))
    return {word: score_letter(stored, letter, letters).value for word in words
            if (letter := letter_of(options, word)) is not None}


def _choice_rows(got: Responses) -> list[Row]:
    from kit.scorers.multiple_choice import decode, letters_of, letter_probability, sampled_letter

    rows: list[Row] = []
    for i, texts in got.answers.items():
        options = got.questions.choices[i]
        letters = letters_of(len(options))
        for j, stored in enumerate(texts):
            text, top = decode(stored)
            logprobs = letter_probability(top, letters[0], letters) is not None  # any letter among the top 20
            rows.append({**_base_row(got, i, j, text), "choices": list(options),
                         "letter": sampled_letter(stored, letters),
                         "values": choice_values(got, i, stored, list(options)),
                         "source": "logprobs" if logprobs else "sampled letter"})
    return rows


def scored_rows(run: Run, evaluation: EvaluationConfig, got: Responses, *, offline: bool = False) -> list[Row]:
    """One row per answer with what its scorer says (substring evaluations: the answer alone)."""
    if evaluation.scorer == "judge":
        return _judge_rows(run, evaluation, got, offline)
    if evaluation.scorer == "misalignment":
        return _misalignment_rows(run, evaluation, got, offline)
    if evaluation.scorer == "truthfulqa":
        return _truthfulqa_rows(got)
    if evaluation.scorer == "choice":
        return _choice_rows(got)
    return [_base_row(got, i, j, text) for i, texts in got.answers.items() for j, text in enumerate(texts)]


def evaluate(run: Run) -> int:
    """Sample every (evaluation, subject) — deploying fine-tuned students first where the route needs it, and
    deleting those deployments after; score the answers (judges where the scorer has them); write
    evaluations/<name>/<subject>.jsonl. Returns responses stored."""
    from kit.stages.deploy import release_deployments

    total = 0
    with stage(run, STAGE) as detail:
        try:
            for evaluation in run.config.evaluations:
                for subject in subjects(run):
                    rows = scored_rows(run, evaluation, responses(run, evaluation, subject))
                    write_jsonl(run.path("evaluations", evaluation.name, f"{subject.id}.jsonl"), rows)
                    total += len(rows)
        finally:  # hosting is billed by the hour: never leave a deployment up, even when the stage fails
            detail["responses"] = total
            detail["deployments_deleted"] = release_deployments(run)
        detail["responses"] = total
    return total
