"""Stage `finetune` (and the fine-tuned-teacher step): upload once, create each job at most once, wait.

A paid job is created at most once per cell: the intent is recorded in the ledger before `create`, jobs carry
metadata (run uid, cell), and before any create — first time, after a crash, after a failed create — the provider
is asked for jobs with that metadata; one found is adopted, never duplicated.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass

from kit.budget import ensure_within_budget
from kit.errors import JobFailedError, ProviderError, TransientProviderError
from kit.faultpoints import crash_point
from kit.ledger import Usage
from kit.providers.base import JobRequest, JobStatus, Provider
from kit.runs import Run
from kit.stages.common import cells, safe_name, stage
from kit.stages.filter import training_file
from kit.tokens import count_training_example, training_cost_usd

STAGE = "finetune"
META_RUN, META_CELL, META_ATTEMPT = "slkit_run", "slkit_cell", "slkit_attempt"
CREATE_ATTEMPTS = 6
CREATE_BACKOFF_S = 2.0
SUFFIX_LIMIT = 40


@dataclass(frozen=True)
class JobPlan:
    cell: str
    provider: str | None
    base_model: str
    training: bytes
    epochs: int | str
    batch_size: int | str = "auto"
    learning_rate_multiplier: float | str = "auto"
    seed: int | None = None


def file_tokens(content: bytes) -> int:
    return sum(count_training_example(json.loads(line)["messages"]) for line in content.splitlines() if line.strip())


def ensure_uploaded(run: Run, provider: Provider, content: bytes) -> str:
    """The provider's file id for these bytes, uploading only if this run never did (or a crash hid it)."""
    sha = hashlib.sha256(content).hexdigest()
    key, filename = f"{provider.name}:fine-tune:{sha}", f"slkit-{run.uid}-{sha[:16]}.jsonl"
    row = run.ledger.upload(key)
    if row is not None and row["state"] == "uploaded":
        return str(row["file_id"])
    if row is None:
        run.ledger.record_upload_intent(key, provider.name, filename, sha, len(content))
    else:
        found = provider.find_uploaded_file(filename)
        if found:
            run.ledger.record_upload_done(key, found)
            return found
    file_id = provider.upload_training_file(content, filename)
    run.ledger.record_upload_done(key, file_id)
    return file_id


def _metadata(run: Run, cell: str, attempt: int) -> dict[str, str]:
    return {META_RUN: run.uid, META_CELL: cell, META_ATTEMPT: str(attempt)}


def _adopt_or_create(run: Run, provider: Provider, plan: JobPlan, request: JobRequest) -> JobStatus:
    for attempt in range(CREATE_ATTEMPTS):
        found = provider.find_jobs(request.metadata)
        if found:
            return sorted(found, key=lambda j: j.id)[0]
        try:
            job = provider.create_job(request)
        except TransientProviderError:
            time.sleep(CREATE_BACKOFF_S * 2 ** attempt)
            continue
        crash_point("finetune:after-create")
        return job
    raise ProviderError(f"{provider.name}: could not create the fine-tuning job of '{plan.cell}' after "
                        f"{CREATE_ATTEMPTS} tries (rate limits or server errors); rerun later to resume")


def ensure_job(run: Run, plan: JobPlan, *, retry_failed: bool = False) -> None:
    """Make sure the cell has a job at the provider; record intent first, look up before create."""
    record = run.ledger.job(plan.cell)
    if record is not None and record.state in ("failed", "cancelled") and retry_failed:
        attempt = int(record.metadata.get(META_ATTEMPT, "1")) + 1
        run.ledger.reset_job(plan.cell, _metadata(run, plan.cell, attempt))
        record = run.ledger.job(plan.cell)
    if record is not None and record.job_id:
        return
    provider = run.provider(plan.provider)
    file_id = ensure_uploaded(run, provider, plan.training)
    metadata = record.metadata if record is not None else _metadata(run, plan.cell, 1)
    hyper = {"n_epochs": plan.epochs, "batch_size": plan.batch_size,
             "learning_rate_multiplier": plan.learning_rate_multiplier}
    if record is None:
        prices = run.catalog.get(plan.base_model).prices
        epochs = plan.epochs if isinstance(plan.epochs, int) else 10
        ensure_within_budget(run, estimate_usd=training_cost_usd(prices, file_tokens(plan.training) * epochs),
                             what=f"fine-tuning job '{plan.cell}'")
        run.ledger.record_job_intent(plan.cell, provider.name, plan.base_model, file_id, metadata, hyper)
        crash_point("finetune:after-intent")
    request = JobRequest(model=plan.base_model, training_file=file_id, n_epochs=plan.epochs,
                         batch_size=plan.batch_size, learning_rate_multiplier=plan.learning_rate_multiplier,
                         seed=plan.seed, suffix=safe_name(plan.cell)[:SUFFIX_LIMIT], metadata=metadata)
    job = _adopt_or_create(run, provider, plan, request)
    run.ledger.update_job(plan.cell, state="created", job_id=job.id, status=job.status)
    run.progress.note(f"job {job.id} for {plan.cell}: {job.status}")


def _finish(run: Run, provider: Provider, cell: str, status: JobStatus) -> None:
    events = provider.job_events(status.id)
    error = f"{status.error_code}: {status.error_message}" if status.error_code or status.error_message else None
    run.ledger.update_job(cell, state=status.status, status=status.status, fine_tuned_model=status.fine_tuned_model,
                          trained_tokens=status.trained_tokens, error=error, events=events)
    if status.trained_tokens:
        prices = run.catalog.get(status.model).prices
        run.ledger.add_usage(STAGE, status.model, Usage(provider.name, trained_tokens=status.trained_tokens,
                                                        usd=training_cost_usd(prices, status.trained_tokens)))


def wait_for_jobs(run: Run, plans: Sequence[JobPlan]) -> None:
    """Poll every created job until it ends; record events, trained tokens, spend. Raise if any failed."""
    pending = {p.cell: p for p in plans if (r := run.ledger.job(p.cell)) is not None and r.state == "created"}
    task = run.progress.task("finetune · jobs", total=len(plans))
    task.advance(len(plans) - len(pending))
    deadline = time.monotonic() + max(run.config.providers[run.config.provider_name(p.provider)].job_deadline_h
                                      for p in plans) * 3600 if plans else 0
    try:
        while pending:
            for cell, plan in sorted(pending.items()):
                provider = run.provider(plan.provider)
                record = run.ledger.job(cell)
                status = provider.retrieve_job(str(record.job_id if record else ""))
                crash_point("finetune:polling")
                if status.terminal:
                    _finish(run, provider, cell, status)
                    del pending[cell]
                    task.advance()
                elif record is not None and status.status != record.status:
                    run.ledger.update_job(cell, status=status.status)
            task.describe(f"finetune · {len(plans) - len(pending)}/{len(plans)} jobs done")
            if pending:
                if time.monotonic() > deadline:
                    raise ProviderError(f"{len(pending)} fine-tuning jobs still running after the deadline: "
                                        "rerun later to resume waiting (nothing will be created again)")
                time.sleep(min(run.provider(p.provider).poll_interval_s for p in pending.values()))
    finally:
        task.close()
    _raise_failures(run, plans)


def _raise_failures(run: Run, plans: Sequence[JobPlan]) -> None:
    failed = [r for p in plans if (r := run.ledger.job(p.cell)) is not None and r.state in ("failed", "cancelled")]
    if failed:
        first = failed[0]
        raise JobFailedError(f"{len(failed)} fine-tuning job(s) ended without a model (e.g. '{first.cell}': "
                             f"{first.error or first.state}); see `slkit status`, then rerun with --retry-failed")


def student_plans(run: Run) -> list[JobPlan]:
    students = run.config.students
    files = {t.name: training_file(run, t) for t in run.config.teachers}
    return [JobPlan(cell=c.id, provider=c.student_provider, base_model=c.student_model, training=files[c.teacher.name],
                    epochs=students.epochs, batch_size=students.batch_size,
                    learning_rate_multiplier=students.learning_rate_multiplier, seed=c.seed)
            for c in cells(run.config)]


def run_jobs(run: Run, plans: Sequence[JobPlan], *, retry_failed: bool = False) -> None:
    for plan in plans:
        ensure_job(run, plan, retry_failed=retry_failed)
    wait_for_jobs(run, plans)


def finetune(run: Run, *, retry_failed: bool = False) -> dict[str, str]:
    """Fine-tune every student cell; returns cell -> fine-tuned model."""
    with stage(run, STAGE) as detail:
        plans = student_plans(run)
        run_jobs(run, plans, retry_failed=retry_failed)
        models = {p.cell: str(r.fine_tuned_model) for p in plans if (r := run.ledger.job(p.cell)) is not None}
        detail["jobs"] = len(models)
    return models
