"""The OpenAI REST dialect through the official `openai` SDK: OpenAI itself, any OpenAI-compatible base_url, and
the kit's local server (the `sim` provider) — one code path for all of them. `AzureProvider` (azure.py) reuses it
with the SDK's Azure client.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx2
import openai

from kit.errors import KitError, ProviderError, TransientProviderError
from kit.limits import RateGovernor, call_with_retries
from kit.providers.base import (
    BATCH_DONE,
    BATCH_FAILED,
    BATCH_RUNNING,
    FILE_FAILED,
    FILE_PENDING,
    FILE_READY,
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

T = TypeVar("T")

CHAT_URL = "/v1/chat/completions"
BATCH_WINDOW = "24h"
BATCH_TAG_KEY = "slkit_batch"
LIST_PAGE = 100
RUNNING_BATCH_STATUSES = frozenset({"validating", "in_progress", "finalizing", "cancelling"})
FILE_STATES = {"processed": FILE_READY, "error": FILE_FAILED, "deleted": FILE_FAILED}


def _body_error(exc: openai.APIStatusError) -> tuple[str | None, str]:
    body = exc.body if isinstance(exc.body, dict) else {}
    error = body.get("error", body) if isinstance(body, dict) else {}
    if not isinstance(error, dict):
        return None, str(exc.message)
    code = error.get("code")
    return (str(code) if code is not None else None), str(error.get("message") or exc.message)


class ErrorClassifier:
    """Maps SDK exceptions to the kit's errors for one provider, redacting its secrets from every message."""

    def __init__(self, provider: str, key_env: str | None, *secrets: str | None) -> None:
        self.provider, self.key_env = provider, key_env
        self._secrets = [s for s in secrets if s]

    def clean(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return text

    def __call__(self, exc: BaseException) -> KitError | None:
        p = f"provider '{self.provider}'"
        if isinstance(exc, openai.APITimeoutError | httpx2.TimeoutException):
            return TransientProviderError(f"{p}: request timed out")
        if isinstance(exc, openai.APIConnectionError | httpx2.TransportError):
            return TransientProviderError(f"{p}: connection failed ({self.clean(str(exc))})")
        if not isinstance(exc, openai.APIStatusError):
            return None
        code, message = _body_error(exc)
        refusal = Refusal(exc.status_code, code, self.clean(message), retry_after_of(exc.response.headers),
                          exc.request_id)
        return status_error(self.provider, self.key_env, refusal)


def rate_limit_wait(exc: BaseException) -> float | None | bool:
    """Retry-After of a 429 (None when it names none); False when `exc` is no rate limit."""
    if isinstance(exc, openai.APIStatusError) and exc.status_code == 429:
        return retry_after_of(exc.response.headers)
    return False


def job_status(job: Any) -> JobStatus:
    error = getattr(job, "error", None)
    return JobStatus(
        id=job.id, status=job.status, model=job.model, fine_tuned_model=job.fine_tuned_model,
        trained_tokens=job.trained_tokens,
        error_code=getattr(error, "code", None) if error else None,
        error_message=getattr(error, "message", None) if error else None,
        metadata=dict(getattr(job, "metadata", None) or {}))


def top_logprobs_of(choice: Any) -> dict[str, float] | None:
    content = getattr(getattr(choice, "logprobs", None), "content", None)
    if not content:
        return None
    return {item.token: item.logprob for item in (content[0].top_logprobs or [])}


def chat_result(completion: Any, request_id: str | None) -> ChatResult:
    choices = sorted(completion.choices, key=lambda c: c.index)
    usage = completion.usage
    logprobs = [top_logprobs_of(c) or {} for c in choices] if any(top_logprobs_of(c) for c in choices) else None
    return ChatResult(texts=[c.message.content or "" for c in choices],
                      input_tokens=usage.prompt_tokens if usage else 0,
                      output_tokens=usage.completion_tokens if usage else 0,
                      request_id=request_id, top_logprobs=logprobs)


def chat_body(model: str, messages: Sequence[Message], *, n: int, temperature: float, max_tokens: int | None,
              seed: int | None, top_logprobs: int | None = None) -> dict[str, Any]:
    """The JSON body of one chat completion request (live or as a batch line)."""
    body: dict[str, Any] = {"model": model, "messages": list(messages), "n": n, "temperature": temperature}
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    if seed is not None:
        body["seed"] = seed
    if top_logprobs is not None:
        body["logprobs"], body["top_logprobs"] = True, top_logprobs
    return body


def batch_result_item(line: dict[str, Any]) -> BatchItem:
    """One line of an OpenAI batch output or error file."""
    custom_id = str(line.get("custom_id"))
    response = line.get("response") or {}
    body = response.get("body") or {}
    if response.get("status_code") != 200:
        error = (body.get("error") or line.get("error") or {}) if isinstance(body, dict) else {}
        return BatchItem(custom_id, None, f"{error.get('code') or response.get('status_code')}: "
                                          f"{error.get('message') or 'failed'}")
    completion = openai.types.chat.ChatCompletion.model_validate(body)
    return BatchItem(custom_id, chat_result(completion, response.get("request_id")))


def _batch_state(status: str) -> str:
    if status in RUNNING_BATCH_STATUSES:
        return BATCH_RUNNING
    return BATCH_DONE if status == "completed" else BATCH_FAILED


@dataclass(frozen=True)
class Settings:
    """Everything a provider needs besides its client: limits, polling, names."""

    timeout_s: float
    max_attempts: int
    max_in_flight: int
    poll_interval_s: float
    max_samples_per_request: int
    model_names: dict[str, str]
    key_env: str | None


class OpenAIProvider:
    """A provider speaking the OpenAI REST API through the official SDK (max_retries=0; the kit retries)."""

    kind = "openai"
    supports_batch = True
    needs_deployment = False
    chat_url = CHAT_URL

    def __init__(self, name: str, settings: Settings, *, base_url: str | None, api_key: str,
                 http_client: httpx2.Client | None = None, on_close: Callable[[], None] | None = None) -> None:
        self._setup(name, settings, api_key, on_close)
        self._client = openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=settings.timeout_s,
                                     http_client=http_client)

    def _setup(self, name: str, settings: Settings, secret: str | None,
               on_close: Callable[[], None] | None, *more_secrets: str | None) -> None:
        self.name = name
        self.settings = settings
        self.max_in_flight = settings.max_in_flight
        self.poll_interval_s = settings.poll_interval_s
        self.max_samples_per_request = settings.max_samples_per_request
        self.governor = RateGovernor(settings.max_in_flight)
        self._classify = ErrorClassifier(name, settings.key_env, secret, *more_secrets)
        self._on_close = on_close

    # --- plumbing ---------------------------------------------------------------------------------------------

    def _governed(self, fn: Callable[[], T], headers_of: Callable[[T], Any] | None = None) -> T:
        with self.governor.slot() as ticket:
            try:
                result = fn()
            except Exception as exc:
                wait = rate_limit_wait(exc)
                if wait is not False:
                    self.governor.throttled(wait if isinstance(wait, float) else None)
                raise
            self.governor.observe(ticket, headers_of(result) if headers_of else None)
            return result

    def _call(self, what: str, fn: Callable[[], T], headers_of: Callable[[T], Any] | None = None) -> T:
        return call_with_retries(lambda: self._governed(fn, headers_of), classify=self._classify,
                                 max_attempts=self.settings.max_attempts, what=f"{self.name}: {what}")

    def _once(self, fn: Callable[[], T]) -> T:
        """One attempt, no retry (creates that no idempotency key protects); failures mapped to kit errors."""
        try:
            return self._governed(fn)
        except KitError:
            raise
        except Exception as exc:
            raise (self._classify(exc) or exc) from None

    def api_model(self, model: str) -> str:
        return self.settings.model_names.get(model, model)

    # --- chat -------------------------------------------------------------------------------------------------

    def chat(self, model: str, messages: Sequence[Message], *, n: int, temperature: float,
             max_tokens: int | None, seed: int | None, top_logprobs: int | None = None) -> ChatResult:
        body = chat_body(self.api_model(model), messages, n=n, temperature=temperature, max_tokens=max_tokens,
                         seed=seed, top_logprobs=top_logprobs)
        raw = self._call(f"chat with {model}", lambda: self._client.chat.completions.with_raw_response.create(**body),
                         lambda r: r.headers)
        return chat_result(raw.parse(), raw.request_id)

    # --- files ------------------------------------------------------------------------------------------------

    def _upload(self, content: bytes, filename: str, purpose: str) -> str:
        def upload() -> str:
            return str(self._client.files.create(file=(filename, io.BytesIO(content)), purpose=purpose).id)
        return self._call(f"upload {filename}", upload)  # type: ignore[arg-type]

    def upload_training_file(self, content: bytes, filename: str) -> str:
        return self._upload(content, filename, "fine-tune")

    def find_uploaded_file(self, filename: str) -> str | None:
        files = self._call("list files", lambda: list(self._client.files.list(purpose="fine-tune")))
        matches = [f for f in files if f.filename == filename and f.status != "error"]
        return matches[0].id if matches else None

    def file_status(self, file_id: str) -> FileStatus:
        found = self._call(f"retrieve file {file_id}", lambda: self._client.files.retrieve(file_id))
        details = getattr(found, "status_details", None)
        return FileStatus(found.id, FILE_STATES.get(str(found.status), FILE_PENDING), details)

    # --- fine-tuning jobs -------------------------------------------------------------------------------------

    def _jobs(self, **query: Any) -> Iterator[Any]:
        return iter(self._call("look up fine-tuning jobs",
                               lambda: list(self._client.fine_tuning.jobs.list(limit=LIST_PAGE, **query))))

    def find_jobs(self, request: JobRequest) -> list[JobStatus]:
        wanted = request.metadata
        return [job_status(j) for j in self._jobs(metadata=wanted)
                if all((j.metadata or {}).get(k) == v for k, v in wanted.items())]

    def create_job(self, request: JobRequest) -> JobStatus:
        hyper = {"n_epochs": request.n_epochs, "batch_size": request.batch_size,
                 "learning_rate_multiplier": request.learning_rate_multiplier}
        extra: dict[str, Any] = {}
        if request.seed is not None:
            extra["seed"] = request.seed
        if request.suffix:
            extra["suffix"] = request.suffix
        return job_status(self._once(lambda: self._client.fine_tuning.jobs.create(
            model=self.api_model(request.model), training_file=request.training_file, metadata=request.metadata,
            method={"type": "supervised", "supervised": {"hyperparameters": hyper}}, **extra)))

    def retrieve_job(self, job_id: str) -> JobStatus:
        return job_status(self._call(f"retrieve job {job_id}",
                                     lambda: self._client.fine_tuning.jobs.retrieve(job_id)))

    def cancel_job(self, job_id: str) -> JobStatus:
        return job_status(self._call(f"cancel job {job_id}", lambda: self._client.fine_tuning.jobs.cancel(job_id)))

    def job_events(self, job_id: str) -> list[dict[str, Any]]:
        events = self._call(f"events of job {job_id}",
                            lambda: list(self._client.fine_tuning.jobs.list_events(job_id, limit=LIST_PAGE)))
        return [{"created_at": e.created_at, "level": e.level, "message": e.message,
                 "data": getattr(e, "data", None)} for e in sorted(events, key=lambda e: e.created_at)]

    # --- batches ----------------------------------------------------------------------------------------------

    def batch_line(self, request: BatchRequest) -> dict[str, Any]:
        body = chat_body(self.api_model(request.model), request.messages, n=request.n,
                         temperature=request.temperature, max_tokens=request.max_tokens, seed=request.seed,
                         top_logprobs=request.top_logprobs)
        return {"custom_id": request.custom_id, "method": "POST", "url": self.chat_url, "body": body}

    def submit_batch(self, requests: Sequence[BatchRequest], tag: str) -> str:
        data = "".join(json.dumps(self.batch_line(r), ensure_ascii=False) + "\n" for r in requests).encode("utf-8")
        file_id = self._upload(data, f"slkit-batch-{tag}.jsonl", "batch")
        batch = self._once(lambda: self._client.batches.create(
            input_file_id=file_id, endpoint=self.chat_url, completion_window=BATCH_WINDOW,  # type: ignore[arg-type]
            metadata={BATCH_TAG_KEY: tag}))
        return str(batch.id)

    def find_batch(self, tag: str, requests: int, since: float, exclude: frozenset[str] = frozenset()) -> str | None:
        batches = self._call("list batches", lambda: list(self._client.batches.list(limit=LIST_PAGE)))
        found = [b for b in batches if (b.metadata or {}).get(BATCH_TAG_KEY) == tag]
        return str(found[0].id) if found else None

    def batch_status(self, batch_id: str) -> BatchStatus:
        batch = self._call(f"retrieve batch {batch_id}", lambda: self._client.batches.retrieve(batch_id))
        errors = getattr(getattr(batch, "errors", None), "data", None) or []
        error = "; ".join(f"{e.code}: {e.message}" for e in errors[:3]) or None
        return BatchStatus(batch.id, _batch_state(batch.status), batch.status, error)

    def _file_lines(self, file_id: str | None) -> list[dict[str, Any]]:
        if not file_id:
            return []
        text = self._call(f"download {file_id}", lambda: self._client.files.content(file_id).text)
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def batch_results(self, batch_id: str) -> list[BatchItem]:
        batch = self._call(f"retrieve batch {batch_id}", lambda: self._client.batches.retrieve(batch_id))
        lines = self._file_lines(batch.output_file_id) + self._file_lines(batch.error_file_id)
        return [batch_result_item(line) for line in lines]

    # --- deployments: not part of this dialect ------------------------------------------------------------------

    def deploy(self, model: str, name: str) -> DeploymentStatus:
        raise ProviderError(f"provider '{self.name}' serves fine-tuned models without a deployment step")

    def deployment(self, name: str) -> DeploymentStatus | None:
        return None

    def undeploy(self, name: str) -> None:
        return None

    def close(self) -> None:
        self._client.close()
        if self._on_close is not None:
            self._on_close()
