"""The OpenAI REST dialect through the official `openai` SDK: OpenAI itself, any OpenAI-compatible base_url, and
the kit's local server (the `sim` provider) — one code path for all of them."""

from __future__ import annotations

import email.utils
import io
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import openai

from kit.errors import KitError, ProviderError, TransientProviderError
from kit.limits import call_with_retries
from kit.providers.base import ChatResult, JobRequest, JobStatus, Message

T = TypeVar("T")

TRANSIENT_STATUS = frozenset({408, 409})
QUOTA_CODES = frozenset({"daily_rate_limit_exceeded", "insufficient_quota"})
REDACTED = "[redacted]"


def _retry_after(response: Any) -> float | None:
    headers = getattr(response, "headers", None) or {}
    if (ms := headers.get("retry-after-ms")) is not None:
        try:
            return float(ms) / 1000
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value)
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


def _body_error(exc: openai.APIStatusError) -> tuple[str | None, str]:
    body = exc.body if isinstance(exc.body, dict) else {}
    error = body.get("error", body) if isinstance(body, dict) else {}
    if not isinstance(error, dict):
        return None, str(exc.message)
    return error.get("code"), str(error.get("message") or exc.message)


class ErrorClassifier:
    """Maps SDK exceptions to the kit's errors for one provider, redacting its secret from every message."""

    def __init__(self, provider: str, key_env: str | None, secret: str | None) -> None:
        self.provider, self.key_env, self._secret = provider, key_env, secret

    def _clean(self, text: str) -> str:
        return text.replace(self._secret, REDACTED) if self._secret else text

    def __call__(self, exc: BaseException) -> KitError | None:
        p = f"provider '{self.provider}'"
        if isinstance(exc, openai.APITimeoutError):
            return TransientProviderError(f"{p}: request timed out")
        if isinstance(exc, openai.APIConnectionError):
            return TransientProviderError(f"{p}: connection failed ({self._clean(str(exc))})")
        if not isinstance(exc, openai.APIStatusError):
            return None
        code, message = _body_error(exc)
        message, status, rid = self._clean(message), exc.status_code, exc.request_id
        if status == 429 and code not in QUOTA_CODES:
            return TransientProviderError(f"{p}: rate limited (429)", retry_after=_retry_after(exc.response),
                                          request_id=rid)
        if status >= 500 or status in TRANSIENT_STATUS:
            return TransientProviderError(f"{p}: server error {status}", retry_after=_retry_after(exc.response),
                                          request_id=rid)
        return ProviderError(self._refusal(p, status, code, message), request_id=rid)

    def _refusal(self, p: str, status: int, code: str | None, message: str) -> str:
        if status == 401:
            return f"{p} rejected the API key in ${self.key_env} (401): set a valid key for this endpoint"
        if code == "training_not_available":
            return (f"{p} refuses to create fine-tuning jobs for this organisation (403 training_not_available): "
                    "use an Azure OpenAI provider (kind: azure) or another route")
        if code in QUOTA_CODES:
            return f"{p}: quota exhausted (429 {code}): wait for the quota to reset, then rerun to resume"
        if status == 403:
            return f"{p} refused the request (403 {code or 'forbidden'}): {message}"
        if status == 404:
            return f"{p}: not found (404): {message}; check the model name with `slkit models`"
        return f"{p} refused the request ({status} {code or 'invalid_request'}): {message}"


def _job_status(job: Any) -> JobStatus:
    error = getattr(job, "error", None)
    return JobStatus(
        id=job.id, status=job.status, model=job.model, fine_tuned_model=job.fine_tuned_model,
        trained_tokens=job.trained_tokens,
        error_code=getattr(error, "code", None) if error else None,
        error_message=getattr(error, "message", None) if error else None,
        metadata=dict(job.metadata or {}))


class OpenAIProvider:
    """A provider speaking the OpenAI REST API through the official SDK (max_retries=0; the kit retries)."""

    kind = "openai"

    def __init__(self, name: str, *, base_url: str | None, api_key: str, key_env: str | None, timeout_s: float,
                 max_attempts: int, max_in_flight: int, poll_interval_s: float, max_samples_per_request: int,
                 on_close: Callable[[], None] | None = None) -> None:
        self.name = name
        self.max_in_flight = max_in_flight
        self.poll_interval_s = poll_interval_s
        self.max_samples_per_request = max_samples_per_request
        self._max_attempts = max_attempts
        self._classify = ErrorClassifier(name, key_env, api_key)
        self._client = openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=timeout_s)
        self._on_close = on_close

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        return call_with_retries(fn, classify=self._classify, max_attempts=self._max_attempts,
                                 what=f"{self.name}: {what}")

    def chat(self, model: str, messages: Sequence[Message], *, n: int, temperature: float,
             max_tokens: int | None, seed: int | None) -> ChatResult:
        extra: dict[str, Any] = {}
        if max_tokens is not None:
            extra["max_tokens"] = max_tokens
        if seed is not None:
            extra["seed"] = seed
        completion = self._call(f"chat with {model}", lambda: self._client.chat.completions.create(
            model=model, messages=list(messages), n=n, temperature=temperature, **extra))
        choices = sorted(completion.choices, key=lambda c: c.index)
        usage = completion.usage
        return ChatResult(texts=[c.message.content or "" for c in choices],
                          input_tokens=usage.prompt_tokens if usage else 0,
                          output_tokens=usage.completion_tokens if usage else 0,
                          request_id=getattr(completion, "_request_id", None))

    def upload_training_file(self, content: bytes, filename: str) -> str:
        def upload() -> str:
            return self._client.files.create(file=(filename, io.BytesIO(content)), purpose="fine-tune").id
        return self._call(f"upload {filename}", upload)

    def find_uploaded_file(self, filename: str) -> str | None:
        files = self._call("list files", lambda: list(self._client.files.list(purpose="fine-tune")))
        matches = [f for f in files if f.filename == filename]
        return matches[0].id if matches else None

    def find_jobs(self, metadata: dict[str, str]) -> list[JobStatus]:
        jobs = self._call("look up fine-tuning jobs", lambda: list(self._client.fine_tuning.jobs.list(
            metadata=metadata, limit=100)))
        return [_job_status(j) for j in jobs if all((j.metadata or {}).get(k) == v for k, v in metadata.items())]

    def create_job(self, request: JobRequest) -> JobStatus:
        hyper = {"n_epochs": request.n_epochs, "batch_size": request.batch_size,
                 "learning_rate_multiplier": request.learning_rate_multiplier}
        extra: dict[str, Any] = {}
        if request.seed is not None:
            extra["seed"] = request.seed
        if request.suffix:
            extra["suffix"] = request.suffix
        try:
            job = self._client.fine_tuning.jobs.create(
                model=request.model, training_file=request.training_file, metadata=request.metadata,
                method={"type": "supervised", "supervised": {"hyperparameters": hyper}}, **extra)
        except openai.OpenAIError as exc:
            raise (self._classify(exc) or exc) from None
        return _job_status(job)

    def retrieve_job(self, job_id: str) -> JobStatus:
        return _job_status(self._call(f"retrieve job {job_id}",
                                      lambda: self._client.fine_tuning.jobs.retrieve(job_id)))

    def job_events(self, job_id: str) -> list[dict[str, Any]]:
        events = self._call(f"events of job {job_id}",
                            lambda: list(self._client.fine_tuning.jobs.list_events(job_id, limit=100)))
        return [{"created_at": e.created_at, "level": e.level, "message": e.message,
                 "data": getattr(e, "data", None)} for e in sorted(events, key=lambda e: e.created_at)]

    def close(self) -> None:
        self._client.close()
        if self._on_close is not None:
            self._on_close()
