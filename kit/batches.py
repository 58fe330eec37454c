"""Sampling through a provider's Batch API (OpenAI, Azure OpenAI, Anthropic): 50% off, results within 24 h.

A batch is created at most once: its intent (key, tag, request count) is recorded in the ledger before the create;
a restarted run finds the ledger's batches in flight and polls them instead of creating new ones, and a batch lost
between create and the ledger write is looked up by its tag (its metadata) — or, where the API has no metadata, by
its request count and creation time. Results come back unordered and are matched on `custom_id`, which names the
prompt item, the request fingerprint and the first sample index: samples land under exactly the keys live
sampling would use (fingerprint + sample index), so a batch and a live request can never answer the same sample.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence

from kit.errors import ProviderError
from kit.faultpoints import crash_point
from kit.ledger import BatchRecord
from kit.progress import Task
from kit.providers.base import BatchRequest, Provider
from kit.runs import Run
from kit.sampling import (Prompt, SamplingSpec, _Request, cached_samples, plan_requests, request_seed,
                          store_result)

TAG_LENGTH = 16
POLL_BACKOFF = 1.5
POLL_MAX_FACTOR = 20.0
BATCH_DEADLINE_S = 26 * 3600.0  # the 24 h completion window, and some slack for finalizing
OPEN_STATES = ("intent", "submitted")


def custom_id(request: _Request) -> str:
    """`i<item>-<fingerprint>-<start>-<count>`: unique per request, at most 64 of [A-Za-z0-9_-] (Anthropic's rule)."""
    return f"i{request.prompt.item}-{request.fingerprint}-{request.start}-{request.count}"


def _base_key(spec: SamplingSpec, chunk: Sequence[_Request]) -> str:
    digest = hashlib.sha256("\n".join(sorted(custom_id(r) for r in chunk)).encode()).hexdigest()[:24]
    return f"{spec.stage}/{spec.subject}/{digest}"


def _batch_key(run: Run, spec: SamplingSpec, chunk: Sequence[_Request]) -> str:
    """The ledger key of this chunk: resumes an open batch of the same requests, else starts a new attempt."""
    base = _base_key(spec, chunk)
    attempts = [b for b in run.ledger.batches(spec.stage) if b.key == base or b.key.startswith(base + "#")]
    open_ones = [b for b in attempts if b.state in OPEN_STATES]
    if open_ones:
        return open_ones[0].key
    return base if not attempts else f"{base}#{len(attempts) + 1}"


def _tag(run: Run, key: str) -> str:
    return hashlib.sha256(f"{run.uid}:{key}".encode()).hexdigest()[:TAG_LENGTH]


def _lines(spec: SamplingSpec, chunk: Sequence[_Request], api_model: str) -> list[BatchRequest]:
    return [BatchRequest(custom_id=custom_id(r), model=api_model, messages=r.prompt.messages, n=r.count,
                         temperature=spec.temperature, max_tokens=spec.max_tokens,
                         seed=request_seed(r.fingerprint, r.start), top_logprobs=spec.top_logprobs) for r in chunk]


def ensure_submitted(run: Run, provider: Provider, spec: SamplingSpec, chunk: Sequence[_Request],
                     api_model: str) -> BatchRecord:
    """Record the intent of this chunk's batch, then create it. (Intents a previous run left behind are looked up
    by `_in_flight` before any new batch is made, so this never creates a batch twice.)"""
    key = _batch_key(run, spec, chunk)
    record = run.ledger.batch(key)
    if record is None:
        run.ledger.record_batch_intent(key, provider.name, spec.stage, spec.subject, _tag(run, key), len(chunk))
        crash_point("batch:after-intent")
        record = run.ledger.batch(key)
    assert record is not None
    if record.batch_id:
        return record
    batch_id = provider.submit_batch(_lines(spec, chunk, api_model), record.tag)
    crash_point("batch:after-create")
    run.ledger.update_batch(key, state="submitted", batch_id=batch_id, status="submitted")
    run.progress.note(f"batch {batch_id} for {spec.subject}: {len(chunk)} requests")
    return run.ledger.batch(key) or record


def parse_custom_id(text: str, prompts: dict[int, Prompt]) -> _Request | None:
    """The request a custom id names (None if it is not one of this subject's)."""
    parts = text.split("-")
    if len(parts) != 4 or not parts[0].startswith("i"):
        return None
    try:
        item, start, count = int(parts[0][1:]), int(parts[2]), int(parts[3])
    except ValueError:
        return None
    prompt = prompts.get(item)
    return _Request(prompt, parts[1], start, count) if prompt is not None else None


def _collect(run: Run, provider: Provider, spec: SamplingSpec, record: BatchRecord, prompts: dict[int, Prompt],
             task: Task) -> int:
    """Store the results of an ended batch; returns how many of its requests came back without a result."""
    stored = 0
    for item in provider.batch_results(str(record.batch_id)):
        request = parse_custom_id(item.custom_id, prompts)
        if request is not None and item.result is not None:
            store_result(run, provider, spec, request, item.result, batch=True)
            stored += 1
            task.advance()
    return record.requests - stored


def _finish(run: Run, provider: Provider, spec: SamplingSpec, record: BatchRecord, prompts: dict[int, Prompt],
            task: Task) -> None:
    status = provider.batch_status(str(record.batch_id))
    missing = _collect(run, provider, spec, record, prompts, task)
    error = status.error or (f"{missing} of {record.requests} requests came back without a result" if missing else None)
    run.ledger.update_batch(record.key, state="done" if not missing else "failed", status=status.provider_status,
                            error=error)
    if missing:
        run.progress.note(f"batch {record.batch_id}: {error}; a rerun sends them again")


def _wait(run: Run, provider: Provider, spec: SamplingSpec, records: list[BatchRecord], prompts: dict[int, Prompt],
          task: Task) -> None:
    deadline, idle = time.monotonic() + BATCH_DEADLINE_S, 0
    open_ = {r.key: r for r in records}
    while open_:
        for key, record in list(open_.items()):
            status = provider.batch_status(str(record.batch_id))
            crash_point("batch:polling")
            if status.done:
                _finish(run, provider, spec, record, prompts, task)
                del open_[key]
        if not open_:
            return
        if time.monotonic() > deadline:
            raise ProviderError(f"{len(open_)} batch(es) of '{spec.subject}' have not ended after the batch window: "
                                "rerun later to collect them (nothing is sent twice)")
        idle += 1
        time.sleep(min(provider.poll_interval_s * POLL_BACKOFF ** idle, provider.poll_interval_s * POLL_MAX_FACTOR))


def _in_flight(run: Run, provider: Provider, spec: SamplingSpec) -> list[BatchRecord]:
    """Batches of this subject a previous run left open, found again at the provider where the ledger lacks the id."""
    found = []
    for record in run.ledger.batches(spec.stage):
        if record.subject != spec.subject or record.state not in OPEN_STATES:
            continue
        known = frozenset(b.batch_id for b in run.ledger.batches() if b.batch_id)
        batch_id = record.batch_id or provider.find_batch(record.tag, record.requests, record.created_at, known)
        if batch_id is None:  # the create never happened: nothing to wait for
            run.ledger.update_batch(record.key, state="failed", error="never created (the run stopped first)")
            continue
        run.ledger.update_batch(record.key, state="submitted", batch_id=batch_id)
        found.append(run.ledger.batch(record.key) or record)
    return found


def send_batches(run: Run, provider: Provider, spec: SamplingSpec, prompts: Sequence[Prompt],
                 requests: Sequence[_Request], api_model: str, task: Task) -> None:
    """Collect batches left in flight, then send `requests` still missing as batches of at most
    `batch_max_requests`, wait for them, and store their results."""
    by_item = {p.item: p for p in prompts}
    leftovers = _in_flight(run, provider, spec)
    if leftovers:
        _wait(run, provider, spec, leftovers, by_item, task)
        cached = set(cached_samples(run, spec, prompts))
        requests = plan_requests(spec, prompts, cached, provider.max_samples_per_request)
    size = run.config.providers[provider.name].batch_max_requests
    chunks = [list(requests[i:i + size]) for i in range(0, len(requests), size)]
    records = [ensure_submitted(run, provider, spec, chunk, api_model) for chunk in chunks]
    _wait(run, provider, spec, records, by_item, task)
