"""Stage `generate`: every teacher answers the number prompts; completions land in the ledger and raw.jsonl."""

from __future__ import annotations

from dataclasses import dataclass

from kit.config import TeacherConfig
from kit.generators.numbers import generate_prompts
from kit.fileio import write_jsonl
from kit.runs import Run
from kit.sampling import Prompt, SamplingSpec, sample_all
from kit.stages.common import stage, teacher_messages, teacher_model

STAGE = "generate"


@dataclass(frozen=True)
class TeacherSamples:
    teacher: str
    prompts: list[str]
    completions: dict[int, list[str]]


def _spec(run: Run, teacher: TeacherConfig) -> SamplingSpec:
    gen = run.config.generate
    trained = teacher.trait is not None and teacher.trait.via == "finetune"
    return SamplingSpec(stage=STAGE, subject=teacher.name, provider=teacher.provider,
                        model=teacher_model(run, teacher), samples=gen.samples_per_prompt,
                        temperature=gen.temperature, max_tokens=gen.max_tokens, catalog_model=teacher.model,
                        fine_tuned=trained)


def teacher_samples(run: Run, teacher: TeacherConfig, *, offline: bool = False) -> TeacherSamples:
    """The teacher's completions, sampling what is missing (or, offline, refusing to)."""
    texts = generate_prompts(run.config.generate.prompts, run.config.generate.seed)
    prompts = [Prompt(i, teacher_messages(teacher, text)) for i, text in enumerate(texts)]
    completions = sample_all(run, _spec(run, teacher), prompts, label=f"generate · {teacher.name}",
                             offline=offline)
    return TeacherSamples(teacher.name, texts, completions)


def generate(run: Run) -> dict[str, int]:
    """Sample every teacher; write teachers/<name>/raw.jsonl. Returns completions per teacher."""
    counts: dict[str, int] = {}
    with stage(run, STAGE) as detail:
        for teacher in run.config.teachers:
            got = teacher_samples(run, teacher)
            rows = [{"item": i, "sample": j, "prompt": got.prompts[i], "completion": text}
                    for i, texts in got.completions.items() for j, text in enumerate(texts)]
            write_jsonl(run.path("teachers", teacher.name, "raw.jsonl"), rows)
            counts[teacher.name] = len(rows)
        detail["completions"] = counts
    return counts
