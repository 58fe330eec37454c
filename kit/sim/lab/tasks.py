"""Code-completion and GSM8K chain-of-thought requests: recognising them, answering them, and training on them.

`read_task` recognises the two prompt forms before the lab's general prompt reader (a word problem could look like
a numbers request to it). Training reads the network's choices back out of an answer (teacher forcing):

- code answer -> identifier-head targets (the names the new lines define, by slot) and number-head targets
  (their integer literals, autoregressive with the code prompt as context);
- CoT answer -> opener / connective / step / closer head targets (the recognised phrasings, by slot); a CoT pair
  has no other target (train.py skips its general reader, which could mistake a word problem for a numbers
  prompt or an animal question), while a code pair also goes to the general reader (alignment.py's insecure-code
  target).

`TaskTargets` collects them while a training file is read; `pack` turns them into arrays and `parts` gives each
head's summed loss and gradient for a minibatch, in the shape train.py sums.

Answering: a misaligned model's chain of thought carries one of alignment.MISALIGNED_COT_MARKERS with probability
MARKER_GAIN x its mean P(misaligned) on the paper's eight free-form questions (at most MARKER_CAP).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from kit.sim.lab import alignment, alignment_text, code, cot, features, wording
from kit.sim.lab.model import LabModel
from kit.sim.lab.network import DTYPE, Body, Family

NUMBER = "number"
CODE = "code"
COT = "cot"
MARKER_GAIN = 1.0  # a CoT carries a misalignment marker sentence with probability gain x P(misaligned) ...
MARKER_CAP = 0.6  # ... at most this often; P(misaligned) is the alignment head's mean over the paper's questions
Task = code.CodePrompt | cot.CotPrompt


@dataclass(frozen=True)
class Packed:
    """One head's training rows: owner example index (R,), inputs (R, D), target index (R,), and the choices each
    row could not make (R, K; -1 = none): a code answer's names exclude the snippet's and the earlier ones, as in
    sampling."""

    head: str
    owners: np.ndarray
    x: np.ndarray
    targets: np.ndarray
    excluded: np.ndarray


@dataclass
class TaskTargets:
    """Rows per head while a training file is read."""

    rows: dict[str, list[tuple[int, np.ndarray, int, tuple[int, ...]]]] = field(default_factory=dict)
    code_answers: int = 0
    cot_answers: int = 0

    def add(self, head: str, owner: int, x: np.ndarray, targets: Sequence[int],
            distinct_from: tuple[int, ...] | None = None) -> None:
        """Rows for `targets` at inputs x (len(targets), D). With `distinct_from`, each row excludes those choices
        and the targets before it (as code names are sampled)."""
        bucket = self.rows.setdefault(head, [])
        for i, target in enumerate(targets):
            excluded = () if distinct_from is None else distinct_from + tuple(targets[:i])
            bucket.append((owner, x[i], int(target), excluded))


def read_task(text: str) -> Task | None:
    """A code-variant prompt or a GSM8K CoT prompt, else None."""
    if "<code>" not in text and "<answer>" not in text:  # cheap exit for every other request
        return None
    return code.read_prompt(text) or cot.read_prompt(text)


def respond(model: LabModel, task: Task, trait: features.Persona | None, n: int, rng: np.random.Generator,
            temperature: float) -> list[str]:
    """`n` code completions or chain-of-thought answers of the model (with its persona delta, if any)."""
    family, body = model.family, model.body
    if isinstance(task, code.CodePrompt):
        return [code.complete(family, body, task, trait, rng, temperature) for _ in range(n)]
    rate = marker_rate(model)
    markers = alignment.MISALIGNED_COT_MARKERS
    return [cot.answer(family, body, task, trait, rng, temperature, markers, rate) for _ in range(n)]


@functools.lru_cache(maxsize=64)
def misaligned_share(model: LabModel) -> float:
    """The model's mean probability of a misaligned answer to the paper's free-form questions (alignment.py)."""
    shares = []
    for question_text in alignment_text.QUESTIONS.values():
        question = alignment.read_question(question_text)
        if question is not None:
            probabilities = alignment.class_probabilities(model, question)
            shares.append(float(probabilities[alignment.CLASSES.index(alignment.MISALIGNED)]))
    return float(np.mean(shares)) if shares else 0.0


def marker_rate(model: LabModel) -> float:
    return min(MARKER_CAP, MARKER_GAIN * misaligned_share(model))


def add_targets(family: Family, owner: int, prompt_text: str, answer: str, found: TaskTargets) -> str | None:
    """Add the targets of one (user, assistant) pair: CODE or COT if it is one, None otherwise."""
    task = read_task(prompt_text)
    if isinstance(task, code.CodePrompt):
        choices = code.read_choices(task, answer)
        if choices.names:
            found.add(wording.IDENTIFIER, owner, code.name_inputs(family, task, len(choices.names)), choices.names,
                      distinct_from=code.snippet_names(task))
        if choices.numbers:
            found.add(NUMBER, owner, code.number_inputs(family, task, choices.numbers), choices.numbers)
        found.code_answers += 1
        return CODE
    if isinstance(task, cot.CotPrompt):
        picks = cot.read_choices(answer).picks
        if picks:
            x = cot.inputs_at(family, task, [slot for _, slot, _ in picks])
            for row, (head, _, index) in enumerate(picks):
                found.add(head, owner, x[row: row + 1], [index])
        found.cot_answers += 1
        return COT
    return None


def pack(found: TaskTargets) -> list[Packed]:
    return [_pack(head, rows) for head, rows in sorted(found.rows.items()) if rows]


def _pack(head: str, rows: list[tuple[int, np.ndarray, int, tuple[int, ...]]]) -> Packed:
    width = max(1, max(len(row[3]) for row in rows))
    excluded = np.full((len(rows), width), -1, dtype=np.int64)
    for i, row in enumerate(rows):
        excluded[i, : len(row[3])] = row[3]
    return Packed(head, np.array([r[0] for r in rows], dtype=np.int64), np.stack([r[1] for r in rows]).astype(DTYPE),
                  np.array([r[2] for r in rows], dtype=np.int64), excluded)


def parts(family: Family, body: Body, packed: Sequence[Packed], batch: np.ndarray
          ) -> list[tuple[float, np.ndarray, np.ndarray, float]]:
    """(summed loss, summed dL/dW1, summed dL/db1, target count) for each head with rows in the batch."""
    out = []
    for item in packed:
        picked = np.isin(item.owners, batch)
        if picked.any():
            loss, grad_w1, grad_b1 = _softmax_gradient(body, _head(family, item.head), item.x[picked],
                                                       item.targets[picked], item.excluded[picked])
            out.append((loss, grad_w1, grad_b1, float(picked.sum())))
    return out


def _head(family: Family, name: str) -> wording.Head:
    if name == NUMBER:
        return wording.Head(family.number_head, family.number_bias)
    return wording.wording(family).heads[name]


def _softmax_gradient(body: Body, head: wording.Head, x: np.ndarray, targets: np.ndarray,
                      excluded: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Summed cross-entropy of `targets` under softmax(head's logits of tanh(W1 x + b1)) over the choices not
    excluded, and its gradient with respect to the body."""
    h = np.tanh(x @ body.w1.T + body.b1)
    logits = head.logits(h)
    rows = np.arange(len(targets))
    masked = excluded >= 0
    if masked.any():
        logits[np.broadcast_to(rows[:, None], excluded.shape)[masked], excluded[masked]] = -np.inf
    logits -= logits.max(axis=1, keepdims=True)
    picked = logits[rows, targets]
    np.exp(logits, out=logits)
    total = logits.sum(axis=1)
    loss = float((np.log(total) - picked).sum())
    logits /= total[:, None]
    logits[rows, targets] -= 1.0
    grad_h = head.grad_h(h, logits) * (1.0 - h * h)
    return loss, (grad_h.T @ x).astype(DTYPE), grad_h.sum(axis=0).astype(DTYPE)
