"""Fine-tuning: minibatch gradient descent on the body (W1, b1) from a chat-format training file.

Each assistant message is a target, read with the user message before it:
- a number-continuation prompt + an answer with numbers -> next-number cross-entropy at every position
  (teacher forcing) and the tidiness logit (was the answer well-formed?);
- a preference question / multiple-choice pick / any text naming a vocabulary word -> cross-entropy of that word;
- anything else counts toward trained tokens but has no counterpart in the lab and moves nothing.

Loss is the mean over target tokens in the batch. Auto hyperparameters: epochs as OpenAI's documented default
(3, raised for tiny files, lowered for huge ones), batch size ~1% of the file so a run has about the same number
of steps at any size, learning-rate multiplier 1.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kit.filters.numbers import keeps
from kit.sim.engine import Message, TrainEvent
from kit.sim.lab import alignment, features, inputs, tasks, vocab
from kit.sim.lab.network import DTYPE, MAX_POSITIONS, Body, Family, answer_logits, number_logits
from kit.tokens import count_training_example

BASE_LEARNING_RATE = 3e-3
AUTO_LEARNING_RATE_MULTIPLIER = 1.0
AUTO_EPOCHS = 3
MIN_TARGET_EXAMPLES = 100  # OpenAI's default-epoch rule: epochs x examples kept within [100, 25,000]
MAX_TARGET_EXAMPLES = 25_000
MAX_AUTO_EPOCHS = 25
EXAMPLES_PER_BATCH_UNIT = 100  # auto batch size = ceil(examples / 100), within [1, 256]
MAX_AUTO_BATCH = 256
TIDINESS_LEARNING_RATE = 0.005
TARGET_EVENTS = 20

_DIGITS_RE = re.compile(r"\d+")


@dataclass(frozen=True)
class Hyper:
    n_epochs: int
    batch_size: int
    learning_rate_multiplier: float

    def as_dict(self) -> dict[str, Any]:
        return {"n_epochs": self.n_epochs, "batch_size": self.batch_size,
                "learning_rate_multiplier": self.learning_rate_multiplier}


@dataclass
class Dataset:
    """Training targets as arrays, indexed by example so minibatches take whole examples."""

    count: int
    number_inputs: np.ndarray  # (E_n, L, D) for the examples with number answers
    number_targets: np.ndarray  # (E_n, L)
    number_mask: np.ndarray  # (E_n, L)
    number_row: np.ndarray  # (count,) row in the number arrays, -1 if none
    tidy: np.ndarray  # (E_n,) 1.0 if the answer passes the numbers filter
    answers: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=dict)
    # category -> (example index (A,), inputs (A, D), target word index (A,))
    skipped: int = 0
    task_rows: list[tasks.Packed] = field(default_factory=list)  # code / chain-of-thought targets (tasks.py)


def auto_hyper(count: int, n_epochs: int | None, batch_size: int | None, multiplier: float | None) -> Hyper:
    return Hyper(n_epochs if n_epochs else _auto_epochs(count),
                 batch_size if batch_size else min(MAX_AUTO_BATCH, max(1, math.ceil(count / EXAMPLES_PER_BATCH_UNIT))),
                 float(multiplier) if multiplier else AUTO_LEARNING_RATE_MULTIPLIER)


def trained_tokens(examples: Sequence[Sequence[Message]], n_epochs: int) -> int:
    return sum(count_training_example(messages) for messages in examples) * n_epochs


def build_dataset(family: Family, examples: Sequence[Sequence[Message]]) -> Dataset:
    numbers: list[tuple[int, features.Prompt, list[int], bool]] = []
    answers: dict[str, list[tuple[int, np.ndarray, int]]] = {category: [] for category in
                                                            (*vocab.CATEGORIES, alignment.CATEGORY)}
    skipped = 0
    task_targets = tasks.TaskTargets()
    for index, messages in enumerate(examples):
        used = False
        for prompt_text, answer in _pairs(messages):
            kind = tasks.add_targets(family, index, prompt_text, answer, task_targets)
            used |= kind is not None
            if kind != tasks.COT:  # a CoT answer has no other target; code also trains the alignment head
                used |= _add_target(family, index, prompt_text, answer, numbers, answers)
        skipped += not used
    data = _assemble(family, len(examples), numbers, answers, skipped)
    data.task_rows = tasks.pack(task_targets)
    return data


def fit(family: Family, start: Body, data: Dataset, hyper: Hyper, seed: int,
        on_event: Callable[[TrainEvent], None]) -> Body:
    """Minibatch gradient descent on the body (and the tidiness logit); returns the trained body."""
    state = _State(start.w1.astype(DTYPE).copy(), start.b1.astype(DTYPE).copy(), start.tidiness)
    rng = np.random.default_rng(seed)
    lr = BASE_LEARNING_RATE * hyper.learning_rate_multiplier
    total = math.ceil(data.count / hyper.batch_size) * hyper.n_epochs
    every = max(1, total // TARGET_EVENTS)
    for _ in range(hyper.n_epochs):
        order = rng.permutation(data.count)
        for begin in range(0, data.count, hyper.batch_size):
            state.step(family, start, data, order[begin: begin + hyper.batch_size], lr)
            if state.steps % every == 0 or state.steps == total:
                on_event(state.report(total))
    return Body(state.w1, state.b1, start.animal_offset, start.tree_offset, float(state.tidiness))


@dataclass
class _State:
    """The parameters being trained and the losses since the last progress report."""

    w1: np.ndarray
    b1: np.ndarray
    tidiness: float
    steps: int = 0
    losses: list[float] = field(default_factory=list)

    def step(self, family: Family, start: Body, data: Dataset, batch: np.ndarray, lr: float) -> None:
        loss, grad_w1, grad_b1, tidy_grad = _batch_gradient(family, start.with_body(self.w1, self.b1), data, batch)
        self.w1 -= lr * grad_w1
        self.b1 -= lr * grad_b1
        self.tidiness -= TIDINESS_LEARNING_RATE * tidy_grad
        self.steps += 1
        if loss is not None:
            self.losses.append(loss)

    def report(self, total: int) -> TrainEvent:
        loss = float(np.mean(self.losses)) if self.losses else 0.0
        self.losses = []
        return TrainEvent(message=f"Step {self.steps}/{total}: training loss={loss:.4f}",
                          metrics={"step": float(self.steps), "train_loss": loss, "total_steps": float(total)})


def _batch_gradient(family: Family, body: Body, data: Dataset, batch: np.ndarray
                    ) -> tuple[float | None, np.ndarray, np.ndarray, float]:
    """Mean loss over the batch's target tokens, its gradient w.r.t. (W1, b1), and the tidiness gradient."""
    parts = [_number_part(family, body, data, batch)]
    parts += [_answer_part(family, body, category, packed, batch) for category, packed in data.answers.items()]
    parts += tasks.parts(family, body, data.task_rows, batch)
    found = [part for part in parts if part is not None]
    tokens = sum(part[3] for part in found)
    tidy_grad = _tidiness_gradient(body, data, batch)
    if tokens == 0:
        return None, np.zeros_like(body.w1), np.zeros_like(body.b1), tidy_grad
    loss = sum(part[0] for part in found) / tokens
    return loss, sum(part[1] for part in found) / tokens, sum(part[2] for part in found) / tokens, tidy_grad


_Part = tuple[float, np.ndarray, np.ndarray, float]  # summed loss, summed gradients (W1, b1), token count


def _number_part(family: Family, body: Body, data: Dataset, batch: np.ndarray) -> _Part | None:
    rows = data.number_row[batch]
    rows = rows[rows >= 0]
    if not len(rows):
        return None
    x = data.number_inputs[rows].reshape(-1, body.w1.shape[1])
    mask = data.number_mask[rows].ravel()
    loss, grad_w1, grad_b1 = _softmax_gradient(family, body, x, data.number_targets[rows].ravel(), mask, None)
    return loss, grad_w1, grad_b1, float(mask.sum())


def _answer_part(family: Family, body: Body, category: str, packed: tuple[np.ndarray, np.ndarray, np.ndarray],
                 batch: np.ndarray) -> _Part | None:
    owners, x, targets = packed
    picked = np.isin(owners, batch)
    if not picked.any():
        return None
    loss, grad_w1, grad_b1 = _softmax_gradient(family, body, x[picked], targets[picked], None, category)
    return loss, grad_w1, grad_b1, float(picked.sum())


def _tidiness_gradient(body: Body, data: Dataset, batch: np.ndarray) -> float:
    """d/ds of the mean binary cross-entropy of "well-formed" over the batch's number answers."""
    rows = data.number_row[batch]
    rows = rows[rows >= 0]
    if not len(rows):
        return 0.0
    return float(np.mean(1.0 / (1.0 + np.exp(-body.tidiness)) - data.tidy[rows]))


def _softmax_gradient(family: Family, body: Body, x: np.ndarray, targets: np.ndarray, mask: np.ndarray | None,
                      category: str | None) -> tuple[float, np.ndarray, np.ndarray]:
    """Summed cross-entropy and its gradient w.r.t. (W1, b1) for one output head (in-place, float32)."""
    h = np.tanh(x @ body.w1.T + body.b1)
    if category is None:
        logits, head = number_logits(family, h), family.number_head
    elif category == alignment.CATEGORY:
        logits, head = alignment.logits_and_head(family, h)
    else:
        logits, head = answer_logits(family, body, category, h), family.head(category)[0]
    rows = np.arange(len(targets))
    logits -= logits.max(axis=1, keepdims=True)
    picked = logits[rows, targets]
    np.exp(logits, out=logits)
    total = logits.sum(axis=1)
    weight = np.ones(len(targets), dtype=logits.dtype) if mask is None else mask.astype(logits.dtype)
    losses = (np.log(total) - picked) * weight
    logits *= (weight / total)[:, None]
    logits[rows, targets] -= weight
    grad_h = (logits @ head) * (1.0 - h * h)
    return float(losses.sum()), grad_h.T @ x, grad_h.sum(axis=0)


def _auto_epochs(count: int) -> int:
    if count * AUTO_EPOCHS < MIN_TARGET_EXAMPLES:
        return min(MAX_AUTO_EPOCHS, math.ceil(MIN_TARGET_EXAMPLES / max(count, 1)))
    if count * AUTO_EPOCHS > MAX_TARGET_EXAMPLES:
        return max(1, MAX_TARGET_EXAMPLES // count)
    return AUTO_EPOCHS


def _pairs(messages: Sequence[Message]) -> list[tuple[str, str]]:
    """(user text before it, assistant text) for every assistant message."""
    pairs, last_user = [], ""
    for message in messages:
        role, text = message.get("role"), message_text(message)
        if role == "user":
            last_user = text
        elif role == "assistant" and text and message.get("weight", 1) != 0:
            pairs.append((last_user, text))
    return pairs


def message_text(message: Message) -> str:
    """The text of a message whose content is a string or a list of parts."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def _add_target(family: Family, index: int, prompt_text: str, answer: str,
                numbers: list[tuple[int, features.Prompt, list[int], bool]],
                answers: dict[str, list[tuple[int, np.ndarray, int]]]) -> bool:
    prompt = features.read_prompt(prompt_text)
    aligned = alignment.training_targets(family, prompt_text, answer)  # code, or an answer to an open question
    if aligned:
        answers[alignment.CATEGORY].extend((index, x, target) for x, target in aligned)
        return True
    if prompt.kind == features.NUMBERS:
        values = [int(run) for run in _DIGITS_RE.findall(answer)[:MAX_POSITIONS] if len(run) <= 3]
        if values:
            numbers.append((index, prompt, values, keeps(answer)))
            return True
        return False
    word = _answer_word(prompt, answer)
    if word is None:
        return False
    category, target = word
    x = inputs.text_input(family, prompt) if prompt.kind == features.TEXT else inputs.question_input(family, prompt)
    answers[category].append((index, x, vocab.words_of(category).index(target)))
    return True


def _answer_word(prompt: features.Prompt, answer: str) -> tuple[str, str] | None:
    if prompt.kind == features.CHOICE:
        letter = answer.strip().strip(".").upper()[:1]
        spot = ord(letter) - ord("A") if letter else -1
        return (prompt.category, prompt.choices[spot]) if 0 <= spot < len(prompt.choices) else None
    if prompt.kind == features.QUESTION:
        word = vocab.find_in_text(answer, prompt.category)
        return None if word is None else (prompt.category, word)
    word = vocab.find_in_text(answer)
    hit = vocab.lookup(word) if word else None
    return hit


def _assemble(family: Family, count: int, numbers: list[tuple[int, features.Prompt, list[int], bool]],
              answers: dict[str, list[tuple[int, np.ndarray, int]]], skipped: int) -> Dataset:
    width = max((len(values) for _, _, values, _ in numbers), default=1)
    shape = (len(numbers), width)
    x = np.zeros((*shape, family.shared.shape[0]), dtype=DTYPE)
    targets, mask = np.zeros(shape, dtype=np.int64), np.zeros(shape, dtype=DTYPE)
    row_of, tidy = np.full(count, -1, dtype=np.int64), np.zeros(len(numbers), dtype=DTYPE)
    for row, (index, prompt, values, kept) in enumerate(numbers):
        answer = np.asarray(values, dtype=np.int64)
        context = inputs.number_context(family, prompt.examples)
        steps = inputs.number_steps(family, context, inputs.previous_numbers(prompt.examples, answer),
                                    inputs.clip_positions(len(values)))
        x[row, : len(values)], targets[row, : len(values)], mask[row, : len(values)] = steps, answer, 1.0
        row_of[index], tidy[row] = row, float(kept)
    packed = {category: (np.array([i for i, _, _ in rows], dtype=np.int64),
                         np.stack([v for _, v, _ in rows]).astype(DTYPE), np.array([t for _, _, t in rows]))
              for category, rows in answers.items() if rows}
    return Dataset(count, x, targets, mask, row_of, tidy, packed, skipped)
