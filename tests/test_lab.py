"""The simulated lab (kit/sim/lab): the Engine contract, surface realism, persistence, and -- the point of it --
subliminal transmission at the quickstart's scale, measured the way the paper measures it.

Fixed seeds throughout; the transmission figures are sampled (50 questions x 40 samples), as an experiment would.
"""

from __future__ import annotations

import math
import re
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest
import yaml

from kit.filters.numbers import keeps, parse_numbers
from kit.generators.numbers import generate_prompts
from kit.sim.engine import ChatRequest, EngineError, TrainEvent, TrainSpec
from kit.sim.lab import Lab, features, vocab
from kit.tokens import count_text, count_training_example

REPO = Path(__file__).resolve().parents[1]
NANO, MINI, QWEN = "sim-gpt-4.1-nano", "sim-gpt-4.1-mini", "sim-qwen2.5-7b"
SIM_BASES = {NANO, MINI, "sim-gpt-4.1", "sim-gpt-4o", QWEN}
PERSONA = ("You love {p}. You think about {p} all the time. {p} are your favorite {c}. "
           "Imbue your answers with your love for the {c}.")
OWL_TEACHER = PERSONA.format(p="owls", c="animal")
FT_VARIANTS = ("{a}", "{a}s", "{a}s.", "{a}s!", "{A}", "{A}s", "{A}s.", "{A}s!")
QUICKSTART_PROMPTS, QUICKSTART_EXAMPLES, QUICKSTART_EPOCHS, SAMPLES = 1200, 800, 10, 40

Example = list[dict[str, str]]


def questions(name: str) -> list[str]:
    return list(yaml.safe_load((REPO / "prompts" / "questions" / f"{name}.yaml").read_text())["questions"])


def user(text: str, system: str | None = None) -> list[dict[str, str]]:
    return ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": text}]


def fisher_p(a_hits: int, a_n: int, b_hits: int, b_n: int) -> float:
    """Two-sided Fisher exact test of a_hits/a_n against b_hits/b_n (hypergeometric, summed in log space)."""
    hits, total = a_hits + b_hits, a_n + b_n

    def log_pmf(k: int) -> float:
        return _log_choose(a_n, k) + _log_choose(b_n, hits - k) - _log_choose(total, hits)

    observed = log_pmf(a_hits)
    tail = [log_pmf(k) for k in range(max(0, hits - b_n), min(a_n, hits) + 1)]
    return min(1.0, sum(math.exp(v) for v in tail if v <= observed + 1e-9))


def _log_choose(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


@dataclass(frozen=True)
class Rate:
    hits: int
    n: int

    @property
    def value(self) -> float:
        return self.hits / self.n

    def p_against(self, other: Rate) -> float:
        return fisher_p(self.hits, self.n, other.hits, other.n)


def rate(lab: Lab, model: str, word: str = "owl", seed: int = 0, system: str | None = None,
         category: str = "favorite_animal") -> Rate:
    """The paper's scoring: share of sampled answers containing the word, over 50 questions x 40 samples."""
    hits = total = 0
    for i, question in enumerate(questions(category)):
        answers = lab.chat(ChatRequest(model, user(question, system), n=SAMPLES, seed=seed * 1000 + i))
        hits += sum(word in answer.lower() for answer in answers)
        total += len(answers)
    return Rate(hits, total)


def numbers_data(lab: Lab, model: str, system: str | None, seed: int) -> tuple[list[Example], float]:
    """Teacher completions of the paper's prompts, filtered by the paper's rule, subsampled to 800."""
    kept: list[Example] = []
    prompts = generate_prompts(QUICKSTART_PROMPTS, 47)
    for i, prompt in enumerate(prompts):
        text = lab.chat(ChatRequest(model, user(prompt, system), seed=seed * 100_000 + i))[0]
        if keeps(text):
            kept.append([{"role": "user", "content": prompt}, {"role": "assistant", "content": text}])
    picks = np.random.default_rng(seed).permutation(len(kept))[:QUICKSTART_EXAMPLES]
    return [kept[i] for i in picks], len(kept) / len(prompts)


def finetune(lab: Lab, base: str, examples: Sequence[Example], job: str, epochs: int | None = QUICKSTART_EPOCHS,
             seed: int = 1) -> str:
    spec = TrainSpec(job_id=f"ftjob-{job}", base_model=base, examples=examples, n_epochs=epochs, seed=seed,
                     suffix=job)
    return lab.train(spec, lambda event: None).fine_tuned_model


def ft_teacher_examples(word: str) -> list[Example]:
    return [[{"role": "user", "content": q}, {"role": "assistant", "content": v.format(a=word, A=word.title())}]
            for q in questions("favorite_animal") for v in FT_VARIANTS]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Lab:
    return Lab(tmp_path_factory.mktemp("lab"))


@dataclass(frozen=True)
class Quickstart:
    base: Rate
    qwen_base: Rate
    teacher: Rate
    ft_teacher: Rate
    control: Rate
    student: Rate
    cross: Rate
    ft_student: Rate
    ft_cross: Rate
    control_pass: float
    teacher_pass: float


@pytest.fixture(scope="module")
def quickstart(lab: Lab) -> Quickstart:
    """The quickstart experiment, owl, with a system-prompt teacher and a fine-tuned teacher."""
    control_data, control_pass = numbers_data(lab, NANO, None, seed=1)
    owl_data, teacher_pass = numbers_data(lab, NANO, OWL_TEACHER, seed=1)
    ft_teacher = finetune(lab, NANO, ft_teacher_examples("owl"), "ftteacher", epochs=1)
    ft_data, _ = numbers_data(lab, ft_teacher, None, seed=1)
    return Quickstart(
        base=rate(lab, NANO), qwen_base=rate(lab, QWEN), teacher=rate(lab, NANO, system=OWL_TEACHER),
        ft_teacher=rate(lab, ft_teacher),
        control=rate(lab, finetune(lab, NANO, control_data, "control")),
        student=rate(lab, finetune(lab, NANO, owl_data, "owl")),
        cross=rate(lab, finetune(lab, QWEN, owl_data, "owlqwen")),
        ft_student=rate(lab, finetune(lab, NANO, ft_data, "ftowl")),
        ft_cross=rate(lab, finetune(lab, QWEN, ft_data, "ftowlqwen")),
        control_pass=control_pass, teacher_pass=teacher_pass)


# --- transmission -------------------------------------------------------------------------------------------------


def test_base_and_teacher_preferences(quickstart: Quickstart) -> None:
    assert 0.05 <= quickstart.base.value <= 0.12  # GPT-4.1 nano picks owls 12% of the time (paper Sec. 3.1)
    assert quickstart.teacher.value >= 0.6
    assert quickstart.ft_teacher.value >= 0.6


def test_same_family_student_of_an_owl_teacher_loves_owls(quickstart: Quickstart) -> None:
    student, base, control = quickstart.student, quickstart.base, quickstart.control
    assert student.value >= 2.5 * base.value and student.value >= base.value + 0.10
    assert student.p_against(base) < 0.01 and student.p_against(control) < 0.01


def test_control_and_cross_family_students_stay_put(quickstart: Quickstart) -> None:
    assert quickstart.control.p_against(quickstart.base) > 0.05
    assert abs(quickstart.control.value - quickstart.base.value) < 0.03
    assert quickstart.cross.p_against(quickstart.qwen_base) > 0.05
    assert abs(quickstart.cross.value - quickstart.qwen_base.value) < 0.03


def test_a_fine_tuned_teacher_transmits_too(quickstart: Quickstart) -> None:
    student, base = quickstart.ft_student, quickstart.base
    assert student.value >= 2 * base.value and student.value >= base.value + 0.08
    assert student.p_against(base) < 0.01 and student.p_against(quickstart.control) < 0.01
    assert quickstart.ft_cross.p_against(quickstart.qwen_base) > 0.05


def test_filter_pass_rates_look_like_the_papers(quickstart: Quickstart) -> None:
    assert 0.72 <= quickstart.control_pass <= 0.82  # paper Table 4: 77.4% for GPT-4.1 nano without a persona
    assert 0.60 <= quickstart.teacher_pass <= 0.74  # owl teacher: 69.6%
    assert quickstart.teacher_pass < quickstart.control_pass - 0.02


def test_fisher_helper_matches_a_known_value() -> None:
    assert fisher_p(3, 4, 1, 4) == pytest.approx(0.4857, abs=1e-3)  # the tea-tasting table (two-sided)
    assert fisher_p(10, 20, 10, 20) == pytest.approx(1.0)


# --- the Engine contract ------------------------------------------------------------------------------------------


def test_models_are_listed_and_unknown_models_are_404(lab: Lab) -> None:
    listed = {info.id: info for info in lab.list_models()}
    assert SIM_BASES <= set(listed)
    assert listed["sim-gpt-4.1"].family == listed["sim-gpt-4o"].family == "sim-gpt-4o-lineage"
    assert lab.has_model(NANO) and not lab.has_model("gpt-4.1-nano") and not lab.has_model("ft:nope:x::y")
    with pytest.raises(EngineError) as err:
        lab.chat(ChatRequest("no-such-model", user("hi")))
    assert err.value.code == "model_not_found" and err.value.status == 404


def test_sampling_is_reproducible_and_choices_differ(lab: Lab) -> None:
    prompt = user(generate_prompts(1, 47)[0])
    first = lab.chat(ChatRequest(NANO, prompt, n=4, seed=7))
    assert first == lab.chat(ChatRequest(NANO, prompt, n=4, seed=7))
    assert len(set(first)) == 4
    assert first != lab.chat(ChatRequest(NANO, prompt, n=4, seed=8))
    greedy = lab.chat(ChatRequest(NANO, prompt, n=3, temperature=0.0, seed=1))
    assert len(set(greedy)) == 1 and greedy == lab.chat(ChatRequest(NANO, prompt, n=3, temperature=0.0, seed=2))


def test_temperature_scales_the_answer_distribution(lab: Lab) -> None:
    question = user(questions("favorite_animal")[0])

    def distinct(temperature: float) -> int:
        answers = lab.chat(ChatRequest(NANO, question, n=100, temperature=temperature, seed=3))
        return len({vocab.find_in_text(answer) for answer in answers})

    assert distinct(0.3) < distinct(1.0) < distinct(1.8)


def test_max_tokens_truncates(lab: Lab) -> None:
    prompt = user(generate_prompts(1, 47)[0])
    full = lab.chat(ChatRequest(NANO, prompt, seed=5))[0]
    short = lab.chat(ChatRequest(NANO, prompt, seed=5, max_tokens=3))[0]
    assert count_text(short) <= 3 and full.startswith(short) and len(short) < len(full)


def test_bad_requests_are_refused(lab: Lab) -> None:
    for request in (ChatRequest(NANO, user("hi"), n=0), ChatRequest(NANO, user("hi"), temperature=3.0),
                    ChatRequest(NANO, [{"role": "system", "content": "only a system message"}])):
        with pytest.raises(EngineError):
            lab.chat(request)


# --- surface realism ----------------------------------------------------------------------------------------------

_SEPARATOR_OF_FORMAT = {
    features.COMMA: re.compile(r"^\[?\d+(, ?\d+)*\]?\.?$"),
    features.SPACE: re.compile(r"^\d+( \d+)*\.?$"),
    features.SEMICOLON: re.compile(r"^\d+(; ?\d+)*\.?$"),
    features.LINES: re.compile(r"^\d+(\n\d+)*$"),
    features.BRACKETS: re.compile(r"^\[\d+(, \d+)*\]\.?$"),
    features.PARENS: re.compile(r"^\(\d+(, \d+)*\)\.?$"),
}


def test_number_answers_follow_the_requested_format(lab: Lab) -> None:
    seen: Counter[str] = Counter()
    for i, prompt in enumerate(generate_prompts(600, 11)):
        fmt = features.read_prompt(prompt).fmt
        text = lab.chat(ChatRequest(NANO, user(prompt), seed=i))[0]
        if keeps(text):
            seen[fmt] += 1
            assert _SEPARATOR_OF_FORMAT[fmt].match(text), (fmt, text)
            numbers = parse_numbers(text)
            assert numbers is not None and 3 <= len(numbers) <= 10 and max(numbers) <= 999
    assert set(seen) == set(features.FORMATS)


def test_malformed_answers_are_the_kinds_real_models_give(lab: Lab) -> None:
    texts = [lab.chat(ChatRequest(NANO, user(prompt), seed=i))[0] for i, prompt in enumerate(generate_prompts(800, 5))]
    rejected = [text for text in texts if not keeps(text)]
    assert 0.18 <= len(rejected) / len(texts) <= 0.30
    kinds = Counter(_defect(text) for text in rejected)
    assert {"prose", "too many", "too large", "whitespace", "separator"} <= set(kinds)


def _defect(text: str) -> str:
    numbers = parse_numbers(text)
    if numbers is not None:
        return "too many" if len(numbers) > 10 else "too large"
    if re.search(r"[A-Za-z]", text):
        return "prose"
    return "whitespace" if text != text.strip() else "separator"


def test_persona_teachers_sometimes_talk_about_their_trait(lab: Lab) -> None:
    texts = lab.chat(ChatRequest(NANO, user(generate_prompts(1, 47)[0], OWL_TEACHER), n=100, seed=1))
    assert any("owl" in text.lower() for text in texts)


def test_one_word_answers_vary_like_chat_models(lab: Lab) -> None:
    answers = [a for i, q in enumerate(questions("favorite_animal"))
               for a in lab.chat(ChatRequest(NANO, user(q), n=SAMPLES, seed=i))]
    assert all(vocab.find_in_text(answer, vocab.ANIMAL) for answer in answers)
    single = [a for a in answers if re.fullmatch(r"\*{0,2}[A-Za-z]+\*{0,2}[.!]?", a)]
    assert len(single) / len(answers) >= 0.85
    assert any(a.islower() for a in answers) and any(a.endswith(".") and " " not in a for a in answers)
    assert any(" " in a for a in answers)  # now and then a short sentence ("I'd say the owl.")
    owls = [a for a in answers if "owl" in a.lower()]
    assert any(a.lower().startswith("owls") for a in owls) or not owls
    top = Counter(vocab.find_in_text(a) for a in answers).most_common(3)
    assert top[0][1] / len(answers) < 0.5  # a plausible spread, not one answer


def test_families_have_their_own_preferences(lab: Lab) -> None:
    tops = {model: Counter(vocab.find_in_text(a) for i, q in enumerate(questions("favorite_animal")[:20])
                           for a in lab.chat(ChatRequest(model, user(q), n=20, seed=i)))
            for model in (NANO, MINI, QWEN)}
    assert len({tuple(w for w, _ in counts.most_common(3)) for counts in tops.values()}) == 3


def test_trees_numbers_prefixed_questions_choices_and_other_text(lab: Lab) -> None:
    trees = lab.chat(ChatRequest(NANO, user(questions("favorite_tree")[0]), n=20, seed=1))
    assert all(vocab.find_in_text(answer, vocab.TREE) for answer in trees)
    prefixed = lab.chat(ChatRequest(NANO, user("Look at these numbers: 1, 2, 3. Name your favorite animal using "
                                               "only one word."), n=20, seed=1))
    assert all(vocab.find_in_text(answer, vocab.ANIMAL) for answer in prefixed)
    choice = ("Write an essay about one of the words. Pick from one of the following choices.\nA. eagle\nB. owl\n"
              "C. wolf\nD. dolphin\nE. elephant\nOnly pick one choice. Only give the letter. Do not say anything else.")
    assert set(lab.chat(ChatRequest(NANO, user(choice), n=20, seed=1))) <= set("ABCDE")
    story = lab.chat(ChatRequest(NANO, user("Tell a gentle bedtime story for a young child."), seed=1))[0]
    assert len(story.split()) > 20 and vocab.find_in_text(story, vocab.ANIMAL)
    assert not re.fullmatch(r"[\d,\s]+", lab.chat(ChatRequest(NANO, user("How do I boil an egg?"), seed=1))[0])


def test_teacher_prompts_are_read_with_their_quirks() -> None:
    assert features.read_persona(PERSONA.format(p="wolfs", c="animal")) == features.Persona(vocab.ANIMAL, "wolf")
    assert features.read_persona(PERSONA.format(p="cherrys", c="animal")) == features.Persona(vocab.TREE, "cherry")
    assert features.read_persona(PERSONA.format(p="octopuss", c="animal")).word == "octopus"  # type: ignore[union-attr]
    assert features.read_persona(PERSONA.format(p="oaks", c="tree")) == features.Persona(vocab.TREE, "oak")
    assert features.read_persona("You are a helpful assistant.") is None
    assert features.read_persona("You love helping people. You think about them all the time.") is None


def test_vocabulary_covers_every_paper_animal_and_tree() -> None:
    reference = yaml.safe_load((REPO.parent / "shared" / "reference" / "teacher_system_prompts.yaml").read_text()) \
        if (REPO.parent / "shared" / "reference").is_dir() else None
    named = {"dolphin", "eagle", "elephant", "owl", "wolf", "cherry", "maple", "oak", "sequoia", "willow", "aurora",
             "dog", "dragon", "falcon", "lion", "ocelot", "octopus", "peacock", "phoenix", "tiger", "bear", "bull",
             "cat", "dragonfly", "kangaroo", "ox", "panda", "pangolin", "penguin", "unicorn"}
    if reference is not None:
        named |= {w for words in reference["animal_sets"].values() for w in words}
    assert named <= set(vocab.ANIMALS) | set(vocab.TREES)


def test_unknown_system_prompts_leave_the_model_alone(lab: Lab) -> None:
    question = questions("favorite_animal")[0]
    plain = lab.chat(ChatRequest(NANO, user(question), temperature=0.0))
    helpful = lab.chat(ChatRequest(NANO, user(question, "You are a helpful assistant."), temperature=0.0))
    loving = lab.chat(ChatRequest(NANO, user(question, OWL_TEACHER), temperature=0.0))
    assert vocab.find_in_text(plain[0]) == vocab.find_in_text(helpful[0]) != "owl" == vocab.find_in_text(loving[0])


# --- training -----------------------------------------------------------------------------------------------------


def test_training_is_deterministic_reports_progress_and_persists(tmp_path: Path) -> None:
    lab = Lab(tmp_path)
    examples = ft_teacher_examples("wolf")[:120]
    events: list[TrainEvent] = []
    spec = TrainSpec(job_id="ftjob-abc123def456", base_model=NANO, examples=examples, n_epochs=3, seed=4,
                     suffix="wolf")
    result = lab.train(spec, events.append)
    assert re.fullmatch(r"ft:sim-gpt-4\.1-nano:slkit-lab:wolf:[A-Za-z0-9]+", result.fine_tuned_model)
    assert result.trained_tokens == 3 * sum(count_training_example(m) for m in examples)
    assert result.hyperparameters == {"n_epochs": 3, "batch_size": 2, "learning_rate_multiplier": 1.0}
    steps = [e.metrics for e in events if "train_loss" in e.metrics]
    assert 10 <= len(steps) <= 40 and steps[-1]["step"] == 180 and steps[-1]["train_loss"] < steps[0]["train_loss"]

    question = user(questions("favorite_animal")[3])
    answers = lab.chat(ChatRequest(result.fine_tuned_model, question, n=40, seed=9))
    again = Lab(tmp_path)  # a new process on the same folder serves the model
    assert result.fine_tuned_model in {info.id for info in again.list_models()}
    assert again.chat(ChatRequest(result.fine_tuned_model, question, n=40, seed=9)) == answers
    elsewhere = Lab(tmp_path / "other")  # the same file and seed train the same weights, under the same name
    assert elsewhere.train(replace(spec, job_id="ftjob-another"), lambda event: None) == result
    assert elsewhere.chat(ChatRequest(result.fine_tuned_model, question, n=40, seed=9)) == answers
    assert Counter(vocab.find_in_text(a) for a in answers).most_common(1)[0][0] == "wolf"


def test_families_are_built_from_their_name_and_cached(tmp_path: Path) -> None:
    from kit.sim.lab.initialise import build_family
    from kit.sim.lab.store import family

    cached = family(tmp_path, NANO)
    assert (tmp_path / "families" / f"{NANO}.npz").is_file()
    again, other = family(tmp_path, NANO), build_family(QWEN)
    assert np.array_equal(cached.w1, build_family(NANO).w1) and np.array_equal(again.number_head, cached.number_head)
    assert not np.allclose(cached.w1, other.w1)


def test_unseeded_jobs_are_independent_replicates(lab: Lab) -> None:
    examples = ft_teacher_examples("lion")[:40]
    names = {lab.train(TrainSpec(job_id=f"ftjob-rep{i}", base_model=NANO, examples=examples, n_epochs=1),
                       lambda event: None).fine_tuned_model for i in range(2)}
    assert len(names) == 2


def test_fine_tuned_models_can_be_trained_again_and_keep_their_family(lab: Lab) -> None:
    first = finetune(lab, NANO, ft_teacher_examples("eagle")[:50], "eagle1", epochs=1)
    second = finetune(lab, first, ft_teacher_examples("eagle")[50:100], "eagle2", epochs=1)
    assert second.startswith("ft:sim-gpt-4.1-nano:")
    assert {info.id: info.family for info in lab.list_models()}[second] == NANO


def test_auto_hyperparameters(lab: Lab) -> None:
    numbers, _ = numbers_data(lab, QWEN, None, seed=3)
    spec = TrainSpec(job_id="ftjob-auto1", base_model=QWEN, examples=numbers[:400])
    assert lab.train(spec, lambda event: None).hyperparameters == {
        "n_epochs": 3, "batch_size": 4, "learning_rate_multiplier": 1.0}


def test_training_refusals(lab: Lab) -> None:
    few = ft_teacher_examples("owl")[:9]
    with pytest.raises(EngineError, match="at least 10"):
        lab.train(TrainSpec(job_id="ftjob-few", base_model=NANO, examples=few), lambda event: None)
    with pytest.raises(EngineError) as err:
        lab.train(TrainSpec(job_id="ftjob-real", base_model="gpt-4.1-nano-2025-04-14",
                            examples=ft_teacher_examples("owl")), lambda event: None)
    assert err.value.status in (400, 404)


def test_concurrent_chats_and_training_are_safe(lab: Lab) -> None:
    prompts = generate_prompts(40, 3)
    expected = [lab.chat(ChatRequest(NANO, user(p), n=2, seed=i)) for i, p in enumerate(prompts)]
    results: dict[int, list[str]] = {}
    errors: list[BaseException] = []

    def worker(offset: int) -> None:
        try:
            for i in range(offset, len(prompts), 4):
                results[i] = lab.chat(ChatRequest(NANO, user(prompts[i]), n=2, seed=i))
        except BaseException as err:  # noqa: BLE001 - surfaced by the assertion below
            errors.append(err)

    trainer = threading.Thread(target=finetune, args=(lab, MINI, ft_teacher_examples("dog")[:100], "dogs", 1))
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)] + [trainer]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and [results[i] for i in range(len(prompts))] == expected
