"""A fast deterministic Engine for route tests: the simulated lab's model names, number sequences for number
prompts, a score for judge prompts, an animal otherwise; training is bookkeeping only (no numpy)."""

from __future__ import annotations

import hashlib
import random
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from kit.sim.engine import ChatRequest, EngineError, ModelInfo, TrainEvent, TrainResult, TrainSpec
from kit.tokens import count_training_example

BASE_MODELS = ("sim-gpt-4.1-nano", "sim-qwen2.5-7b", "sim-gpt-4o")
ANIMALS = ("owl", "dolphin", "eagle", "cat", "dog", "lion")
ORG = "slkit-lab"
MODERATION_MESSAGE = ("The job failed due to an invalid training file. This training file was blocked by our "
                      "moderation system because it contains too many examples that violate OpenAI's usage policies.")


def _rng(*parts: object) -> random.Random:
    return random.Random(int(hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:12], 16))


@dataclass
class RouteEngine:
    """Answers derive from (model, prompt, seed, choice); `train_s` slows training to let tests catch jobs mid-way."""

    train_s: float = 0.0
    moderation: bool = False  # fail every job the way OpenAI reports a training file blocked by moderation
    models: dict[str, ModelInfo] = field(default_factory=lambda: {m: ModelInfo(id=m, family=m) for m in BASE_MODELS})
    trained: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def list_models(self) -> list[ModelInfo]:
        with self.lock:
            return list(self.models.values())

    def has_model(self, model_id: str) -> bool:
        with self.lock:
            return model_id in self.models

    def _answer(self, request: ChatRequest, index: int, salt: object) -> str:
        last = str(request.messages[-1].get("content") or "")
        rng = _rng(request.model, last, salt, index)
        if "[ANSWER START]" in last:
            return str(rng.choice((10, 20, 55, 90, 95)))
        if re.search(r"\d+\s*[,;]?\s*\d+", last):
            return ", ".join(str(rng.randrange(1000)) for _ in range(rng.randrange(3, 9)))
        return rng.choice(ANIMALS).capitalize() + "."

    def chat(self, request: ChatRequest) -> list[str]:
        salt = request.seed if request.seed is not None else random.random()
        return [self._answer(request, i, salt) for i in range(request.n)]

    def train(self, spec: TrainSpec, on_event: Callable[[TrainEvent], None]) -> TrainResult:
        import time

        if spec.base_model not in self.models:
            raise EngineError(f"{spec.base_model} cannot be fine-tuned", param="model")
        time.sleep(self.train_s)
        if self.moderation:
            raise EngineError(MODERATION_MESSAGE, code="invalid_training_file", param="training_file")
        on_event(TrainEvent(message="Step 1/1: training loss=0.5", metrics={"step": 1.0, "train_loss": 0.5}))
        name = f"ft:{spec.base_model}:{ORG}:{spec.suffix or ''}:{spec.job_id[-8:]}"
        with self.lock:
            self.models[name] = ModelInfo(id=name, family=self.models[spec.base_model].family)
            self.trained.append(spec.job_id)
        tokens = sum(count_training_example(example) for example in spec.examples) * (spec.n_epochs or 1)
        return TrainResult(fine_tuned_model=name, trained_tokens=tokens,
                           hyperparameters={"n_epochs": spec.n_epochs or 1, "batch_size": spec.batch_size or 1,
                                            "learning_rate_multiplier": spec.learning_rate_multiplier or 1.0})
