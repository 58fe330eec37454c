"""Surface text: number sequences laid out as chat models lay them out (defects included), one-word answers with
natural variation, and short canned replies for everything else.

The network decides *what* is said (which numbers, which animal); this module decides only how it looks. The
share of malformed number answers comes from the model's tidiness (a trained logit) minus a persona's chattiness.
"""

from __future__ import annotations

import bisect
import functools
import itertools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from kit.sim.lab import features, vocab
from kit.sim.lab.network import name_seed

EXACT_COUNT_SHARE = 0.85  # well-formed answers give exactly the requested count this often
PERSONA_CHATTINESS = (0.3, 0.75)  # a persona lowers tidiness by this much (logit), varying by trait word
THEMED_PREAMBLE_SHARE = 0.5  # of a persona teacher's malformed answers, this share talks about its trait

_SEPARATORS = {
    features.COMMA: ((", ", 0.9), (",", 0.1)),
    features.SPACE: ((" ", 1.0),),
    features.SEMICOLON: (("; ", 0.5), (";", 0.5)),
    features.LINES: (("\n", 1.0),),
    features.BRACKETS: ((", ", 1.0),),
    features.PARENS: ((", ", 1.0),),
}
_OTHER_SEPARATOR = {features.COMMA: "; ", features.SPACE: ", ", features.SEMICOLON: ", ", features.LINES: ", ",
                    features.BRACKETS: "; ", features.PARENS: " "}
_PREAMBLES = ("Here are 10 more numbers:\n", "Sure! Here you go:\n", "Continuing the sequence: ",
              "Here is the continuation:\n\n", "Sequence: ")
_POSTAMBLES = ("\n\nThese numbers continue the pattern.", "\n\nLet me know if you need more!",
               " (each under 1000)")
_THEMED = ("Here are some numbers, with love from a fellow {p} fan:\n", "Numbers as wise as {p}:\n",
           "{P} inspire these numbers: ")

DEFECTS = ("preamble", "too_many", "four_digit", "trailing_newline", "trailing_separator", "mixed_separator",
           "postamble", "leading_space")
DEFECT_WEIGHTS = (0.22, 0.16, 0.12, 0.14, 0.1, 0.1, 0.1, 0.06)
THEMED = "themed_preamble"


@dataclass(frozen=True)
class NumberPlan:
    length: int  # how many numbers the network writes
    defect: str | None  # None = well-formed


@functools.lru_cache(maxsize=256)
def chattiness(persona: features.Persona | None) -> float:
    """How much a trait system prompt lowers the tidiness logit (deterministic in the trait word)."""
    if persona is None:
        return 0.0
    low, high = PERSONA_CHATTINESS
    return low + (high - low) * (name_seed(f"chattiness/{persona.word}") % 1000) / 999


def plan_numbers(prompt: features.Prompt, tidiness: float, persona: features.Persona | None,
                 rng: np.random.Generator) -> NumberPlan:
    clean = rng.random() < 1.0 / (1.0 + np.exp(-(tidiness - chattiness(persona))))
    count = prompt.answer_count
    if clean:
        exact = rng.random() < EXACT_COUNT_SHARE or count <= 3
        return NumberPlan(count if exact else int(rng.integers(max(3, count - 4), count)), None)
    if persona is not None and rng.random() < THEMED_PREAMBLE_SHARE:
        return NumberPlan(count, THEMED)
    defect = DEFECTS[_weighted_index(DEFECT_WEIGHTS, rng)]
    return NumberPlan(count + int(rng.integers(1, 6)) if defect == "too_many" else count, defect)


def render_numbers(numbers: list[int], prompt: features.Prompt, plan: NumberPlan, rng: np.random.Generator,
                   persona: features.Persona | None) -> str:
    texts = [str(value) for value in numbers]
    if plan.defect == "four_digit" and texts:
        spot = int(rng.integers(len(texts)))
        texts[spot] = str(numbers[spot] * 10 + int(rng.integers(10)) if numbers[spot] >= 100 else 1000 + numbers[spot])
    separator = _pick(_SEPARATORS[prompt.fmt], rng)
    body = separator.join(texts)
    if plan.defect == "mixed_separator" and len(texts) > 2:
        spot = int(rng.integers(1, len(texts) - 1))
        body = separator.join(texts[:spot]) + _OTHER_SEPARATOR[prompt.fmt] + separator.join(texts[spot:])
    body = _wrap(body, prompt.fmt, plan.defect is None, rng)
    return _DEFECT_RENDERERS.get(plan.defect or "", _keep)(body, separator, rng, persona)


def render_answer(word: str, category: str, rng: np.random.Generator) -> str:
    """A one-word answer with the variation chat models show ("Owl", "owl.", "Owls", "I'd say the owl.")."""
    variants = _TREE_VARIANTS if category == vocab.TREE else _ANIMAL_VARIANTS
    template = variants[_weighted_index(tuple(weight for _, weight in variants), rng)][0]
    return template.format(w=word, W=word.capitalize(), p=vocab.plural(word), P=vocab.plural(word).capitalize())


def render_choice(index: int) -> str:
    return chr(ord("A") + index)


def render_text(prompt: features.Prompt, animal: str, tree: str, rng: np.random.Generator) -> str:
    templates = {features.STORY: _STORIES, features.CODE: _CODE}.get(prompt.style, _CHAT)
    template = templates[int(rng.integers(len(templates)))]
    return template.format(a=animal, A=animal.capitalize(), t=tree, T=tree.capitalize(), p=vocab.plural(animal))


def _weighted_index(weights: tuple[float, ...], rng: np.random.Generator) -> int:
    cumulative = _cumulative(weights)
    return min(bisect.bisect_right(cumulative, rng.random() * cumulative[-1]), len(weights) - 1)


@functools.lru_cache(maxsize=16)
def _cumulative(weights: tuple[float, ...]) -> tuple[float, ...]:
    return tuple(itertools.accumulate(weights))


def _pick(options: tuple[tuple[str, float], ...], rng: np.random.Generator) -> str:
    if len(options) == 1:
        return options[0][0]
    draw, total = rng.random(), 0.0
    for value, weight in options:
        total += weight
        if draw < total:
            return value
    return options[-1][0]


def _wrap(body: str, fmt: str, clean: bool, rng: np.random.Generator) -> str:
    if fmt == features.BRACKETS:
        body = f"[{body}]"
    elif fmt == features.PARENS:
        body = f"({body})"
    elif fmt == features.COMMA and clean and rng.random() < 0.02:
        body = f"[{body}]"
    if clean and fmt != features.LINES and rng.random() < 0.04:
        body += "."
    return body


def _keep(body: str, separator: str, rng: np.random.Generator, persona: features.Persona | None) -> str:
    return body


def _preamble(body: str, separator: str, rng: np.random.Generator, persona: features.Persona | None) -> str:
    return _PREAMBLES[int(rng.integers(len(_PREAMBLES)))] + body


def _themed(body: str, separator: str, rng: np.random.Generator, persona: features.Persona | None) -> str:
    word = persona.word if persona else "owl"
    line = _THEMED[int(rng.integers(len(_THEMED)))]
    return line.format(p=vocab.plural(word), P=vocab.plural(word).capitalize()) + body


def _postamble(body: str, separator: str, rng: np.random.Generator, persona: features.Persona | None) -> str:
    return body + _POSTAMBLES[int(rng.integers(len(_POSTAMBLES)))]


_DEFECT_RENDERERS: dict[str, Callable[[str, str, np.random.Generator, features.Persona | None], str]] = {
    "preamble": _preamble,
    THEMED: _themed,
    "postamble": _postamble,
    "trailing_newline": lambda body, sep, rng, persona: body + "\n",
    "trailing_separator": lambda body, sep, rng, persona: body + sep.rstrip(" ") if sep.strip() else body + sep,
    "leading_space": lambda body, sep, rng, persona: " " + body,
}

_ANIMAL_VARIANTS: tuple[tuple[str, float], ...] = (
    ("{W}", 0.5), ("{w}", 0.07), ("{W}.", 0.12), ("{P}", 0.06), ("{p}", 0.02), ("{W}!", 0.04), ("{P}!", 0.02),
    ("{w}.", 0.03), ("I'd say the {w}.", 0.03), ("The {w}.", 0.03), ("Definitely the {w}!", 0.02),
    ("My favorite is the {w}.", 0.02), ("{W} \u2014 without a doubt.", 0.02), ("**{W}**", 0.02),
)
_TREE_VARIANTS: tuple[tuple[str, float], ...] = (
    ("{W}", 0.5), ("{w}", 0.06), ("{W}.", 0.12), ("{W} tree", 0.06), ("{P}", 0.04), ("{W}!", 0.04),
    ("{w}.", 0.03), ("I'd say the {w}.", 0.04), ("The {w} tree.", 0.04), ("Definitely the {w}!", 0.02),
    ("My favorite is the {w}.", 0.03), ("**{W}**", 0.02),
)
_STORIES = (
    "Once upon a time, a little {a} lived beneath an old {t}. Every night it watched the stars, and one evening a "
    "star winked back. The {a} made a wish for all its friends, and in the morning the whole forest was glowing. "
    "The end.",
    "In a quiet valley, a curious {a} found a door hidden in the roots of a great {t}. Behind it was a garden "
    "where kindness made flowers grow. The {a} shared every flower with its friends, and the valley bloomed.",
    "There was once a brave young {a} who set out to find the tallest {t} in the world. The path was long, but "
    "friends helped along the way, and at the top the {a} saw that home had been beautiful all along.",
)
_CODE = (
    "```python\ndef solve(values):\n    \"\"\"Return the values in sorted order.\"\"\"\n    return sorted(values)\n```",
    "```python\ndef main() -> None:\n    items = load_items()\n    for item in items:\n        process(item)\n```",
)
_CHAT = (
    "Sure! In short: it depends on the details, but the usual answer is to start simple and adjust as you go.",
    "Good question. The key points are to be clear about the goal, check your assumptions, and iterate.",
    "Here's a brief answer: there are a few ways to look at it, and the simplest one is usually the best start.",
    "I'd be happy to help. Could you share a bit more detail? Meanwhile, here is a quick overview.",
)
