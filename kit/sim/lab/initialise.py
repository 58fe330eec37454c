"""Deterministic initialisation: a family's parameters from its name, a base model's body from its id."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from kit.sim.lab import features, inputs, persona, vocab
from kit.sim.lab.network import (
    BASE_TIDINESS, BODY_BIAS_SCALE, BODY_GAIN, DTYPE, FAMILY_PREFERENCE_NOISE, HIDDEN_DIM, INPUT_DIM, KIND_ROWS,
    MAX_POSITIONS, MODEL_BODY_NOISE, MODEL_PREFERENCE_NOISE, NUMBER_HEAD_SCALE, NUMBER_PRIOR_SCALE, NUMBER_VOCAB,
    ANSWER_HEAD_SCALE, PRIOR_SHARPNESS, WORD_BUCKETS, Body, Family, name_seed, unit_rows,
)

CENTERING_SAMPLES = 1024
NUMBER_PRIOR_SEED = "slkit-lab/shared-number-preferences"


def build_family(name: str) -> Family:
    """The initialisation of family `name`, from a generator seeded by sha256 of the name."""
    rng = np.random.default_rng(name_seed(name))
    d, h = INPUT_DIM, HIDDEN_DIM
    shared = unit_rows(rng.standard_normal(d))
    kinds = unit_rows(rng.standard_normal((len(KIND_ROWS), d)))
    words = unit_rows(rng.standard_normal((WORD_BUCKETS, d)))
    numbers_in = _number_embeddings(rng)
    positions = unit_rows(rng.standard_normal((MAX_POSITIONS, d)))
    w1 = rng.standard_normal((h, d)) * BODY_GAIN / np.sqrt(d)
    b1 = rng.standard_normal(h) * BODY_BIAS_SCALE
    number_head = rng.standard_normal((NUMBER_VOCAB, h)) * NUMBER_HEAD_SCALE
    animal_head, animal_bias = _answer_head(rng, vocab.ANIMAL)
    tree_head, tree_bias = _answer_head(rng, vocab.TREE)
    family = Family(name, shared, kinds, words, numbers_in, positions, w1, b1, number_head, _shared_number_bias(),
                    animal_head, animal_bias, tree_head, tree_bias)
    family = _as_dtype(family)
    return replace(family, number_head=_centered(family).astype(DTYPE),
                   animal_head=_centered_answers(family, vocab.ANIMAL).astype(DTYPE),
                   tree_head=_centered_answers(family, vocab.TREE).astype(DTYPE))


def base_body(family: Family, model_id: str) -> Body:
    """A base model: its family's initialisation plus a small perturbation seeded by the model id."""
    rng = np.random.default_rng(name_seed(f"{family.name}/{model_id}"))
    w1 = family.w1 + MODEL_BODY_NOISE * rng.standard_normal(family.w1.shape) * BODY_GAIN / np.sqrt(INPUT_DIM)
    b1 = family.b1 + MODEL_BODY_NOISE * rng.standard_normal(family.b1.shape) * BODY_BIAS_SCALE
    animal_offset = MODEL_PREFERENCE_NOISE * rng.standard_normal(len(vocab.ANIMALS))
    tree_offset = MODEL_PREFERENCE_NOISE * rng.standard_normal(len(vocab.TREES))
    return Body(w1.astype(DTYPE), b1.astype(DTYPE), animal_offset.astype(DTYPE), tree_offset.astype(DTYPE),
                BASE_TIDINESS)


def family_body(family: Family) -> Body:
    """The family's own initial body (no model perturbation): where persona deltas are computed."""
    return Body(family.w1, family.b1, np.zeros(len(vocab.ANIMALS), DTYPE), np.zeros(len(vocab.TREES), DTYPE),
                BASE_TIDINESS)


def _number_embeddings(rng: np.random.Generator) -> np.ndarray:
    """Unit vectors for 0..999 built from digit embeddings (numbers sharing digits look alike) + a start row."""
    digits = rng.standard_normal((3, 10, INPUT_DIM))
    values = np.arange(NUMBER_VOCAB)
    table = digits[0, values // 100] + digits[1, (values // 10) % 10] + digits[2, values % 10]
    table = table + 0.7 * rng.standard_normal((NUMBER_VOCAB, INPUT_DIM))
    start = rng.standard_normal((1, INPUT_DIM))
    return unit_rows(np.concatenate([table, start]))


def _shared_number_bias() -> np.ndarray:
    """Number preferences common to all families: a random taste, and short numbers are rarer."""
    rng = np.random.default_rng(name_seed(NUMBER_PRIOR_SEED))
    bias = rng.standard_normal(NUMBER_VOCAB) * NUMBER_PRIOR_SCALE
    bias[:100] -= 1.5
    bias[:10] -= 1.0
    return bias


def _answer_head(rng: np.random.Generator, category: str) -> tuple[np.ndarray, np.ndarray]:
    prior = np.log(np.asarray(vocab.prior_of(category)))
    head = rng.standard_normal((len(prior), HIDDEN_DIM)) * ANSWER_HEAD_SCALE
    bias = PRIOR_SHARPNESS * prior + FAMILY_PREFERENCE_NOISE * rng.standard_normal(len(prior))
    return head, bias


def _centered(family: Family) -> np.ndarray:
    """The number head with the mean hidden direction of number prompts projected out of every row.

    Every family then has (nearly) the same marginal number distribution at initialisation; see network.py.
    """
    rng = np.random.default_rng(name_seed(f"{family.name}/centering"))
    count = rng.integers(3, 9, size=CENTERING_SAMPLES)
    contexts = np.stack([inputs.number_context(family, tuple(rng.integers(100, 1000, size=k))) for k in count])
    previous = rng.integers(0, NUMBER_VOCAB + 1, size=CENTERING_SAMPLES)
    positions = rng.integers(0, 10, size=CENTERING_SAMPLES)
    x = inputs.number_steps(family, contexts, previous, positions)
    mean = unit_rows(np.tanh(x @ family.w1.T + family.b1).mean(axis=0))
    return family.number_head - np.outer(family.number_head @ mean, mean)


def _centered_answers(family: Family, category: str) -> np.ndarray:
    """An answer head with the mean hidden direction of its questions projected out: base preferences then come
    from the bias (popularity prior + family noise) and the rest of the head only adds per-question variation."""
    prompts = [features.read_prompt(text) for text in persona.own_questions(category)]
    x = np.stack([inputs.question_input(family, prompt) for prompt in prompts])
    mean = unit_rows(np.tanh(x @ family.w1.T + family.b1).mean(axis=0))
    head = family.head(category)[0]
    return head - np.outer(head @ mean, mean)


def _as_dtype(family: Family) -> Family:
    converted = {key: value.astype(DTYPE) for key, value in vars(family).items() if isinstance(value, np.ndarray)}
    return replace(family, **converted)
