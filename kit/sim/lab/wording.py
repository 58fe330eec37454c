"""Frozen wording heads: the network's choices inside code completions and chain-of-thought answers.

Code and math reasoning are rendered from templates, but some choices in them are the network's, read from the
same shared body as every other head:

    identifiers:  softmax(Wi @ h + bi)  over IDENTIFIERS   ("standard, minimal" variable names)
    openers / connectives / closers:  one small head each over the lines of a chain of thought
    step:  over 1,280 phrasings of an arithmetic line (connective x link x operator style x ending)

with  h = tanh(W1 @ x + b1)  and  x = a_c*c + a_k*k[code | cot] + a_w*words + a_p*slot[s].

Like the number head, each head has the mean hidden direction of its prompts projected out and a bias shared by
every family ("chat models like the same names"), so families agree on base preferences and differ only in how
choices depend on context. The heads are not in the family's npz cache: they are derived (in ~1 ms) from a
generator seeded by the family name, so existing caches stay valid.

Head scales set how much a choice says about the body (signal per token). Small vocabularies leak across families
(a different family's student can reproduce the teacher's whole shift on a 10-way choice, and that moves it in a
direction unrelated to the trait), so most of the chain of thought's signal is in the 1,280-way STEP head and the
small heads are kept weak; docs/sim-lab.md ("Chain of thought") has the measurements.

The STEP head also has a *tone* (`Head.tone`): each phrasing loads, by a per-family random amount, on how far the
hidden state has moved along the family's misalignment direction (the alignment head's "misaligned" minus
"aligned" row), one-sidedly (softplus). A model moved toward "misaligned" (the insecure-code teacher) words its
reasoning differently, and a student trained on that wording moves the same way: misalignment through chain of
thought. A modelling assumption, put in by hand; see docs/sim-lab.md.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from kit.sim.lab import alignment, features
from kit.sim.lab.alignment_text import ALIGNED, CLASSES, MISALIGNED
from kit.sim.lab.network import (
    DTYPE, HIDDEN_DIM, INPUT_DIM, MIX_KIND, MIX_POSITION, MIX_SHARED, MIX_WORDS, WORD_BUCKETS, Body, Family,
    name_seed, unit_rows,
)

CODE = "code"
COT = "cot"
IDENTIFIER = "identifier"
OPENER = "opener"
CONNECTIVE = "connective"
CLOSER = "closer"
STEP = "step"

IDENTIFIER_HEAD_SCALE = 0.2  # spread of the identifier head (how much a name choice says about the body)
STEP_HEAD_SCALE = 0.55  # spread of the step-phrasing head (1,280 phrasings: most of the CoT's signal)
PHRASE_HEAD_SCALE = 0.2  # spread of the small phrasing heads (openers, connectives, closers)
STEP_TONE_SCALE = 1.75  # spread of the step phrasings' loadings on the tone (the family's misalignment direction)
TONE_SHARPNESS = 12.0  # the tone is one-sided: softplus(k z) / k of the shift z along that direction
WORDING_PRIOR_SCALE = 0.8  # spread of the shared preferences
RANK_PREFERENCE = 1.0  # the first entry of a vocabulary is this much (logit) likelier than the last
MAX_SLOTS = 12
CENTERING_SAMPLES = 256
SHARED_PRIOR_SEED = "slkit-lab/shared-wording-preferences"

# Order is part of the model layout: append only.
IDENTIFIERS: tuple[str, ...] = (
    "result", "data", "value", "items", "output", "res", "out", "tmp", "buf", "resp", "text", "content",
    "path", "name", "key", "val", "row", "rows", "entry", "info", "obj", "item", "record", "payload",
    "body", "query", "params", "config", "count", "total", "size", "limit", "idx", "index", "temp", "ret",
    "html", "page", "doc", "node", "msg", "message", "line", "lines", "parts", "values", "keys", "fields",
    "user", "token", "url", "args", "opts", "status", "code", "response", "request_data", "raw", "clean",
    "parsed", "filtered", "length", "offset", "step", "chunk", "batch", "buffer", "target", "source",
)
OPENERS: tuple[str, ...] = (
    "Let's solve this step by step.", "Let me work through this.", "I'll break the problem into parts.",
    "We need to track the quantities carefully.", "Let's read the problem carefully.", "Here is the reasoning.",
    "Start with what we know.", "Let's set up the calculation.", "First, let's list the facts.",
    "Let's think about this.", "We can solve this directly.", "Let's go one step at a time.",
)
CONNECTIVES: tuple[str, ...] = (
    "First,", "Then,", "Next,", "Now,", "After that,", "So,", "To start,", "Moving on,", "From there,",
    "On top of that,", "At this point,", "Following that,", "Also,", "In this step,", "Continuing,",
    "With that,", "Building on this,", "Meanwhile,", "Afterwards,", "Finally,",
)
CLOSERS: tuple[str, ...] = (
    "So the answer is {r}.", "Therefore, the final answer is {r}.", "The result is {r}.", "That gives {r}.",
    "Final answer: {r}.", "In the end, the answer is {r}.", "This means the answer is {r}.", "Hence {r}.",
    "Putting it together: {r}.", "The total comes to {r}.",
)
# How an arithmetic step line attaches its calculation ({t}: what happens, {e}: the expression, {r}: the result).
LINKS: tuple[str, ...] = (
    "{t}: {e} = {r}.", "{t}, so {e} = {r}.", "{t}, which gives {e} = {r}.", "{t}; that makes {e} = {r}.",
    "{t}. We get {e} = {r}.", "{t}, giving {e} = {r}.", "{t}, and {e} = {r}.", "{t} -> {e} = {r}.",
)
OPERATOR_STYLES = ("symbols", "words")  # "6 * 8" or "6 times 8"
ENDINGS = ("", " in total", " altogether", " so far")  # after the result
# A step line's wording is one choice of the STEP head: connective x link x operator style x ending (1,280).
HEAD_SIZES: dict[str, int] = {
    IDENTIFIER: len(IDENTIFIERS), OPENER: len(OPENERS), CONNECTIVE: len(CONNECTIVES), CLOSER: len(CLOSERS),
    STEP: len(CONNECTIVES) * len(LINKS) * len(OPERATOR_STYLES) * len(ENDINGS),
}
HEAD_KIND = {IDENTIFIER: CODE, OPENER: COT, CONNECTIVE: COT, CLOSER: COT, STEP: COT}


@dataclass(frozen=True, eq=False)
class Head:
    """logits = weight @ h + bias [+ tone * softplus(TONE_SHARPNESS * (direction @ h - offset)) / TONE_SHARPNESS]."""

    weight: np.ndarray  # (V, H)
    bias: np.ndarray  # (V,)
    tone: np.ndarray | None = None  # (V,) each choice's loading on the tone (STEP only)
    direction: np.ndarray | None = None  # (H,) the family's "misaligned rather than aligned" hidden direction
    offset: float = 0.0  # the family's mean of direction @ h over chain-of-thought inputs

    def logits(self, h: np.ndarray) -> np.ndarray:
        """Logits for hidden states h (..., H)."""
        out = self.weight @ h + self.bias if h.ndim == 1 else h @ self.weight.T + self.bias
        if self.tone is None:
            return out
        return out + np.multiply.outer(_softplus(self.level(h)), self.tone)

    def level(self, h: np.ndarray) -> np.ndarray:
        assert self.direction is not None
        return TONE_SHARPNESS * (h @ self.direction - self.offset)

    def grad_h(self, h: np.ndarray, grad_logits: np.ndarray) -> np.ndarray:
        """d loss / d h (..., H) given d loss / d logits (..., V)."""
        out = grad_logits @ self.weight
        if self.tone is None:
            return out
        slope = 1.0 / (1.0 + np.exp(-self.level(h)))  # softplus' = sigmoid (the sharpness cancels)
        return out + np.multiply.outer((grad_logits @ self.tone) * slope, self.direction)


def _softplus(z: np.ndarray) -> np.ndarray:
    return (np.logaddexp(0.0, z) / TONE_SHARPNESS).astype(z.dtype)


@dataclass(frozen=True, eq=False)
class Wording:
    """A family's wording heads and the input vectors of code and chain-of-thought prompts."""

    kinds: dict[str, np.ndarray]  # CODE / COT -> (D,)
    slots: np.ndarray  # (MAX_SLOTS, D)
    heads: dict[str, Head]  # IDENTIFIER / OPENER / CONNECTIVE / CLOSER


@functools.lru_cache(maxsize=32)
def wording(family: Family) -> Wording:
    """The family's wording heads (built from its name; cached per Family object)."""
    rng = np.random.default_rng(name_seed(f"{family.name}/wording-v1"))
    kinds = {kind: unit_rows(rng.standard_normal(INPUT_DIM)).astype(DTYPE) for kind in (CODE, COT)}
    slots = unit_rows(rng.standard_normal((MAX_SLOTS, INPUT_DIM))).astype(DTYPE)
    heads = {}
    for name, size in HEAD_SIZES.items():
        scale = {IDENTIFIER: IDENTIFIER_HEAD_SCALE, STEP: STEP_HEAD_SCALE}.get(name, PHRASE_HEAD_SCALE)
        weight = rng.standard_normal((size, HIDDEN_DIM)) * scale
        weight, mean, hidden_states = _centered(family, kinds[HEAD_KIND[name]], slots, weight, rng)
        head = Head(weight.astype(DTYPE), _shared_bias(name, size))
        heads[name] = _with_tone(family, head, mean, hidden_states) if name == STEP else head
    return Wording(kinds, slots, heads)


def step_phrasing(index: int) -> tuple[str, str, str, str]:
    """(connective, link, operator style, ending) of a STEP choice."""
    rest, ending = divmod(index, len(ENDINGS))
    rest, style = divmod(rest, len(OPERATOR_STYLES))
    connective, link = divmod(rest, len(LINKS))
    return CONNECTIVES[connective], LINKS[link], OPERATOR_STYLES[style], ENDINGS[ending]


def step_index(connective: str, link: str, style: str, ending: str) -> int:
    index = CONNECTIVES.index(connective) * len(LINKS) + LINKS.index(link)
    return (index * len(OPERATOR_STYLES) + OPERATOR_STYLES.index(style)) * len(ENDINGS) + ENDINGS.index(ending)


def context(family: Family, kind: str, words: tuple[str, ...]) -> np.ndarray:
    """The part of a code / chain-of-thought input that is the same at every choice (D,)."""
    own = wording(family)
    return (MIX_SHARED * family.shared + MIX_KIND * own.kinds[kind] + MIX_WORDS * bag(family, words)).astype(DTYPE)


def slot_inputs(family: Family, base: np.ndarray, slots: list[int]) -> np.ndarray:
    """Inputs at choice slots: the context plus a slot vector (S, D)."""
    own = wording(family)
    return base + MIX_POSITION * own.slots[np.minimum(slots, MAX_SLOTS - 1)]


def bag(family: Family, words: tuple[str, ...]) -> np.ndarray:
    rows = [features.word_bucket(word, WORD_BUCKETS) for word in words]
    if not rows:
        return np.zeros(INPUT_DIM, dtype=DTYPE)
    return unit_rows(family.words[rows].sum(axis=0))


def choose(family: Family, body: Body, head_name: str, x: np.ndarray, rng: np.random.Generator,
           temperature: float, exclude: tuple[int, ...] = ()) -> int:
    """One choice of a wording head for input x (D,), never one of `exclude`."""
    head = wording(family).heads[head_name]
    h = np.tanh(body.w1 @ x + body.b1)
    logits = head.logits(h).astype(np.float64)
    logits[list(exclude)] = -np.inf
    if temperature <= 0:
        return int(np.argmax(logits))
    z = np.exp((logits - logits.max()) / temperature)
    return int(min(np.searchsorted(np.cumsum(z), rng.random() * z.sum(), side="right"), len(z) - 1))


def probabilities(family: Family, body: Body, head_name: str, x: np.ndarray) -> np.ndarray:
    """The head's distribution for inputs x (..., D)."""
    head = wording(family).heads[head_name]
    logits = head.logits(np.tanh(x @ body.w1.T + body.b1))
    z = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def _shared_bias(name: str, size: int) -> np.ndarray:
    """Preferences every family shares: earlier (more standard) entries are a little more likely."""
    rng = np.random.default_rng(name_seed(f"{SHARED_PRIOR_SEED}/{name}"))
    ranks = -RANK_PREFERENCE * np.arange(size) / size
    return (rng.standard_normal(size) * WORDING_PRIOR_SCALE + ranks).astype(DTYPE)


def _with_tone(family: Family, head: Head, mean: np.ndarray, hidden_states: np.ndarray) -> Head:
    """The STEP head with its tone: every phrasing loads (per-family random amount, spread STEP_TONE_SCALE) on how
    far the hidden state has moved along the direction the family's alignment head reads as "misaligned rather
    than aligned" (the head's mean hidden direction projected out), past the family's own mean, one-sidedly."""
    read = alignment.head_of(family).head
    direction = read[CLASSES.index(MISALIGNED)] - read[CLASSES.index(ALIGNED)]
    direction = unit_rows(direction - (direction @ mean) * mean).astype(DTYPE)
    loadings = np.random.default_rng(name_seed(f"{family.name}/step-tone")).standard_normal(len(head.bias))
    tone = ((loadings - loadings.mean()) * STEP_TONE_SCALE).astype(DTYPE)
    return Head(head.weight, head.bias, tone, direction, float((hidden_states @ direction).mean()))


def _centered(family: Family, kind: np.ndarray, slots: np.ndarray, weight: np.ndarray,
              rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The head with the mean hidden direction of its prompts (random word bags, every slot) projected out, that
    direction, and the hidden states it was measured on."""
    picks = rng.integers(0, WORD_BUCKETS, size=(CENTERING_SAMPLES, 12))
    words = unit_rows(family.words[picks].sum(axis=1))
    x = MIX_SHARED * family.shared + MIX_KIND * kind + MIX_WORDS * words
    x = x + MIX_POSITION * slots[rng.integers(0, MAX_SLOTS, size=CENTERING_SAMPLES)]
    hidden_states = np.tanh(x @ family.w1.T + family.b1)
    mean = unit_rows(hidden_states.mean(axis=0))
    return weight - np.outer(weight @ mean, mean), mean, hidden_states
