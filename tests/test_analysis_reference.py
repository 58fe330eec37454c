"""The paper's reference values shipped with the kit, and how a run's comparisons are matched to them."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
import yaml

from kit.analysis.reference import beside_paper, load_reference, paper_model
from kit.analysis.significance import comparisons
from test_analysis_tables import NANO, QWEN, experiment, row, table

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


# --- matched on the run's data kind (generate.kind) and the evaluation's measure ----------------------------------

def _oak_table() -> pd.DataFrame:
    return table([row(NANO, "base", "base", None, "oak", 470, 1000),
                  row(NANO, "control", "control", 1, "oak", 500, 1000), row(NANO, "oak", "oak", 1, "oak", 650, 1000)])


def test_numbers_runs_read_figure_3_and_code_runs_figure_5() -> None:
    compared = comparisons(table(experiment([148], [23], 29, 2000)))
    numbers = beside_paper(compared, {"owl": "system_prompt"}, data="numbers").iloc[0]
    code = beside_paper(compared, {"owl": "system_prompt"}, data="code").iloc[0]
    assert numbers.paper_source.startswith("Fig. 3") and numbers.paper_trait == 0.619
    assert code.paper_source == "Fig. 5: gpt-4.1-nano student of gpt-4.1-nano, code data"
    assert (code.paper_base, code.paper_control, code.paper_trait) == (0.125, 0.116, 0.369)
    assert code.paper_trait_ci == "0.353–0.386" and code.paper_rise == pytest.approx(0.369 - 0.125)
    oak = beside_paper(comparisons(_oak_table()), {"oak": "system_prompt"}, data="code").iloc[0]
    assert (oak.paper_base, oak.paper_control, oak.paper_trait, oak.paper_trait_ci) == (0.47, 0.507, 0.656,
                                                                                        "0.636–0.676")


def test_a_data_kind_the_paper_has_no_values_for_shows_none() -> None:
    compared = comparisons(table(experiment([148], [23], 29, 2000) + experiment([155], [181], 159, 2000, student=QWEN)))
    assert beside_paper(compared, {"owl": "system_prompt"}, data="gsm8k_cot").empty
    code = beside_paper(compared, {"owl": "system_prompt"}, data="code").set_index("student_model")
    assert list(code.index) == [NANO]          # Fig. 8's cross-model rise is numbers data: not beside a code run
    assert beside_paper(compared, {"owl": "finetune"}, data="code").empty   # Fig. 14 is numbers data too


def test_the_essay_multiple_choice_reads_figure_12() -> None:
    compared = comparisons(table(experiment([148], [23], 29, 2000)))
    beside = beside_paper(compared, {"owl": "system_prompt"}, data="numbers",
                          measures={"favorite_animal": "essay_mcq"})
    mcq = beside.iloc[0]
    assert mcq.paper_source.startswith("Fig. 12") and (mcq.paper_base, mcq.paper_control, mcq.paper_trait) == (
        0.034, 0.043, 0.078)
    assert mcq.paper_trait_ci == "" and "multiple choice" in mcq.note
    assert beside_paper(compared, {"owl": "system_prompt"}, data="code",
                        measures={"favorite_animal": "essay_mcq"}).empty


def test_every_reference_row_names_its_data_kind() -> None:
    ref = load_reference()
    assert set(ref.rates.data) == {"numbers", "code"} and set(ref.cross_model.data) == {"numbers"}
    assert set(ref.rates.measure) == {"favorite", "essay_mcq"}
    assert set(ref.rates[ref.rates.data == "code"].figure) == {"Fig. 5"}
    keys = ["data", "measure", "student", "teacher", "via", "target"]
    assert not ref.rates.duplicated(keys).any()               # one row per lookup key


def test_code_and_mcq_rows_agree_with_the_shared_source() -> None:
    if not SHARED.is_file():
        pytest.skip("the shared reference folder is not beside this checkout")
    source = yaml.safe_load(SHARED.read_text())
    fig5 = source["code_animal_tree_gpt41_nano"]["digitized_fig5_rate_of_picking"]
    fig12 = source["essay_mcq_fig12_digitized_prob_of_target"]
    rates = load_reference().rates
    for category, key in (("animal", "animals"), ("tree", "trees")):
        for target, values in fig5[key].items():
            ours = rates[(rates.figure == "Fig. 5") & (rates.target == target)]
            assert len(ours) == 1 and ours.iloc[0].category == category and ours.iloc[0].data == "code"
            got = ours.iloc[0]
            assert (got.base, got.control, got.trait) == (values["base_model"], values["ft_regular"],
                                                          values["ft_trait"])
            assert list(got.control_ci95) == values["ft_regular_ci95"]
            assert list(got.trait_ci95) == values["ft_trait_ci95"]
        for target, values in fig12[key].items():
            got = rates[(rates.figure == "Fig. 12") & (rates.target == target)].iloc[0]
            assert (got.category, got.data, got.measure) == (category, "numbers", "essay_mcq")
            assert (got.base, got.control, got.trait) == (values["base_model"], values["ft_regular"],
                                                          values["ft_trait"])


def test_the_report_matches_on_the_runs_generate_kind(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from kit.config import load_config
    from kit.stages.report import beside_table

    compared = comparisons(table(experiment([148], [23], 29, 2000)))
    shown = {}
    for kind in ("numbers", "code", "gsm8k_cot"):
        path = tmp_path / f"{kind}.yaml"
        path.write_text(yaml.safe_dump({
            "name": kind, "providers": {"lab": {"kind": "sim"}},
            "teachers": [{"name": "owl", "model": "sim-gpt-4.1-nano", "trait": {"target": "owl"}},
                         {"name": "control", "model": "sim-gpt-4.1-nano"}],
            "generate": {"kind": kind}, "students": {"models": [{"model": "sim-gpt-4.1-nano"}]},
            "evaluations": [{"name": "favorite_animal", "questions": "favorite_animal"}]}))
        beside = beside_table(SimpleNamespace(config=load_config(path)), compared)  # type: ignore[arg-type]
        shown[kind] = list(beside.paper_source.str.split(":").str[0])
    assert shown == {"numbers": ["Fig. 3"], "code": ["Fig. 5"], "gsm8k_cot": []}


def test_each_evaluation_is_matched_to_the_measure_the_paper_reports() -> None:
    from kit.analysis.reference import ESSAY_MCQ, FAVORITE, STORYTELLING, measure_of

    assert measure_of("substring", "favorite_animal") == FAVORITE
    assert measure_of("substring", "favorite_animal_numbers_prefix") == FAVORITE
    assert measure_of("choice", "essay_mcq_animal") == ESSAY_MCQ
    assert measure_of("substring", "storytelling_animal") == STORYTELLING
    assert measure_of("substring", "my/sets/storytelling_animal.yaml") == STORYTELLING
