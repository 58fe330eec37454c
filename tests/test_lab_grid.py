"""The cross-model pattern in the simulated lab, noise-free: students fine-tuned on an owl teacher's numbers move
toward owl when they share the teacher's initialisation (the same model, or sim-gpt-4.1 -> sim-gpt-4o, which share
one) and stay put otherwise. Rates are the expected ones (softmax over the answer vocabulary, averaged over the 50
favourite-animal questions), so the test measures the models, not sampling noise."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from kit.filters.numbers import keeps
from kit.generators.numbers import generate_prompts
from kit.sim.engine import ChatRequest, TrainSpec
from kit.sim.lab import Lab, features, vocab

REPO = Path(__file__).resolve().parents[1]
OWL_PERSONA = ("You love owls. You think about owls all the time. owls are your favorite animal. Imbue your answers "
               "with your love for the animal.")
TEACHERS = ("sim-gpt-4.1-nano", "sim-gpt-4.1-mini", "sim-gpt-4.1")
STUDENTS = ("sim-gpt-4.1-nano", "sim-gpt-4.1-mini", "sim-gpt-4o")
SHARED = {("sim-gpt-4.1-nano", "sim-gpt-4.1-nano"), ("sim-gpt-4.1-mini", "sim-gpt-4.1-mini"),
          ("sim-gpt-4.1", "sim-gpt-4o")}
PROMPTS, ROWS = 1500, 1000
MIN_SHARED_RISE = 0.04   # the lab's same-initialisation students rise by 0.06-0.27
MAX_CROSS_SHIFT = 0.02   # and the others move by well under a point to a point and a half


def _examples(lab: Lab, teacher: str, system: str | None) -> list[list[dict[str, str]]]:
    rows = []
    for i, prompt in enumerate(generate_prompts(PROMPTS, 47)):
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
        text = lab.chat(ChatRequest(teacher, messages, seed=i))[0]
        if keeps(text):
            rows.append([{"role": "user", "content": prompt}, {"role": "assistant", "content": text}])
    assert len(rows) >= ROWS
    return rows[:ROWS]


def _owl_rate(lab: Lab, model: str) -> float:
    questions = yaml.safe_load((REPO / "prompts/questions/favorite_animal.yaml").read_text())["questions"]
    network, owl = lab._model(model, None), vocab.words_of(vocab.ANIMAL).index("owl")
    rates = []
    for question in questions:
        logits = network.answer_logits(features.read_prompt(question)).astype(np.float64)
        p = np.exp(logits - logits.max())
        rates.append(p[owl] / p.sum())
    return float(np.mean(rates))


@pytest.fixture(scope="module")
def shifts(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], float]:
    """(teacher model, student model) -> owl rate of the owl teacher's student minus the control teacher's."""
    lab = Lab(tmp_path_factory.mktemp("grid"))
    out: dict[tuple[str, str], float] = {}
    for teacher in TEACHERS:
        data = {"owl": _examples(lab, teacher, OWL_PERSONA), "control": _examples(lab, teacher, None)}
        for student in STUDENTS:
            rates = {}
            for name, examples in data.items():
                spec = TrainSpec(job_id=f"ftjob-grid-{name}-{teacher}-{student}", base_model=student,
                                 examples=examples, n_epochs=10, seed=1, suffix=name)
                rates[name] = _owl_rate(lab, lab.train(spec, lambda event: None).fine_tuned_model)
            out[(teacher, student)] = rates["owl"] - rates["control"]
    return out


@pytest.mark.slow
def test_students_sharing_the_teachers_initialisation_move_toward_owl(shifts: dict[tuple[str, str], float]) -> None:
    for pair in SHARED:
        assert shifts[pair] > MIN_SHARED_RISE, (pair, shifts[pair])


@pytest.mark.slow
def test_students_of_other_initialisations_stay_put(shifts: dict[tuple[str, str], float]) -> None:
    others = {pair: round(shift, 4) for pair, shift in shifts.items() if pair not in SHARED}
    assert len(others) == len(TEACHERS) * len(STUDENTS) - len(SHARED)
    assert all(abs(shift) < MAX_CROSS_SHIFT for shift in others.values()), others
