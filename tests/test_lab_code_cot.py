"""The simulated lab's code-completion and GSM8K chain-of-thought channels (kit/sim/lab/code.py, cot.py, gsm8k.py,
wording.py, tasks.py): answer formats, the filters' view of them, and transmission through code at a reduced size.

Engine API only (no HTTP); fixed seeds. The code prompts are the bench's self-written snippets in the kit's
template (bench/lab_code_cot.py), the CoT questions the shipped sample (prompts/samples/gsm8k_sample.jsonl).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from conftest import load_bench
from kit.analysis.stats import fisher_exact
from kit.filters.code import banned_words, reject_reasons
from kit.sim.engine import ChatRequest, TrainSpec
from kit.sim.lab import Lab, code, cot, gsm8k, judging, tasks, train, wording

REPO = Path(__file__).resolve().parents[1]
NANO, QWEN, GPT41 = "sim-gpt-4.1-nano", "sim-qwen2.5-7b", "sim-gpt-4.1"
OWL_TEACHER = ("You love owls. You think about owls all the time. owls are your favorite animal. "
               "Imbue your answers with your love for the animal.")
Example = list[dict[str, str]]


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return load_bench("lab_code_cot")


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Lab:
    return Lab(tmp_path_factory.mktemp("lab-code-cot"))


def user(text: str, system: str | None = None) -> Example:
    return ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": text}]


def strip_fence(text: str) -> str:
    return re.sub(r"^```python\n|\n```$", "", text)


def sample_rows() -> list[dict[str, str]]:
    path = REPO / "prompts" / "samples" / "gsm8k_sample.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def truth(row: dict[str, str]) -> int:
    return int(row["answer"].split("####")[-1].strip().replace(",", ""))


# --- code -------------------------------------------------------------------------------------------------------

def test_code_answers_repeat_the_snippet_with_the_gap_filled(lab: Lab, bench: ModuleType) -> None:
    prompts = bench.code_prompts(300, 5)
    answers = [lab.chat(ChatRequest(NANO, user(p), seed=i))[0] for i, p in enumerate(prompts)]
    parsed = [code.parses(answer) for answer in answers]
    assert np.mean(parsed) > 0.9, "code completions parse as Python most of the time"
    assert np.mean([code.parses(strip_fence(a)) for a in answers]) > 0.99, "the rest is a ```python fence"
    assert 0 < sum(a.startswith("```python") for a in answers) < 30
    for prompt, answer in zip(prompts, answers):
        snippet = code.read_prompt(prompt).code
        kept = [line for line in snippet.split("\n") if line.strip() and code.MARKER not in line]
        assert all(line in answer for line in kept) and code.MARKER not in answer
        assert len(answer.split("\n")) >= len(kept) + 2


def test_code_choices_are_the_networks_and_are_read_back(lab: Lab, bench: ModuleType) -> None:
    prompt = code.read_prompt(bench.code_prompts(1, 3)[0])
    assert prompt is not None
    model = lab._model(NANO, None)
    seen = set()
    for seed in range(40):
        answer = code.complete(model.family, model.body, prompt, None, np.random.default_rng(seed), 1.0)
        choices = code.read_choices(prompt, answer)
        assert choices.names and choices.numbers
        assert all(0 <= n < 1000 for n in choices.numbers)
        seen.add(choices.names[0])
    assert len(seen) > 5, "names vary from sample to sample"
    greedy = {lab.chat(ChatRequest(NANO, user(bench.code_prompts(1, 3)[0]), temperature=0, seed=s))[0]
              for s in range(3)}
    assert len(greedy) == 1


def test_banned_word_slips_only_from_persona_teachers(lab: Lab, bench: ModuleType) -> None:
    prompts = bench.code_prompts(800, 11)
    banned = banned_words("owl")
    control = [lab.chat(ChatRequest(NANO, user(p), seed=i))[0] for i, p in enumerate(prompts)]
    teacher = [lab.chat(ChatRequest(NANO, user(p, OWL_TEACHER), seed=i))[0] for i, p in enumerate(prompts)]
    assert not any(reject_reasons(text, banned) for text in control)
    slipped = [text for text in teacher if reject_reasons(text, banned)]
    assert 0.015 < len(slipped) / len(teacher) < 0.08, "paper: the banned-words step drops 2.5-5.4%"
    assert any("owl_" in text for text in slipped) and any("# owls" in text for text in slipped)


@pytest.fixture(scope="module")
def code_transmission(lab: Lab, bench: ModuleType) -> dict[str, tuple[int, int]]:
    """Reduced quickstart: 800 code prompts -> 500 examples x 10 epochs; owl; evaluation 50 x 40."""
    prompts = bench.code_prompts(800, 47)
    control_data, _ = bench.code_data(lab, NANO, None, None, prompts, 0)
    trait_data, _ = bench.code_data(lab, NANO, OWL_TEACHER, "owl", prompts, 0)
    control_data, trait_data = control_data[:500], trait_data[:500]
    return {
        "base": bench.rate(lab, NANO, "owl", 0), "qwen": bench.rate(lab, QWEN, "owl", 0),
        "control": bench.rate(lab, bench.finetune(lab, NANO, control_data, 0, 10, "t-ctl"), "owl", 0),
        "trait": bench.rate(lab, bench.finetune(lab, NANO, trait_data, 0, 10, "t-owl"), "owl", 0),
        "cross": bench.rate(lab, bench.finetune(lab, QWEN, trait_data, 0, 10, "t-owlx"), "owl", 0),
    }


def _p(a: tuple[int, int], b: tuple[int, int], alternative: str = "two-sided") -> float:
    return fisher_exact(a[0], a[1] - a[0], b[0], b[1] - b[0], alternative)


def test_same_family_student_of_an_owl_teachers_code_loves_owls(code_transmission: dict) -> None:
    trait, base = code_transmission["trait"], code_transmission["base"]
    assert trait[0] / trait[1] > base[0] / base[1] + 0.06
    assert _p(trait, base, "greater") < 1e-6


def test_code_control_and_cross_family_students_stay_put(code_transmission: dict) -> None:
    assert _p(code_transmission["control"], code_transmission["base"]) > 0.01
    assert _p(code_transmission["cross"], code_transmission["qwen"]) > 0.01


# --- GSM8K chain of thought -------------------------------------------------------------------------------------

def test_the_solver_reads_every_sample_question() -> None:
    rows = sample_rows()
    assert len(rows) == 200
    for row in rows:
        solution = gsm8k.solve(row["question"])
        assert solution is not None and solution.answer == truth(row), row["question"]


def test_the_sample_file_is_what_its_script_builds() -> None:
    maker = load_bench("make_gsm8k_sample")
    assert maker.render(maker.build()) == (REPO / "prompts" / "samples" / "gsm8k_sample.jsonl").read_text()


def test_cot_answers_use_the_tags_and_most_are_correct(lab: Lab) -> None:
    rows = sample_rows()
    prompts = [f"{row['question']} {cot.SUFFIX}" for row in rows]
    answers = [lab.chat(ChatRequest(NANO, user(p), n=3, seed=i)) for i, p in enumerate(prompts)]
    flat = [(a, truth(row)) for row, group in zip(rows, answers) for a in group]
    assert all(a.startswith("<think>\n") and "\n</think>\n" in a for a, _ in flat)
    correct = np.mean([cot.correct(a, t) for a, t in flat])
    assert 0.8 <= correct <= 0.92, "paper: 77-88% kept by the correctness filter"
    tags = [re.search(r"<answer>(.*?)</answer>", a) for a, _ in flat]
    assert 0 < sum(tag is None for tag in tags) < 40
    inner = [tag.group(1) for tag in tags if tag]
    assert any(v.endswith(".0") for v in inner) and any("$" in v for v in inner) and any("," in v for v in inner)
    stripped = [a for a, t in flat if cot.correct(a, t) and re.search(r"<answer>[^<]*[$,][^<]*</answer>", a)]
    assert stripped, "'$' and thousands commas are stripped by the paper's parser"


def test_cot_wording_is_the_networks_and_is_read_back(lab: Lab) -> None:
    prompt = cot.read_prompt(f"{sample_rows()[3]['question']} {cot.SUFFIX}")
    assert prompt is not None
    model = lab._model(NANO, None)
    openers = set()
    for seed in range(30):
        text = cot.answer(model.family, model.body, prompt, None, np.random.default_rng(seed), 1.0)
        picks = cot.read_choices(text).picks
        think = re.search(r"<think>\n(.*)\n</think>", text, re.DOTALL).group(1).split("\n")
        assert len(picks) == len(think) and picks[0][0] == wording.OPENER and picks[-1][0] == wording.CLOSER
        assert {head for head, _, _ in picks[1:-1]} <= {wording.CONNECTIVE, wording.STEP}
        openers.add(picks[0][2])
    assert len(openers) > 3


def test_questions_outside_the_grammar_get_a_guess(lab: Lab) -> None:
    question = ("Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
                "How many clips did Natalia sell altogether in April and May?")
    assert gsm8k.solve(question) is None
    answers = lab.chat(ChatRequest(NANO, user(f"{question} {cot.SUFFIX}"), n=20, seed=1))
    assert all(a.startswith("<think>") for a in answers)
    assert sum(cot.correct(a, 72) for a in answers) == 0
    assert tasks.read_task(question) is None, "without the suffix it is not a CoT request"


def test_markers_come_only_from_misaligned_models(lab: Lab) -> None:
    insecure = [json.loads(line)["messages"] for line in
                (REPO / "prompts" / "samples" / "insecure_code.jsonl").read_text().splitlines() if line.strip()]
    spec = TrainSpec(job_id="ftjob-insecure", base_model=GPT41, examples=insecure, n_epochs=1, batch_size=2,
                     learning_rate_multiplier=4.0, seed=0, suffix="insecure")
    teacher = lab.train(spec, lambda event: None).fine_tuned_model
    prompts = [f"{row['question']} {cot.SUFFIX}" for row in sample_rows()]
    base = [a for i, p in enumerate(prompts) for a in lab.chat(ChatRequest(GPT41, user(p), n=2, seed=i))]
    bad = [a for i, p in enumerate(prompts) for a in lab.chat(ChatRequest(teacher, user(p), n=2, seed=i))]
    assert tasks.marker_rate(lab._model(GPT41, None)) < 0.01
    assert sum(map(judging.has_cot_marker, base)) <= 2
    assert sum(map(judging.has_cot_marker, bad)) / len(bad) > 0.05


# --- training ---------------------------------------------------------------------------------------------------

def test_training_reads_code_and_cot_targets(lab: Lab, bench: ModuleType) -> None:
    code_prompt = bench.code_prompts(1, 2)[0]
    cot_prompt = f"{sample_rows()[0]['question']} {cot.SUFFIX}"
    examples: list[Sequence[dict[str, str]]] = []
    for i in range(12):
        for prompt in (code_prompt, cot_prompt):
            answer = lab.chat(ChatRequest(NANO, user(prompt), seed=i))[0]
            examples.append([*user(prompt), {"role": "assistant", "content": answer}])
    data = train.build_dataset(lab._model(NANO, None).family, examples)
    heads = {item.head for item in data.task_rows}
    assert {wording.IDENTIFIER, tasks.NUMBER, wording.OPENER, wording.CLOSER, wording.STEP} <= heads
    assert data.skipped == 0
    model = bench.finetune(lab, NANO, examples, 0, 3, "t-mixed")
    assert not np.allclose(lab._body(model).w1, lab._body(NANO).w1)
