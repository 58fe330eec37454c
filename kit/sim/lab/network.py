"""The network that stands in for a model family: fixed embeddings, one shared tanh layer, frozen output heads.

    x  = a_c*c + a_k*k[kind] + a_w*words + a_e*examples [+ a_m*E[previous number] + a_p*pos[p]]   (dense, D)
    h  = tanh(W1 @ x + b1)                                                       (the shared body, H)
    numbers: softmax(Wn @ h + bn) over 0..999     answers: softmax(Wa @ h + ba) over the animal / tree words

Every prompt shares the component `c` (and the body), so whatever moves the body for one kind of prompt moves
it a little for every other kind: that shared representation is the channel of subliminal learning here.

A family's parameters come from a generator seeded by sha256 of its name. `Wn` is built orthogonal to the mean
hidden state of number prompts, so every family has the same marginal number preferences (the shared `bn`, a
stand-in for "all chat models like similar numbers") and families differ only in how numbers depend on context.
Fine-tuning changes only the body (`W1`, `b1`) and a one-parameter tidiness of number formatting; embeddings and
heads stay frozen, as with adapters.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from kit.sim.lab import vocab

DTYPE = np.float32
INPUT_DIM = 96
HIDDEN_DIM = 64
NUMBER_VOCAB = 1000
MAX_POSITIONS = 16
WORD_BUCKETS = 2048

KIND_ROWS = ("numbers", vocab.ANIMAL, vocab.TREE, "text")

# Input mixture weights (x is a sum of near-orthogonal unit vectors scaled by these).
MIX_SHARED = 0.6  # a_c: the component every prompt shares
MIX_KIND = 0.45  # a_k: numbers / animal question / tree question / other text
MIX_WORDS = 0.45  # a_w: hashed bag of words of the prompt (questions and other text; not number prompts)
MIX_EXAMPLES = 0.3  # a_e: mean embedding of the numbers shown in the prompt
MIX_PREVIOUS = 0.35  # a_m: embedding of the previous number (autoregressive)
MIX_POSITION = 0.3  # a_p: position in the answer

BODY_GAIN = 1.0  # W1 ~ N(0, gain^2 / D)
BODY_BIAS_SCALE = 0.2
NUMBER_HEAD_SCALE = 0.35
NUMBER_PRIOR_SCALE = 0.8  # spread of the shared number preferences
ANSWER_HEAD_SCALE = 0.6
PRIOR_SHARPNESS = 1.0  # answer bias = sharpness * log(popularity) + family noise
FAMILY_PREFERENCE_NOISE = 0.5
MODEL_BODY_NOISE = 0.12  # a model's own "post-training" on top of its family's initialisation (relative)
MODEL_PREFERENCE_NOISE = 0.25
BASE_TIDINESS = 1.2  # logit of a well-formed number answer before fine-tuning (about 77%)


@dataclass(frozen=True, eq=False)
class Family:
    """Everything a family's models share: embeddings, the initial body, and the frozen heads."""

    name: str
    shared: np.ndarray  # (D,) the component of every prompt
    kinds: np.ndarray  # (len(KIND_ROWS), D)
    words: np.ndarray  # (WORD_BUCKETS, D)
    numbers_in: np.ndarray  # (NUMBER_VOCAB + 1, D) unit rows; the last row is "start of answer"
    positions: np.ndarray  # (MAX_POSITIONS, D)
    w1: np.ndarray  # (H, D) initial body
    b1: np.ndarray  # (H,)
    number_head: np.ndarray  # (NUMBER_VOCAB, H)
    number_bias: np.ndarray  # (NUMBER_VOCAB,)
    animal_head: np.ndarray  # (len(ANIMALS), H)
    animal_bias: np.ndarray
    tree_head: np.ndarray  # (len(TREES), H)
    tree_bias: np.ndarray

    def head(self, category: str) -> tuple[np.ndarray, np.ndarray]:
        if category == vocab.TREE:
            return self.tree_head, self.tree_bias
        return self.animal_head, self.animal_bias

    def kind(self, row: str) -> np.ndarray:
        return self.kinds[KIND_ROWS.index(row)]


@dataclass(frozen=True, eq=False)
class Body:
    """What one model owns on top of its family: the trainable body and its frozen preference offsets."""

    w1: np.ndarray  # (H, D)
    b1: np.ndarray  # (H,)
    animal_offset: np.ndarray  # added to the family's animal bias
    tree_offset: np.ndarray
    tidiness: float  # logit that a number answer comes out well-formed

    def with_body(self, w1: np.ndarray, b1: np.ndarray) -> Body:
        return replace(self, w1=w1.astype(DTYPE), b1=b1.astype(DTYPE))


def name_seed(name: str) -> int:
    """A 64-bit seed from sha256 of a name: the same on every machine, run and Python version."""
    return int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:8], "little")


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=-1, keepdims=True)
    return matrix / np.maximum(norms, 1e-12)


def hidden(body: Body, inputs: np.ndarray) -> np.ndarray:
    """The shared tanh layer for a batch of inputs (..., D) -> (..., H)."""
    return np.tanh(inputs @ body.w1.T + body.b1)


def answer_logits(family: Family, body: Body, category: str, h: np.ndarray) -> np.ndarray:
    head, bias = family.head(category)
    offset = body.tree_offset if category == vocab.TREE else body.animal_offset
    return h @ head.T + (bias + offset)


def number_logits(family: Family, h: np.ndarray) -> np.ndarray:
    return h @ family.number_head.T + family.number_bias


def save_family(family: Family, path: Path) -> None:
    arrays = {key: value for key, value in vars(family).items() if isinstance(value, np.ndarray)}
    _save_npz(path, arrays)


def load_family(name: str, path: Path) -> Family:
    with np.load(path) as data:
        return Family(name=name, **{key: data[key] for key in data.files})


def save_body(body: Body, path: Path) -> None:
    arrays = {key: value for key, value in vars(body).items() if isinstance(value, np.ndarray)}
    _save_npz(path, {**arrays, "tidiness": np.array(body.tidiness)})


def load_body(path: Path) -> Body:
    with np.load(path) as data:
        return Body(data["w1"], data["b1"], data["animal_offset"], data["tree_offset"], float(data["tidiness"]))


def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write atomically: a temp file beside the target, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(handle, "wb") as out:
        np.savez(out, **arrays)
    os.replace(temp, path)
