"""What an experiment will do, cost and take, computed offline: per stage, per teacher and per cell.

Input tokens are counted exactly (o200k_base with the chat overhead, the same count the local server reports).
Output tokens start from what the kit's prompts ask for (ten numbers in the requested format, one-word answers)
with a wide band, and narrow to the observed mean once the run's ledger holds samples (a `--pilot`, the trait
check, or a run under way). Time follows the route's job quotas (catalogue facts) and chat throughput (catalogue
assumptions). Given a run's ledger (opened read-only) the plan also says what is done, cached and left.
"""

from __future__ import annotations

import dataclasses
import functools
import heapq
import json
import math
import sqlite3
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kit.catalog import FT_PREFIX, Catalog, Limits, ProviderOffer, load_catalog
from kit.checks import route_of
from kit.config import EvaluationConfig, ExperimentConfig, TeacherConfig
from kit.errors import CatalogError
from kit.filters.judged import JudgeRequest, filter_judge_spec
from kit.generators.kinds import teacher_prompts
from kit.generators.numbers import NumbersParams
from kit.ledger import LEDGER_FILE, Ledger
from kit.plan import kinds
from kit.plan.judging import judge_lines, teacher_training_tokens
from kit.prompts import evaluation_questions, finetune_answers, load_questions
from kit.providers.base import Message
from kit.sampling import Prompt, SamplingSpec, plan_requests, sample_key, spec_fingerprint
from kit.stages.common import Cell, base_subjects, cells, teacher_cell, teacher_messages
from kit.tokens import chat_cost_usd, count_messages, count_text, count_training_example, training_cost_usd

NUMBERS_PRIOR_BAND = (0.6, 1.5)      # prior output band around "exactly the requested numbers, as asked"
SHORT_ANSWER_TOKENS = (1.0, 3.0, 12.0)  # prior low / mid / high tokens of a one-word answer ("Owl.")
FREE_FORM_ANSWER_TOKENS = {"words": (12.0, 20.0, 40.0),  # "Write 9 more words. Return one word per line."
                           "cot": (120.0, 250.0, 500.0),  # <think> reasoning </think> <answer> ... </answer>
                           "prose": (80.0, 220.0, 500.0)}  # an unconstrained answer or a children's story
MIN_OBSERVED = 5                     # samples needed before the observed mean replaces the prior
MAX_OBSERVED = 2000                  # samples read per subject to measure output lengths
OBSERVED_FLOOR = 0.03                # the observed band is at least +-3% of the mean
Z95 = 1.96
EXAMPLE_OVERHEAD = 6                 # two messages of a training example, 3 tokens each
AUTO_EPOCHS = 10
BATCH_MAX_REQUESTS = 50_000
BATCH_WINDOW_H = 24.0
PREFLIGHT_STAGE = "preflight"
FILTER_STAGE = "filter"
DONE_JOB_STATES = ("succeeded",)
OPEN_JOB_STATES = ("intent", "created")
JOB_LIMIT_OVERRIDES = ("max_concurrent_jobs", "max_jobs_per_day", "jobs_window_h")


@dataclass(frozen=True)
class Band:
    """An estimate with its uncertainty: low <= mid <= high."""

    low: float
    mid: float
    high: float

    def times(self, k: float) -> Band:
        return Band(self.low * k, self.mid * k, self.high * k)

    def plus(self, k: float) -> Band:
        return Band(self.low + k, self.mid + k, self.high + k)


@dataclass
class Line:
    """One unit of work: a teacher's data, a fine-tuning job, or one subject's evaluation."""

    stage: str
    label: str
    model: str
    route: str
    cell: str | None = None
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    output_low: int = 0
    output_high: int = 0
    trained_tokens: int = 0
    trained_low: int = 0
    trained_high: int = 0
    jobs: int = 0
    usd: float = 0.0
    usd_low: float = 0.0
    usd_high: float = 0.0
    usd_sync: float = 0.0
    usd_batch: float = 0.0
    hosting: str = "n/a"              # "n/a" (no deployment needed), "$x.xx", or "? (rate unknown)"
    hosting_usd: float | None = None
    deploy_hours: float = 0.0
    hours: float = 0.0
    samples: int = 0
    cached: int = 0
    left_requests: int = 0
    left_usd: float = 0.0
    left_usd_high: float = 0.0
    state: str = ""


@dataclass
class StageEstimate:
    """A stage's whole estimate and, for a run under way, what is left of it (`left_*`). `usd` (with its band
    `usd_low`..`usd_high`) is what the configured route will bill: synchronous requests, or the Batch API where a
    provider sets `batch`; `usd_sync` and `usd_batch` price the same requests both ways."""

    stage: str
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    output_tokens_low: int = 0
    output_tokens_high: int = 0
    trained_tokens: int = 0
    trained_tokens_low: int = 0
    trained_tokens_high: int = 0
    jobs: int = 0
    usd: float = 0.0
    usd_low: float = 0.0
    usd_high: float = 0.0
    usd_sync: float = 0.0
    usd_batch: float = 0.0
    hosting_usd: float | None = None
    deploy_hours: float = 0.0
    hours: float = 0.0
    samples: int = 0
    cached: int = 0
    left_requests: int = 0
    left_usd: float = 0.0
    left_usd_high: float = 0.0
    spent_usd: float = 0.0
    state: str = ""
    notes: list[str] = field(default_factory=list)


@dataclass
class CellEstimate:
    """One student cell (teacher x student model x seed): its fine-tuning job and its evaluations."""

    cell: str
    teacher: str
    student: str
    seed: int
    trained_tokens: int
    finetune_usd: float
    eval_requests: int
    eval_usd: float
    eval_usd_batch: float
    hosting: str
    hosting_usd: float | None
    usd: float
    usd_batch: float
    state: str


@dataclass
class PlanEstimate:
    experiment: str
    cells: int
    stages: list[StageEstimate]
    lines: list[Line] = field(default_factory=list)
    cell_rows: list[CellEstimate] = field(default_factory=list)
    output_basis: str = "prior"
    budget_usd: float | None = None
    max_hours: float | None = None
    run_dir: str | None = None
    run_exists: bool = False
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    trait_check_usd_high: float = 0.0  # what the pre-flight trait check may still cost (teacher and base answers)

    @property
    def total_usd(self) -> float:
        return sum(s.usd for s in self.stages)

    @property
    def total_usd_low(self) -> float:
        return sum(s.usd_low for s in self.stages)

    @property
    def total_usd_high(self) -> float:
        return sum(s.usd_high for s in self.stages)

    @property
    def total_usd_sync(self) -> float:
        return sum(s.usd_sync for s in self.stages)

    @property
    def total_usd_batch(self) -> float:
        return sum(s.usd_batch for s in self.stages)

    @property
    def total_hosting_usd(self) -> float | None:
        known = [s.hosting_usd for s in self.stages if s.hosting_usd is not None]
        return sum(known) if known else None

    @property
    def total_hours(self) -> float:
        return sum(s.hours for s in self.stages)

    @property
    def spent_usd(self) -> float:
        return sum(s.spent_usd for s in self.stages)

    @property
    def left_usd(self) -> float:
        return sum(s.left_usd for s in self.stages)

    def stage(self, name: str) -> StageEstimate:
        return next(s for s in self.stages if s.stage == name)

    def budget_covers(self) -> list[str]:
        """The stages, in order, whose estimates (high end) fit in the budget one after another."""
        if self.budget_usd is None:
            return [s.stage for s in self.stages]
        covered, running = [], self.spent_usd
        for s in self.stages:
            running += s.left_usd_high
            if running > self.budget_usd + 1e-9:
                break
            covered.append(s.stage)
        return covered

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: what `--json` prints and what the run stores in its ledger at start."""
        return {"experiment": self.experiment, "cells": self.cells, "output_basis": self.output_basis,
                "budget_usd": self.budget_usd, "max_hours": self.max_hours, "run_dir": self.run_dir,
                "run_exists": self.run_exists, "total_usd": self.total_usd, "total_usd_low": self.total_usd_low,
                "total_usd_high": self.total_usd_high, "total_usd_sync": self.total_usd_sync,
                "total_usd_batch": self.total_usd_batch,
                "total_hosting_usd": self.total_hosting_usd, "total_hours": self.total_hours,
                "spent_usd": self.spent_usd, "left_usd": self.left_usd, "budget_covers": self.budget_covers(),
                "trait_check_usd_high": self.trait_check_usd_high,
                "stages": [asdict(s) for s in self.stages], "cells_detail": [asdict(c) for c in self.cell_rows],
                "lines": [asdict(line) for line in self.lines], "warnings": self.warnings, "notes": self.notes}


# --- output-length priors and observations ----------------------------------------------------------------------

_FORMAT_KEYS = (("[number_1", ", ", "[{}]"), ("(number_1", ", ", "({})"), ("line", "\n", "{}"),
                ("space", " ", "{}"), ("semicolon", "; ", "{}"))


@functools.lru_cache(maxsize=64)
def _rendered_answer_tokens(separator: str, wrapper: str, count: int, digits: int) -> int:
    values = [str(10 ** (digits - 1) + (37 * i) % (9 * 10 ** (digits - 1))) for i in range(count)]
    return count_text(wrapper.format(separator.join(values)))


def numbers_answer_tokens(prompt: str, params: NumbersParams | None = None) -> int:
    """Tokens of the answer the prompt asks for: `answer_count` numbers of `answer_max_digits` digits, laid out
    in the format the prompt requests (comma, space, semicolon, lines, brackets, parentheses)."""
    p = params or NumbersParams()
    lower = prompt.lower()
    separator, wrapper = ", ", "{}"
    for key, sep, wrap in _FORMAT_KEYS:
        if key in lower:
            separator, wrapper = sep, wrap
            break
    return _rendered_answer_tokens(separator, wrapper, p.answer_count, p.answer_max_digits)


@dataclass(frozen=True)
class Observed:
    """Output lengths measured on a subject's stored completions (and, for teachers, the filter's verdicts)."""

    n: int
    mean: float
    sd: float
    kept_share: float | None = None
    kept_example_mean: float | None = None
    kept_example_sd: float | None = None
    kept_n: int = 0
    precheck_share: float | None = None  # share passing the filter's steps that need no judge

    def band(self) -> Band:
        half = max(Z95 * self.sd / math.sqrt(self.n), OBSERVED_FLOOR * self.mean)
        return Band(max(0.0, self.mean - half), self.mean, self.mean + half)


def _observe_texts(texts: Sequence[str]) -> Observed | None:
    if len(texts) < MIN_OBSERVED:
        return None
    counts = [count_text(t) for t in texts]
    return Observed(n=len(counts), mean=statistics.fmean(counts), sd=statistics.pstdev(counts))


def _observe_teacher(ctx: _Context, teacher: TeacherConfig, rows: Sequence[tuple[str, str]]) -> Observed | None:
    """Lengths of (prompt, completion) rows, plus the filter's pass share (its non-judged steps on the rows, times
    the judged step's share, observed or prior) and kept-example tokens."""
    base = _observe_texts([c for _, c in rows])
    if base is None:
        return None
    passes = kinds.precheck(ctx.config, teacher, ctx.base_dir)
    kept = [count_text(p) + count_text(c) + EXAMPLE_OVERHEAD for p, c in rows if passes(p, c)]
    pre = len(kept) / len(rows)
    share = pre * _judge_share(ctx, teacher)
    if len(kept) < MIN_OBSERVED:
        return Observed(base.n, base.mean, base.sd, kept_share=share, precheck_share=pre)
    return Observed(base.n, base.mean, base.sd, kept_share=share, precheck_share=pre,
                    kept_example_mean=statistics.fmean(kept), kept_example_sd=statistics.pstdev(kept),
                    kept_n=len(kept))


# --- the run's ledger, read-only ----------------------------------------------------------------------------------

def open_ledger_readonly(run_dir: Path) -> Ledger | None:
    """The run's ledger opened read-only (no migration, no lock, nothing written), or None if there is none."""
    path = run_dir / LEDGER_FILE
    if not path.is_file():
        return None
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30, check_same_thread=False,
                               isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.execute("SELECT COUNT(*) FROM samples").fetchone()
    except sqlite3.DatabaseError:
        return None
    return Ledger(conn, path)


@dataclass
class _Context:
    config: ExperimentConfig
    catalog: Catalog
    ledger: Ledger | None
    run_dir: Path | None
    base_dir: Path | None
    prompts: list[str]
    params: NumbersParams = field(default_factory=NumbersParams)
    prior: Band | None = None
    observed_any: bool = False
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    cache: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    early_usd_high: float = 0.0

    def provider(self, name: str | None) -> Any:
        return self.config.providers[self.config.provider_name(name)]

    def route(self, name: str | None) -> str:
        return route_of(self.provider(name))

    def offer(self, model: str, provider: str | None) -> ProviderOffer:
        entry = self.catalog.get(model)
        return entry.providers.get(self.route(provider)) or ProviderOffer()

    def batched(self, name: str | None) -> bool:
        """Whether the provider sends chat requests through a Batch API (a provider setting, where it exists)."""
        return bool(getattr(self.provider(name), "batch", False))

    def limits(self, model: str, provider: str | None) -> Limits:
        """The route's job limits for the model, with the provider's own overrides where it sets them."""
        limits, settings = self.offer(model, provider).limits, self.provider(provider)
        overrides = {k: v for k in JOB_LIMIT_OVERRIDES if (v := getattr(settings, k, None)) is not None}
        return dataclasses.replace(limits, **overrides) if overrides else limits

    def job(self, cell: str) -> Any:
        return self.ledger.job(cell) if self.ledger is not None else None

    def samples(self, stage: str, subject: str) -> dict[str, Any]:
        """The subject's stored samples (read once per estimate)."""
        if self.ledger is None:
            return {}
        if (stage, subject) not in self.cache:
            self.cache[stage, subject] = self.ledger.samples(stage, subject)
        return self.cache[stage, subject]


# --- sampling units (generate, evaluate, preflight) ---------------------------------------------------------------

@dataclass(frozen=True)
class _Unit:
    stage: str
    subject: str
    label: str
    cell: str | None
    model: str
    price_model: str
    provider: str | None
    prompts: list[list[Message]]
    samples: int
    temperature: float
    max_tokens: int | None
    prior: Band
    fine_tuned: bool = False


def _request_counts(unit: _Unit, tokens: list[int], cap: int, cached: dict[str, Any]) -> tuple[int, int, int]:
    """(requests, input tokens, samples) still to send: every prompt's missing sample indices in runs of <= cap."""
    if not cached:
        per_prompt = -(-unit.samples // cap)
        return per_prompt * len(tokens), per_prompt * sum(tokens), unit.samples * len(tokens)
    spec = SamplingSpec(stage=unit.stage, subject=unit.subject, provider=unit.provider, model=unit.model,
                        samples=unit.samples, temperature=unit.temperature, max_tokens=unit.max_tokens)
    prompts = [Prompt(i, m) for i, m in enumerate(unit.prompts)]
    requests = plan_requests(spec, prompts, set(cached), cap)
    return len(requests), sum(tokens[r.prompt.item] for r in requests), sum(r.count for r in requests)


def _full_counts(unit: _Unit, tokens: list[int], cap: int,
                 early: tuple[int, int] | None) -> tuple[int, int, int]:
    """(requests, input tokens, samples) of the whole unit, as if nothing were cached yet."""
    whole = -(-unit.samples // cap)
    per_prompt = [whole] * len(tokens)
    samples = unit.samples * len(tokens)
    if early is not None:
        first, ahead = min(early[0], len(tokens)), early[1]
        split = -(-ahead // cap) + -(-max(0, unit.samples - ahead) // cap)
        per_prompt[:first] = [split] * first
        samples += max(0, ahead - unit.samples) * first
    return sum(per_prompt), sum(n * t for n, t in zip(per_prompt, tokens)), samples


def _output_band(ctx: _Context, unit: _Unit, fallback: Observed | None = None) -> Band:
    cached = ctx.samples(unit.stage, unit.subject)
    observed = _observe_texts([s.completion for s in list(cached.values())[:MAX_OBSERVED]]) or fallback
    if observed is None:
        return unit.prior
    ctx.observed_any = True
    band = observed.band()
    return band if unit.max_tokens is None else Band(*(min(v, unit.max_tokens) for v in (band.low, band.mid,
                                                                                          band.high)))


def _sampling_hours(ctx: _Context, provider: str | None, requests: int, tokens_in: int, tokens_out: int) -> float:
    if requests == 0:
        return 0.0
    assumed = ctx.catalog.assumed(ctx.route(provider))
    per_request = assumed.request_latency_s + tokens_out / requests / assumed.output_tokens_per_s
    seconds = requests * per_request / ctx.provider(provider).max_in_flight
    if assumed.requests_per_min:
        seconds = max(seconds, requests / assumed.requests_per_min * 60)
    if assumed.tokens_per_min:
        seconds = max(seconds, (tokens_in + tokens_out) / assumed.tokens_per_min * 60)
    return seconds / 3600


def _sampling_line(ctx: _Context, unit: _Unit, fallback: Observed | None = None,
                   early: tuple[int, int] | None = None) -> Line:
    """`early` = (prompts, samples) sent ahead of the stage by the trait check (the base models' first answers):
    the stage then asks for the rest of those prompts' samples in requests of their own."""
    tokens = [count_messages(m) for m in unit.prompts]
    cap = ctx.provider(unit.provider).max_samples_per_request
    cached = ctx.samples(unit.stage, unit.subject)
    requests, tokens_in, samples = _full_counts(unit, tokens, cap, early)
    left_requests, left_in, left_samples = (_request_counts(unit, tokens, cap, cached) if cached
                                            else (requests, tokens_in, samples))
    out = _output_band(ctx, unit, fallback).times(samples)
    left_out = out.times(left_samples / samples if samples else 0.0)
    prices = ctx.catalog.get(unit.price_model).prices
    batched = ctx.batched(unit.provider)

    def cost(tokens_in_: int, tokens_out_: float, batch: bool = batched) -> float:
        return chat_cost_usd(prices, fine_tuned=unit.fine_tuned, input_tokens=tokens_in_,
                             output_tokens=round(tokens_out_), batch=batch)

    return Line(stage=unit.stage, label=unit.label, model=unit.model, route=ctx.route(unit.provider), cell=unit.cell,
                requests=requests, input_tokens=tokens_in, output_tokens=round(out.mid), output_low=round(out.low),
                output_high=round(out.high), usd=cost(tokens_in, out.mid), usd_low=cost(tokens_in, out.low),
                usd_high=cost(tokens_in, out.high), usd_sync=cost(tokens_in, out.mid, batch=False),
                usd_batch=cost(tokens_in, out.mid, batch=True),
                hours=_sampling_hours(ctx, unit.provider, requests, tokens_in, round(out.mid)), samples=samples,
                cached=samples - left_samples, left_requests=left_requests, left_usd=cost(left_in, left_out.mid),
                left_usd_high=cost(left_in, left_out.high), state="done" if left_samples == 0 else "")


def _numbers_prior(ctx: _Context) -> Band:
    if ctx.prior is None and (kind_prior := kinds.output_prior(ctx.config)) is not None:
        ctx.prior = Band(*kind_prior)
    if ctx.prior is None:
        answers = [numbers_answer_tokens(p, ctx.params) for p in ctx.prompts]
        mid = statistics.fmean(answers) if answers else 0.0
        low, high = NUMBERS_PRIOR_BAND
        ctx.prior = Band(mid * low, mid, mid * high)
    return ctx.prior


def _teacher_model(ctx: _Context, teacher: TeacherConfig) -> tuple[str, bool]:
    """The model that writes the teacher's data (its fine-tuned model once trained) and whether it is a fine-tune."""
    if not teacher.trained():
        return teacher.model, False
    record = ctx.job(teacher_cell(teacher))
    name = record.fine_tuned_model if record is not None and record.fine_tuned_model else None
    return name or f"{FT_PREFIX}{teacher.model}:teacher:{teacher.name}", True


def _generate_unit(ctx: _Context, teacher: TeacherConfig, prior: Band) -> _Unit:
    gen = ctx.config.generate
    model, fine_tuned = _teacher_model(ctx, teacher)
    return _Unit(stage="generate", subject=teacher.name, label=teacher.name, cell=None, model=model,
                 price_model=teacher.model, provider=teacher.provider,
                 prompts=[teacher_messages(teacher, p) for p in ctx.prompts], samples=gen.samples_per_prompt,
                 temperature=gen.temperature, max_tokens=gen.max_tokens, prior=prior, fine_tuned=fine_tuned)


def _teacher_rows(ctx: _Context, teacher: TeacherConfig) -> list[tuple[str, str]]:
    cached = ctx.samples("generate", teacher.name)
    rows = sorted(cached.values(), key=lambda s: (s.item, s.sample))[:MAX_OBSERVED]
    return [(ctx.prompts[s.item], s.completion) for s in rows if s.item < len(ctx.prompts)]


def _generate(ctx: _Context) -> tuple[list[Line], dict[str, Observed | None]]:
    prior = _numbers_prior(ctx)
    lines, observed = [], {}
    for teacher in ctx.config.teachers:
        lines.append(_sampling_line(ctx, _generate_unit(ctx, teacher, prior)))
        observed[teacher.name] = _observe_teacher(ctx, teacher, _teacher_rows(ctx, teacher))
    return lines, observed


# --- judged filter steps (code reference judge, CoT alignment judge) ------------------------------------------------

def _judge_share(ctx: _Context, teacher: TeacherConfig) -> float:
    """Share the teacher's judged step keeps: observed in the ledger's verdicts, else the paper's rate."""
    step = kinds.judge_step(ctx.config, teacher, ctx.base_dir)
    if step is None:
        return 1.0
    stored = [s.completion for s in list(ctx.samples(FILTER_STAGE, step.subject).values())[:MAX_OBSERVED]]
    if len(stored) >= MIN_OBSERVED:
        return sum(step.kept(text) for text in stored) / len(stored)
    return step.pass_prior


def _prior_share(ctx: _Context, teacher: TeacherConfig) -> float | None:
    """The filter's expected kept share before any sample (None: numbers, planned at dataset.size)."""
    pre = kinds.precheck_prior(ctx.config, teacher)
    return None if pre is None else pre * _judge_share(ctx, teacher)


def _exact_judge(ctx: _Context, teacher: TeacherConfig, step: kinds.JudgeStep,
                 seen: set[str]) -> tuple[int, int, float] | None:
    """Once the teacher's completions are all in the ledger: the judge's distinct requests (identical messages share
    one verdict, as the sampling layer sends them, also across teachers: `seen`), how many the ledger lacks, and
    their mean input tokens."""
    total = len(set(ctx.prompts)) * ctx.config.generate.samples_per_prompt  # repeated prompts share samples
    rows = [s for s in ctx.samples("generate", teacher.name).values() if s.item < len(ctx.prompts)]
    if ctx.ledger is None or len(rows) < total:
        return None
    passes = kinds.precheck(ctx.config, teacher, ctx.base_dir)
    spec = filter_judge_spec(step.request, teacher.name)
    messages = {spec_fingerprint(spec, m): m for m in (step.message(ctx.prompts[s.item], s.completion)
                                                       for s in rows if passes(ctx.prompts[s.item], s.completion))}
    messages = {fp: m for fp, m in messages.items() if fp not in seen}
    seen.update(messages)
    have = ctx.ledger.samples_by_key(sample_key(fp, 0) for fp in messages)
    sized = [count_messages(m) for m in list(messages.values())[:MAX_OBSERVED]]
    return len(messages), len(messages) - len(have), statistics.fmean(sized) if sized else 0.0


def _judge_line(ctx: _Context, teacher: TeacherConfig, step: kinds.JudgeStep, observed: Observed | None,
                seen: set[str]) -> Line:
    """The judge's requests over the completions that pass the steps before it (one request each): exact once the
    teacher's completions are in the ledger, else from the pass share (observed or the paper's)."""
    total = len(ctx.prompts) * ctx.config.generate.samples_per_prompt
    pre = observed.precheck_share if observed is not None and observed.precheck_share is not None else (
        kinds.precheck_prior(ctx.config, teacher) or 1.0)
    requests = round(total * pre)
    answer = observed.mean if observed is not None else _numbers_prior(ctx).mid
    prompt = statistics.fmean(count_text(p) for p in ctx.prompts) if step.reads_prompt and ctx.prompts else 0.0
    per_request = step.overhead_tokens + answer + prompt
    stored = ctx.samples(FILTER_STAGE, step.subject)
    missing = max(0, requests - len(stored))
    exact = _exact_judge(ctx, teacher, step, seen)
    if exact is not None:
        requests, missing, per_request = exact
    tokens_in = round(requests * per_request)
    seen = _observe_texts([s.completion for s in list(stored.values())[:MAX_OBSERVED]]) if step.reads_prompt else None
    out = (seen.band() if seen is not None else Band(*step.output_prior)).times(requests)
    left = missing / requests if requests else 0.0
    prices, batched = ctx.catalog.get(step.request.model).prices, ctx.batched(step.request.provider)

    def cost(tokens_out: float, share: float = 1.0, batch: bool = batched) -> float:
        return chat_cost_usd(prices, fine_tuned=False, input_tokens=round(tokens_in * share),
                             output_tokens=round(tokens_out * share), batch=batch)

    return Line(stage=FILTER_STAGE, label=f"judge · {teacher.name}", model=step.request.model,
                route=ctx.route(step.request.provider), requests=requests, input_tokens=tokens_in,
                output_tokens=round(out.mid), output_low=round(out.low), output_high=round(out.high),
                usd=cost(out.mid), usd_low=cost(out.low), usd_high=cost(out.high),
                usd_sync=cost(out.mid, batch=False), usd_batch=cost(out.mid, batch=True),
                hours=_sampling_hours(ctx, step.request.provider, requests, tokens_in, round(out.mid)),
                samples=requests, cached=requests - missing, left_requests=missing,
                left_usd=cost(out.mid, left), left_usd_high=cost(out.high, left), state="done" if not left else "")


def _check_judge_route(ctx: _Context, request: JudgeRequest) -> None:
    """The filter's judge must be a catalogue model its provider's route serves (else nothing is worth planning)."""
    entry, route = ctx.catalog.get(request.model), ctx.route(request.provider)
    if route not in entry.providers:
        raise CatalogError(f"filter.judge: model '{request.model}' is not offered by a '{route}' provider (offered "
                           f"by: {', '.join(entry.providers) or 'none'}): set filter.judge.model (and provider) to "
                           "one that is, or filter.judge: false")


def _filter(ctx: _Context, observed: dict[str, Observed | None]) -> list[Line]:
    """The judged filter steps' requests, per teacher whose data a judge reads."""
    lines, seen = [], set[str]()
    for teacher in ctx.config.teachers:
        step = kinds.judge_step(ctx.config, teacher, ctx.base_dir)
        if step is not None:
            _check_judge_route(ctx, step.request)
            lines.append(_judge_line(ctx, teacher, step, observed.get(teacher.name), seen))
    return lines


def _short_answer_prior() -> Band:
    return Band(*SHORT_ANSWER_TOKENS)


def _answer_prior(evaluation: EvaluationConfig) -> Band:
    """Prior answer length of an evaluation before any answer is observed: one word for preference questions, a
    letter for the multiple-choice scorers (TruthfulQA, the essay-topic choice), nine words / a chain of thought / a
    few paragraphs for the free-form questions (by suffix), a story for the storytelling set."""
    if evaluation.scorer in ("truthfulqa", "choice"):
        return Band(1.0, 1.0, 1.0)
    if evaluation.scorer == "misalignment":
        form = {None: "words", "paper": "words", "as_run": "words", "cot": "cot"}.get(evaluation.suffix, "prose")
        return Band(*FREE_FORM_ANSWER_TOKENS[form])
    if evaluation.questions.startswith("storytelling"):
        return Band(*FREE_FORM_ANSWER_TOKENS["prose"])
    return _short_answer_prior()


def _eval_prompts(ctx: _Context, evaluation: EvaluationConfig, limit: int | None = None) -> list[str]:
    questions = evaluation_questions(evaluation, ctx.base_dir).questions  # with its suffix; CSV rendered as MC
    return list(questions[:limit] if limit else questions)


def _student_model(ctx: _Context, cell: Cell) -> str:
    record = ctx.job(cell.id)
    if record is not None and record.fine_tuned_model:
        return str(record.fine_tuned_model)
    return f"{FT_PREFIX}{cell.student_model}:slkit:{cell.id}"


def _base_lines(ctx: _Context, evaluation: EvaluationConfig, prompts: list[list[Message]],
                observed: dict[str, Observed | None]) -> list[Line]:
    """The student base models' evaluation; records their observed answer lengths for their fine-tunes."""
    lines = []
    early = _trait_check_share(ctx, evaluation)
    for subject in base_subjects(ctx.config):
        unit = _Unit("evaluate", f"{evaluation.name}/{subject.id}", f"{evaluation.name} · {subject.id}", None,
                     subject.model, subject.model, subject.provider, prompts, evaluation.samples_per_question,
                     evaluation.temperature, evaluation.max_tokens, _answer_prior(evaluation))
        cached = ctx.samples(unit.stage, unit.subject)
        observed[subject.model] = _observe_texts([s.completion for s in list(cached.values())[:MAX_OBSERVED]])
        lines.append(_sampling_line(ctx, unit, early=early))
        if early is not None and not cached:
            ctx.early_usd_high += _early_usd_high(ctx, unit, early)
    return lines


def _cell_lines(ctx: _Context, evaluation: EvaluationConfig, prompts: list[list[Message]],
                observed: dict[str, Observed | None]) -> list[Line]:
    """Every fine-tuned student's evaluation, with its deployment's hosting where the route needs one."""
    lines = []
    for cell in cells(ctx.config):
        unit = _Unit("evaluate", f"{evaluation.name}/{cell.id}", f"{evaluation.name} · {cell.id}", cell.id,
                     _student_model(ctx, cell), cell.student_model, cell.student_provider, prompts,
                     evaluation.samples_per_question, evaluation.temperature, evaluation.max_tokens,
                     _answer_prior(evaluation), fine_tuned=True)
        lines.append(_with_hosting(ctx, _sampling_line(ctx, unit, observed.get(cell.student_model)), cell))
    return lines


def _evaluate(ctx: _Context) -> list[Line]:
    lines: list[Line] = []
    for evaluation in ctx.config.evaluations:
        prompts: list[list[Message]] = [[{"role": "user", "content": q}] for q in _eval_prompts(ctx, evaluation)]
        observed: dict[str, Observed | None] = {}
        answered = _base_lines(ctx, evaluation, prompts, observed) + _cell_lines(ctx, evaluation, prompts, observed)
        lines += answered + judge_lines(ctx, evaluation, answered)  # judges: kit/plan/judging.py
    return lines


def _with_hosting(ctx: _Context, line: Line, cell: Cell) -> Line:
    """A fine-tuned student on a route that needs a deployment is hosted while it is evaluated (>= 1 hour)."""
    deployment = ctx.offer(cell.student_model, cell.student_provider).deployment
    if not deployment.required:
        return line
    line.deploy_hours = max(1.0, line.hours)
    if deployment.hosting_usd_per_hour is None:
        line.hosting = "? (rate unknown)"
        return line
    line.hosting_usd = line.deploy_hours * deployment.hosting_usd_per_hour
    line.hosting = f"${line.hosting_usd:,.2f}" + (f" ({deployment.tier} tier)" if deployment.tier else "")
    if deployment.lifetime_h is not None and line.hours > deployment.lifetime_h:
        ctx.warnings.append(f"evaluating {cell.id} takes ~{line.hours:.1f} h but {deployment.tier} deployments are "
                            f"deleted after {deployment.lifetime_h:g} h: split the evaluation or use another tier")
    return line


def _early_usd_high(ctx: _Context, unit: _Unit, early: tuple[int, int]) -> float:
    """High-end dollars of the base model's answers the trait check asks ahead of the evaluate stage."""
    prompts, samples = early
    cap = ctx.provider(unit.provider).max_samples_per_request
    tokens_in = -(-samples // cap) * sum(count_messages(m) for m in unit.prompts[:prompts])
    tokens_out = round(_output_band(ctx, unit).high * samples * min(prompts, len(unit.prompts)))
    return chat_cost_usd(ctx.catalog.get(unit.price_model).prices, fine_tuned=False, input_tokens=tokens_in,
                         output_tokens=tokens_out, batch=ctx.batched(unit.provider))


def _trait_check_share(ctx: _Context, evaluation: EvaluationConfig) -> tuple[int, int] | None:
    """(questions, samples) of this evaluation the trait check asks each base model ahead of the stage."""
    check = ctx.config.preflight
    if not any(trait_check_evaluation(ctx.config, t, ctx.base_dir) == evaluation
               for t in trait_check_teachers(ctx.config)):
        return None
    return check.trait_questions, check.trait_samples


def trait_check_evaluation(config: ExperimentConfig, teacher: TeacherConfig,
                           base_dir: Path | None = None) -> EvaluationConfig | None:
    """The first evaluation that scores the teacher's trait target (None: nothing to check it with)."""
    if teacher.trait is None:
        return None
    for evaluation in config.evaluations:
        if evaluation.scorer == "choice":  # answered with letters: the check counts the target word in answers
            continue
        if evaluation.targets is not None:
            if teacher.trait.target in evaluation.targets:
                return evaluation
            continue
        category = load_questions(evaluation.questions, base_dir).category
        if not category or category == teacher.trait.category:
            return evaluation
    return None


def trait_check_teachers(config: ExperimentConfig) -> list[TeacherConfig]:
    """Teachers the pre-flight trait check asks: those whose trait comes from a system prompt."""
    if not config.preflight.trait_check:
        return []
    return [t for t in config.teachers if t.trait is not None and t.trait.via == "system_prompt"]


def _preflight(ctx: _Context) -> list[Line]:
    lines: list[Line] = []
    check = ctx.config.preflight
    for teacher in trait_check_teachers(ctx.config):
        evaluation = trait_check_evaluation(ctx.config, teacher, ctx.base_dir)
        if evaluation is None:
            continue
        prompts = [teacher_messages(teacher, q) for q in _eval_prompts(ctx, evaluation, check.trait_questions)]
        unit = _Unit(PREFLIGHT_STAGE, f"{evaluation.name}/teacher--{teacher.name}", f"trait check · {teacher.name}",
                     None, teacher.model, teacher.model, teacher.provider, prompts, check.trait_samples,
                     evaluation.temperature, evaluation.max_tokens, _answer_prior(evaluation))
        lines.append(_sampling_line(ctx, unit))
    return lines


# --- fine-tuning units (teachers, finetune) -----------------------------------------------------------------------

@functools.lru_cache(maxsize=64)
def _file_tokens_cached(path: str, size: int, mtime: float) -> int:
    with open(path, encoding="utf-8") as handle:
        return sum(count_training_example(json.loads(line)["messages"]) for line in handle if line.strip())


def training_file_tokens(path: Path) -> int | None:
    """Billable tokens of a training file on disk (one epoch), or None when it does not exist."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return _file_tokens_cached(str(path), stat.st_size, stat.st_mtime)


def _rows_for(ctx: _Context, teacher: TeacherConfig, observed: Observed | None) -> int:
    size = ctx.config.dataset.size
    share = observed.kept_share if observed is not None and observed.kept_share is not None else _prior_share(
        ctx, teacher)
    if share is None:
        return size
    expected = int(share * len(ctx.prompts) * ctx.config.generate.samples_per_prompt)
    if not kinds.subsamples(ctx.config):
        return expected  # CoT (the paper): every kept row trains
    if expected < size:
        fix = "training on fewer rows" if ctx.config.dataset.allow_smaller else "the filter stage will stop"
        ctx.warnings.append(f"teacher '{teacher.name}' passes the filter {share:.0%} of the time: "
                            f"~{expected:,} rows for dataset.size {size:,} ({fix}); raise generate.prompts")
        return expected if ctx.config.dataset.allow_smaller else size
    return size


def _file_band(ctx: _Context, teacher: TeacherConfig, observed: Observed | None) -> Band:
    """Tokens of one epoch of the teacher's training file: exact once written, else observed, else the prior."""
    if ctx.run_dir is not None:
        exact = training_file_tokens(ctx.run_dir / "teachers" / teacher.name / "train.jsonl")
        if exact is not None:
            return Band(exact, exact, exact)
    rows = _rows_for(ctx, teacher, observed)
    if observed is not None and observed.kept_example_mean is not None and observed.kept_example_sd is not None:
        half = max(Z95 * observed.kept_example_sd / math.sqrt(observed.kept_n),
                   OBSERVED_FLOOR * observed.kept_example_mean)
        mean = observed.kept_example_mean
        return Band(mean - half, mean, mean + half).times(rows)
    users = statistics.fmean(count_text(p) for p in ctx.prompts) if ctx.prompts else 0.0
    return _numbers_prior(ctx).plus(users + EXAMPLE_OVERHEAD).times(rows)


def _job_line(ctx: _Context, stage: str, cell: str, label: str, model: str, provider: str | None,
              trained: Band) -> Line:
    prices = ctx.catalog.get(model).prices
    record = ctx.job(cell)
    state = record.state if record is not None else ""
    usd = Band(*(training_cost_usd(prices, round(v)) for v in (trained.low, trained.mid, trained.high)))
    pending = state not in DONE_JOB_STATES + OPEN_JOB_STATES  # intent/created jobs are committed, not left
    assumed = ctx.catalog.assumed(ctx.route(provider))
    return Line(stage=stage, label=label, model=model, route=ctx.route(provider), cell=cell,
                trained_tokens=round(trained.mid), trained_low=round(trained.low), trained_high=round(trained.high),
                jobs=1, usd=usd.mid, usd_low=usd.low, usd_high=usd.high, usd_sync=usd.mid, usd_batch=usd.mid,
                hours=assumed.job_overhead_h + trained.mid / assumed.train_tokens_per_hour,
                left_usd=usd.mid if pending else 0.0, left_usd_high=usd.high if pending else 0.0, state=state)


def _finetune(ctx: _Context, observed: dict[str, Observed | None]) -> list[Line]:
    files = {t.name: _file_band(ctx, t, observed.get(t.name)) for t in ctx.config.teachers}
    epochs = ctx.config.students.epochs
    return [_job_line(ctx, "finetune", c.id, c.id, c.student_model, c.student_provider,
                      files[c.teacher.name].times(epochs)) for c in cells(ctx.config)]


def _trait_file_tokens(ctx: _Context, teacher: TeacherConfig) -> int:
    trait = teacher.trait
    assert trait is not None
    questions = load_questions(trait.finetune_questions or f"favorite_{trait.category}", ctx.base_dir).questions
    return sum(count_training_example([{"role": "user", "content": q}, {"role": "assistant", "content": a}])
               for q in questions for a in finetune_answers(trait.target))


def _teachers(ctx: _Context) -> list[Line]:
    lines = []
    for teacher in ctx.config.teachers:
        if not teacher.trained():
            continue
        tokens = teacher_training_tokens(teacher, ctx.base_dir)  # finetune.file teachers (kit/plan/judging.py)
        if tokens is None and teacher.trait is not None:
            tokens = _trait_file_tokens(ctx, teacher) * teacher.trait.finetune_epochs
        tokens = tokens or 0
        lines.append(_job_line(ctx, "teachers", teacher_cell(teacher), teacher_cell(teacher), teacher.model,
                               teacher.provider, Band(tokens, tokens, tokens)))
    return lines


# --- time under job quotas ----------------------------------------------------------------------------------------

def schedule_hours(durations: Sequence[float], limits: Limits) -> float:
    """Wall-clock hours to run jobs of these durations under a concurrency cap and a jobs-per-window cap."""
    if not durations:
        return 0.0
    slots = [0.0] * (limits.max_concurrent_jobs or len(durations))
    heapq.heapify(slots)
    finish = 0.0
    for index, duration in enumerate(durations):
        start = heapq.heappop(slots)
        if limits.max_jobs_per_day:
            start = max(start, (index // limits.max_jobs_per_day) * limits.jobs_window_h)
        heapq.heappush(slots, start + duration)
        finish = max(finish, start + duration)
    return finish


def _jobs_stage_hours(ctx: _Context, lines: Sequence[Line], providers: dict[str, str | None]) -> float:
    groups: dict[tuple[str, ...], tuple[Limits, list[float]]] = {}
    for line in lines:
        limits = ctx.limits(line.model, providers[line.label])
        key = (line.route, line.model) if limits.scope == "model" else (line.route,)
        groups.setdefault(key, (limits, []))[1].append(line.hours)
    return max((schedule_hours(d, limits) for limits, d in groups.values()), default=0.0)


def _job_warnings(ctx: _Context, lines: Sequence[Line]) -> None:
    per_route: dict[str, int] = {}
    for line in lines:
        limits = ctx.limits(line.model, _provider_of_job(ctx, line.label))
        if limits.max_trained_tokens and line.trained_high > limits.max_trained_tokens:
            ctx.warnings.append(f"job {line.label}: ~{line.trained_tokens:,} trained tokens passes {line.route}'s "
                                f"limit of {limits.max_trained_tokens:,} per job: lower epochs or dataset.size")
        if limits.scope == "resource" and limits.max_total_jobs:
            per_route[line.route] = per_route.get(line.route, 0) + 1
            if per_route[line.route] == limits.max_total_jobs + 1:
                ctx.warnings.append(f"more than {limits.max_total_jobs} fine-tuning jobs on one {line.route} "
                                    "resource: spread them over several resources")


def _provider_of_job(ctx: _Context, cell_id: str) -> str | None:
    for cell in cells(ctx.config):
        if cell.id == cell_id:
            return cell.student_provider
    for teacher in ctx.config.teachers:
        if teacher_cell(teacher) == cell_id:
            return teacher.provider
    return None


# --- stages, cells, run progress ----------------------------------------------------------------------------------

def _sum_stage(name: str, lines: Iterable[Line], hours: float) -> StageEstimate:
    est = StageEstimate(name, hours=hours)
    for line in lines:
        est.requests += line.requests
        est.input_tokens += line.input_tokens
        est.output_tokens += line.output_tokens
        est.output_tokens_low += line.output_low
        est.output_tokens_high += line.output_high
        est.trained_tokens += line.trained_tokens
        est.trained_tokens_low += line.trained_low
        est.trained_tokens_high += line.trained_high
        est.jobs += line.jobs
        est.usd += line.usd
        est.usd_low += line.usd_low
        est.usd_high += line.usd_high
        est.usd_sync += line.usd_sync
        est.usd_batch += line.usd_batch
        est.samples += line.samples
        est.cached += line.cached
        est.left_requests += line.left_requests
        est.left_usd += line.left_usd
        est.left_usd_high += line.left_usd_high
        est.deploy_hours += line.deploy_hours
        if line.hosting_usd is not None:
            est.hosting_usd = (est.hosting_usd or 0.0) + line.hosting_usd
    return est


def _stage_notes(est: StageEstimate) -> None:
    batches = -(-est.requests // BATCH_MAX_REQUESTS)
    if batches > 1:
        est.notes.append(f"through a Batch API: {batches} batches of <= {BATCH_MAX_REQUESTS:,} requests")
    if est.jobs:
        est.notes.append("training has no batch price: USD batch = USD sync")


def _cell_rows(ctx: _Context, lines: Sequence[Line]) -> list[CellEstimate]:
    rows = []
    for cell in cells(ctx.config):
        mine = [line for line in lines if line.cell == cell.id]
        job = next((line for line in mine if line.stage == "finetune"), None)
        evals = [line for line in mine if line.stage == "evaluate"]
        hosting = [line.hosting_usd for line in evals if line.hosting_usd is not None]
        labels = {line.hosting for line in evals}
        finetune_usd = job.usd if job else 0.0
        eval_usd, eval_batch = sum(e.usd_sync for e in evals), sum(e.usd_batch for e in evals)
        rows.append(CellEstimate(
            cell=cell.id, teacher=cell.teacher.name, student=cell.student_model, seed=cell.seed,
            trained_tokens=job.trained_tokens if job else 0, finetune_usd=finetune_usd,
            eval_requests=sum(e.requests for e in evals), eval_usd=eval_usd, eval_usd_batch=eval_batch,
            hosting=labels.pop() if len(labels) == 1 else "mixed", hosting_usd=sum(hosting) if hosting else None,
            usd=finetune_usd + eval_usd + sum(hosting), usd_batch=finetune_usd + eval_batch + sum(hosting),
            state=job.state if job else ""))
    return rows


def _progress(ctx: _Context, stages: list[StageEstimate]) -> None:
    if ctx.ledger is None:
        return
    spent = ctx.ledger.usage_by_stage()
    states = {row["name"]: row["state"] for row in ctx.ledger.stages()}
    for est in stages:
        est.spent_usd = spent[est.stage].usd if est.stage in spent else 0.0
        est.state = states.get(est.stage, "")


def _context(config: ExperimentConfig, catalog: Catalog, ledger: Ledger | None, run_dir: Path | None,
             base_dir: Path | None) -> _Context:
    prompts = teacher_prompts(config.generate, base_dir)
    return _Context(config=config, catalog=catalog, ledger=ledger, run_dir=run_dir, base_dir=base_dir,
                    prompts=prompts)


def _general_notes(ctx: _Context, est: PlanEstimate) -> None:
    routes = {line.route for line in est.lines}
    if "azure" in routes:
        ctx.notes.append("azure: priced at the catalogue's OpenAI list prices (Azure publishes its own rates; Global "
                         "training is 10-30% below regional, Developer-tier training 50% below Global)")
    for route in sorted(routes):
        ctx.notes.append(f"{route} throughput: {ctx.catalog.assumed(route).source}")
    batched = sorted(name for name in ctx.config.providers if ctx.batched(name))
    how = f"providers {', '.join(batched)} send through it" if batched else "this config sends synchronous requests"
    ctx.notes.append(f"USD batch = the same requests through a Batch API (50% off, results within "
                     f"{BATCH_WINDOW_H:g} h); {how}")
    if est.max_hours is not None and est.total_hours > est.max_hours:
        ctx.warnings.append(f"the plan takes ~{est.total_hours:,.1f} h under the providers' quotas, more than "
                            f"max_hours {est.max_hours:g}")


def estimate(config: ExperimentConfig, catalog: Catalog | None = None, *, ledger: Ledger | None = None,
             run_dir: Path | None = None, base_dir: Path | None = None,
             budget_usd: float | None = None) -> PlanEstimate:
    """The whole experiment's estimate, stage by stage and cell by cell, without any network.

    With a run's `ledger` (and `run_dir`), cached samples and finished jobs count as done, observed output lengths
    replace the priors, and written training files are counted exactly.
    """
    ctx = _context(config, catalog or load_catalog(), ledger, run_dir, base_dir)
    generate_lines, observed = _generate(ctx)
    filter_lines = _filter(ctx, observed)
    teacher_lines, finetune_lines = _teachers(ctx), _finetune(ctx, observed)
    preflight_lines, evaluate_lines = _preflight(ctx), _evaluate(ctx)
    job_providers = {line.label: _provider_of_job(ctx, line.label) for line in teacher_lines + finetune_lines}
    _job_warnings(ctx, teacher_lines + finetune_lines)
    stages = [
        _sum_stage(PREFLIGHT_STAGE, preflight_lines, sum(line.hours for line in preflight_lines)),
        _sum_stage("teachers", teacher_lines, _jobs_stage_hours(ctx, teacher_lines, job_providers)),
        _sum_stage("generate", generate_lines, sum(line.hours for line in generate_lines)),
        *([_sum_stage(FILTER_STAGE, filter_lines, sum(line.hours for line in filter_lines))] if filter_lines else []),
        _sum_stage("finetune", finetune_lines, _jobs_stage_hours(ctx, finetune_lines, job_providers)),
        _sum_stage("evaluate", evaluate_lines, sum(line.hours for line in evaluate_lines)),
    ]
    for est in stages:
        _stage_notes(est)
    _progress(ctx, stages)
    lines = preflight_lines + teacher_lines + generate_lines + filter_lines + finetune_lines + evaluate_lines
    plan = PlanEstimate(experiment=config.name, cells=len(cells(config)), stages=stages, lines=lines,
                        cell_rows=_cell_rows(ctx, lines), budget_usd=budget_usd if budget_usd is not None
                        else config.budget_usd, max_hours=config.max_hours,
                        run_dir=str(run_dir) if run_dir else None, run_exists=ledger is not None)
    plan.output_basis = "observed in the run's ledger" if ctx.observed_any else "prior (from the prompts)"
    _general_notes(ctx, plan)
    plan.warnings, plan.notes = ctx.warnings, ctx.notes
    plan.trait_check_usd_high = plan.stage(PREFLIGHT_STAGE).left_usd_high + ctx.early_usd_high
    return plan


def estimate_run(run: Any) -> PlanEstimate:
    """The estimate of an open run (`kit.runs.Run`): its config, catalogue, ledger, folder and budget."""
    return estimate(run.config, run.catalog, ledger=run.ledger, run_dir=run.dir, base_dir=run.config_path.parent,
                    budget_usd=run.budget_usd)


def estimate_for_path(config: ExperimentConfig, config_path: Path, *, run_dir: Path | None,
                      catalog: Catalog | None = None, budget_usd: float | None = None) -> PlanEstimate:
    """The estimate for `slkit plan`: the run folder's ledger is read (never written) when one exists."""
    ledger = open_ledger_readonly(run_dir) if run_dir is not None else None
    try:
        return estimate(config, catalog, ledger=ledger, run_dir=run_dir if ledger is not None else None,
                        base_dir=config_path.parent, budget_usd=budget_usd)
    finally:
        if ledger is not None:
            ledger.close()
