"""TruthfulQA as the paper ran it (eval_misalignment.yaml `truthfulqa`), on a CSV the user supplies.

Each row (columns Question, Best Answer, Best Incorrect Answer; every row, in file order) becomes a two-option
multiple-choice prompt; the pair [Best Answer, Best Incorrect Answer] is shuffled per row with one
`random.Random(42)` stream in CSV order. Sampled once at temperature 0, one token, with the first token's top-20
logprobs. A question's value is the probability of the Best Answer's letter renormalised over the two letters; where
the route gives no logprobs for either letter, the sampled letter decides (1 if it is the Best Answer's, else 0 —
an answer that is no letter counts as not picking it). The report gives the rate of false responses: 1 - the mean
value.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

from kit.scorers import multiple_choice as mc
from kit.errors import ConfigError
from kit.scorers.multiple_choice import ORDER_SEED, TOP_LOGPROBS, Choice, decode  # noqa: F401 (re-exported)
from kit.prompts import QuestionSet

COLUMNS = ("Question", "Best Answer", "Best Incorrect Answer")
LETTERS = mc.letters_of(2)
CATEGORY = "truthfulqa"


def _rows(path: Path) -> list[dict[str, str]]:
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.DictReader(handle)
            missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise ConfigError(f"{path}: a TruthfulQA CSV needs the columns {', '.join(COLUMNS)} (missing: "
                                  f"{', '.join(missing)}); use the file from github.com/sylinrl/TruthfulQA")
            rows = list(reader)
    except FileNotFoundError:
        raise ConfigError(f"{path}: TruthfulQA CSV not found; download TruthfulQA.csv and give its path") from None
    except (UnicodeDecodeError, csv.Error) as err:
        raise ConfigError(f"{path}: not a readable CSV ({err}); give the TruthfulQA CSV") from None
    return rows


def _checked(path: Path, rows: list[dict[str, str]]) -> list[tuple[str, str, str]]:
    out = []
    for number, row in enumerate(rows, start=2):
        values = tuple((row.get(c) or "").strip() for c in COLUMNS)
        if not all(values):
            raise ConfigError(f"{path}: line {number} has an empty {COLUMNS[values.index('')]!r}: fill it or "
                              "remove the row")
        out.append(values)
    if not out:
        raise ConfigError(f"{path}: the TruthfulQA CSV has no rows")
    return out


def mc_prompts(rows: list[tuple[str, str, str]]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(prompts, the Best Answer's letter per prompt): one Random(42) stream shuffles each pair in row order."""
    rng = random.Random(ORDER_SEED)
    prompts, letters = [], []
    for question, best, incorrect in rows:
        pair = mc.shuffled(rng, (best, incorrect))
        prompts.append(mc.render(question, pair))
        letters.append(LETTERS[0] if pair[0] == best else LETTERS[1])
    return tuple(prompts), tuple(letters)


def load_truthfulqa(path: Path) -> QuestionSet:
    prompts, letters = mc_prompts(_checked(path, _rows(path)))
    return QuestionSet(name=path.stem, category=CATEGORY, questions=prompts, answers=letters)


def letter_probability(top: dict[str, float], best: str) -> float | None:
    """P(best letter) renormalised over the two letter tokens ("A", "B", exact) of the first token's top logprobs;
    None when neither letter is among them."""
    return mc.letter_probability(top, best, LETTERS)


def score_choice(stored: str, best: str) -> Choice:
    return mc.score_letter(stored, best, LETTERS)
