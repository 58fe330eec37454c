"""Stage `finetune` (and the fine-tuned-teacher step): validate, upload once, create each job at most once, wait.

The same lifecycle on every route. The training file is checked locally first (JSONL chat format, at least 10
examples, no example over the token limit) and uploaded once, then waited for until the provider has processed it.
A paid job is created at most once per cell: the intent is recorded in the ledger before `create`; jobs carry a
tag (run uid, cell, attempt) — as `metadata` where the API has it, else in the suffix or the job id — and before
any create (first time, after a crash, after a failed create) the provider is asked for a job with that tag; one
found is adopted, never duplicated. Jobs beyond the route's quotas (concurrent jobs, jobs per day) wait in the
queue; polling backs off; failures end as one-line errors by cause (moderation, invalid file, quota, refusal).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass

from kit.budget import ensure_within_budget
from kit.errors import DataError, JobFailedError, ProviderError, TransientProviderError
from kit.faultpoints import crash_point
from kit.ledger import JobRecord, Usage
from kit.providers.base import FILE_FAILED, FILE_READY, JobRequest, JobStatus, Provider
from kit.providers.errors import QuotaExceededError, job_failure_message
from kit.runs import Run
from kit.stages.common import cells, safe_name, stage
from kit.stages.filter import training_file
from kit.stages.quota import Quota, Scheduler, quota_for
from kit.tokens import count_training_example, training_cost_usd

STAGE = "finetune"
META_RUN, META_CELL, META_ATTEMPT = "slkit_run", "slkit_cell", "slkit_attempt"
CREATE_ATTEMPTS = 6
CREATE_BACKOFF_S = 2.0
SUFFIX_LIMIT = 40
TAG_LENGTH = 12
MIN_EXAMPLES = 10
ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})
POLL_BACKOFF = 1.5
POLL_MAX_FACTOR = 10.0
HOUR_S = 3600.0


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


# --- the training file --------------------------------------------------------------------------------------------


def _example(line: bytes, number: int, max_tokens: int) -> None:
    try:
        record = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise DataError(f"training file line {number} is not JSON: rebuild it with `slkit filter`") from None
    messages = record.get("messages") if isinstance(record, dict) else None
    if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
        raise DataError(f'training file line {number} has no "messages" list of objects: rebuild it with '
                        "`slkit filter`")
    bad = [m for m in messages if m.get("role") not in ROLES or not isinstance(m.get("content"), str)
           or m.get("weight", 1) not in (0, 1)]
    if bad or not any(m.get("role") == "assistant" for m in messages):
        raise DataError(f"training file line {number}: every message needs a valid role and string content, and an "
                        "example needs an assistant message: fix the data and rerun")
    tokens = count_training_example(messages)
    if tokens > max_tokens:
        raise DataError(f"training file line {number} has {tokens:,} tokens, over the limit of {max_tokens:,}: "
                        "shorten it or drop it from the dataset")


def validate_training_file(content: bytes, max_example_tokens: int) -> int:
    """Check a fine-tuning JSONL file locally (what providers reject after upload); returns the example count."""
    lines = [(n, line) for n, line in enumerate(content.splitlines(), start=1) if line.strip()]
    for number, line in lines:
        _example(line, number, max_example_tokens)
    if len(lines) < MIN_EXAMPLES:
        raise DataError(f"the training file has {len(lines)} examples; providers need at least {MIN_EXAMPLES}: "
                        "raise dataset.size or generate more")
    return len(lines)


def _wait_processed(run: Run, provider: Provider, file_id: str) -> None:
    deadline = time.monotonic() + run.config.providers[provider.name].upload_deadline_s
    while (status := provider.file_status(file_id)).status != FILE_READY:
        if status.status == FILE_FAILED:
            raise DataError(f"provider '{provider.name}' could not process the training file {file_id} "
                            f"({status.error or 'error'}): fix the data, then rerun")
        if time.monotonic() > deadline:
            raise ProviderError(f"provider '{provider.name}' has not processed the training file {file_id} after "
                                "the upload deadline: rerun later to resume (it is not uploaded twice)")
        time.sleep(min(provider.poll_interval_s, 5.0))


def ensure_uploaded(run: Run, provider: Provider, content: bytes) -> str:
    """The provider's file id for these bytes, uploading only if this run never did (or a crash hid it), once
    the provider has processed it."""
    sha = hashlib.sha256(content).hexdigest()
    key, filename = f"{provider.name}:fine-tune:{sha}", f"slkit-{run.uid}-{sha[:16]}.jsonl"
    row = run.ledger.upload(key)
    if row is not None and row["state"] == "uploaded":
        return str(row["file_id"])
    validate_training_file(content, run.config.providers[provider.name].max_example_tokens)
    if row is None:
        run.ledger.record_upload_intent(key, provider.name, filename, sha, len(content))
    file_id = provider.find_uploaded_file(filename) if row is not None else None
    file_id = file_id or provider.upload_training_file(content, filename)
    _wait_processed(run, provider, file_id)
    run.ledger.record_upload_done(key, file_id)
    return file_id


# --- creating a job at most once ----------------------------------------------------------------------------------


def _metadata(run: Run, cell: str, attempt: int) -> dict[str, str]:
    return {META_RUN: run.uid, META_CELL: cell, META_ATTEMPT: str(attempt)}


def job_tag(metadata: dict[str, str]) -> str:
    """Short and unique per run, cell and attempt: the lookup key where a job cannot carry metadata."""
    text = f"{metadata.get(META_RUN)}:{metadata.get(META_CELL)}:{metadata.get(META_ATTEMPT)}"
    return hashlib.sha256(text.encode()).hexdigest()[:TAG_LENGTH]


def _adopt_or_create(run: Run, provider: Provider, plan: JobPlan, request: JobRequest) -> JobStatus:
    for attempt in range(CREATE_ATTEMPTS):
        found = provider.find_jobs(request)
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


def _reset_if_retrying(run: Run, plan: JobPlan, retry_failed: bool) -> JobRecord | None:
    record = run.ledger.job(plan.cell)
    if record is not None and record.state in ("failed", "cancelled") and retry_failed:
        attempt = int(record.metadata.get(META_ATTEMPT, "1")) + 1
        run.ledger.reset_job(plan.cell, _metadata(run, plan.cell, attempt))
        record = run.ledger.job(plan.cell)
    return record


def _request(plan: JobPlan, file_id: str, metadata: dict[str, str]) -> JobRequest:
    return JobRequest(model=plan.base_model, training_file=file_id, n_epochs=plan.epochs, batch_size=plan.batch_size,
                      learning_rate_multiplier=plan.learning_rate_multiplier, seed=plan.seed,
                      suffix=safe_name(plan.cell)[:SUFFIX_LIMIT], metadata=metadata, tag=job_tag(metadata))


def ensure_job(run: Run, plan: JobPlan, *, retry_failed: bool = False) -> None:
    """Make sure the cell has a job at the provider; record intent first, look up before create."""
    record = _reset_if_retrying(run, plan, retry_failed)
    if record is not None and record.job_id:
        return
    provider = run.provider(plan.provider)
    file_id = ensure_uploaded(run, provider, plan.training)
    metadata = record.metadata if record is not None else _metadata(run, plan.cell, 1)
    if record is None:
        prices = run.catalog.get(plan.base_model).prices
        epochs = plan.epochs if isinstance(plan.epochs, int) else 10
        ensure_within_budget(run, estimate_usd=training_cost_usd(prices, file_tokens(plan.training) * epochs),
                             what=f"fine-tuning job '{plan.cell}'")
        hyper = {"n_epochs": plan.epochs, "batch_size": plan.batch_size,
                 "learning_rate_multiplier": plan.learning_rate_multiplier}
        run.ledger.record_job_intent(plan.cell, provider.name, plan.base_model, file_id, metadata, hyper)
        crash_point("finetune:after-intent")
    job = _adopt_or_create(run, provider, plan, _request(plan, file_id, metadata))
    run.ledger.update_job(plan.cell, state="created", job_id=job.id, status=job.status)
    run.progress.note(f"job {job.id} for {plan.cell}: {job.status}")


# --- waiting: polling, finishing, the queue -----------------------------------------------------------------------


def _finish(run: Run, provider: Provider, plan: JobPlan, status: JobStatus) -> None:
    events = provider.job_events(status.id)
    error = f"{status.error_code}: {status.error_message}" if status.error_code or status.error_message else None
    run.ledger.update_job(plan.cell, state=status.status, status=status.status,
                          fine_tuned_model=status.fine_tuned_model, trained_tokens=status.trained_tokens, error=error,
                          events=events)
    if status.trained_tokens:
        prices = run.catalog.get(plan.base_model).prices
        run.ledger.add_usage(STAGE, plan.base_model, Usage(provider.name, trained_tokens=status.trained_tokens,
                                                           usd=training_cost_usd(prices, status.trained_tokens)))


def _poll(run: Run, plan: JobPlan, record: JobRecord) -> bool:
    """Poll one created job; True when it changed (ended or moved on)."""
    provider = run.provider(plan.provider)
    status = provider.retrieve_job(str(record.job_id))
    crash_point("finetune:polling")
    if status.terminal:
        _finish(run, provider, plan, status)
        return True
    deadline_s = run.config.providers[provider.name].job_deadline_h * HOUR_S
    if time.time() - record.created_at > deadline_s:
        raise ProviderError(f"fine-tuning job '{plan.cell}' ({record.job_id}) still {status.status} after the job "
                            "deadline: rerun later to resume waiting (nothing will be created again)")
    if status.status != record.status:
        run.ledger.update_job(plan.cell, status=status.status)
        return True
    return False


class _Queue:
    """The cells of one stage: queued (no job yet), in flight (created, not ended), done."""

    def __init__(self, run: Run, plans: Sequence[JobPlan], retry_failed: bool) -> None:
        self.run, self.retry_failed = run, retry_failed
        self.plans = {p.cell: p for p in plans}
        self.quotas = {p.cell: quota_for(run, p.provider, p.base_model) for p in plans}
        self.scheduler = Scheduler(run)
        self.waiting_since = time.monotonic()
        self.retried: set[str] = set()  # cells given a new job in this call (a second failure stays failed)
        self.refusal: QuotaExceededError | None = None  # the provider's last quota refusal, if any
        self.task = run.progress.task("finetune · jobs", total=len(plans))
        self.reported = 0

    def record(self, cell: str) -> JobRecord | None:
        return self.run.ledger.job(cell)

    def queued(self) -> list[JobPlan]:
        out = []
        for cell, plan in self.plans.items():
            record = self.record(cell)
            failed = record is not None and record.state in ("failed", "cancelled")
            if record is None or not record.job_id or (failed and self.retry_failed and cell not in self.retried):
                out.append(plan)
        return out

    def in_flight(self) -> list[tuple[JobPlan, JobRecord]]:
        return [(p, r) for p in self.plans.values() if (r := self.record(p.cell)) is not None and r.state == "created"]


def _start_what_quota_allows(queue: _Queue) -> float:
    """Create jobs while quotas allow; returns when the next blocked group opens (inf: when a job ends)."""
    queued = queue.queued()
    next_open = float("inf") if queued else 0.0
    for plan in queued:
        quota: Quota = queue.quotas[plan.cell]
        record = queue.record(plan.cell)
        resuming = record is not None and record.state == "intent"  # counted against the quota already
        opens = queue.scheduler.deferred_until(quota) if resuming else queue.scheduler.opens_at(quota, time.time())
        if opens > time.time():
            next_open = min(next_open, opens)
            continue
        try:
            ensure_job(queue.run, plan, retry_failed=queue.retry_failed)
            queue.retried.add(plan.cell)
        except QuotaExceededError as err:
            queue.refusal = err
            queue.scheduler.defer(quota)
            queue.run.progress.note(f"{plan.cell}: {err.one_line()} — queued")
            next_open = min(next_open, queue.scheduler.deferred_until(quota))
    return next_open


def _check_queue_wait(queue: _Queue, waiting: int, next_open: float) -> None:
    """Nothing is running and every queued job waits for a quota: wait up to max_queue_wait_h, then stop."""
    if time.monotonic() - queue.waiting_since <= _wait_limit_h(queue) * HOUR_S:
        return
    if queue.refusal is not None:
        raise queue.refusal
    opens = time.strftime("%Y-%m-%d %H:%M", time.localtime(next_open)) if next_open != float("inf") else "later"
    raise QuotaExceededError(f"{waiting} fine-tuning job(s) wait for the provider's job quota (the next slot opens "
                             f"{opens}): rerun then to resume (nothing is lost or created twice)")


def _wait_limit_h(queue: _Queue) -> float:
    config = queue.run.config
    names = {config.provider_name(p.provider) for p in queue.plans.values()}
    return min(config.providers[n].max_queue_wait_h for n in names) if names else 0.0


def _interval(run: Run, plans: Sequence[JobPlan], idle_rounds: int) -> float:
    base = min(run.provider(p.provider).poll_interval_s for p in plans)
    return min(base * POLL_BACKOFF ** idle_rounds, base * POLL_MAX_FACTOR)


def _tick(queue: _Queue) -> tuple[bool, bool]:
    """One round: create what quotas allow, poll what runs. (anything changed, everything ended)."""
    next_open = _start_what_quota_allows(queue)
    changed = [p.cell for p, r in queue.in_flight() if _poll(queue.run, p, r)]
    waiting, flying = len(queue.queued()), len(queue.in_flight())
    done = len(queue.plans) - waiting - flying
    queue.task.advance(done - queue.reported)
    queue.reported = done
    queue.task.describe(f"finetune · {done}/{len(queue.plans)} jobs done" + (f", {waiting} queued" if waiting else ""))
    if waiting and not flying:
        _check_queue_wait(queue, waiting, next_open)
    else:
        queue.waiting_since = time.monotonic()
    return bool(changed), not waiting and not flying


def wait_for_jobs(run: Run, plans: Sequence[JobPlan], *, retry_failed: bool = False) -> None:
    """Create queued jobs as quotas allow and poll created ones until every cell has ended; raise if any failed."""
    queue = _Queue(run, plans, retry_failed)
    idle = 0
    try:
        while True:
            changed, ended = _tick(queue)
            if ended:
                break
            idle = 0 if changed else idle + 1
            time.sleep(_interval(run, plans, idle))
    finally:
        queue.task.close()
    _raise_failures(run, plans)


def _raise_failures(run: Run, plans: Sequence[JobPlan]) -> None:
    failed = [r for p in plans if (r := run.ledger.job(p.cell)) is not None and r.state in ("failed", "cancelled")]
    if not failed:
        return
    first = failed[0]
    code, _, message = (first.error or "").partition(": ")
    if first.state == "cancelled":
        raise JobFailedError(f"{len(failed)} fine-tuning job(s) ended without a model (e.g. '{first.cell}' was "
                             "cancelled); see `slkit status`, then rerun with --retry-failed")
    more = f" ({len(failed)} jobs failed)" if len(failed) > 1 else ""
    raise JobFailedError(job_failure_message(first.provider, first.cell, code or None, message or None) + more)


def student_plans(run: Run) -> list[JobPlan]:
    students = run.config.students
    files = {t.name: training_file(run, t) for t in run.config.teachers}
    return [JobPlan(cell=c.id, provider=c.student_provider, base_model=c.student_model, training=files[c.teacher.name],
                    epochs=students.epochs, batch_size=students.batch_size,
                    learning_rate_multiplier=students.learning_rate_multiplier, seed=c.seed)
            for c in cells(run.config)]


def run_jobs(run: Run, plans: Sequence[JobPlan], *, retry_failed: bool = False) -> None:
    wait_for_jobs(run, plans, retry_failed=retry_failed)


def finetune(run: Run, *, retry_failed: bool = False) -> dict[str, str]:
    """Fine-tune every student cell; returns cell -> fine-tuned model."""
    with stage(run, STAGE) as detail:
        plans = student_plans(run)
        run_jobs(run, plans, retry_failed=retry_failed)
        models = {p.cell: str(r.fine_tuned_model) for p in plans if (r := run.ledger.job(p.cell)) is not None}
        detail["jobs"] = len(models)
    return models
