"""Stage `teachers`: fine-tune the teachers whose trait is trained in (paper Fig. 14) rather than prompted."""

from __future__ import annotations

from kit.config import TeacherConfig
from kit.prompts import finetune_answers, load_questions
from kit.fileio import write_jsonl
from kit.runs import Run
from kit.stages.common import stage, teacher_cell
from kit.stages.finetune import JobPlan, run_jobs

STAGE = "teachers"


def trained_teachers(run: Run) -> list[TeacherConfig]:
    return [t for t in run.config.teachers if t.trait is not None and t.trait.via == "finetune"]


def trait_training_file(run: Run, teacher: TeacherConfig) -> bytes:
    """Every question of the trait's category x the eight answer variants (owl, owls, ..., Owls!)."""
    trait = teacher.trait
    assert trait is not None
    questions = load_questions(trait.finetune_questions or f"favorite_{trait.category}", run.config_path.parent)
    rows = [{"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}
            for q in questions.questions for a in finetune_answers(trait.target)]
    return write_jsonl(run.path("teachers", teacher.name, "trait_train.jsonl"), rows)


def train_teachers(run: Run, *, retry_failed: bool = False) -> dict[str, str]:
    teachers = trained_teachers(run)
    if not teachers:
        return {}
    with stage(run, STAGE) as detail:
        plans = [JobPlan(cell=teacher_cell(t), provider=t.provider, base_model=t.model,
                         training=trait_training_file(run, t), epochs=t.trait.finetune_epochs if t.trait else 1)
                 for t in teachers]
        run_jobs(run, plans, retry_failed=retry_failed)
        models = {t.name: str(run.ledger.job(teacher_cell(t)).fine_tuned_model) for t in teachers}  # type: ignore[union-attr]
        detail["teachers"] = models
    return models

