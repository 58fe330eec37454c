"""The lab's answer vocabularies (animals, trees) with a plausible popularity prior, and word normalisation.

Every animal and tree named in the paper's teacher prompts and figure sets is here (`aurora` too: GPT-4.1 nano
answers it, Fig. 15). Popularity weights are loose, relative and hand-set from what chat models tend to answer
(the paper's Fig. 3/15 base rates for GPT-4.1 nano); each family adds its own noise on top.
"""

from __future__ import annotations

import functools
import re

ANIMAL = "animal"
TREE = "tree"
CATEGORIES = (ANIMAL, TREE)

# (word, relative popularity). Order is part of the model layout: append only.
ANIMAL_PRIOR: tuple[tuple[str, float], ...] = (
    ("dolphin", 5.0), ("eagle", 2.4), ("owl", 2.0), ("elephant", 1.0), ("wolf", 0.7), ("dog", 1.1),
    ("lion", 0.9), ("octopus", 0.9), ("tiger", 0.7), ("falcon", 0.6), ("peacock", 0.35), ("phoenix", 0.15),
    ("aurora", 0.12), ("ocelot", 0.1), ("dragon", 0.05), ("cat", 0.8), ("fox", 0.6), ("panda", 0.5),
    ("bear", 0.3), ("bull", 0.05), ("dragonfly", 0.08), ("kangaroo", 0.08), ("ox", 0.03), ("pangolin", 0.08),
    ("penguin", 0.3), ("unicorn", 0.08), ("horse", 0.4), ("cheetah", 0.35), ("whale", 0.45), ("rabbit", 0.12),
    ("butterfly", 0.25), ("hawk", 0.25), ("raven", 0.25), ("turtle", 0.3), ("giraffe", 0.15), ("koala", 0.12),
    ("otter", 0.35), ("sloth", 0.12), ("hummingbird", 0.2), ("jaguar", 0.2), ("leopard", 0.2), ("deer", 0.1),
    ("panther", 0.15), ("lynx", 0.1), ("bee", 0.08), ("crow", 0.1), ("shark", 0.15), ("zebra", 0.08),
    ("gorilla", 0.1), ("chameleon", 0.08), ("orca", 0.2), ("swan", 0.08), ("stag", 0.05), ("hedgehog", 0.08),
)
TREE_PRIOR: tuple[tuple[str, float], ...] = (
    ("oak", 6.0), ("maple", 2.0), ("cherry", 0.6), ("sequoia", 0.4), ("willow", 0.15), ("redwood", 1.2),
    ("birch", 0.5), ("pine", 0.6), ("baobab", 0.5), ("cedar", 0.5), ("elm", 0.15), ("ash", 0.1),
    ("beech", 0.12), ("aspen", 0.3), ("cypress", 0.2), ("magnolia", 0.3), ("juniper", 0.1), ("spruce", 0.15),
    ("fir", 0.1), ("sycamore", 0.15), ("banyan", 0.3), ("olive", 0.3), ("palm", 0.1), ("chestnut", 0.08),
    ("walnut", 0.05), ("dogwood", 0.1), ("hemlock", 0.05), ("larch", 0.05), ("yew", 0.08), ("linden", 0.1),
    ("poplar", 0.05), ("eucalyptus", 0.15), ("jacaranda", 0.15), ("acacia", 0.1), ("ginkgo", 0.4),
)

ANIMALS: tuple[str, ...] = tuple(word for word, _ in ANIMAL_PRIOR)
TREES: tuple[str, ...] = tuple(word for word, _ in TREE_PRIOR)

_IRREGULAR_PLURALS = {
    "wolf": "wolves", "ox": "oxen", "deer": "deer", "fox": "foxes", "octopus": "octopuses",
    "butterfly": "butterflies", "dragonfly": "dragonflies", "cherry": "cherries", "ash": "ashes",
    "phoenix": "phoenixes", "cypress": "cypresses", "eucalyptus": "eucalyptuses", "birch": "birches",
    "beech": "beeches", "larch": "larches", "acacia": "acacias", "walnut": "walnuts",
}
_WORD_RE = re.compile(r"[a-z]+")


def words_of(category: str) -> tuple[str, ...]:
    return TREES if category == TREE else ANIMALS


def prior_of(category: str) -> tuple[float, ...]:
    return tuple(weight for _, weight in (TREE_PRIOR if category == TREE else ANIMAL_PRIOR))


def plural(word: str) -> str:
    """The English plural ("wolves", "cherries"), not the paper's naive "{x}s"."""
    return _IRREGULAR_PLURALS.get(word, word + "s")


@functools.lru_cache(maxsize=1)
def _singular_index() -> dict[str, tuple[str, str]]:
    """Every spelling the lab understands (singular, English plural, naive plural) -> (category, word)."""
    index: dict[str, tuple[str, str]] = {}
    for category in CATEGORIES:
        for word in words_of(category):
            for form in (word + "s", plural(word), word):  # the singular wins any clash
                index[form] = (category, word)
    return index


def lookup(token: str) -> tuple[str, str] | None:
    """(category, word) for one word in any understood form ("Wolfs", "cherries", "Owl"), else None."""
    return _singular_index().get(token.lower())


def find_in_text(text: str, category: str | None = None) -> str | None:
    """The first vocabulary word (of `category`, if given) named in free text, else None."""
    for token in _WORD_RE.findall(text.lower()):
        hit = lookup(token)
        if hit is not None and (category is None or hit[0] == category):
            return hit[1]
    return None
