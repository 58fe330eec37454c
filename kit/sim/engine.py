"""The seam between the local HTTP server and whatever produces completions and trains models.

The server owns HTTP, ids, files, job state and timing; an `Engine` owns models: which exist, how they answer a
chat request, and how a fine-tuning job turns a base model and a training file into a new model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

Message = dict[str, Any]


@dataclass(frozen=True)
class ModelInfo:
    id: str
    owned_by: str = "slkit-lab"
    created: int = 0
    family: str = ""


@dataclass(frozen=True)
class ChatRequest:
    model: str
    messages: Sequence[Message]
    n: int = 1
    temperature: float = 1.0
    max_tokens: int | None = None
    seed: int | None = None


@dataclass(frozen=True)
class TrainSpec:
    """One fine-tuning job as the engine sees it. `examples` are the parsed JSONL lines' `messages` lists."""

    job_id: str
    base_model: str
    examples: Sequence[Sequence[Message]]
    n_epochs: int | None = None
    batch_size: int | None = None
    learning_rate_multiplier: float | None = None
    seed: int | None = None
    suffix: str | None = None


@dataclass(frozen=True)
class TrainEvent:
    """A progress report from training; becomes a fine-tuning job event (`metrics` carries step, train_loss)."""

    message: str
    level: str = "info"
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class TrainResult:
    fine_tuned_model: str
    trained_tokens: int
    hyperparameters: dict[str, Any]


class EngineError(Exception):
    """The engine refuses a request; `code` and `param` go into the OpenAI-shaped error body."""

    def __init__(self, message: str, *, code: str = "invalid_request_error", param: str | None = None,
                 status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.param = param
        self.status = status


class Engine(Protocol):
    def list_models(self) -> list[ModelInfo]: ...

    def has_model(self, model_id: str) -> bool: ...

    def chat(self, request: ChatRequest) -> list[str]:
        """Return `request.n` completion texts. Deterministic when `request.seed` is set."""
        ...

    def train(self, spec: TrainSpec, on_event: Callable[[TrainEvent], None]) -> TrainResult:
        """Train synchronously (the server calls this from a worker thread); raise EngineError to fail the job."""
        ...
