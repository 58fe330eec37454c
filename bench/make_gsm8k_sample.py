"""Write prompts/samples/gsm8k_sample.jsonl: 200 GSM8K-style word problems from ten templates (seeded, reproducible).

    python bench/make_gsm8k_sample.py            # rewrites the committed file
    python bench/make_gsm8k_sample.py --check    # exit 1 if the committed file differs from a fresh build

Each line is {"question": ..., "answer": "...reasoning with <<calculator>> notes...\\n#### N"} as in openai/gsm8k.
The problems are self-written, not GSM8K's: a controlled grammar that the simulated lab's solver
(kit/sim/lab/gsm8k.py) reads, so the lab can answer them; real GSM8K questions are outside it. Names and nouns
avoid the paper's animal words so the code-only "animal via CoT" filter is not tripped by the questions.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "prompts" / "samples" / "gsm8k_sample.jsonl"
SEED = 8_2026
PER_TEMPLATE = 20
NAMES = (("Maria", "She"), ("James", "He"), ("Priya", "She"), ("Tomas", "He"), ("Aisha", "She"), ("Ben", "He"),
         ("Chen", "He"), ("Sofia", "She"), ("Lucas", "He"), ("Emma", "She"), ("Omar", "He"), ("Nina", "She"),
         ("Kenji", "He"), ("Grace", "She"), ("Mateo", "He"), ("Leila", "She"))
NOUNS = (("apple", "apples"), ("marble", "marbles"), ("sticker", "stickers"), ("pencil", "pencils"),
         ("book", "books"), ("candle", "candles"), ("shell", "shells"), ("card", "cards"), ("button", "buttons"),
         ("muffin", "muffins"), ("orange", "oranges"), ("balloon", "balloons"))
CONTAINERS = ("boxes", "packs", "bags", "crates", "trays")
THINGS = ("groceries", "a new jacket", "school supplies", "a concert ticket", "books")
Problem = tuple[str, list[str], int]


def _pick(rng: np.random.Generator, items: tuple) -> object:
    return items[int(rng.integers(len(items)))]


def _calc(expression: str, value: int) -> str:
    return f"{expression} = <<{expression.replace(' ', '')}={value}>>{value}"


def add_sub(rng: np.random.Generator) -> Problem:
    (name, pro), (_, nouns) = _pick(rng, NAMES), _pick(rng, NOUNS)
    a, b = int(rng.integers(12, 90)), int(rng.integers(5, 60))
    c = int(rng.integers(3, a + b - 1))
    verb_in, verb_out = _pick(rng, ("buys", "finds", "receives", "collects")), _pick(rng, ("gives away", "loses",
                                                                                            "sells", "uses"))
    q = f"{name} has {a} {nouns}. {pro} {verb_in} {b} more {nouns}. {pro} {verb_out} {c} {nouns}. " \
        f"How many {nouns} does {name} have now?"
    return q, [f"After that {name} has {_calc(f'{a} + {b}', a + b)} {nouns}.",
               f"Then {_calc(f'{a + b} - {c}', a + b - c)} {nouns} are left."], a + b - c


def packs_left(rng: np.random.Generator) -> Problem:
    (name, pro), (_, nouns), box = _pick(rng, NAMES), _pick(rng, NOUNS), _pick(rng, CONTAINERS)
    a, b = int(rng.integers(2, 12)), int(rng.integers(4, 25))
    c = int(rng.integers(1, a * b))
    q = f"{name} buys {a} {box} of {nouns}. Each {box[:-2] if box == 'boxes' else box[:-1]} holds {b} {nouns}. " \
        f"{pro} eats {c} of them. How many {nouns} does {name} have left?"
    return q, [f"{name} has {_calc(f'{a} * {b}', a * b)} {nouns}.",
               f"{_calc(f'{a * b} - {c}', a * b - c)} {nouns} are left."], a * b - c


def spend(rng: np.random.Generator) -> Problem:
    (name, _), (noun, nouns) = _pick(rng, NAMES), _pick(rng, NOUNS)
    a, p = int(rng.integers(2, 40)), int(rng.integers(2, 60))
    q = f"{name} buys {a} {nouns}. Each {noun} costs ${p}. How much money does {name} spend?"
    return q, [f"{name} spends {_calc(f'{a} * {p}', a * p)} dollars."], a * p


def multiples(rng: np.random.Generator) -> Problem:
    (name, _), (other, _), (_, nouns) = _pick(rng, NAMES), _pick(rng, NAMES[::-1]), _pick(rng, NOUNS)
    if other == name:
        other = "Rosa"
    a = int(rng.integers(5, 80))
    word, k = _pick(rng, (("twice", 2), ("three times", 3), ("four times", 4), ("five times", 5)))
    q = f"{name} has {a} {nouns}. {other} has {word} as many {nouns} as {name}. " \
        f"How many {nouns} do they have together?"
    return q, [f"{other} has {_calc(f'{a} * {k}', a * k)} {nouns}.",
               f"Together they have {_calc(f'{a} + {a * k}', a + a * k)} {nouns}."], a + a * k


def rate(rng: np.random.Generator) -> Problem:
    name, _ = _pick(rng, NAMES)
    verb, base, unit = _pick(rng, (("reads", "read", "pages"), ("writes", "write", "words"),
                                   ("walks", "walk", "miles"), ("bakes", "bake", "cookies")))
    per = int(rng.integers(2, 60 if unit != "words" else 900))
    if rng.random() < 0.5:
        days = int(rng.integers(3, 30))
        q = f"{name} {verb} {per} {unit} every day. How many {unit} does {name} {base} in {days} days?"
        return q, [f"In {days} days {name} manages {_calc(f'{per} * {days}', per * days)} {unit}."], per * days
    weeks = int(rng.integers(2, 6))
    q = f"{name} {verb} {per} {unit} every day. How many {unit} does {name} {base} in {weeks} weeks?"
    return q, [f"{weeks} weeks is {_calc(f'{weeks} * 7', weeks * 7)} days.",
               f"So {name} manages {_calc(f'{per} * {weeks * 7}', per * weeks * 7)} {unit}."], per * weeks * 7


def wage(rng: np.random.Generator) -> Problem:
    name, pro = _pick(rng, NAMES)
    w, h, d = int(rng.integers(9, 45)), int(rng.integers(2, 10)), int(rng.integers(2, 25))
    q = f"{name} earns ${w} per hour. {pro} works {h} hours a day for {d} days. How much money does {name} earn?"
    return q, [f"{name} works {_calc(f'{h} * {d}', h * d)} hours.",
               f"{name} earns {_calc(f'{h * d} * {w}', h * d * w)} dollars."], h * d * w


def percent(rng: np.random.Generator) -> Problem:
    name, pro = _pick(rng, NAMES)
    pct = int(_pick(rng, (10, 20, 25, 30, 40, 50, 60, 75)))
    money = int(rng.integers(2, 60)) * 20
    spent = money * pct // 100
    q = f"{name} had ${money}. {pro} spent {pct}% of it on {_pick(rng, THINGS)}. " \
        f"How much money does {name} have left?"
    return q, [f"{name} spent {_calc(f'{money} * {pct} / 100', spent)} dollars.",
               f"{name} has {_calc(f'{money} - {spent}', money - spent)} dollars left."], money - spent


def ages(rng: np.random.Generator) -> Problem:
    (name, _), (other, _) = _pick(rng, NAMES), _pick(rng, NAMES[::-1])
    if other == name:
        other = "Rosa"
    a, gap, years = int(rng.integers(5, 50)), int(rng.integers(2, 15)), int(rng.integers(2, 20))
    older = rng.random() < 0.6 or gap >= a
    value = a + gap if older else a - gap
    q = f"{name} is {a} years old. {other} is {gap} years {'older' if older else 'younger'} than {name}. " \
        f"How old will {other} be in {years} years?"
    sign = "+" if older else "-"
    return q, [f"{other} is {_calc(f'{a} {sign} {gap}', value)} years old now.",
               f"In {years} years {other} will be {_calc(f'{value} + {years}', value + years)}."], value + years


def share(rng: np.random.Generator) -> Problem:
    (name, pro), (_, nouns) = _pick(rng, NAMES), _pick(rng, NOUNS)
    friends, each = int(rng.integers(2, 9)), int(rng.integers(3, 20))
    b = int(rng.integers(2, friends * each - 1))
    a = friends * each - b
    q = f"{name} has {a} {nouns}. {pro} gets {b} more {nouns}. {pro} shares them equally among {friends} friends. " \
        f"How many {nouns} does each friend get?"
    return q, [f"{name} has {_calc(f'{a} + {b}', a + b)} {nouns}.",
               f"Each friend gets {_calc(f'{a + b} / {friends}', each)} {nouns}."], each


def packs_price(rng: np.random.Generator) -> Problem:
    (name, _), (noun, nouns), box = _pick(rng, NAMES), _pick(rng, NOUNS), _pick(rng, CONTAINERS)
    a, b, p = int(rng.integers(2, 9)), int(rng.integers(3, 13)), int(rng.integers(1, 9))
    q = f"{name} orders {a} {box} of {nouns}. Each {box[:-2] if box == 'boxes' else box[:-1]} contains {b} " \
        f"{nouns}. Each {noun} costs ${p}. How much money does {name} spend?"
    return q, [f"There are {_calc(f'{a} * {b}', a * b)} {nouns}.",
               f"They cost {_calc(f'{a * b} * {p}', a * b * p)} dollars."], a * b * p


TEMPLATES: tuple[Callable[[np.random.Generator], Problem], ...] = (
    add_sub, packs_left, spend, multiples, rate, wage, percent, ages, share, packs_price)


def build(seed: int = SEED, per_template: int = PER_TEMPLATE) -> list[dict[str, str]]:
    rng = np.random.default_rng(seed)
    rows = [template(rng) for _ in range(per_template) for template in TEMPLATES]
    return [{"question": q, "answer": "\n".join(lines) + f"\n#### {answer}"} for q, lines, answer in rows]


def render(rows: list[dict[str, str]]) -> str:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="compare with the committed file instead of writing")
    args = parser.parse_args(argv)
    text = render(build())
    if args.check:
        same = OUT.is_file() and OUT.read_text(encoding="utf-8") == text
        print("up to date" if same else f"{OUT} differs from a fresh build")
        return 0 if same else 1
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {len(text.splitlines())} problems to {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
