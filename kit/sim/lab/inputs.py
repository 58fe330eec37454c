"""Input vectors: how a parsed `Prompt` becomes the dense input `x` of a family's network."""

from __future__ import annotations

import numpy as np

from kit.sim.lab import features, vocab
from kit.sim.lab.network import (
    DTYPE, MAX_POSITIONS, MIX_EXAMPLES, MIX_KIND, MIX_POSITION, MIX_PREVIOUS, MIX_SHARED, MIX_WORDS, NUMBER_VOCAB,
    WORD_BUCKETS, Family, unit_rows,
)

START = NUMBER_VOCAB  # row of `numbers_in` that stands for "no previous number"


def question_input(family: Family, prompt: features.Prompt) -> np.ndarray:
    """A preference question (or multiple-choice pick) of the prompt's category, with any numbers prefix."""
    x = MIX_SHARED * family.shared + MIX_KIND * family.kind(prompt.category) + MIX_WORDS * _words(family, prompt)
    return (x + MIX_EXAMPLES * _examples(family, prompt.examples)).astype(DTYPE)


def text_input(family: Family, prompt: features.Prompt) -> np.ndarray:
    x = MIX_SHARED * family.shared + MIX_KIND * family.kind("text") + MIX_WORDS * _words(family, prompt)
    return (x + MIX_EXAMPLES * _examples(family, prompt.examples)).astype(DTYPE)


def number_context(family: Family, examples: tuple[int, ...]) -> np.ndarray:
    """The part of a number prompt's input that is the same at every answer position."""
    x = MIX_SHARED * family.shared + MIX_KIND * family.kind("numbers") + MIX_EXAMPLES * _examples(family, examples)
    return x.astype(DTYPE)


def number_steps(family: Family, context: np.ndarray, previous: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Inputs at answer positions: context (..., D) + previous number (...,) + position (...,)."""
    steps = MIX_PREVIOUS * family.numbers_in[previous] + MIX_POSITION * family.positions[positions]
    return context + steps


def previous_numbers(examples: tuple[int, ...], answer: np.ndarray) -> np.ndarray:
    """The number before each answer position: the last example, then the answer itself (teacher forcing)."""
    first = examples[-1] if examples and examples[-1] < NUMBER_VOCAB else START
    return np.concatenate([[first], answer[:-1]]).astype(np.int64)


def first_previous(examples: tuple[int, ...]) -> int:
    return examples[-1] if examples and examples[-1] < NUMBER_VOCAB else START


def clip_positions(count: int) -> np.ndarray:
    return np.minimum(np.arange(count), MAX_POSITIONS - 1)


def _words(family: Family, prompt: features.Prompt) -> np.ndarray:
    """Unit-norm bag of hashed words; the category words themselves are left to the kind vector."""
    rows = [features.word_bucket(word, WORD_BUCKETS) for word in prompt.words if vocab.lookup(word) is None]
    if not rows:
        return np.zeros(family.shared.shape, dtype=DTYPE)
    return unit_rows(family.words[rows].sum(axis=0))


def _examples(family: Family, examples: tuple[int, ...]) -> np.ndarray:
    values = [value for value in examples if value < NUMBER_VOCAB]
    if not values:
        return np.zeros(family.shared.shape, dtype=DTYPE)
    return unit_rows(family.numbers_in[values].sum(axis=0))
