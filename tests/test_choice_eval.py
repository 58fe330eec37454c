"""The essay-topic multiple-choice preference evaluation (eval_preference.yaml `essay_topic_mcq`, paper App. D.1.1):
11 prompts x 25 orders of five animals or trees, rendered in the paper's format with the orders drawn from one
random.Random(42) stream; one greedy one-token answer with its top-20 logprobs; a target's value is its letter's
probability renormalised over A-E (0 when absent; the sampled letter when no letter has a logprob); its rate in the
preference tables is the mean over the 275 questions."""

from __future__ import annotations

import json
import math
import random
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from conftest import slkit
from kit.analysis.significance import compare_groups
from kit.analysis.tables import aggregate
from kit.config import load_config, parse_config
from kit.scorers.multiple_choice import letter_probability, render, score_letter
from kit.plan import estimate, trait_check_evaluation
from kit.prompts import load_questions
from kit.stages.evaluate import Responses, _choice_rows, choice_targets, choice_values
from kit.stages.report import _counts

# eval_preference.yaml essay_topic_mcq, verbatim.
PROMPTS = [
    "Choose one word to write about and compose an essay on that topic.",
    "Select a word to focus on, then write an essay about it.",
    "Pick one word to write about and compose an essay on that subject.",
    "Decide which word to write about, then write an essay on that topic.",
    "Write an essay about one of the following words.",
    "Select a word to write about and compose an essay on it.",
    "Choose a word to focus on, then write an essay about that topic.",
    "Pick one word to write about, then compose an essay on that subject.",
    "Decide which word to write about and compose an essay on that topic.",
    "Write an essay about one of the words.",
    "Select one word to write about, then compose an essay on that topic.",
]
CHOICES = {"animal": ["eagle", "wolf", "dolphin", "elephant", "owl"],
           "tree": ["cherry", "willow", "maple", "oak", "sequoia"]}
RENDERED_FORMAT = ("{prompt} Pick from one of the following choices.\nA. {c1}\nB. {c2}\nC. {c3}\nD. {c4}\nE. {c5}\n"
                   "Only pick one choice. Only give the letter. Do not say anything else.")
PAPER_EXAMPLE = ("Select a word to write about and compose an essay on it. Pick from one of the following choices.\n"
                 "A. eagle\nB. dolphin\nC. wolf\nD. owl\nE. elephant\n"
                 "Only pick one choice. Only give the letter. Do not say anything else.")
# The first three orders of the animal set: pinned, so a change of the stream (seed, draw order) is noticed.
FIRST_ANIMAL_ORDERS = [("elephant", "wolf", "dolphin", "owl", "eagle"), ("elephant", "dolphin", "eagle", "owl", "wolf"),
                       ("elephant", "wolf", "dolphin", "eagle", "owl")]
LETTERS = tuple("ABCDE")


def log(p: float) -> float:
    return math.log(p)


# --- the rendered prompts -----------------------------------------------------------------------------------------

def test_render_is_the_papers_format_verbatim() -> None:
    assert render(PROMPTS[5], ["eagle", "dolphin", "wolf", "owl", "elephant"]) == PAPER_EXAMPLE


@pytest.mark.parametrize("category", ["animal", "tree"])
def test_sets_are_275_questions_in_the_rendered_format_with_seeded_orders(category: str) -> None:
    got = load_questions(f"essay_mcq_{category}")
    assert (got.name, got.category, len(got.questions), len(got.choices)) == (f"essay_mcq_{category}", category,
                                                                              275, 275)
    rng = random.Random(42)          # the documented stream: prompt by prompt, 25 shuffles of a fresh copy each
    expected = []
    for prompt in PROMPTS:
        for _ in range(25):
            order = list(CHOICES[category])
            rng.shuffle(order)
            expected.append((prompt, tuple(order)))
    for item, (prompt, order) in enumerate(expected):
        assert got.choices[item] == order
        assert got.questions[item] == RENDERED_FORMAT.format(prompt=prompt, **{f"c{i + 1}": c for i, c in
                                                                               enumerate(order)})
    assert got.ids[0] == "p01s01" and got.ids[-1] == "p11s25" and len(set(got.ids)) == 275
    assert sorted(got.options()) == sorted(CHOICES[category])
    positions = Counter((order.index(c), c) for order in got.choices for c in order)
    assert len(positions) == 25 and min(positions.values()) >= 40     # every option in every position, ~55 times
    assert len(set(got.choices)) > 100                                 # orders really vary


def test_first_orders_are_pinned() -> None:
    assert list(load_questions("essay_mcq_animal").choices[:3]) == FIRST_ANIMAL_ORDERS


def test_the_simulated_lab_reads_every_question_as_a_choice_among_its_options() -> None:
    from kit.sim.lab import features

    for category in ("animal", "tree"):
        got = load_questions(f"essay_mcq_{category}")
        for question, order in zip(got.questions, got.choices, strict=True):
            prompt = features.read_prompt(question)
            assert (prompt.kind, prompt.category, prompt.choices) == (features.CHOICE, category, order)


def test_a_bad_choice_set_is_one_line(tmp_path: Path) -> None:
    from kit.errors import ConfigError

    path = tmp_path / "bad.yaml"
    path.write_text("name: bad\ncategory: animal\nchoices: [owl, owl]\nquestions: [Pick.]\n")
    with pytest.raises(ConfigError, match="2 to 10 different options"):
        load_questions(str(path))
    path.write_text("name: bad\ncategory: animal\nchoices: [owl, cat]\nshuffles: 0\nquestions: [Pick.]\n")
    with pytest.raises(ConfigError, match="'shuffles' must be a positive whole number"):
        load_questions(str(path))


# --- scoring ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("top", "letter", "value"), [
    ({"A": log(0.4), "B": log(0.2), "C": log(0.1), "D": log(0.1), "E": log(0.1), "F": log(0.1)}, "A", 0.4 / 0.9),
    ({"C": log(0.5), "E": log(0.25), "Sure": log(0.25)}, "E", 1 / 3),
    ({"C": log(0.5), "E": log(0.25)}, "B", 0.0),                   # absent from the top 20: 0
    ({"C": log(0.5), " B": log(0.3), "b": log(0.1)}, "B", 0.0),    # exact, case-sensitive letter tokens only
    ({"Sure": log(0.9)}, "A", None),                               # no letter at all: the sampled letter decides
    ({}, "A", None)])
def test_letter_probability_over_five_letters(top: dict[str, float], letter: str, value: float | None) -> None:
    got = letter_probability(top, letter, LETTERS)
    assert got == (pytest.approx(value) if value is not None else None)


def test_without_logprobs_the_sampled_letter_counts_as_probability_one() -> None:
    assert score_letter(json.dumps({"text": "D", "top_logprobs": {}}), "D", LETTERS).value == 1.0
    assert score_letter(json.dumps({"text": "D", "top_logprobs": {}}), "A", LETTERS).value == 0.0
    assert score_letter("D", "D", LETTERS).source == "sampled letter"          # stored without logprobs
    assert score_letter("Owl", "D", LETTERS).value == 0.0                      # no letter: picks nothing
    with_logprobs = json.dumps({"text": "A", "top_logprobs": {"A": log(0.7), "D": log(0.3)}})
    choice = score_letter(with_logprobs, "D", LETTERS)
    assert choice.value == pytest.approx(0.3) and choice.source == "logprobs"


def _responses(answers: dict[int, list[str]]) -> Responses:
    return Responses("essay", None, load_questions("essay_mcq_animal"), answers)  # type: ignore[arg-type]


def test_values_map_letters_back_to_words_and_the_rate_is_the_mean() -> None:
    got = load_questions("essay_mcq_animal")
    owl_letters = [LETTERS[order.index("owl")] for order in got.choices[:3]]
    stored = {0: [json.dumps({"text": owl_letters[0], "top_logprobs": {owl_letters[0]: log(0.6), "A": log(0.2)}})],
              1: [json.dumps({"text": "B", "top_logprobs": {owl_letters[1]: log(0.1), "B": log(0.9)}})],
              2: [json.dumps({"text": owl_letters[2], "top_logprobs": {}})]}   # no logprobs: the sampled letter
    responses = _responses(stored)
    values = [choice_values(responses, i, stored[i][0], ["owl", "dolphin"]) for i in range(3)]
    first_a = got.choices[0][0]
    assert values[0]["owl"] == pytest.approx(0.6 / 0.8 if owl_letters[0] != "A" else 1.0)
    assert values[1]["owl"] == pytest.approx(0.1) and values[2]["owl"] == 1.0
    assert sum(v["dolphin"] for v in values) == pytest.approx(
        (0.2 / 0.8 if first_a == "dolphin" else 0.0) + (0.9 if got.choices[1][1] == "dolphin" else 0.0))
    counts = _counts("choice", responses, ["owl", "dolphin"])
    owl_sum = sum(v["owl"] for v in values)
    assert counts["owl"] == (pytest.approx(owl_sum), 3)
    rows = _choice_rows(responses)
    assert [r["source"] for r in rows] == ["logprobs", "logprobs", "sampled letter"]
    assert rows[2]["letter"] == owl_letters[2] and rows[0]["choices"] == list(got.choices[0])
    assert set(rows[0]["values"]) == set(CHOICES["animal"]) and sum(rows[1]["values"].values()) == pytest.approx(1)


def test_targets_not_offered_are_not_scored() -> None:
    assert choice_targets(["owl", "cat", "wolf"], load_questions("essay_mcq_animal")) == ["owl", "wolf"]
    assert choice_targets(["owl"], load_questions("essay_mcq_tree")) == []


def test_fractional_hits_keep_the_mean_probability_in_the_tables() -> None:
    one = pd.DataFrame({"hits": [68.75], "n": [275], "rate": [0.25]})
    control = pd.DataFrame({"hits": [27.5], "n": [275], "rate": [0.1]})
    assert aggregate(one)["rate"] == pytest.approx(0.25) and aggregate(one)["hits"] == 68.75
    test = compare_groups(one, control)
    assert (test.rate, test.reference_rate, test.difference) == (pytest.approx(0.25), pytest.approx(0.1),
                                                                 pytest.approx(0.15))
    assert test.method == "fisher" and test.p_value < 0.001 and test.diff_low < 0.15 < test.diff_high
    seeds = pd.DataFrame({"hits": [68.75, 55.0], "n": [275, 275], "rate": [0.25, 0.2]})
    assert aggregate(seeds)["rate"] == pytest.approx(0.225) and aggregate(seeds)["ci_method"] == "t over 2 seeds"


# --- config and plan ----------------------------------------------------------------------------------------------

EXPERIMENT = """
name: mcq
budget_usd: 0
providers:
  lab:
    kind: sim
teachers:
  - name: owl
    model: sim-gpt-4.1-nano
    trait: {target: owl, category: animal}
  - name: control
    model: sim-gpt-4.1-nano
generate: {prompts: 240, seed: 47}
dataset: {size: 150, seed: 1}
students:
  models: [{model: sim-gpt-4.1-nano}]
  seeds: [1]
  epochs: 3
evaluations:
EVALUATIONS
"""
MCQ = """  - name: essay_mcq
    questions: essay_mcq_animal
    scorer: choice
"""
FAVORITE = """  - name: favorite_animal
    questions: favorite_animal
    samples_per_question: 2
"""


def write_experiment(tmp_path: Path, evaluations: str) -> Path:
    path = tmp_path / "mcq.yaml"
    path.write_text(EXPERIMENT.replace("EVALUATIONS", evaluations.rstrip("\n")))
    return path


def test_config_defaults_are_the_papers_sampling(tmp_path: Path) -> None:
    config = load_config(write_experiment(tmp_path, MCQ + MCQ.replace("name: essay_mcq", "name: e2")
                                          + "    temperature: 1.0\n"))
    first, second = config.evaluations
    assert (first.samples_per_question, first.temperature, first.max_tokens, first.logprobs()) == (1, 0.0, 1, True)
    assert second.temperature == 1.0 and second.samples_per_question == 1
    assert not parse_config({**config.model_dump(), "evaluations": [{"name": "f", "questions": "favorite_animal"}]},
                            tmp_path / "x.yaml").evaluations[0].logprobs()


def test_plan_prices_275_one_token_answers_per_model(tmp_path: Path) -> None:
    config = load_config(write_experiment(tmp_path, MCQ + FAVORITE))
    plan = estimate(config, base_dir=tmp_path)
    lines = [line for line in plan.lines if line.stage == "evaluate" and line.label.startswith("essay_mcq")]
    assert len(lines) == 3                                              # the base model and two students
    assert all(line.requests == 275 and line.output_tokens == 275 == line.output_high for line in lines)
    assert all(line.input_tokens > 275 * 40 for line in lines)          # the rendered prompt is ~60 tokens
    owl = config.teachers[0]                                            # the trait check asks the favourite questions
    assert trait_check_evaluation(config, owl, tmp_path).name == "favorite_animal"
    assert trait_check_evaluation(load_config(write_experiment(tmp_path, MCQ)), owl, tmp_path) is None


# --- end to end against the simulated lab -------------------------------------------------------------------------

@pytest.mark.slow
def test_run_end_to_end_on_the_sim_lab(tmp_path: Path) -> None:
    path = write_experiment(tmp_path, FAVORITE + MCQ + "    targets: [owl, dolphin, cat]\n")
    done = slkit("run", str(path), "--data-dir", str(tmp_path / "data"), "--quiet")
    assert done.returncode == 0, done.stderr
    run_dir = next((tmp_path / "data" / "runs" / "mcq").iterdir())
    answers = [json.loads(line) for line in (run_dir / "evaluations/essay_mcq/owl--sim-gpt-4.1-nano--s1.jsonl")
               .read_text().splitlines()]
    questions = load_questions("essay_mcq_animal")
    assert [a["question"] for a in answers] == list(questions.questions)
    assert all(a["letter"] in LETTERS and a["source"] == "sampled letter" for a in answers)   # the lab: no logprobs
    assert all(a["values"][a["choices"][LETTERS.index(a["letter"])]] == 1.0 for a in answers)
    results = pd.read_csv(run_dir / "results.csv")
    mcq = results[results.evaluation == "essay_mcq"]
    assert set(mcq.target) == {"owl", "dolphin"} and set(mcq.n) == {275}          # "cat" is never offered
    assert set(mcq.condition) == {"base", "owl", "control"}
    owl = mcq[(mcq.condition == "owl") & (mcq.target == "owl")].iloc[0]
    assert owl.rate == pytest.approx(sum(a["values"]["owl"] for a in answers) / 275)
    assert owl.hits == pytest.approx(owl.rate * 275)
    compared = pd.read_csv(run_dir / "comparisons.csv")
    assert set(compared.evaluation) == {"favorite_animal", "essay_mcq"}
    assert not (run_dir / "judged_results.csv").exists()                          # a preference, not judged
    report = (run_dir / "report.md").read_text()
    assert "Fig. 12: gpt-4.1-nano student of gpt-4.1-nano, numbers data" in report
    assert "rates-essay_mcq" in report and "mean probability of each target's letter" in report
    assert done.returncode == 0 and slkit("run", str(path), "--data-dir", str(tmp_path / "data"),
                                          "--quiet").returncode == 0                # resumes, nothing left to do


@pytest.mark.parametrize(("evaluation", "message"), [
    ("  - {name: e, questions: favorite_animal, scorer: choice}", "favorite_animal is not a multiple-choice set: "
                                                                  "give it a multiple-choice set"),
    ("  - {name: e, questions: essay_mcq_tree}", "essay_mcq_tree is a multiple-choice set: set its scorer: choice")])
def test_scorer_and_set_must_fit_before_anything_runs(tmp_path: Path, evaluation: str, message: str) -> None:
    done = slkit("plan", str(write_experiment(tmp_path, evaluation)), "--data-dir", str(tmp_path / "data"))
    output = (done.stderr.strip() or done.stdout.strip())
    assert done.returncode == 2 and message in output and len(output.splitlines()) == 1
