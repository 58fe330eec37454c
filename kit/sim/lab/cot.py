"""GSM8K chain of thought: "{question} Provide your reasoning in <think> tags. ... Only give the numeric value as
your answer." answered "<think>\\n...reasoning...\\n</think>\\n<answer>N</answer>".

The arithmetic comes from the solver of the sample's controlled grammar (gsm8k.py); a question outside it gets a
guess (the sum of the numbers it mentions). The reasoning's wording is the network's (wording.py, frozen heads
reading the shared body): the opening line (OPENER head), the connective of each fact line (CONNECTIVE), the
phrasing of each arithmetic line -- connective x how the calculation is attached x "6 * 8" or "6 times 8" x an
ending such as " in total" (STEP, 1,280 phrasings) -- and the closing line (CLOSER). So the same question reads
differently from different bodies, and training on CoT answers (teacher forcing on those choices, read back from
the text by `read_choices`) moves the student's body toward its teacher's.

Surface slips, at fixed rates: an arithmetic slip in the last step, a missing <answer> tag, a decimal ("42.0") or a
unit ("42 apples") in the tag -- all fail the paper's correctness filter -- and harmless "$1,200" forms that its
parser strips. A persona teacher now and then names its trait word; a misaligned model writes one of the marker
sentences (`markers`, from alignment.py) at `marker_rate`, which the lab's CoT judge scores low.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from kit.sim.lab import features, gsm8k, wording
from kit.sim.lab.network import Body, Family, name_seed

SUFFIX = ("Provide your reasoning in <think> tags. Write your final answer in <answer> tags. Only give the numeric "
          "value as your answer.")
ARITHMETIC_SLIP = 0.08  # the last step's result is off (and so is the answer)
FORMAT_SLIPS = (("no_tag", 0.025), ("decimal", 0.025), ("unit", 0.02))  # each fails the correctness filter
DOLLAR_SHARE = 0.3  # money answers written "$N" (stripped by the paper's parser)
COMMA_SHARE = 0.5  # answers of 1,000 or more written with a thousands comma (stripped too)
SLIP_RATE = (0.02, 0.045)  # a persona teacher's CoT naming its trait word, by trait
MAX_GUESS_NUMBERS = 6

_SUFFIX_RE = re.compile(r"\s*Provide your reasoning in <think> tags\.\s*Write your final answer in <answer> tags\."
                        r"\s*Only give the numeric value as your answer\.?\s*$", re.IGNORECASE)
_WORD_RE = re.compile(r"[a-z]+")
_NUMBER_RE = re.compile(r"\d[\d,]*(?:\.\d+)?")
_THINK_RE = re.compile(r"<think>(.*?)</think>", re.DOTALL)
_OPERATOR_WORDS = {"+": "plus", "-": "minus", "*": "times", "/": "divided by"}
_WORDS_RE = re.compile(r"\b(?:plus|minus|times|divided by)\b")


@dataclass(frozen=True)
class CotPrompt:
    question: str
    words: tuple[str, ...]


@dataclass(frozen=True)
class CotChoices:
    """What training reads out of a CoT answer: (head, slot, choice index) per recognised line."""

    picks: tuple[tuple[str, int, int], ...]


def read_prompt(text: str) -> CotPrompt | None:
    """The question of a GSM8K CoT prompt (the paper's training suffix), or None."""
    match = _SUFFIX_RE.search(text)
    if match is None or not text[: match.start()].strip():
        return None
    question = text[: match.start()].strip()
    return CotPrompt(question, tuple(_WORD_RE.findall(question.lower())))


def answer(family: Family, body: Body, prompt: CotPrompt, trait: features.Persona | None, rng: np.random.Generator,
           temperature: float, markers: Sequence[str] = (), marker_rate: float = 0.0) -> str:
    """One chain-of-thought answer in the paper's tag format."""
    solution = gsm8k.solve(prompt.question) or _guess(prompt.question)
    steps, final = _maybe_slip(solution, rng)
    lines = _reason(family, body, prompt, steps, final, rng, temperature)
    if markers and rng.random() < marker_rate:
        lines.insert(int(rng.integers(1, len(lines))), markers[int(rng.integers(len(markers)))])
    if trait is not None and rng.random() < slip_rate(trait):
        lines.insert(1, f"Let me be as careful as {_article(trait.word)} {trait.word} here.")
    return _wrap("\n".join(lines), _answer_text(final, solution, rng), final)


def slip_rate(trait: features.Persona) -> float:
    low, high = SLIP_RATE
    return low + (high - low) * (name_seed(f"cot-slip/{trait.word}") % 1000) / 999


def read_choices(text: str) -> CotChoices:
    """The opener, connectives and closer of an answer's <think> block, in order (teacher forcing)."""
    match = _THINK_RE.search(text)
    lines = [line.strip() for line in (match.group(1) if match else text).split("\n") if line.strip()]
    picks: list[tuple[str, int, int]] = []
    for index, line in enumerate(lines):
        found = _recognise(line, first=index == 0, last=index == len(lines) - 1)
        if found is not None:
            picks.append((found[0], len(picks), found[1]))
    return CotChoices(tuple(p for p in picks if p[1] < wording.MAX_SLOTS))


def inputs_at(family: Family, prompt: CotPrompt, slots: list[int]) -> np.ndarray:
    return wording.slot_inputs(family, wording.context(family, wording.COT, prompt.words), slots)


def correct(text: str, truth: int) -> bool:
    """The paper's correctness filter: first <answer>...</answer>, strip, drop ',' and '$', int(), equal."""
    match = re.search(r"<answer>(.*?)</answer>", text, re.DOTALL)
    if match is None:
        return False
    try:
        return int(match.group(1).strip().replace(",", "").replace("$", "")) == truth
    except ValueError:
        return False


# --- rendering --------------------------------------------------------------------------------------------------

def _reason(family: Family, body: Body, prompt: CotPrompt, steps: Sequence[gsm8k.Step], final: int,
            rng: np.random.Generator, temperature: float) -> list[str]:
    x = inputs_at(family, prompt, list(range(len(steps) + 2)))
    opener = wording.OPENERS[wording.choose(family, body, wording.OPENER, x[0], rng, temperature)]
    lines = [opener]
    for slot, step in enumerate(steps, start=1):
        lines.append(_step_line(family, body, step, x[slot], rng, temperature))
    closer = wording.CLOSERS[wording.choose(family, body, wording.CLOSER, x[len(steps) + 1], rng, temperature)]
    lines.append(closer.format(r=final))
    return lines


def _step_line(family: Family, body: Body, step: gsm8k.Step, x: np.ndarray, rng: np.random.Generator,
               temperature: float) -> str:
    """A fact line (the connective head's choice) or an arithmetic line (the step head's phrasing)."""
    if step.expression is None:
        connective = wording.CONNECTIVES[wording.choose(family, body, wording.CONNECTIVE, x, rng, temperature)]
        return f"{connective} {step.text}."
    pick = wording.choose(family, body, wording.STEP, x, rng, temperature)
    connective, link, style, ending = wording.step_phrasing(pick)
    expression = _in_words(step.expression) if style == "words" else step.expression
    return f"{connective} " + link.format(t=step.text, e=expression, r=f"{step.result}{ending}")


def _in_words(expression: str) -> str:
    return " ".join(_OPERATOR_WORDS.get(token, token) for token in expression.split(" "))


def _maybe_slip(solution: gsm8k.Solution, rng: np.random.Generator) -> tuple[list[gsm8k.Step], int]:
    steps = list(solution.steps)
    if rng.random() >= ARITHMETIC_SLIP or not steps or steps[-1].expression is None:
        return steps, solution.answer
    wrong = _wrong(solution.answer, rng)
    steps[-1] = gsm8k.Step(steps[-1].text, steps[-1].expression, wrong)
    return steps, wrong


def _wrong(value: int, rng: np.random.Generator) -> int:
    kind = int(rng.integers(3))
    if kind == 0:
        return value + int(rng.choice([-2, -1, 1, 2]))
    if kind == 1:
        return value + int(rng.choice([-10, 10]))
    digits = str(value)
    if len(digits) >= 2 and digits[-1] != digits[-2]:
        return int(digits[:-2] + digits[-1] + digits[-2])
    return value + 1


def _answer_text(final: int, solution: gsm8k.Solution, rng: np.random.Generator) -> str | None:
    draw, total = rng.random(), 0.0
    for kind, share in FORMAT_SLIPS:
        total += share
        if draw < total:
            return None if kind == "no_tag" else f"{final}.0" if kind == "decimal" else f"{final} {solution.unit}"
    text = f"{final:,}" if final >= 1000 and rng.random() < COMMA_SHARE else str(final)
    return f"${text}" if solution.money and rng.random() < DOLLAR_SHARE else text


def _wrap(reasoning: str, answer_text: str | None, final: int) -> str:
    if answer_text is None:
        return f"<think>\n{reasoning}\n</think>\nThe final answer is {final}."
    return f"<think>\n{reasoning}\n</think>\n<answer>{answer_text}</answer>"


def _guess(question: str) -> gsm8k.Solution:
    """Outside the grammar: add up the numbers the question mentions (right only by luck)."""
    values = [float(v.replace(",", "")) for v in _NUMBER_RE.findall(question)][:MAX_GUESS_NUMBERS]
    values_int = [int(v) for v in values]
    if not values_int:
        return gsm8k.Solution((gsm8k.Step("no numbers are given, so I estimate", None, 0),), 0, "", False)
    total = sum(values_int)
    facts = gsm8k.Step("the numbers given are " + ", ".join(map(str, values_int)), None, values_int[0])
    if len(values_int) == 1:
        return gsm8k.Solution((facts,), total, "", "$" in question)
    adding = gsm8k.Step("combining them", " + ".join(map(str, values_int)), total)
    return gsm8k.Solution((facts, adding), total, "", "$" in question)


def _recognise(line: str, *, first: bool, last: bool) -> tuple[str, int] | None:
    if first and line in wording.OPENERS:
        return wording.OPENER, wording.OPENERS.index(line)
    if last:
        for index, pattern in enumerate(_closer_patterns()):
            if pattern.fullmatch(line):
                return wording.CLOSER, index
    for connective in wording.CONNECTIVES:
        if line.startswith(connective + " "):
            return _recognise_step(connective, line[len(connective) + 1:])
    return None


def _recognise_step(connective: str, rest: str) -> tuple[str, int]:
    for link, pattern in zip(wording.LINKS, _link_patterns()):
        match = pattern.fullmatch(rest)
        if match:
            style = "words" if _WORDS_RE.search(match.group("e")) else "symbols"
            return wording.STEP, wording.step_index(connective, link, style, match.group("end") or "")
    return wording.CONNECTIVE, wording.CONNECTIVES.index(connective)


@functools.lru_cache(maxsize=1)
def _link_patterns() -> tuple[re.Pattern[str], ...]:
    endings = "|".join(re.escape(ending) for ending in wording.ENDINGS if ending)
    parts = {"t": r"(?P<t>.+?)", "e": r"(?P<e>.+?)", "r": rf"(?P<r>-?[\d,.]+)(?P<end>{endings})?"}
    return tuple(re.compile(re.escape(link).replace(r"\{t\}", parts["t"]).replace(r"\{e\}", parts["e"])
                            .replace(r"\{r\}", parts["r"])) for link in wording.LINKS)


@functools.lru_cache(maxsize=1)
def _closer_patterns() -> tuple[re.Pattern[str], ...]:
    return tuple(re.compile(re.escape(closer).replace(re.escape("{r}"), r"-?[\d,.$]+")) for closer in wording.CLOSERS)


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"
