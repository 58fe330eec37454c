"""Cached sampling: ask a model for `samples` completions of each prompt, sending only what the ledger lacks.

The cache key is a fingerprint of (model, messages, temperature, max_tokens) plus the sample index, so sampling a
question 100 times is 100 distinct samples, and a rerun sends nothing already answered. Missing samples of one
prompt go out as one request with `n` > 1 (input billed once), with a seed derived from the key so a retried or
resumed request asks for exactly the same thing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kit.catalog import FT_PREFIX
from kit.errors import DataError
from kit.faultpoints import crash_point
from kit.ledger import Usage
from kit.limits import bounded_map
from kit.providers.base import ChatResult, Message, Provider
from kit.runs import Run
from kit.tokens import chat_cost_usd

SEED_MODULUS = 2**31 - 1
MAX_N = 128


@dataclass(frozen=True)
class Prompt:
    item: int
    messages: Sequence[Message]


@dataclass(frozen=True)
class SamplingSpec:
    stage: str
    subject: str
    provider: str | None
    model: str
    samples: int
    temperature: float
    max_tokens: int | None
    catalog_model: str | None = None  # the catalogue id that prices `model` (default: `model` itself)
    fine_tuned: bool | None = None    # priced at fine-tuned rates (default: `model` starts with ft:)
    top_logprobs: int | None = None   # also ask for the first token's top logprobs (stored with each completion)

    def prices_of(self, run: Run) -> tuple[Any, bool]:
        fine_tuned = self.model.startswith(FT_PREFIX) if self.fine_tuned is None else self.fine_tuned
        return run.catalog.get(self.catalog_model or self.model).prices, fine_tuned


@dataclass(frozen=True)
class _Request:
    prompt: Prompt
    fingerprint: str
    start: int
    count: int


def fingerprint(model: str, messages: Sequence[Message], temperature: float, max_tokens: int | None) -> str:
    body = json.dumps({"model": model, "messages": list(messages), "temperature": temperature,
                       "max_tokens": max_tokens}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(body.encode("utf-8")).hexdigest()[:32]


def spec_fingerprint(spec: SamplingSpec, messages: Sequence[Message]) -> str:
    """The request fingerprint of one prompt under a spec (asking for logprobs is a different request)."""
    fp = fingerprint(spec.model, messages, spec.temperature, spec.max_tokens)
    if spec.top_logprobs is None:
        return fp
    return hashlib.sha256(f"{fp}:logprobs={spec.top_logprobs}".encode()).hexdigest()[:32]


def sample_key(fp: str, index: int) -> str:
    return f"{fp}:{index}"


def request_seed(fp: str, start: int) -> int:
    return int(hashlib.sha256(f"{fp}:{start}".encode()).hexdigest()[:12], 16) % SEED_MODULUS


def _missing_runs(have: set[int], samples: int, cap: int) -> list[tuple[int, int]]:
    """Contiguous (start, count) ranges of missing sample indices, each at most `cap` long."""
    runs: list[tuple[int, int]] = []
    index = 0
    while index < samples:
        if index in have:
            index += 1
            continue
        start = index
        while index < samples and index not in have and index - start < cap:
            index += 1
        runs.append((start, index - start))
    return runs


def plan_requests(spec: SamplingSpec, prompts: Sequence[Prompt], cached: set[str], cap: int) -> list[_Request]:
    """The requests that fill the missing samples; prompts asking exactly the same thing share their samples."""
    requests: list[_Request] = []
    planned: set[str] = set()
    for prompt in prompts:
        fp = spec_fingerprint(spec, prompt.messages)
        if fp in planned:
            continue
        planned.add(fp)
        have = {i for i in range(spec.samples) if sample_key(fp, i) in cached}
        requests += [_Request(prompt, fp, start, count) for start, count in _missing_runs(have, spec.samples, cap)]
    return requests


def store_result(run: Run, provider: Provider, spec: SamplingSpec, request: _Request, result: ChatResult, *,
                 batch: bool = False) -> None:
    """Store one request's completions under their sample keys, with its usage, in one transaction."""
    seed = request_seed(request.fingerprint, request.start)
    texts = (result.texts + [""] * request.count)[:request.count]
    if spec.top_logprobs is not None:
        tops = (result.top_logprobs or []) + [{}] * request.count
        texts = [json.dumps({"text": t, "top_logprobs": tops[j]}, ensure_ascii=False) for j, t in enumerate(texts)]
    rows = [(sample_key(request.fingerprint, request.start + j), request.prompt.item, request.start + j, text)
            for j, text in enumerate(texts)]
    body: dict[str, Any] = {"model": spec.model, "messages": list(request.prompt.messages), "n": request.count,
                            "temperature": spec.temperature, "max_tokens": spec.max_tokens, "seed": seed}
    if batch:
        body["batch"] = True
    prices, fine_tuned = spec.prices_of(run)
    usd = chat_cost_usd(prices, fine_tuned=fine_tuned, input_tokens=result.input_tokens,
                        output_tokens=result.output_tokens, batch=batch)
    usage = Usage(provider.name, input_tokens=result.input_tokens, output_tokens=result.output_tokens, usd=usd)
    run.ledger.add_samples(spec.stage, spec.subject, spec.model, body, rows, result.request_id, usage)
    crash_point(f"{spec.stage}:stored")


def _send(run: Run, provider: Provider, spec: SamplingSpec, request: _Request, api_model: str) -> None:
    seed = request_seed(request.fingerprint, request.start)
    result = provider.chat(api_model, request.prompt.messages, n=request.count, temperature=spec.temperature,
                           max_tokens=spec.max_tokens, seed=seed, top_logprobs=spec.top_logprobs)
    store_result(run, provider, spec, request, result)


def sample_all(run: Run, spec: SamplingSpec, prompts: Sequence[Prompt], *, label: str,
               offline: bool = False) -> dict[int, list[str]]:
    """Completions per prompt item (`samples` each, in sample order), sending only the missing requests.

    With `offline`, nothing is sent: missing samples raise DataError naming the stage to run first.
    """
    cached = cached_samples(run, spec, prompts)
    missing = plan_requests(spec, prompts, set(cached), MAX_N)
    if missing and offline:
        raise DataError(f"{len(missing)} {spec.stage} requests of '{spec.subject}' are not in the ledger yet: "
                        f"run `slkit {spec.stage}` (or `slkit run`) first")
    if missing:
        _sample_missing(run, spec, prompts, set(cached), label)
        cached = cached_samples(run, spec, prompts)
    return _collect(spec, prompts, cached)


def cached_samples(run: Run, spec: SamplingSpec, prompts: Sequence[Prompt]) -> dict[str, Any]:
    """What the ledger holds of these prompts' samples — under their keys, whichever stage or subject stored them."""
    keys = [sample_key(spec_fingerprint(spec, p.messages), i) for p in prompts for i in range(spec.samples)]
    return run.ledger.samples_by_key(keys)


def _sample_missing(run: Run, spec: SamplingSpec, prompts: Sequence[Prompt], cached: set[str], label: str) -> None:
    """Send what the ledger lacks: live requests, or through the provider's Batch API when its config asks."""
    from kit.batches import send_batches
    from kit.stages.deploy import inference_model

    provider = run.provider(spec.provider)
    requests = plan_requests(spec, prompts, cached, provider.max_samples_per_request)
    api_model = inference_model(run, provider, spec.model)
    task = run.progress.task(label, total=len(requests))
    try:
        if run.config.providers[provider.name].batch and provider.supports_batch:
            send_batches(run, provider, spec, prompts, requests, api_model, task)
            return
        for _ in bounded_map(lambda r: _send(run, provider, spec, r, api_model), requests,
                             max_in_flight=provider.max_in_flight):
            task.advance()
    finally:
        task.close()


def _collect(spec: SamplingSpec, prompts: Sequence[Prompt], cached: dict[str, Any]) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for prompt in prompts:
        fp = spec_fingerprint(spec, prompt.messages)
        out[prompt.item] = [cached[sample_key(fp, i)].completion for i in range(spec.samples)]
    return out
