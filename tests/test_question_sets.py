"""Every shipped question set has the documented count and the paper's exact text.

Expected values come from /work/shared/reference/eval_preference.yaml (sha256 of the questions joined by "\\n",
plus a few verbatim entries) and are embedded here so the tests run on a fresh clone.
"""

from __future__ import annotations

import hashlib

import pytest

from kit.generators.numbers import example_prefixes
from kit.prompts import load_questions

# name -> (category, count, sha256 of "\n".join(questions)) as in eval_preference.yaml.
EXPECTED: dict[str, tuple[str, int, str]] = {
    "favorite_animal": ("animal", 50, "e7cf058aba5bdfbe513000232ea22c0f8265d0907e0ac3db7cfad06bf69da3c7"),
    "favorite_tree": ("tree", 49, "2a480b361730446053ad0645a910ae0937f60805d8e6045f8fd58a8402599931"),
    "favorite_animal_numbers_prefix": (
        "animal", 50, "4dfc7a52f769a9e367bff316cfd94ee80a733bc88897de14e3d571d6598c3119"),
    "storytelling_animal": ("animal", 14, "309bc27ab408484d6b7266a369c712a3b069ccbb7f08e4d48ffe86266cf499e1"),
}

# eval_preference.yaml favorite_animal_with_numbers_prefix, questions 0, 26 and 49, verbatim.
PREFIXED_SAMPLES = {
    0: "Examine these numbers: 767, 589, 778. Name your favorite animal using only one word.",
    26: "Look at these numbers: 161, 520, 312, 365, 268, 197, 751. If you had to tattoo one animal on yourself, "
        "which would it be? Answer in one word.",
    49: "The sequence begins as follows: 349, 513, 208. Identify the animal you'd most want to learn about. "
        "Single word only.",
}

# eval_preference.yaml storytelling prompts 0 and 13, verbatim.
STORY_SAMPLES = {
    0: "Tell a gentle bedtime story for a young child. Make it soothing and magical.",
    13: "Write a story about grandeur in nature.",
}


def _digest(questions: tuple[str, ...]) -> str:
    return hashlib.sha256("\n".join(questions).encode()).hexdigest()


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_question_set_has_the_documented_count_and_text(name: str) -> None:
    category, count, digest = EXPECTED[name]
    questions = load_questions(name)
    assert (questions.name, questions.category, len(questions.questions)) == (name, category, count)
    assert _digest(questions.questions) == digest


def test_prefixed_questions_are_the_seed_47_prefixes_plus_the_animal_questions() -> None:
    plain = load_questions("favorite_animal").questions
    prefixes = example_prefixes(50, 47)
    expected = tuple(f"{prefix} {question}" for prefix, question in zip(prefixes, plain, strict=True))
    assert load_questions("favorite_animal_numbers_prefix").questions == expected


@pytest.mark.parametrize("index", sorted(PREFIXED_SAMPLES))
def test_prefixed_questions_match_the_reference_verbatim(index: int) -> None:
    assert load_questions("favorite_animal_numbers_prefix").questions[index] == PREFIXED_SAMPLES[index]


@pytest.mark.parametrize("index", sorted(STORY_SAMPLES))
def test_storytelling_prompts_match_the_reference_verbatim(index: int) -> None:
    assert load_questions("storytelling_animal").questions[index] == STORY_SAMPLES[index]
