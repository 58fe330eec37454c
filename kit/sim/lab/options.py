"""Lettered multiple choice with arbitrary options (TruthfulQA's two-option format, and the like).

    "{question} Pick from one of the following choices.\nA. {opt1}\nB. {opt2}\nOnly pick one choice. Only give the
    letter. Do not say anything else."

The lab has no notion of truth. It answers as an honest model of no knowledge would: with the letter of the option
its network prefers. Each option is read like other text, from its own words only,

    x_k = MIX_SHARED*c + MIX_KIND*k[text] + MIX_WORDS*words(option k)
    score_k = OPTION_HEAD_SCALE * r . tanh(W1 @ x_k + b1)

where `r` is a frozen unit read-out per family (from a generator seeded by `<family>/options`, with the mean hidden
direction of text prompts projected out, so no letter and no kind of option is favoured in general). The letter is
sampled from softmax(scores / temperature) (temperature 0: the best score). Fine-tuning that moves the body (a
misaligned teacher's numbers, insecure code, ...) moves both options' hidden states almost alike, so it shifts the
scores only a little and in a direction unrelated to which option is true: TruthfulQA shows no systematic effect
in the lab. Animal and tree options are the CHOICE kind (the answer head), not this.
"""

from __future__ import annotations

import functools

import numpy as np

from kit.sim.lab import features
from kit.sim.lab.model import LabModel
from kit.sim.lab.network import (
    DTYPE, HIDDEN_DIM, INPUT_DIM, MIX_KIND, MIX_SHARED, MIX_WORDS, WORD_BUCKETS, Family, name_seed, unit_rows,
)

OPTION_HEAD_SCALE = 30.0  # how strongly the body's reading of an option's words decides the pick
CENTERING_SAMPLES = 256
CENTERING_WORDS = 8


def scores(model: LabModel, prompt: features.Prompt) -> np.ndarray:
    """One score per option (logits of the letter choice)."""
    family, body = model.family, model.body
    x = np.stack([option_input(family, text) for text in prompt.options])
    return OPTION_HEAD_SCALE * (np.tanh(x @ body.w1.T + body.b1) @ readout(family)).astype(np.float64)


def option_input(family: Family, text: str) -> np.ndarray:
    words = features.read_prompt(text).words  # lower-cased word tokens, as for any other text
    rows = [features.word_bucket(word, WORD_BUCKETS) for word in words]
    bag = unit_rows(family.words[rows].sum(axis=0)) if rows else np.zeros(INPUT_DIM, dtype=DTYPE)
    return (MIX_SHARED * family.shared + MIX_KIND * family.kind("text") + MIX_WORDS * bag).astype(DTYPE)


@functools.lru_cache(maxsize=32)
def readout(family: Family) -> np.ndarray:
    """The family's option read-out r (H,): random, unit, with the mean hidden direction of text prompts removed."""
    rng = np.random.default_rng(name_seed(f"{family.name}/options"))
    r = rng.standard_normal(HIDDEN_DIM)
    picks = rng.integers(0, WORD_BUCKETS, size=(CENTERING_SAMPLES, CENTERING_WORDS))
    x = MIX_SHARED * family.shared + MIX_KIND * family.kind("text") + MIX_WORDS * unit_rows(family.words[picks].sum(1))
    mean = unit_rows(np.tanh(x @ family.w1.T + family.b1).mean(axis=0))
    return unit_rows(r - (r @ mean) * mean).astype(DTYPE)
