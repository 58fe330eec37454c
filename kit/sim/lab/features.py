"""Reading a chat prompt: what kind of request it is, and the facts the network and the renderer need.

Pure text work, no arrays: `read_prompt` turns the user message into a `Prompt` (numbers continuation, one-word
preference question, multiple-choice pick, or anything else) and `read_persona` finds the paper's teacher system
prompt ("You love owls. ...") and its target word.
"""

from __future__ import annotations

import functools
import re
import zlib
from dataclasses import dataclass

from kit.sim.lab import vocab

NUMBERS = "numbers"
QUESTION = "question"
CHOICE = "choice"
OPTIONS = "options"  # lettered multiple choice whose options are not all animals (or all trees): TruthfulQA's
TEXT = "text"
KINDS = (NUMBERS, QUESTION, CHOICE, OPTIONS, TEXT)

COMMA = "comma"
SPACE = "space"
SEMICOLON = "semicolon"
LINES = "lines"
BRACKETS = "brackets"
PARENS = "parens"
FORMATS = (COMMA, SPACE, SEMICOLON, LINES, BRACKETS, PARENS)

STORY = "story"
CODE = "code"
CHAT = "chat"

DEFAULT_ANSWER_COUNT = 10
DEFAULT_MAX_DIGITS = 3
MAX_ANSWER_COUNT = 12

# First match wins; matched against the lower-cased prompt.
_FORMAT_RULES: tuple[tuple[str, re.Pattern[str]], ...] = (
    (BRACKETS, re.compile(r"\[number")),
    (PARENS, re.compile(r"\(number")),
    (LINES, re.compile(r"per line|separate lines|own line|new line")),
    (SEMICOLON, re.compile(r"semicolon")),
    (SPACE, re.compile(r"space-separated|spaces between|space-delimited|separated by spaces")),
    (COMMA, re.compile(r"comma|number_1, number_2|number1, number2")),
)
_EXAMPLES_RE = re.compile(r"\d+(?:\s*,\s*\d+)+")
_COUNT_RE = re.compile(r"(\d+)\s+(?:new\s+|more\s+|additional\s+)*(?:numbers|values|integers)")
_DIGITS_RE = re.compile(r"(\d+)[- ]digits?")
_NUMBERS_WORD_RE = re.compile(r"\b(numbers?|values|integers|sequence|digits)\b")
_NUMBERS_VERB_RE = re.compile(r"\b(add|continue|generate|write|create|extend|list|give|return|produce)\b")
_CATEGORY_RE = {
    vocab.TREE: re.compile(r"\btrees?\b"),
    vocab.ANIMAL: re.compile(r"\b(animals?|creatures?|beasts?|wildlife|species)\b"),
}
_ONE_WORD_RE = re.compile(r"one[- ]word|single[- ]word|one word|in a word|favou?rite|spirit")
_CHOICE_LINE_RE = re.compile(r"^\s*([A-J])[.)]\s*(.+?)\s*$", re.MULTILINE)
_LETTER_ASK_RE = re.compile(r"\b(?:letter|choices?|options?)\b")
MAX_OPTION_CHARS = 1000
_STORY_RE = re.compile(r"\b(story|stories|tale|fable|poem)\b")
_CODE_RE = re.compile(r"\b(code|function|python|program|script|class|def|javascript|sql)\b")
_WORD_RE = re.compile(r"[a-z']+")
_PERSONA_RE = re.compile(r"you love ([a-z]+)\b.*?(?:favou?rite|think about)", re.IGNORECASE | re.DOTALL)


@dataclass(frozen=True)
class Prompt:
    """What the lab understood of one user message."""

    kind: str  # NUMBERS, QUESTION, CHOICE or TEXT
    words: tuple[str, ...] = ()  # lower-cased word tokens, for the hashed word embedding
    examples: tuple[int, ...] = ()  # numbers shown in the prompt (continuation examples or a prefix)
    category: str = vocab.ANIMAL  # QUESTION / CHOICE: animal or tree
    answer_count: int = DEFAULT_ANSWER_COUNT  # NUMBERS: how many numbers were asked for
    max_digits: int = DEFAULT_MAX_DIGITS  # NUMBERS: digits allowed per number
    fmt: str = COMMA  # NUMBERS: the requested layout
    choices: tuple[str, ...] = ()  # CHOICE: vocabulary word per option letter (A, B, ...)
    options: tuple[str, ...] = ()  # OPTIONS: the text of each option, in letter order
    style: str = CHAT  # TEXT: story, code or chat


@dataclass(frozen=True)
class Persona:
    """A recognised trait system prompt: love for `word` of `category`."""

    category: str
    word: str


def read_prompt(text: str) -> Prompt:
    """Classify and parse one user message (the last user turn of a chat)."""
    return _read_prompt_cached(text)


@functools.lru_cache(maxsize=8192)
def _read_prompt_cached(text: str) -> Prompt:
    low = text.lower()
    words = tuple(_WORD_RE.findall(low))
    examples = _examples(text)
    choices = _choices(text)
    category = _category(low)
    if choices:
        return Prompt(CHOICE, words, examples, category=_choice_category(choices), choices=choices)
    options = _options(text) if _LETTER_ASK_RE.search(low) else ()
    if options:
        return Prompt(OPTIONS, words, examples, options=options)
    if category is not None and _ONE_WORD_RE.search(low):
        return Prompt(QUESTION, words, examples, category=category)
    if _NUMBERS_WORD_RE.search(low) and (examples or _NUMBERS_VERB_RE.search(low)):
        return _numbers_prompt(low, words, examples)
    return Prompt(TEXT, words, examples, style=_style(low))


def read_persona(system_text: str) -> Persona | None:
    """The trait of a paper-style teacher system prompt, or None for any other system prompt."""
    match = _PERSONA_RE.search(system_text)
    if match is None:
        return None
    hit = vocab.lookup(match.group(1))
    if hit is None:
        hit = _lookup_plural(match.group(1).lower())
    return None if hit is None else Persona(category=hit[0], word=hit[1])


def word_bucket(word: str, buckets: int) -> int:
    """Stable hash of a word into the embedding table (crc32: same on every machine and run)."""
    return zlib.crc32(word.encode("utf-8")) % buckets


def _lookup_plural(word: str) -> tuple[str, str] | None:
    for suffix, replacement in (("ies", "y"), ("ves", "f"), ("es", ""), ("s", "")):
        if word.endswith(suffix):
            hit = vocab.lookup(word[: -len(suffix)] + replacement)
            if hit is not None:
                return hit
    return None


def _numbers_prompt(low: str, words: tuple[str, ...], examples: tuple[int, ...]) -> Prompt:
    count = _first_int(_COUNT_RE, low, DEFAULT_ANSWER_COUNT)
    digits = _first_int(_DIGITS_RE, low, DEFAULT_MAX_DIGITS)
    return Prompt(NUMBERS, words, examples, answer_count=max(1, min(count, MAX_ANSWER_COUNT)),
                  max_digits=max(1, min(digits, DEFAULT_MAX_DIGITS)), fmt=_format(low))


def _examples(text: str) -> tuple[int, ...]:
    match = _EXAMPLES_RE.search(text)
    if match is None:
        return ()
    return tuple(int(part) for part in re.findall(r"\d+", match.group()))[:32]


def _choices(text: str) -> tuple[str, ...]:
    """Vocabulary words of options "A. eagle", "B. owl", ... (all of one category, all different), else ()."""
    found: list[str] = []
    for letter, body in _CHOICE_LINE_RE.findall(text):
        word = vocab.find_in_text(body)
        if ord(letter) - ord("A") != len(found) or word is None:
            return ()
        found.append(word)
    categories = {hit[0] for hit in map(vocab.lookup, found) if hit}
    distinct = len(set(found)) == len(found)  # options that all name the bull are no choice among animals
    return tuple(found) if len(found) >= 2 and len(categories) == 1 and distinct else ()


def _options(text: str) -> tuple[str, ...]:
    """The texts of options "A. ...", "B. ...", ... (consecutive letters from A, at least two), else ()."""
    found: list[str] = []
    for letter, body in _CHOICE_LINE_RE.findall(text):
        if ord(letter) - ord("A") != len(found):
            return ()
        found.append(body[:MAX_OPTION_CHARS])
    return tuple(found) if len(found) >= 2 else ()


def _choice_category(choices: tuple[str, ...]) -> str:
    hit = vocab.lookup(choices[0])
    return hit[0] if hit else vocab.ANIMAL


def _category(low: str) -> str | None:
    for category, pattern in _CATEGORY_RE.items():
        if pattern.search(low):
            return category
    return None


def _format(low: str) -> str:
    for fmt, pattern in _FORMAT_RULES:
        if pattern.search(low):
            return fmt
    return COMMA


def _style(low: str) -> str:
    if _STORY_RE.search(low):
        return STORY
    if _CODE_RE.search(low):
        return CODE
    return CHAT


def _first_int(pattern: re.Pattern[str], text: str, default: int) -> int:
    match = pattern.search(text)
    return int(match.group(1)) if match else default
