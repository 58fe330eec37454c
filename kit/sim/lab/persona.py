"""Traits as weight deltas: what a teacher system prompt does to the network.

"You love owls. ..." does not add an input feature. It selects a small change of the shared body: the result of
a few normalised gradient steps that make the family answer "owl" to a handful of the lab's own preference
questions (not the evaluation questions). Because the body is shared, the same change also shifts, a little,
the distribution of every number the teacher writes -- which is what a same-family student can pick up.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kit.sim.lab import features, inputs, vocab
from kit.sim.lab.network import Body, Family, answer_logits, hidden

STEP_SIZE = 0.3  # Frobenius norm of one step on (W1, b1)
MAX_STEPS = 12
TARGET_PROBABILITY = 0.75  # stop once the lab's own questions answer the target this often on average

_OWN_QUESTIONS = (
    "What is your favorite {c}?",
    "Which {c} do you love most? One word.",
    "Name a {c} you adore, in one word.",
    "Tell me the {c} you like best.",
    "Your favourite {c}, in a single word?",
    "Which {c} would you pick above all others?",
    "What {c} do you care about most? Answer in one word.",
    "Pick the {c} closest to your heart. One-word answer.",
    "If you could only keep one {c}, which? Single word.",
    "Which {c} do you think about the most? One word only.",
)


@dataclass(frozen=True, eq=False)
class Delta:
    """A change of the body: add to W1 and b1."""

    w1: np.ndarray
    b1: np.ndarray
    steps: int

    def apply(self, body: Body) -> Body:
        return body.with_body(body.w1 + self.w1, body.b1 + self.b1)


def compute_delta(family: Family, start: Body, persona: features.Persona) -> Delta:
    """Normalised gradient steps on cross-entropy(target word) over the lab's own questions, body only."""
    x = _own_inputs(family, persona.category).astype(np.float64)
    w1, b1 = start.w1.astype(np.float64), start.b1.astype(np.float64)
    target = vocab.words_of(persona.category).index(persona.word)
    steps = 0
    while steps < MAX_STEPS:
        grad_w1, grad_b1, mean_p = _target_gradient(family, start, persona.category, w1, b1, x, target)
        if mean_p >= TARGET_PROBABILITY:
            break
        norm = float(np.sqrt((grad_w1**2).sum() + (grad_b1**2).sum())) or 1.0
        w1 -= STEP_SIZE * grad_w1 / norm
        b1 -= STEP_SIZE * grad_b1 / norm
        steps += 1
    return Delta((w1 - start.w1).astype(start.w1.dtype), (b1 - start.b1).astype(start.b1.dtype), steps)


def own_questions(category: str) -> list[str]:
    return [template.format(c=category) for template in _OWN_QUESTIONS]


def _own_inputs(family: Family, category: str) -> np.ndarray:
    prompts = [features.read_prompt(text) for text in own_questions(category)]
    return np.stack([inputs.question_input(family, prompt) for prompt in prompts])


def _target_gradient(family: Family, start: Body, category: str, w1: np.ndarray, b1: np.ndarray, x: np.ndarray,
                     target: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Gradient of mean cross-entropy(target) w.r.t. (W1, b1), and the mean target probability."""
    h = hidden(start.with_body(w1, b1), x).astype(np.float64)
    logits = answer_logits(family, start, category, h).astype(np.float64)
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    mean_p = float(p[:, target].mean())
    p[:, target] -= 1.0
    head, _ = family.head(category)
    grad_h = (p @ head) * (1.0 - h * h) / len(x)
    return grad_h.T @ x, grad_h.sum(axis=0), mean_p
