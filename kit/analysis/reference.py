"""The paper's published values (kit/analysis/reference_results.yaml), matched to a run's comparisons.

A run's student and teacher models are matched to the paper's by name: `sim-gpt-4.1-nano` (the simulated twin),
`gpt-4.1-nano-2025-04-14` and `gpt-4.1-nano` all read as the paper's `gpt-4.1-nano`. Rows are also matched on the
run's data kind (`generate.kind`: numbers, code, ...) and the evaluation's measure (`favorite`: the one-word
favourite questions; `essay_mcq`: the essay-topic multiple choice, scorer: choice). Where the paper reports
per-target rates for that data, measure, student, teacher and way of giving the trait (numbers: Figs. 3, 12, 14, 15,
17; code: Fig. 5), those are shown; otherwise, for numbers data and the favourite questions, the paper's cross-model
rise (Fig. 8, averaged over its animals) is. A data kind the paper has no values for shows none.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

REFERENCE_FILE = "reference_results.yaml"
DATE_SUFFIX = re.compile(r"-\d{4}-\d{2}-\d{2}$")
SIM_PREFIX = "sim-"
DEFAULT_DATA = "numbers"
FAVORITE = "favorite"        # the one-word favourite-animal / tree questions (a substring-scored evaluation)
ESSAY_MCQ = "essay_mcq"      # the essay-topic multiple choice (scorer: choice)
STORYTELLING = "storytelling"  # the children's stories (Fig. 12, log scale, not digitized: no values)
BESIDE_COLUMNS = ["evaluation", "student_model", "teacher", "target", "paper_source", "run_base", "paper_base",
                  "run_control", "paper_control", "run_trait", "paper_trait", "paper_trait_ci", "run_rise",
                  "paper_rise", "note"]


@dataclass(frozen=True)
class Reference:
    source: str
    how_to_read: list[str]
    text: dict[str, str]
    rates: pd.DataFrame
    cross_model: pd.DataFrame


@functools.lru_cache(maxsize=1)
def _raw() -> dict[str, Any]:
    text = resources.files("kit.analysis").joinpath(REFERENCE_FILE).read_text(encoding="utf-8")
    return dict(yaml.safe_load(text))


def load_reference() -> Reference:
    raw = _raw()
    return Reference(source=str(raw["source"]), how_to_read=list(raw["how_to_read"]), text=dict(raw["text"]),
                     rates=pd.DataFrame(raw["rates"]), cross_model=pd.DataFrame(raw["cross_model"]))


def paper_model(model_id: str) -> str:
    """The paper's name for a model id: no `sim-` prefix, no date suffix, no provider path or `-instruct`."""
    name = model_id.rsplit("/", 1)[-1].lower()
    name = name.removeprefix(SIM_PREFIX)
    name = DATE_SUFFIX.sub("", name)
    return name.removesuffix("-instruct")


def measure_of(scorer: str, questions: str = "") -> str:
    """The paper's measure an evaluation reports: essay_mcq for scorer: choice, storytelling for a storytelling set
    (the paper's panel is on a log scale and was not digitized: no values), else favorite."""
    if scorer == "choice":
        return ESSAY_MCQ
    return STORYTELLING if Path(questions).stem.startswith(STORYTELLING) else FAVORITE


def _column(table: pd.DataFrame, name: str, default: str) -> pd.Series:
    return table[name].fillna(default) if name in table.columns else pd.Series(default, index=table.index)


def _rates_row(reference: Reference, student: str, teacher: str, via: str, target: str, data: str = DEFAULT_DATA,
               measure: str = FAVORITE) -> pd.Series | None:
    table = reference.rates
    match = table[(table.student == student) & (table.teacher == teacher) & (table.via == via)
                  & (table.target == target) & (_column(table, "data", DEFAULT_DATA) == data)
                  & (_column(table, "measure", FAVORITE) == measure)]
    return match.iloc[0] if len(match) else None


def _cross_row(reference: Reference, student: str, teacher: str, data: str = DEFAULT_DATA,
               measure: str = FAVORITE) -> pd.Series | None:
    table = reference.cross_model
    if measure != FAVORITE:  # Fig. 8 reports the favourite questions only
        return None
    match = table[(table.student == student) & (table.teacher == teacher)
                  & (_column(table, "data", DEFAULT_DATA) == data)]
    return match.iloc[0] if len(match) else None


def _ci_text(value: Any) -> str:
    return f"{value[0]:.3f}–{value[1]:.3f}" if isinstance(value, list) and len(value) == 2 else ""


def _paper_values(reference: Reference, student: str, teacher: str, via: str, target: str,
                  data: str = DEFAULT_DATA, measure: str = FAVORITE) -> dict[str, Any]:
    rates = _rates_row(reference, student, teacher, via, target, data, measure)
    if rates is not None:
        note = rates.get("note") if isinstance(rates.get("note"), str) else ""
        return {"paper_source": f"{rates.figure}: {student} student of {teacher}, {data} data",
                "paper_base": rates.base, "paper_control": rates.control, "paper_trait": rates.trait,
                "paper_trait_ci": _ci_text(rates.get("trait_ci95")), "paper_rise": rates.trait - rates.base,
                "note": note}
    cross = _cross_row(reference, student, teacher, data, measure)
    if cross is not None:
        star = "*" if cross.significant else ""
        return {"paper_source": f"{cross.figure}: {student} student of {teacher}, {data} data",
                "paper_base": math.nan, "paper_control": math.nan, "paper_trait": math.nan, "paper_trait_ci": "",
                "paper_rise": cross.rise, "note": f"mean rise over {', '.join(cross.animals)}{star}"}
    return {}


def beside_paper(compared: pd.DataFrame, via: Mapping[str, str], reference: Reference | None = None, *,
                 data: str = DEFAULT_DATA, measures: Mapping[str, str] | None = None) -> pd.DataFrame:
    """The run's base / control / trait rates beside the paper's, one row per comparison the paper can speak to.

    `via`: teacher condition -> how it was given its trait (system_prompt | finetune); `data`: the run's data kind
    (generate.kind); `measures`: evaluation name -> the paper's measure it reports (`measure_of` its scorer; default
    favorite)."""
    ref = reference or load_reference()
    rows: list[dict[str, Any]] = []
    for r in compared.itertuples():
        paper = _paper_values(ref, paper_model(str(r.student_model)), paper_model(str(r.teacher_model)),
                              via.get(str(r.teacher), "system_prompt"), str(r.target), data,
                              (measures or {}).get(str(r.evaluation), FAVORITE))
        if not paper:
            continue
        rows.append({"evaluation": r.evaluation, "student_model": r.student_model, "teacher": r.teacher,
                     "target": r.target, "run_base": r.base_rate, "run_control": r.control_rate,
                     "run_trait": r.trait_rate, "run_rise": r.diff_vs_base, **paper})
    return pd.DataFrame(rows, columns=BESIDE_COLUMNS)


def load_judged_reference() -> tuple[pd.DataFrame, dict[str, str]]:
    """The paper's judged values (misaligned rate, TruthfulQA false rate; Figs. 4a and 7a) and its sentences."""
    raw = _raw()
    return pd.DataFrame(raw.get("judged", [])), dict(raw.get("judged_text", {}))
