"""Pre-flight checks before anything paid starts, and the pilot that refines a plan's output-token estimates.

Offline checks (keys present, models known, fine-tunable and not shut down) run before the run folder is even
opened (`kit.checks`). Here, with the run open: the plan must fit in `max_hours`, and each system-prompt trait
teacher must actually show its trait — asked a few evaluation questions, its trait rate must be clearly above the
student base models' (otherwise every dollar after this point is wasted). Every sample is stored in the ledger:
the base models' answers are the evaluation's own first samples, so nothing is paid twice.
"""

from __future__ import annotations

from dataclasses import dataclass

from kit.analysis.stats import fisher_exact
from kit.budget import ensure_time_allowed, ensure_within_budget
from kit.config import EvaluationConfig, TeacherConfig
from kit.errors import ConfigError
from kit.plan import PREFLIGHT_STAGE, PlanEstimate, trait_check_evaluation, trait_check_teachers
from kit.prompts import load_questions
from kit.runs import Run
from kit.sampling import Prompt, SamplingSpec, sample_all
from kit.stages.common import Subject, base_subjects, stage, teacher_messages
from kit.stages.evaluate import is_hit
from kit.stages.generate import _spec as generate_spec  # the generate stage's exact request, so pilot samples count
from kit.stages.generate import generation_prompts

PAID_STAGES = frozenset({"teachers", "generate", "finetune", "evaluate"})


@dataclass(frozen=True)
class TraitCheck:
    teacher: str
    target: str
    evaluation: str
    teacher_hits: int
    teacher_n: int
    base_model: str
    base_hits: int
    base_n: int
    p_value: float
    passed: bool

    @property
    def teacher_rate(self) -> float:
        return self.teacher_hits / self.teacher_n if self.teacher_n else 0.0

    @property
    def base_rate(self) -> float:
        return self.base_hits / self.base_n if self.base_n else 0.0


def _hits(answers: dict[int, list[str]], target: str) -> tuple[int, int]:
    texts = [t for batch in answers.values() for t in batch]
    return sum(is_hit(target, t) for t in texts), len(texts)


def _questions(run: Run, evaluation: EvaluationConfig) -> list[str]:
    questions = load_questions(evaluation.questions, run.config_path.parent).questions
    return list(questions[:run.config.preflight.trait_questions])


def _teacher_answers(run: Run, teacher: TeacherConfig, evaluation: EvaluationConfig) -> dict[int, list[str]]:
    spec = SamplingSpec(stage=PREFLIGHT_STAGE, subject=f"{evaluation.name}/teacher--{teacher.name}",
                        provider=teacher.provider, model=teacher.model, samples=run.config.preflight.trait_samples,
                        temperature=evaluation.temperature, max_tokens=evaluation.max_tokens)
    prompts = [Prompt(i, teacher_messages(teacher, q)) for i, q in enumerate(_questions(run, evaluation))]
    return sample_all(run, spec, prompts, label=f"preflight · trait check · {teacher.name}")


def _base_answers(run: Run, subject: Subject, evaluation: EvaluationConfig) -> dict[int, list[str]]:
    """The base model's first answers, stored exactly as the evaluate stage stores them (so they are reused)."""
    spec = SamplingSpec(stage="evaluate", subject=f"{evaluation.name}/{subject.id}", provider=subject.provider,
                        model=subject.model, samples=run.config.preflight.trait_samples,
                        temperature=evaluation.temperature, max_tokens=evaluation.max_tokens)
    prompts = [Prompt(i, [{"role": "user", "content": q}]) for i, q in enumerate(_questions(run, evaluation))]
    return sample_all(run, spec, prompts, label=f"preflight · trait check · {subject.id}")


def check_teacher_trait(run: Run, teacher: TeacherConfig, evaluation: EvaluationConfig) -> TraitCheck:
    """The teacher's trait rate against the highest rate among the student base models."""
    assert teacher.trait is not None
    target, settings = teacher.trait.target, run.config.preflight
    t_hits, t_n = _hits(_teacher_answers(run, teacher, evaluation), target)
    bases = [(s.model, *_hits(_base_answers(run, s, evaluation), target)) for s in base_subjects(run.config)]
    model, b_hits, b_n = max(bases, key=lambda b: b[1] / b[2] if b[2] else 0.0)
    p = fisher_exact(t_hits, t_n - t_hits, b_hits, b_n - b_hits, alternative="greater")
    margin = (t_hits / t_n if t_n else 0.0) - (b_hits / b_n if b_n else 0.0)
    return TraitCheck(teacher.name, target, evaluation.name, t_hits, t_n, model, b_hits, b_n, p,
                      passed=p < settings.trait_alpha and margin >= settings.trait_min_margin)


def _failure(check: TraitCheck) -> ConfigError:
    return ConfigError(
        f"pre-flight: teacher '{check.teacher}' said '{check.target}' in {check.teacher_hits}/{check.teacher_n} "
        f"answers ({check.teacher_rate:.0%}) vs {check.base_hits}/{check.base_n} ({check.base_rate:.0%}) for the "
        f"student base {check.base_model} (p={check.p_value:.2g}): its trait does not show, so the run would be "
        "wasted; fix the teacher's trait (system_prompt, model) or set preflight.trait_check: false to skip")


def trait_checks(run: Run) -> list[TraitCheck]:
    """Check every system-prompt trait teacher; raise ConfigError for the first that does not show its trait."""
    results = []
    for teacher in trait_check_teachers(run.config):
        evaluation = trait_check_evaluation(run.config, teacher, run.config_path.parent)
        if evaluation is None:
            run.progress.note(f"pre-flight: no evaluation scores '{teacher.name}'s trait; trait check skipped")
            continue
        check = check_teacher_trait(run, teacher, evaluation)
        run.progress.note(f"pre-flight: teacher '{teacher.name}' {check.target} rate {check.teacher_rate:.0%} vs "
                          f"base {check.base_rate:.0%} (p={check.p_value:.2g})")
        if not check.passed:
            raise _failure(check)
        results.append(check)
    return results


def _nothing_paid_yet(run: Run) -> bool:
    return not any((row := run.ledger.stage(name)) is not None and row["state"] == "done" for name in PAID_STAGES)


def run_preflight(run: Run, plan: PlanEstimate, stages: tuple[str, ...]) -> list[TraitCheck]:
    """Before the first paid stage of a run: the time limit, then the trait check (itself inside the budget)."""
    if not PAID_STAGES & set(stages) or not _nothing_paid_yet(run):
        return []
    ensure_time_allowed(plan)
    if not trait_check_teachers(run.config):
        return []
    ensure_within_budget(run, estimate_usd=plan.trait_check_usd_high, what="the pre-flight trait check")
    with stage(run, PREFLIGHT_STAGE) as detail:
        checks = trait_checks(run)
        detail["trait_checks"] = [{"teacher": c.teacher, "teacher_rate": round(c.teacher_rate, 4),
                                   "base_rate": round(c.base_rate, 4), "p_value": c.p_value} for c in checks]
    return checks


@dataclass(frozen=True)
class PilotResult:
    teachers: dict[str, int]  # teacher -> completions stored (first N prompts)


def pilot_teachers(run: Run) -> list[TeacherConfig]:
    """Teachers a pilot can sample now (a fine-tuned trait teacher has no model before the run trains it)."""
    return [t for t in run.config.teachers if not t.trained()]


def pilot_estimate_usd(plan: PlanEstimate, run: Run, prompts: int) -> float:
    """The high end of what the pilot costs: its share of the generate stage."""
    total = len(generation_prompts(run))
    return plan.stage("generate").usd_high * min(prompts, total) / total if total else 0.0


def run_pilot(run: Run, plan: PlanEstimate, prompts: int) -> PilotResult:
    """Sample the first `prompts` generation prompts of every teacher through the configured provider.

    The samples are the generate stage's own (same request, same cache key), so the real run reuses them.
    """
    ensure_within_budget(run, estimate_usd=pilot_estimate_usd(plan, run, prompts), what=f"a pilot of {prompts} prompts")
    texts = generation_prompts(run, prompts)  # numbers, code or CoT prompts: the first N of the run's own
    stored = {}
    for teacher in pilot_teachers(run):
        batch = [Prompt(i, teacher_messages(teacher, t)) for i, t in enumerate(texts)]
        answers = sample_all(run, generate_spec(run, teacher), batch, label=f"pilot · {teacher.name}")
        stored[teacher.name] = sum(len(v) for v in answers.values())
    return PilotResult(stored)
