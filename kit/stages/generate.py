"""Stage `generate`: every teacher answers the experiment's prompts (numbers, code or GSM8K chain-of-thought, by
`generate.kind`); completions land in the ledger and raw.jsonl."""

from __future__ import annotations

from dataclasses import dataclass

from kit.config import TeacherConfig
from kit.fileio import write_jsonl
from kit.generators.kinds import teacher_prompts
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
    return SamplingSpec(stage=STAGE, subject=teacher.name, provider=teacher.provider,
                        model=teacher_model(run, teacher), samples=gen.samples_per_prompt,
                        temperature=gen.temperature, max_tokens=gen.max_tokens, catalog_model=teacher.model,
                        fine_tuned=teacher.trained())


def generation_prompts(run: Run, limit: int | None = None) -> list[str]:
    """The user prompts of the run's data kind, in item order (the first `limit` when given)."""
    texts = teacher_prompts(run.config.generate, run.config_path.parent)
    return texts if limit is None else texts[:limit]


def teacher_samples(run: Run, teacher: TeacherConfig, *, offline: bool = False,
                    limit: int | None = None) -> TeacherSamples:
    """The teacher's completions, sampling what is missing (or, offline, refusing to)."""
    texts = generation_prompts(run, limit)
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
