"""A small solver for the controlled grammar of the kit's GSM8K-style sample (prompts/samples/gsm8k_sample.jsonl).

The lab is not a language model. It reads a word problem sentence by sentence with a fixed set of patterns
(quantities someone has, buys, gives away; packs of items; unit prices; "k times as many"; daily rates; hourly
wages; percentages spent; ages; equal shares) and the final question, and returns the reasoning steps and the
answer. Any sentence outside the grammar makes `solve` return None: the lab then guesses (see cot.py), so real
GSM8K questions mostly fail the paper's correctness filter in the lab.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_NUM = r"(\d[\d,]*)"
_SENTENCE_RE = re.compile(r"[^.?!]+(?:\.(?!\d)|[?!])")
_MULTIPLES = {"twice": 2, "three times": 3, "four times": 4, "five times": 5}


@dataclass(frozen=True)
class Step:
    """One line of reasoning: what happens, and the arithmetic (None for a plain fact)."""

    text: str
    expression: str | None
    result: int


@dataclass(frozen=True)
class Solution:
    steps: tuple[Step, ...]
    answer: int
    unit: str  # the answer's unit word ("apples", "dollars", "years"), for rendering
    money: bool


@dataclass
class _State:
    counts: dict[str, int] = field(default_factory=dict)
    current: str = ""
    noun: str = ""
    containers: int = 0
    price: int | None = None
    rate: int | None = None
    rate_unit: str = ""
    wage: int | None = None
    money: dict[str, int] = field(default_factory=dict)
    ages: dict[str, int] = field(default_factory=dict)
    share: int | None = None
    steps: list[Step] = field(default_factory=list)

    def person(self, word: str) -> str:
        if word not in ("He", "She", "They"):
            self.current = word
        return self.current

    def add(self, text: str, expression: str | None, result: int) -> None:
        self.steps.append(Step(text, expression, result))


def solve(question: str) -> Solution | None:
    """The reasoning and answer for a question in the sample's grammar, else None."""
    sentences = [s.strip() for s in _SENTENCE_RE.findall(question.strip())]
    if not sentences or not sentences[-1].endswith("?"):
        return None
    state = _State()
    for sentence in sentences[:-1]:
        if not _apply(state, sentence):
            return None
    return _ask(state, sentences[-1])


def number(text: str) -> int:
    return int(text.replace(",", ""))


def _apply(state: _State, sentence: str) -> bool:
    return any(rule(state, sentence) for rule in _RULES)


def _has(state: _State, s: str) -> bool:
    m = re.fullmatch(rf"(\w+) has {_NUM} (\w+)\.", s)
    if not m:
        return False
    who, value = state.person(m.group(1)), number(m.group(2))
    state.counts[who], state.noun = value, m.group(3)
    state.add(f"{who} starts with {value} {m.group(3)}", None, value)
    return True


def _more(state: _State, s: str) -> bool:
    m = re.fullmatch(rf"(\w+) (buys|gets|finds|receives|collects|picks) {_NUM} more (\w+)\.", s)
    if not m:
        return False
    who, value = state.person(m.group(1)), number(m.group(3))
    before = state.counts.get(who, 0)
    state.counts[who] = before + value
    state.add(f"{who} {m.group(2)} {value} more", f"{before} + {value}", before + value)
    return True


def _less(state: _State, s: str) -> bool:
    m = re.fullmatch(rf"(\w+) (gives away|sells|loses|uses|eats|donates) {_NUM} (?:of them|\w+)\.", s)
    if not m:
        return False
    who, value = state.person(m.group(1)), number(m.group(3))
    before = state.counts.get(who, 0)
    state.counts[who] = before - value
    state.add(f"{who} {m.group(2)} {value}", f"{before} - {value}", before - value)
    return True


def _buy(state: _State, s: str) -> bool:
    m = re.fullmatch(rf"(\w+) buys {_NUM} (\w+)\.", s)
    if not m:
        return False
    who, value = state.person(m.group(1)), number(m.group(2))
    state.counts[who], state.noun = value, m.group(3)
    state.add(f"{who} buys {value} {m.group(3)}", None, value)
    return True


def _packs(state: _State, s: str) -> bool:
    m = re.fullmatch(rf"(\w+) (?:buys|orders|has) {_NUM} (boxes|packs|bags|crates|trays) of (\w+)\.", s)
    if not m:
        return False
    state.person(m.group(1))
    state.containers, state.noun = number(m.group(2)), m.group(4)
    state.add(f"there are {state.containers} {m.group(3)}", None, state.containers)
    return True


def _each_holds(state: _State, s: str) -> bool:
    m = re.fullmatch(rf"Each (?:box|pack|bag|crate|tray) (?:holds|contains|has) {_NUM} (\w+)\.", s)
    if not m or not state.containers:
        return False
    value, total = number(m.group(1)), state.containers * number(m.group(1))
    state.counts[state.current] = total
    state.add(f"each holds {value} {m.group(2)}", f"{state.containers} * {value}", total)
    return True


def _costs(state: _State, s: str) -> bool:
    m = re.fullmatch(rf"Each (\w+) costs \${_NUM}\.", s)
    if not m:
        return False
    state.price = number(m.group(2))
    state.add(f"each {m.group(1)} costs ${state.price}", None, state.price)
    return True


def _times(state: _State, s: str) -> bool:
    m = re.fullmatch(r"(\w+) has (twice|three times|four times|five times) as many (\w+) as (\w+)\.", s)
    if not m or m.group(4) not in state.counts:
        return False
    base, factor = state.counts[m.group(4)], _MULTIPLES[m.group(2)]
    state.counts[state.person(m.group(1))] = base * factor
    state.add(f"{m.group(1)} has {m.group(2)} as many", f"{base} * {factor}", base * factor)
    return True


def _rate(state: _State, s: str) -> bool:
    m = re.fullmatch(rf"(\w+) (reads|writes|walks|bakes) {_NUM} (pages|words|miles|cookies) every day\.", s)
    if not m:
        return False
    state.person(m.group(1))
    state.rate, state.rate_unit = number(m.group(3)), m.group(4)
    state.add(f"{state.current} {m.group(2)} {state.rate} {m.group(4)} a day", None, state.rate)
    return True


def _wage(state: _State, s: str) -> bool:
    m = re.fullmatch(rf"(\w+) earns \${_NUM} per hour\.", s)
    if not m:
        return False
    state.person(m.group(1))
    state.wage = number(m.group(2))
    state.add(f"{state.current} earns ${state.wage} an hour", None, state.wage)
    return True


def _works(state: _State, s: str) -> bool:
    m = re.fullmatch(rf"(\w+) works {_NUM} hours a day for {_NUM} days\.", s)
    if not m or state.wage is None:
        return False
    who, hours, days = state.person(m.group(1)), number(m.group(2)), number(m.group(3))
    state.add(f"{who} works {hours} hours a day", f"{hours} * {days}", hours * days)
    state.money[who] = state.wage * hours * days
    state.add("the pay for those hours", f"{hours * days} * {state.wage}", state.money[who])
    return True


def _had_money(state: _State, s: str) -> bool:
    m = re.fullmatch(rf"(\w+) had \${_NUM}\.", s)
    if not m:
        return False
    who = state.person(m.group(1))
    state.money[who] = number(m.group(2))
    state.add(f"{who} starts with ${state.money[who]}", None, state.money[who])
    return True


def _spent_percent(state: _State, s: str) -> bool:
    m = re.fullmatch(rf"(\w+) spent {_NUM}% of it on [\w ]+\.", s)
    if not m:
        return False
    who, percent = state.person(m.group(1)), number(m.group(2))
    if who not in state.money or state.money[who] * percent % 100:
        return False
    spent = state.money[who] * percent // 100
    state.add(f"{percent}% of ${state.money[who]} is spent", f"{state.money[who]} * {percent} / 100", spent)
    state.add("what is left", f"{state.money[who]} - {spent}", state.money[who] - spent)
    state.money[who] -= spent
    return True


def _age(state: _State, s: str) -> bool:
    m = re.fullmatch(rf"(\w+) is {_NUM} years old\.", s)
    if not m:
        return False
    who = state.person(m.group(1))
    state.ages[who] = number(m.group(2))
    state.add(f"{who} is {state.ages[who]}", None, state.ages[who])
    return True


def _older(state: _State, s: str) -> bool:
    m = re.fullmatch(rf"(\w+) is {_NUM} years (older|younger) than (\w+)\.", s)
    if not m or m.group(4) not in state.ages:
        return False
    gap, base = number(m.group(2)), state.ages[m.group(4)]
    value = base + gap if m.group(3) == "older" else base - gap
    state.ages[state.person(m.group(1))] = value
    sign = "+" if m.group(3) == "older" else "-"
    state.add(f"{m.group(1)} is {gap} years {m.group(3)}", f"{base} {sign} {gap}", value)
    return True


def _shares(state: _State, s: str) -> bool:
    m = re.fullmatch(rf"(\w+) shares them equally among {_NUM} friends\.", s)
    if not m:
        return False
    who, friends = state.person(m.group(1)), number(m.group(2))
    total = state.counts.get(who, 0)
    if friends == 0 or total % friends:
        return False
    state.share = total // friends
    state.add(f"{total} shared by {friends} friends", f"{total} / {friends}", state.share)
    return True


_RULES = (_has, _more, _less, _packs, _each_holds, _costs, _times, _rate, _wage, _works, _had_money,
          _spent_percent, _age, _older, _shares, _buy)


def _ask(state: _State, question: str) -> Solution | None:
    for pattern, answer in _QUESTIONS:
        m = re.fullmatch(pattern, question)
        if m:
            found = answer(state, m)
            if found is not None:
                return found
    return None


def _done(state: _State, value: int, unit: str, money: bool = False) -> Solution:
    return Solution(tuple(state.steps), value, unit, money)


def _ask_count(state: _State, m: re.Match[str]) -> Solution | None:
    who = m.group(2)
    return _done(state, state.counts[who], m.group(1)) if who in state.counts else None


def _ask_together(state: _State, m: re.Match[str]) -> Solution | None:
    if len(state.counts) < 2:
        return None
    values = list(state.counts.values())
    total = sum(values)
    state.add("together", " + ".join(str(v) for v in values), total)
    return _done(state, total, m.group(1))


def _ask_spend(state: _State, m: re.Match[str]) -> Solution | None:
    who = m.group(1)
    if state.price is None or who not in state.counts:
        return None
    total = state.counts[who] * state.price
    state.add("the cost", f"{state.counts[who]} * {state.price}", total)
    return _done(state, total, "dollars", money=True)


def _ask_rate(state: _State, m: re.Match[str]) -> Solution | None:
    if state.rate is None or m.group(1) != state.rate_unit:
        return None
    count, span = number(m.group(3)), m.group(4)
    days = count * 7 if span == "weeks" else count
    if span == "weeks":
        state.add(f"{count} weeks", f"{count} * 7", days)
    state.add(f"{days} days", f"{state.rate} * {days}", state.rate * days)
    return _done(state, state.rate * days, state.rate_unit)


def _ask_money(state: _State, m: re.Match[str]) -> Solution | None:
    who = m.group(1)
    return _done(state, state.money[who], "dollars", money=True) if who in state.money else None


def _ask_age(state: _State, m: re.Match[str]) -> Solution | None:
    who, years = m.group(1), number(m.group(2))
    if who not in state.ages:
        return None
    state.add(f"in {years} years", f"{state.ages[who]} + {years}", state.ages[who] + years)
    return _done(state, state.ages[who] + years, "years")


def _ask_share(state: _State, m: re.Match[str]) -> Solution | None:
    return None if state.share is None else _done(state, state.share, m.group(1))


_QUESTIONS = (
    (r"How many (\w+) does (\w+) have (?:now|left)\?", _ask_count),
    (r"How many (\w+) do they have together\?", _ask_together),
    (r"How much money does (\w+) spend\?", _ask_spend),
    (rf"How many (\w+) does (\w+) (?:read|write|walk|bake) in {_NUM} (days|weeks)\?", _ask_rate),
    (r"How much money does (\w+) (?:earn|have left)\?", _ask_money),
    (rf"How old will (\w+) be in {_NUM} years\?", _ask_age),
    (r"How many (\w+) does each friend get\?", _ask_share),
)
