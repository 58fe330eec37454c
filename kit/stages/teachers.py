"""Stage `teachers`: fine-tune the teachers that are trained before they write data — a trait trained in from its
answers (paper Fig. 14), or any teacher given a training file (`finetune.file`: the paper's misaligned teacher on
insecure code, its controls on secure and educational-insecure code) — rather than prompted. Jobs go through the
same lifecycle as the students' (kit/stages/finetune.py): uploaded once, created at most once, resumable."""

from __future__ import annotations

from kit.config import TeacherConfig
from kit.prompts import finetune_answers, load_questions
from kit.fileio import write_jsonl
from kit.runs import Run
from kit.stages.common import stage, teacher_cell
from kit.stages.finetune import JobPlan, run_jobs
from kit.teacher_files import teacher_training_bytes

STAGE = "teachers"


def trained_teachers(run: Run) -> list[TeacherConfig]:
    return [t for t in run.config.teachers if t.trained()]


def trait_training_file(run: Run, teacher: TeacherConfig) -> bytes:
    """Every question of the trait's category x the eight answer variants (owl, owls, ..., Owls!)."""
    trait = teacher.trait
    assert trait is not None
    questions = load_questions(trait.finetune_questions or f"favorite_{trait.category}", run.config_path.parent)
    rows = [{"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}
            for q in questions.questions for a in finetune_answers(trait.target)]
    return write_jsonl(run.path("teachers", teacher.name, "trait_train.jsonl"), rows)


def teacher_job(run: Run, teacher: TeacherConfig) -> JobPlan:
    """The teacher's fine-tuning job: on its finetune.file with its hyperparameters, else on its trait answers."""
    if teacher.finetune is not None:
        ft = teacher.finetune
        return JobPlan(cell=teacher_cell(teacher), provider=teacher.provider, base_model=teacher.model,
                       training=teacher_training_bytes(teacher, run.config_path.parent), epochs=ft.epochs,
                       batch_size=ft.batch_size, learning_rate_multiplier=ft.learning_rate_multiplier)
    epochs = teacher.trait.finetune_epochs if teacher.trait else 1
    return JobPlan(cell=teacher_cell(teacher), provider=teacher.provider, base_model=teacher.model,
                   training=trait_training_file(run, teacher), epochs=epochs)


def train_teachers(run: Run, *, retry_failed: bool = False) -> dict[str, str]:
    teachers = trained_teachers(run)
    if not teachers:
        return {}
    with stage(run, STAGE) as detail:
        plans = [teacher_job(run, t) for t in teachers]
        run_jobs(run, plans, retry_failed=retry_failed)
        models = {t.name: str(run.ledger.job(teacher_cell(t)).fine_tuned_model) for t in teachers}  # type: ignore[union-attr]
        detail["teachers"] = models
    return models
