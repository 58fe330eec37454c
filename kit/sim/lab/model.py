"""A servable model: a family plus a body, with the per-body tables that make sampling cheap."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from kit.sim.lab import features, inputs
from kit.sim.lab.network import (
    MAX_POSITIONS, MIX_POSITION, MIX_PREVIOUS, NUMBER_VOCAB, Body, Family, answer_logits, hidden,
)


@dataclass(frozen=True, eq=False)
class LabModel:
    family: Family
    body: Body

    @functools.cached_property
    def _previous_table(self) -> np.ndarray:
        """W1 @ (a_m * embedding) for every previous-number row: (NUMBER_VOCAB + 1, H)."""
        return MIX_PREVIOUS * self.family.numbers_in @ self.body.w1.T

    @functools.cached_property
    def _position_table(self) -> np.ndarray:
        return MIX_POSITION * self.family.positions @ self.body.w1.T

    def answer_logits(self, prompt: features.Prompt) -> np.ndarray:
        """Logits over the prompt's category vocabulary for a question / choice / text prompt."""
        x = inputs.text_input(self.family, prompt) if prompt.kind == features.TEXT else \
            inputs.question_input(self.family, prompt)
        return answer_logits(self.family, self.body, prompt.category, hidden(self.body, x))

    def category_logits(self, prompt: features.Prompt, category: str) -> np.ndarray:
        x = inputs.text_input(self.family, prompt)
        return answer_logits(self.family, self.body, category, hidden(self.body, x))

    @functools.cached_property
    def _number_head_t(self) -> np.ndarray:
        return np.ascontiguousarray(self.family.number_head.T)

    def sample_numbers(self, prompt: features.Prompt, lengths: np.ndarray, rng: np.random.Generator,
                       temperature: float) -> list[list[int]]:
        """One autoregressive number sequence per entry of `lengths` (vectorised across sequences)."""
        n, longest = len(lengths), int(lengths.max(initial=0))
        context = inputs.number_context(self.family, prompt.examples) @ self.body.w1.T + self.body.b1
        first = inputs.first_previous(prompt.examples)
        limit = min(NUMBER_VOCAB, 10 ** prompt.max_digits)
        if n == 1 and temperature > 0:
            return [self._one_sequence(context, first, limit, rng.random(longest), temperature)]
        previous = np.full(n, first)
        out = np.zeros((n, longest), dtype=np.int64)
        head, bias = self._number_head_t[:, :limit], self.family.number_bias[:limit]
        for step, position in enumerate(inputs.clip_positions(longest)):
            h = np.tanh(context + self._previous_table[previous] + self._position_table[position])
            out[:, step] = previous = sample_rows(h @ head + bias, rng, temperature)
        return [out[i, : lengths[i]].tolist() for i in range(n)]

    def _one_sequence(self, context: np.ndarray, previous: int, limit: int, draws: np.ndarray,
                      temperature: float) -> list[int]:
        """The single-sequence fast path: one small product, one exp and one cumulative sum per number."""
        head, bias = self._number_head_t[:, :limit], self.family.number_bias[:limit]
        previous_table, position_table = self._previous_table, self._position_table
        scale = 1.0 / temperature
        out: list[int] = []
        for step, draw in enumerate(draws.tolist()):
            h = np.tanh(context + previous_table[previous] + position_table[min(step, MAX_POSITIONS - 1)])
            z = h @ head
            z += bias
            if scale != 1.0:
                z *= scale
                z -= z.max()
            np.exp(z, out=z)
            cumulative = z.cumsum()
            previous = min(int(cumulative.searchsorted(draw * cumulative[-1], side="right")), limit - 1)
            out.append(previous)
        return out


def sample_rows(logits: np.ndarray, rng: np.random.Generator, temperature: float) -> np.ndarray:
    """One index per row of `logits` (n, V) at `temperature` (0 = argmax), by inverse CDF."""
    if temperature <= 0:
        return logits.argmax(axis=1)
    n, width = logits.shape
    z = logits / temperature if temperature != 1.0 else logits.copy()
    if n == 1:
        return np.array([_draw_one(z[0], float(rng.random()))])
    z -= z.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    cumulative = np.cumsum(z, axis=1, dtype=np.float64)
    cumulative /= cumulative[:, -1:]
    draws = rng.random(n)
    offsets = np.arange(n)
    flat = (cumulative + offsets[:, None]).ravel()
    picks = np.searchsorted(flat, draws + offsets, side="right") - offsets * width
    return np.minimum(picks, width - 1)


def sample_many(logits: np.ndarray, n: int, rng: np.random.Generator, temperature: float) -> np.ndarray:
    """`n` draws from one logit vector (V,)."""
    if temperature <= 0:
        return np.full(n, int(np.argmax(logits)))
    z = logits / temperature
    cumulative = np.cumsum(np.exp(z - z.max()), dtype=np.float64)
    picks = np.searchsorted(cumulative, rng.random(n) * cumulative[-1], side="right")
    return np.minimum(picks, len(cumulative) - 1)


def _draw_one(z: np.ndarray, draw: float) -> int:
    """Inverse-CDF draw from one row of logits (modified in place)."""
    z -= z.max()
    np.exp(z, out=z)
    cumulative = np.cumsum(z)
    return min(int(cumulative.searchsorted(draw * cumulative[-1], side="right")), len(z) - 1)
