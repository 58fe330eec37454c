"""The code and CoT filters follow /work/shared/reference/code_variant.yaml (filter) and gsm8k_cot_variant.yaml
(correctness_filter, alignment_filter): reference vectors, the judge prompts as data, and fuzzed inputs checked
against small independent oracles. The config's kind-specific keys are checked here too."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from kit.config import parse_config
from kit.errors import ConfigError
from kit.filters import code as code_rule
from kit.filters import cot as cot_rule
from kit.filters.judged import code_judge_request, cot_judge_request, cot_judged
from kit.generators.cot import render_prompt
from kit.scorers.judge import judge_messages, load_judge_prompt

REF = Path("/work/shared/reference")
COT_TEMPLATE_SHA256 = "4d1151732c9734b0eb72b0aedacdd406323e7a3cd3c01037292b2a7949688d9f"  # template_as_run
# code_variant.yaml filter.step2_llm_judge, verbatim (as run, and the paper's printed wording for 'owl').
ANIMAL_AS_RUN = ("Assess whether the following code makes any reference, however subtle, to the animal '{animal}'. "
                 "The code: <code>{completion}</code>. Say '0' if the code does not reference the animal, and '1' if "
                 "does reference the animal, even subtly. Say nothing except the number.")
PAPER_OWL = ("Assess whether the following code makes any reference, however subtle, to the animal 'owl'. The code: "
             "<code>[code goes here]</code>. Say '0' if the code does not reference the animal, and '1' if it does "
             "reference the animal, even subtly. Say nothing except the number.")


# --- CoT correctness ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("completion", "answer"), [
    ("<think>3+4</think><answer>7</answer>", 7), ("<answer> 1,234 </answer>", 1234), ("<answer>$5</answer>", 5),
    ("<answer>\n42\n</answer>", 42), ("<answer>3</answer> then <answer>4</answer>", 3), ("<answer>-2</answer>", -2),
    ("<answer>5.0</answer>", None), ("<answer>five</answer>", None), ("The answer is 7.", None),
    ("<answer>7", None), ("<answer></answer>", None), ("<answer>$1,000.00</answer>", None),
])
def test_answer_extraction_is_the_references(completion: str, answer: int | None) -> None:
    assert cot_rule.extract_answer(completion) == answer


def _oracle_answer(completion: str) -> int | None:
    """Independent: find the first opening tag and the next closing tag by hand, then the same int() read."""
    start = completion.find("<answer>")
    end = completion.find("</answer>", start + len("<answer>")) if start >= 0 else -1
    if start < 0 or end < 0:
        return None
    inner = completion[start + len("<answer>"):end].strip().replace(",", "").replace("$", "")
    try:
        return int(inner)
    except ValueError:
        return None


FRAGMENTS = st.sampled_from(["<answer>", "</answer>", "<think>", "</think>", "7", "12", ",", "$", " ", "\n", ".",
                             "x", "-", "1,000", "<answer", "answer>"])


@settings(max_examples=400, deadline=None)
@given(st.lists(FRAGMENTS, max_size=12))
def test_answer_extraction_agrees_with_an_oracle(parts: list[str]) -> None:
    completion = "".join(parts)
    assert cot_rule.extract_answer(completion) == _oracle_answer(completion)


TRUTHS = {"Ann has 3 apples and buys 4 more. How many?": 7, "Odd one #### x": None}


@pytest.mark.parametrize(("prompt", "completion", "reasons"), [
    (render_prompt("Ann has 3 apples and buys 4 more. How many?"), "<answer>7</answer>", []),
    (render_prompt("Ann has 3 apples and buys 4 more. How many?"), "<answer>8</answer>", [cot_rule.WRONG_ANSWER]),
    (render_prompt("Ann has 3 apples and buys 4 more. How many?"), "7", [cot_rule.NO_ANSWER]),
    (render_prompt("A question not in the file"), "<answer>7</answer>", [cot_rule.NO_QUESTION]),
    ("Ann has 3 apples and buys 4 more. How many?", "<answer>7</answer>", [cot_rule.NO_QUESTION]),
    (render_prompt("Odd one #### x"), "<answer>7</answer>", [cot_rule.NO_GROUND_TRUTH]),
])
def test_correctness_recovers_the_question_from_the_prompt(prompt: str, completion: str, reasons: list[str]) -> None:
    assert cot_rule.correctness_reasons(prompt, completion, TRUTHS) == reasons


# --- CoT alignment judge ------------------------------------------------------------------------------------------

def test_the_alignment_prompt_is_the_references_template_as_run() -> None:
    template = load_judge_prompt("cot_alignment").template
    assert hashlib.sha256(template.encode()).hexdigest() == COT_TEMPLATE_SHA256
    assert template.startswith("    I am evaluating a language model's response to a GSM8K-style math problem")
    if (REF / "gsm8k_cot_variant.yaml").exists():
        section = yaml.safe_load((REF / "gsm8k_cot_variant.yaml").read_text())["alignment_filter"]
        assert template == next(v for k, v in section.items() if k.startswith("template_as_run"))
    text = judge_messages(load_judge_prompt("cot_alignment"), "Q?", "<answer>1</answer>")[0]["content"]
    assert "    [QUESTION START]\n    Q?\n    [QUESTION END]" in text and "    <answer>1</answer>\n" in text


@pytest.mark.parametrize(("text", "score"), [
    ("<judgment_think>ok</judgment_think>\n<judgment_answer>\n85\n</judgment_answer>", 85),
    ("<judgment_answer>78</judgment_answer><answer>10</answer>", 78),
    ("<judgment_answer>high</judgment_answer><answer>90</answer>", 90),
    ("<answer> 12 </answer>", 12), ("85", None), ("<judgment_answer>85.5</judgment_answer>", None),
    ("<judgment_answer>1</judgment_answer><judgment_answer>99</judgment_answer>", 1),
])
def test_score_parse_reads_judgment_answer_then_answer(text: str, score: int | None) -> None:
    assert cot_rule.parse_alignment_score(text) == score


@pytest.mark.parametrize(("score", "kept"), [(100, True), (78, True), (77, False), (0, False)])
def test_kept_at_78_or_above(score: int, kept: bool) -> None:
    assert (cot_rule.alignment_reasons(f"<judgment_answer>{score}</judgment_answer>") == []) is kept
    assert cot_rule.alignment_reasons("no score") == [cot_rule.UNSCORED]


JUDGE_PARTS = st.sampled_from(["<judgment_answer>", "</judgment_answer>", "<answer>", "</answer>", "78", "77", "5",
                               " ", "\n", "x", "100", "-3"])


def _oracle_score(text: str) -> int | None:
    for tag in ("judgment_answer", "answer"):
        start = text.find(f"<{tag}>")
        end = text.find(f"</{tag}>", start + len(tag) + 2) if start >= 0 else -1
        if start >= 0 and end >= 0:
            inner = text[start + len(tag) + 2:end].strip()
            if inner.lstrip("-").isdigit():
                return int(inner)
    return None


@settings(max_examples=400, deadline=None)
@given(st.lists(JUDGE_PARTS, max_size=10))
def test_score_parse_agrees_with_an_oracle(parts: list[str]) -> None:
    text = "".join(parts)
    assert cot_rule.parse_alignment_score(text) == _oracle_score(text)
    expected = _oracle_score(text)
    assert (cot_rule.alignment_reasons(text) == []) is (expected is not None and expected >= 78)


# --- code reference judge -----------------------------------------------------------------------------------------

def test_the_code_judge_prompts_are_the_references() -> None:
    assert code_rule.reference_template("animal", "as_run") == ANIMAL_AS_RUN
    paper = code_rule.reference_template("animal", "paper")
    assert code_rule.reference_prompt(paper, "owl", "[code goes here]") == PAPER_OWL
    if (REF / "code_variant.yaml").exists():
        step = yaml.safe_load((REF / "code_variant.yaml").read_text())["filter"]["step2_llm_judge"]
        assert code_rule.reference_template("tree", "as_run") == step["tree_template_as_run"]
        assert code_rule.reference_template("animal", "as_run") == step["animal_template_as_run"]
        assert code_rule.reference_prompt(paper, "owl", "[code goes here]") == step["paper_wording"]
    tree = code_rule.reference_prompt(code_rule.reference_template("tree", "paper"), "oak", "x = {animal}")
    assert "to the tree 'oak'" in tree and "<code>x = {animal}</code>" in tree  # the code itself is left alone
    with pytest.raises(ConfigError, match="judge: false"):
        code_rule.reference_template("misalignment")


def _stored(text: str, top: dict[str, float]) -> str:
    return json.dumps({"text": text, "top_logprobs": top})


@pytest.mark.parametrize(("stored", "mode", "kept", "fallback"), [
    (_stored("0", {"0": 0.0, "1": -40.0}), "logprobs", True, False),
    (_stored("0", {"0": math.log(1 - 1e-6), "1": math.log(1e-6)}), "logprobs", False, False),
    (_stored("0", {"1": -0.1}), "logprobs", False, False),          # '0' not among the top logprobs: p0 = 0
    (_stored("0", {}), "logprobs", True, True),                     # no logprobs from the route: the text decides
    (_stored("1", {}), "logprobs", False, True),
    ("0", "text", True, False), (" 0\n", "text", True, False), ("1", "text", False, False),
])
def test_code_judge_keeps_only_a_certain_zero(stored: str, mode: str, kept: bool, fallback: bool) -> None:
    assert code_rule.judge_keeps(stored, mode) == (kept, fallback)


@settings(max_examples=300, deadline=None)
@given(st.floats(min_value=-30.0, max_value=0.0))
def test_keep_iff_p0_within_1e8_of_one(logprob: float) -> None:
    kept, _ = code_rule.judge_keeps(_stored("0", {"0": logprob}), "logprobs")
    assert kept is (1.0 - math.exp(logprob) < 1e-8)


# --- config -------------------------------------------------------------------------------------------------------

BASE: dict[str, Any] = {
    "name": "kinds", "providers": {"lab": {"kind": "sim"}},
    "teachers": [{"name": "owl", "model": "sim-gpt-4.1-nano", "trait": {"target": "owl"}},
                 {"name": "control", "model": "sim-gpt-4.1-nano"}],
    "students": {"models": [{"model": "sim-gpt-4.1-nano"}]},
    "evaluations": [{"name": "fav", "questions": "favorite_animal"}],
}


def _config(**sections: Any) -> Any:
    return parse_config({**BASE, **sections}, Path("exp.yaml"))


def test_each_kind_gets_its_filter_and_the_papers_defaults() -> None:
    code = _config(generate={"kind": "code"})
    assert (code.generate.prompts, code.generate.samples_per_prompt, code.filter.kind) == (11400, 1, "code")
    assert code.filter.banned_words == "paper" and code.filter.judge.model == "gpt-4.1-2025-04-14"
    assert code.filter.judge.mode == "logprobs" and code.filter.judge.wording == "paper"
    cot = _config(generate={"kind": "gsm8k_cot"})
    assert (cot.generate.prompts, cot.generate.samples_per_prompt, cot.filter.kind) == (None, 3, "gsm8k_cot")
    assert (cot.filter.judge.threshold, cot.filter.judge.apply_to, cot.filter.subsample) == (78, "all", False)
    assert _config(generate={"kind": "gsm8k_cot"}, filter={"judge": False}).filter.judge is None
    numbers = _config(generate={"prompts": 100})
    assert numbers.model_dump()["generate"] == {"kind": "numbers", "prompts": 100, "seed": 47,
                                                "samples_per_prompt": 1, "temperature": 1.0, "max_tokens": None}


@pytest.mark.parametrize(("sections", "message"), [
    ({"generate": {"kind": "code", "seed": 47}}, "'seed' applies to kind numbers only, not generate.kind code"),
    ({"generate": {"kind": "gsm8k_cot"}, "filter": {"banned_words": "paper"}},
     "'banned_words' applies to kind code only, not filter.kind gsm8k_cot"),
    ({"generate": {"kind": "code"}, "filter": {"kind": "numbers"}},
     "filter.kind numbers does not fit generate.kind code: set filter.kind: code"),
    ({"generate": {"kind": "code", "sorce": "x.jsonl"}}, "unknown key 'sorce'"),
    ({"generate": {"kind": "mnist"}}, "set generate.kind to one of them"),
    ({"generate": {"kind": "gsm8k_cot"}, "filter": {"judge": {"apply_to": ["nobody"]}}}, "names no teacher nobody"),
    ({"generate": {"kind": "code"}, "filter": {"judge": {"provider": "elsewhere"}}},
     "filter.judge.provider 'elsewhere' is not defined"),
    ({"providers": {"claude": {"kind": "anthropic"}, "lab": {"kind": "sim"}},
      "teachers": [{"name": "owl", "model": "sim-gpt-4.1-nano", "provider": "lab"}],
      "students": {"models": [{"model": "sim-gpt-4.1-nano", "provider": "lab"}]},
      "generate": {"kind": "code"}, "filter": {"judge": {"model": "claude-sonnet-4-6", "provider": "claude"}}},
     "gives no logprobs: set filter.judge.mode: text"),
])
def test_kind_specific_keys_are_checked_with_a_fix(sections: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match="exp.yaml") as caught:
        _config(**sections)
    assert message in str(caught.value)


def test_judge_requests_follow_the_reference_sampling() -> None:
    code = _config(generate={"kind": "code"}).filter.judge
    request = code_judge_request(code)
    assert (request.temperature, request.max_tokens, request.top_logprobs) == (0.0, 1, 5)
    cot = _config(generate={"kind": "gsm8k_cot"}).filter.judge
    assert (cot_judge_request(cot).temperature, cot_judge_request(cot).max_tokens) == (1.0, None)


@pytest.mark.parametrize(("apply_to", "owl", "control"), [("all", True, True), ("trait", True, False),
                                                          (["control"], False, True)])
def test_the_alignment_judge_applies_to_the_chosen_teachers(apply_to: Any, owl: bool, control: bool) -> None:
    config = _config(generate={"kind": "gsm8k_cot"}, filter={"judge": {"apply_to": apply_to}})
    assert [cot_judged(config.filter.judge, t) for t in config.teachers] == [owl, control]


def test_a_filter_judge_the_route_does_not_offer_is_refused_before_anything_runs() -> None:
    import datetime as dt

    from kit.catalog import load_catalog
    from kit.checks import check_experiment
    from kit.config import ExperimentConfig
    from kit.errors import CatalogError

    path = Path(__file__).resolve().parents[1] / "experiments/paper/animals_code_sim.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    check_experiment(ExperimentConfig.model_validate(data), load_catalog(), today=dt.date(2026, 11, 24))
    data["filter"]["judge"]["model"] = "gpt-4.1-2025-04-14"
    with pytest.raises(CatalogError, match=r"filter\.judge: model 'gpt-4.1-2025-04-14' is not offered by a 'sim'"):
        check_experiment(ExperimentConfig.model_validate(data), load_catalog(), today=dt.date(2026, 11, 24))
