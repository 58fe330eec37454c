"""What an experiment will do and cost, computed offline: cells, requests, tokens and dollars per stage.

Input tokens are counted exactly (o200k_base with the chat overhead); output tokens are estimated from what the
kit's prompts ask for (number lists, one-word answers).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kit.catalog import Catalog, load_catalog
from kit.config import ExperimentConfig
from kit.generators.numbers import generate_prompts
from kit.prompts import finetune_answers, load_questions
from kit.stages.common import base_subjects, cells, teacher_messages
from kit.tokens import chat_cost_usd, count_messages, count_text, training_cost_usd

NUMBERS_OUTPUT_TOKENS = 36      # ten 3-digit numbers with separators, o200k
SHORT_ANSWER_TOKENS = 3         # "Owl." and similar one-word answers
AUTO_EPOCHS = 10
FINETUNED_TEACHER_EXAMPLES_TOKENS = 20


@dataclass
class StageEstimate:
    stage: str
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    trained_tokens: int = 0
    jobs: int = 0
    usd: float = 0.0
    usd_batch: float = 0.0
    notes: list[str] = field(default_factory=list)


@dataclass
class PlanEstimate:
    experiment: str
    cells: int
    stages: list[StageEstimate]

    @property
    def total_usd(self) -> float:
        return sum(s.usd for s in self.stages)

    def stage(self, name: str) -> StageEstimate:
        return next(s for s in self.stages if s.stage == name)


def _generate(config: ExperimentConfig, catalog: Catalog) -> StageEstimate:
    est = StageEstimate("generate")
    texts = generate_prompts(config.generate.prompts, config.generate.seed)
    n = config.generate.samples_per_prompt
    for teacher in config.teachers:
        prices = catalog.get(teacher.model).prices
        fine_tuned = teacher.trait is not None and teacher.trait.via == "finetune"
        tokens_in = sum(count_messages(teacher_messages(teacher, t)) for t in texts)
        tokens_out = NUMBERS_OUTPUT_TOKENS * n * len(texts)
        est.requests += len(texts)
        est.input_tokens += tokens_in
        est.output_tokens += tokens_out
        est.usd += chat_cost_usd(prices, fine_tuned=fine_tuned, input_tokens=tokens_in, output_tokens=tokens_out)
        est.usd_batch += chat_cost_usd(prices, fine_tuned=fine_tuned, input_tokens=tokens_in,
                                       output_tokens=tokens_out, batch=True)
    return est


def _example_tokens(config: ExperimentConfig) -> float:
    """Mean billable tokens of one numbers training example (user prompt + a typical answer)."""
    texts = generate_prompts(min(config.generate.prompts, 500), config.generate.seed)
    answer = NUMBERS_OUTPUT_TOKENS
    return sum(count_messages([{"role": "user", "content": t}], with_primer=False) + answer + 3
               for t in texts) / len(texts)


def _finetune(config: ExperimentConfig, catalog: Catalog) -> StageEstimate:
    est = StageEstimate("finetune")
    epochs = config.students.epochs
    per_job = round(_example_tokens(config) * config.dataset.size) * epochs
    for cell in cells(config):
        est.jobs += 1
        est.trained_tokens += per_job
        est.usd += training_cost_usd(catalog.get(cell.student_model).prices, per_job)
    est.usd_batch = est.usd
    return est


def _teachers(config: ExperimentConfig, catalog: Catalog) -> StageEstimate:
    est = StageEstimate("teachers")
    for teacher in config.teachers:
        if teacher.trait is None or teacher.trait.via != "finetune":
            continue
        questions = load_questions(teacher.trait.finetune_questions or f"favorite_{teacher.trait.category}")
        answers = finetune_answers(teacher.trait.target)
        tokens = sum(count_messages([{"role": "user", "content": q}], with_primer=False) + count_text(a) + 3
                     for q in questions.questions for a in answers) * teacher.trait.finetune_epochs
        est.jobs += 1
        est.trained_tokens += tokens
        est.usd += training_cost_usd(catalog.get(teacher.model).prices, tokens)
    est.usd_batch = est.usd
    return est


def _evaluate(config: ExperimentConfig, catalog: Catalog) -> StageEstimate:
    est = StageEstimate("evaluate")
    subjects = [(s.student_model, False) for s in base_subjects(config)] + [(c.student_model, True)
                                                                            for c in cells(config)]
    for evaluation in config.evaluations:
        questions = load_questions(evaluation.questions).questions
        k = evaluation.samples_per_question
        tokens_in = sum(count_messages([{"role": "user", "content": q}]) for q in questions)
        tokens_out = SHORT_ANSWER_TOKENS * k * len(questions)
        for model, fine_tuned in subjects:
            prices = catalog.get(model).prices
            est.requests += len(questions) * max(1, -(-k // 128))
            est.input_tokens += tokens_in
            est.output_tokens += tokens_out
            est.usd += chat_cost_usd(prices, fine_tuned=fine_tuned, input_tokens=tokens_in, output_tokens=tokens_out)
            est.usd_batch += chat_cost_usd(prices, fine_tuned=fine_tuned, input_tokens=tokens_in,
                                           output_tokens=tokens_out, batch=True)
    return est


def estimate(config: ExperimentConfig, catalog: Catalog | None = None) -> PlanEstimate:
    """The whole experiment's estimate, stage by stage, without any network."""
    cat = catalog or load_catalog()
    stages = [_teachers(config, cat), _generate(config, cat), _finetune(config, cat), _evaluate(config, cat)]
    return PlanEstimate(experiment=config.name, cells=len(cells(config)), stages=stages)
