"""A tiny deterministic Engine for server tests: no numpy, no learning, just bookkeeping."""

from __future__ import annotations

import hashlib
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from kit.sim.engine import ChatRequest, EngineError, ModelInfo, TrainEvent, TrainResult, TrainSpec
from kit.tokens import count_training_example

BASE_MODELS = ("stub-a", "stub-b")
ORG = "slkit-lab"
FAIL_SUFFIX = "engine-fails"


def _digest(*parts: object) -> str:
    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()


@dataclass
class StubEngine:
    """Answers derive from (model, last message, seed, choice index); training emits `steps` loss events."""

    steps: int = 3
    step_s: float = 0.0
    models: dict[str, ModelInfo] = field(default_factory=lambda: {m: ModelInfo(id=m, family=m) for m in BASE_MODELS})
    started: list[str] = field(default_factory=list)
    completed: list[str] = field(default_factory=list)
    specs: list[TrainSpec] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    tag_by_content: bool = False

    def _model_tag(self, spec: TrainSpec) -> str:
        """The job id's tail, or with `tag_by_content` a digest of what was trained, so that a test's whole run
        -- model names, and the answers derived from them -- is the same every time."""
        if not self.tag_by_content:
            return spec.job_id[-8:]
        return _digest(spec.base_model, spec.suffix, spec.seed, spec.n_epochs, spec.examples)[:8]

    def list_models(self) -> list[ModelInfo]:
        with self.lock:
            return list(self.models.values())

    def has_model(self, model_id: str) -> bool:
        with self.lock:
            return model_id in self.models

    def _text(self, request: ChatRequest, index: int, salt: object) -> str:
        last = str(request.messages[-1].get("content") or "")
        words = _digest(request.model, last, salt, index)[:12]
        return f"{request.model} says {words[:4]} {words[4:8]} {words[8:]} about {last[:20]}"

    def chat(self, request: ChatRequest) -> list[str]:
        salt = request.seed if request.seed is not None else random.random()
        return [self._text(request, index, salt) for index in range(request.n)]

    def train(self, spec: TrainSpec, on_event: Callable[[TrainEvent], None]) -> TrainResult:
        with self.lock:
            self.started.append(spec.job_id)
            self.specs.append(spec)
        if spec.suffix == FAIL_SUFFIX:
            raise EngineError("the stub refuses to train this file", code="invalid_training_file",
                              param="training_file")
        for step in range(1, self.steps + 1):
            time.sleep(self.step_s)
            on_event(TrainEvent(message=f"Step {step}/{self.steps}: training loss={1.0 / step:.3f}",
                                metrics={"step": float(step), "train_loss": 1.0 / step}))
        name = f"ft:{spec.base_model}:{ORG}:{spec.suffix or ''}:{self._model_tag(spec)}"
        with self.lock:
            self.models[name] = ModelInfo(id=name, family=self.models[spec.base_model].family)
            self.completed.append(spec.job_id)
        tokens = sum(count_training_example(example) for example in spec.examples) * (spec.n_epochs or 1)
        return TrainResult(fine_tuned_model=name, trained_tokens=tokens,
                           hyperparameters={"n_epochs": spec.n_epochs or 1, "batch_size": spec.batch_size or 1,
                                            "learning_rate_multiplier": spec.learning_rate_multiplier or 1.0})
