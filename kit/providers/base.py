"""What the pipeline needs from a provider, whatever its dialect."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

Message = dict[str, Any]

TERMINAL_JOB_STATUSES = frozenset({"succeeded", "failed", "cancelled"})


@dataclass(frozen=True)
class ChatResult:
    texts: list[str]
    input_tokens: int
    output_tokens: int
    request_id: str | None = None


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


class Provider(Protocol):
    """One configured endpoint. Every method already goes through the retry layer, except `create_job`, which
    must never be retried blindly (no provider honours an idempotency key): callers look jobs up first."""

    name: str
    kind: str
    max_in_flight: int
    poll_interval_s: float
    max_samples_per_request: int

    def chat(self, model: str, messages: Sequence[Message], *, n: int, temperature: float,
             max_tokens: int | None, seed: int | None) -> ChatResult: ...

    def upload_training_file(self, content: bytes, filename: str) -> str: ...

    def find_uploaded_file(self, filename: str) -> str | None: ...

    def find_jobs(self, metadata: dict[str, str]) -> list[JobStatus]: ...

    def create_job(self, request: JobRequest) -> JobStatus: ...

    def retrieve_job(self, job_id: str) -> JobStatus: ...

    def job_events(self, job_id: str) -> list[dict[str, Any]]: ...

    def close(self) -> None: ...
