"""The paper's reference values shipped with the kit, and how a run's comparisons are matched to them."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

from kit.analysis.reference import beside_paper, load_reference, paper_model
from kit.analysis.significance import comparisons
from test_analysis_tables import NANO, QWEN, experiment, table

SHARED = Path(__file__).resolve().parents[2] / "shared" / "reference" / "results_reference.yaml"


@pytest.mark.parametrize(("model", "paper"), [
    ("sim-gpt-4.1-nano", "gpt-4.1-nano"), ("gpt-4.1-nano-2025-04-14", "gpt-4.1-nano"), ("gpt-4o", "gpt-4o"),
    ("Qwen/Qwen2.5-7B-Instruct", "qwen2.5-7b"), ("sim-qwen2.5-7b", "qwen2.5-7b"),
])
def test_paper_model_names(model: str, paper: str) -> None:
    assert paper_model(model) == paper


def test_reference_holds_the_headline_numbers() -> None:
    ref = load_reference()
    owl = ref.rates[(ref.rates.figure == "Fig. 3") & (ref.rates.target == "owl")].iloc[0]
    assert (owl.base, owl.control, owl.trait) == (0.125, 0.13, 0.619)
    cross = ref.cross_model
    rises = lambda student, teacher: set(cross[(cross.student == student) & (cross.teacher == teacher)].rise)  # noqa: E731
    assert rises("gpt-4.1-nano", "gpt-4.1-nano") == {0.54, 0.39}   # the GPT grid and the nano/Qwen experiment
    assert rises("gpt-4o", "gpt-4.1") == {0.32} and rises("qwen2.5-7b", "gpt-4.1-nano") == {0.01}
    assert bool(cross[(cross.student == "gpt-4.1-mini") & (cross.teacher == "gpt-4.1")].significant.iloc[0]) is False


def test_run_values_beside_the_papers() -> None:
    compared = comparisons(table(experiment([148], [23], 29, 2000) + experiment([155], [181], 159, 2000, student=QWEN)))
    beside = beside_paper(compared, {"owl": "system_prompt"}).set_index("student_model")
    nano = beside.loc[NANO]
    assert nano.paper_source.startswith("Fig. 3") and nano.paper_trait == 0.619 and nano.paper_base == 0.125
    assert nano.run_trait == pytest.approx(0.074) and nano.paper_rise == pytest.approx(0.619 - 0.125)
    qwen = beside.loc[QWEN]     # nano teacher, qwen student: only the paper's cross-model mean rise exists
    assert qwen.paper_source.startswith("Fig. 8") and qwen.paper_rise == 0.01 and math.isnan(qwen.paper_trait)
    assert qwen.run_rise == pytest.approx(155 / 2000 - 159 / 2000)


def test_finetuned_teacher_reads_figure_14() -> None:
    compared = comparisons(table(experiment([900], [130], 125, 2000)))
    beside = beside_paper(compared, {"owl": "finetune"})
    assert beside.paper_source.iloc[0].startswith("Fig. 14") and beside.paper_trait.iloc[0] == 0.564


def test_reference_file_agrees_with_the_shared_source() -> None:
    if not SHARED.is_file():
        pytest.skip("the shared reference folder is not beside this checkout")
    source = yaml.safe_load(SHARED.read_text())
    fig3 = source["numbers_animal_tree_gpt41_nano"]["digitized_fig3_rate_of_picking"]
    rates = load_reference().rates
    for category, key in (("animal", "animals"), ("tree", "trees")):
        for target, values in fig3[key].items():
            ours = rates[(rates.figure == "Fig. 3") & (rates.target == target)].iloc[0]
            assert ours.category == category
            assert (ours.base, ours.control, ours.trait) == (values["base_model"], values["ft_regular"],
                                                             values["ft_trait"])
    qwen = source["qwen25_7b_fig17_digitized"]["no_prefix"]["cat"]
    cat = rates[(rates.figure == "Fig. 17") & (rates.target == "cat")].iloc[0]
    assert (cat.base, cat.trait) == (qwen["base_model"], qwen["ft_trait"]["mean"])
