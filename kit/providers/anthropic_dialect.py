"""Anthropic (Claude) through the official `anthropic` SDK: teacher generation and judging, live or as Message
Batches. Anthropic has no public fine-tuning API, so every fine-tuning call is refused with the route to use.

Messages API differences the kit absorbs: the system prompt is a top-level field; there is no `n` (one sample per
request: the config sets max_samples_per_request to 1), no `seed` and no logprobs; `max_tokens` is required.
Message Batches: `{requests: [{custom_id, params}]}`, ≤100,000 requests, 50% off, results unordered (matched on
custom_id), no metadata — a batch lost between create and the ledger write is found again by its request count
and creation time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import anthropic
import httpx2

from kit.errors import KitError, ProviderError, TransientProviderError
from kit.limits import RateGovernor, call_with_retries
from kit.providers.base import (
    BATCH_DONE,
    BATCH_RUNNING,
    BatchItem,
    BatchRequest,
    BatchStatus,
    ChatResult,
    DeploymentStatus,
    FileStatus,
    JobRequest,
    JobStatus,
    Message,
)
from kit.providers.errors import REDACTED, Refusal, retry_after_of, status_error
from kit.providers.openai_dialect import Settings

T = TypeVar("T")

DEFAULT_MAX_TOKENS = 1024
DEFAULT_TEMPERATURE = 1.0
FIND_SKEW_S = 120.0
LIST_PAGE = 100
NO_FINE_TUNING = ("has no fine-tuning API (Anthropic offers none): fine-tune students on an openai, azure, together or "
                  "fireworks provider and keep Claude as teacher or judge")


def split_system(messages: Sequence[Message]) -> tuple[str | None, list[Message]]:
    """The Messages API takes the system prompt as a top-level field, and only user/assistant turns."""
    system = "\n\n".join(str(m.get("content") or "") for m in messages if m.get("role") in ("system", "developer"))
    turns = [{"role": m["role"], "content": m.get("content") or ""} for m in messages
             if m.get("role") in ("user", "assistant")]
    return (system or None), turns


def message_params(model: str, messages: Sequence[Message], *, temperature: float,
                   max_tokens: int | None) -> dict[str, Any]:
    system, turns = split_system(messages)
    params: dict[str, Any] = {"model": model, "max_tokens": max_tokens or DEFAULT_MAX_TOKENS, "messages": turns}
    if system:
        params["system"] = system
    if temperature != DEFAULT_TEMPERATURE:
        params["temperature"] = temperature  # omitted at the default: some models reject any explicit value
    return params


def message_text(message: Any) -> str:
    return "".join(getattr(block, "text", "") for block in message.content if getattr(block, "type", "") == "text")


class AnthropicErrors:
    def __init__(self, provider: str, key_env: str | None, secret: str) -> None:
        self.provider, self.key_env, self._secret = provider, key_env, secret

    def __call__(self, exc: BaseException) -> KitError | None:
        p = f"provider '{self.provider}'"
        if isinstance(exc, anthropic.APITimeoutError):
            return TransientProviderError(f"{p}: request timed out")
        if isinstance(exc, anthropic.APIConnectionError):
            return TransientProviderError(f"{p}: connection failed ({str(exc).replace(self._secret, REDACTED)})")
        if not isinstance(exc, anthropic.APIStatusError):
            return None
        body = exc.body if isinstance(exc.body, dict) else {}
        error = body.get("error") if isinstance(body.get("error"), dict) else {}
        code = error.get("code") if isinstance(error.get("code"), str) else error.get("type")
        message = str(error.get("message") or exc.message).replace(self._secret, REDACTED)
        return status_error(self.provider, self.key_env, Refusal(exc.status_code, code, message,
                                                                 retry_after_of(exc.response.headers),
                                                                 exc.request_id))


class AnthropicProvider:
    kind = "anthropic"
    supports_batch = True
    needs_deployment = False

    def __init__(self, name: str, settings: Settings, *, base_url: str | None, api_key: str,
                 http_client: httpx2.Client | None = None, on_close: Callable[[], None] | None = None) -> None:
        self.name, self.settings = name, settings
        self.max_in_flight = settings.max_in_flight
        self.poll_interval_s = settings.poll_interval_s
        self.max_samples_per_request = 1
        self.governor = RateGovernor(settings.max_in_flight)
        self._classify = AnthropicErrors(name, settings.key_env, api_key)
        self._client = anthropic.Anthropic(api_key=api_key, base_url=base_url, max_retries=0,
                                           timeout=settings.timeout_s, http_client=http_client)
        self._on_close = on_close

    def _governed(self, fn: Callable[[], T], headers_of: Callable[[T], Any] | None = None) -> T:
        with self.governor.slot() as ticket:
            try:
                result = fn()
            except anthropic.RateLimitError as exc:
                self.governor.throttled(retry_after_of(exc.response.headers))
                raise
            self.governor.observe(ticket, headers_of(result) if headers_of else None)
            return result

    def _call(self, what: str, fn: Callable[[], T], headers_of: Callable[[T], Any] | None = None) -> T:
        return call_with_retries(lambda: self._governed(fn, headers_of), classify=self._classify,
                                 max_attempts=self.settings.max_attempts, what=f"{self.name}: {what}")

    def api_model(self, model: str) -> str:
        return self.settings.model_names.get(model, model)

    # --- chat -------------------------------------------------------------------------------------------------

    def _one(self, params: dict[str, Any]) -> tuple[str, int, int, str | None]:
        raw = self._call(f"message from {params['model']}",
                         lambda: self._client.messages.with_raw_response.create(**params), lambda r: r.headers)
        message = raw.parse()
        return message_text(message), message.usage.input_tokens, message.usage.output_tokens, raw.request_id

    def chat(self, model: str, messages: Sequence[Message], *, n: int, temperature: float,
             max_tokens: int | None, seed: int | None, top_logprobs: int | None = None) -> ChatResult:
        if top_logprobs is not None:
            raise ProviderError(f"provider '{self.name}' gives no logprobs: use judge mode: text with Claude")
        params = message_params(self.api_model(model), messages, temperature=temperature, max_tokens=max_tokens)
        answers = [self._one(params) for _ in range(n)]
        return ChatResult(texts=[a[0] for a in answers], input_tokens=sum(a[1] for a in answers),
                          output_tokens=sum(a[2] for a in answers), request_id=answers[-1][3] if answers else None)

    # --- message batches ----------------------------------------------------------------------------------------

    def submit_batch(self, requests: Sequence[BatchRequest], tag: str) -> str:
        entries = [{"custom_id": r.custom_id, "params": message_params(
            self.api_model(r.model), r.messages, temperature=r.temperature, max_tokens=r.max_tokens)}
            for r in requests]
        try:
            batch = self._governed(
                lambda: self._client.messages.batches.create(requests=entries))  # type: ignore[arg-type]
        except anthropic.AnthropicError as exc:
            raise (self._classify(exc) or exc) from None
        return str(batch.id)

    def find_batch(self, tag: str, requests: int, since: float, exclude: frozenset[str] = frozenset()) -> str | None:
        batches = self._call("list message batches", lambda: list(self._client.messages.batches.list(limit=LIST_PAGE)))
        found = [b for b in batches if b.created_at.timestamp() >= since - FIND_SKEW_S and _total(b) == requests
                 and b.id not in exclude]
        return str(min(found, key=lambda b: b.created_at).id) if found else None

    def batch_status(self, batch_id: str) -> BatchStatus:
        batch = self._call(f"retrieve batch {batch_id}", lambda: self._client.messages.batches.retrieve(batch_id))
        state = BATCH_DONE if batch.processing_status == "ended" else BATCH_RUNNING
        return BatchStatus(batch.id, state, batch.processing_status)

    def batch_results(self, batch_id: str) -> list[BatchItem]:
        lines = self._call(f"results of batch {batch_id}",
                           lambda: list(self._client.messages.batches.results(batch_id)))
        return [_batch_item(line) for line in lines]

    # --- what Anthropic does not offer --------------------------------------------------------------------------

    def _refuse(self) -> ProviderError:
        return ProviderError(f"provider '{self.name}' {NO_FINE_TUNING}")

    def upload_training_file(self, content: bytes, filename: str) -> str:
        raise self._refuse()

    def find_uploaded_file(self, filename: str) -> str | None:
        raise self._refuse()

    def file_status(self, file_id: str) -> FileStatus:
        raise self._refuse()

    def find_jobs(self, request: JobRequest) -> list[JobStatus]:
        raise self._refuse()

    def create_job(self, request: JobRequest) -> JobStatus:
        raise self._refuse()

    def retrieve_job(self, job_id: str) -> JobStatus:
        raise self._refuse()

    def cancel_job(self, job_id: str) -> JobStatus:
        raise self._refuse()

    def job_events(self, job_id: str) -> list[dict[str, Any]]:
        raise self._refuse()

    def deploy(self, model: str, name: str) -> DeploymentStatus:
        raise self._refuse()

    def deployment(self, name: str) -> DeploymentStatus | None:
        return None

    def undeploy(self, name: str) -> None:
        return None

    def close(self) -> None:
        self._client.close()
        if self._on_close is not None:
            self._on_close()


def _total(batch: Any) -> int:
    counts = batch.request_counts
    return int(counts.processing + counts.succeeded + counts.errored + counts.canceled + counts.expired)


def _batch_item(line: Any) -> BatchItem:
    result = line.result
    if result.type == "succeeded":
        message = result.message
        return BatchItem(line.custom_id, ChatResult([message_text(message)], message.usage.input_tokens,
                                                    message.usage.output_tokens, message.id))
    if result.type == "errored":
        error = result.error.error
        return BatchItem(line.custom_id, None, f"{error.type}: {error.message}")
    return BatchItem(line.custom_id, None, result.type)
