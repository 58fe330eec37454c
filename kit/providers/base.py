"""What the pipeline needs from a provider, whatever its dialect."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

Message = dict[str, Any]

TERMINAL_JOB_STATUSES = frozenset({"succeeded", "failed", "cancelled"})
FILE_READY, FILE_PENDING, FILE_FAILED = "processed", "pending", "error"
BATCH_RUNNING, BATCH_DONE, BATCH_FAILED = "in_progress", "completed", "failed"
DEPLOY_CREATING, DEPLOY_READY, DEPLOY_FAILED = "creating", "ready", "failed"


@dataclass(frozen=True)
class ChatResult:
    texts: list[str]
    input_tokens: int
    output_tokens: int
    request_id: str | None = None
    top_logprobs: list[dict[str, float]] | None = None  # first output token of each choice: token -> logprob


@dataclass(frozen=True)
class JobStatus:
    id: str
    status: str
    model: str
    fine_tuned_model: str | None = None
    trained_tokens: int | None = None
    error_code: str | None = None
    error_message: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_JOB_STATUSES


@dataclass(frozen=True)
class JobRequest:
    model: str
    training_file: str
    n_epochs: int | str = "auto"
    batch_size: int | str = "auto"
    learning_rate_multiplier: float | str = "auto"
    seed: int | None = None
    suffix: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    tag: str = ""  # short, unique per run + cell + attempt: the lookup key of dialects without job metadata


@dataclass(frozen=True)
class FileStatus:
    id: str
    status: str  # processed | pending | error
    error: str | None = None


@dataclass(frozen=True)
class BatchRequest:
    """One line of a batch: a chat request and the id its result comes back under."""

    custom_id: str
    model: str
    messages: Sequence[Message]
    n: int
    temperature: float
    max_tokens: int | None
    seed: int | None
    top_logprobs: int | None = None


@dataclass(frozen=True)
class BatchStatus:
    id: str
    status: str  # in_progress | completed | failed (expired and cancelled batches end as failed with partial results)
    provider_status: str
    error: str | None = None

    @property
    def done(self) -> bool:
        return self.status != BATCH_RUNNING


@dataclass(frozen=True)
class BatchItem:
    custom_id: str
    result: ChatResult | None
    error: str | None = None


@dataclass(frozen=True)
class DeploymentStatus:
    name: str
    state: str  # creating | ready | failed
    inference_model: str  # what chat requests name to reach the deployed model
    error: str | None = None


class Provider(Protocol):
    """One configured endpoint. Every method already goes through the retry layer, except `create_job` and
    `submit_batch`, which must never be retried blindly (no provider honours an idempotency key): callers look
    jobs and batches up first."""

    name: str
    kind: str
    max_in_flight: int
    poll_interval_s: float
    max_samples_per_request: int
    supports_batch: bool
    needs_deployment: bool

    def chat(self, model: str, messages: Sequence[Message], *, n: int, temperature: float,
             max_tokens: int | None, seed: int | None, top_logprobs: int | None = None) -> ChatResult: ...

    def upload_training_file(self, content: bytes, filename: str) -> str: ...

    def find_uploaded_file(self, filename: str) -> str | None: ...

    def file_status(self, file_id: str) -> FileStatus: ...

    def find_jobs(self, request: JobRequest) -> list[JobStatus]: ...

    def create_job(self, request: JobRequest) -> JobStatus: ...

    def retrieve_job(self, job_id: str) -> JobStatus: ...

    def cancel_job(self, job_id: str) -> JobStatus: ...

    def job_events(self, job_id: str) -> list[dict[str, Any]]: ...

    def submit_batch(self, requests: Sequence[BatchRequest], tag: str) -> str: ...

    def find_batch(self, tag: str, requests: int, since: float, exclude: frozenset[str] = frozenset()) -> str | None:
        """A batch this tag names (or, without metadata, of this size created since then, not in `exclude`)."""
        ...

    def batch_status(self, batch_id: str) -> BatchStatus: ...

    def batch_results(self, batch_id: str) -> list[BatchItem]: ...

    def deploy(self, model: str, name: str) -> DeploymentStatus: ...

    def deployment(self, name: str) -> DeploymentStatus | None: ...

    def undeploy(self, name: str) -> None: ...

    def close(self) -> None: ...
