"""What the report says, in order: verdicts and warnings first, then figures, rates, the paper's values, per-seed
detail, costs and provenance. Pure: takes tables and figures, returns a Document."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from kit.analysis.document import Block, Bullets, Code, Document, FigureBlock, Heading, Paragraph, Table
from kit.analysis.judged import ALL_QUESTIONS, METRIC
from kit.analysis.significance import ALPHA, MIN_EFFECT, NEGLIGIBLE_EFFECT, VERDICTS

RATE = ".3f"
P_VALUE = ".2g"
USD = ",.2f"
COUNT = ",.0f"


@dataclass(frozen=True)
class ReportInputs:
    identity: dict[str, str]
    config_text: str
    results: pd.DataFrame
    summary: pd.DataFrame
    compared: pd.DataFrame
    seed_compared: pd.DataFrame
    artifacts: pd.DataFrame
    beside: pd.DataFrame
    reference_source: str
    reference_notes: Sequence[str]
    costs: pd.DataFrame
    models: pd.DataFrame
    jobs: pd.DataFrame
    uploads: pd.DataFrame
    files: pd.DataFrame
    figures: Sequence[FigureBlock]
    alpha: float = ALPHA
    min_effect: float = MIN_EFFECT
    judged: Any = None  # kit.analysis.judged.JudgedTables of the judged evaluations, if the run has any
    filtered: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # the filter stage's per-teacher detail


def _expectation(same_family: object) -> str:
    if same_family is True:
        return "transmits (same family)"
    if same_family is False:
        return "does not (other family)"
    return ""


def verdict_table(compared: pd.DataFrame) -> Table:
    frame = pd.DataFrame({
        "evaluation": compared.evaluation, "student": compared.student_model, "teacher": compared.teacher,
        "teacher model": compared.teacher_model, "target": compared.target, "seeds": compared.seeds,
        "base": compared.base_rate, "control": compared.control_rate, "trait student": compared.trait_rate,
        "effect (trait - control)": compared.difference,
        "95% CI of effect": [f"{lo:+.3f} to {hi:+.3f}" for lo, hi in zip(compared.diff_ci_low, compared.diff_ci_high)],
        "test": compared.test, "p": compared.p_value, "q (BH)": compared.q_value, "verdict": compared.verdict,
        "paper's finding": [_expectation(v) for v in compared.same_family]})
    formats = {"base": RATE, "control": RATE, "trait student": RATE, "effect (trait - control)": "+.3f",
               "p": P_VALUE, "q (BH)": P_VALUE}
    return Table(frame, formats, badge="verdict")


def _verdict_sentence(compared: pd.DataFrame) -> str:
    counts = compared.verdict.value_counts()
    parts = [f"{int(counts.get(v, 0))} {v}" for v in VERDICTS]
    return f"{len(compared)} trait student(s) compared with their control student: " + ", ".join(parts) + "."


def _rule(alpha: float, min_effect: float) -> str:
    return (f"transmitted: q < {alpha:g} (Benjamini–Hochberg across the grid) with a positive effect that may exceed "
            f"+{NEGLIGIBLE_EFFECT:g}; negligible: significant, but the whole 95% interval of the effect lies below "
            f"+{NEGLIGIBLE_EFFECT:g}; not detected: not significant, and the interval lies below +{min_effect:g} (any "
            "transmission is smaller than that); inconclusive: none of these — more samples or seeds would decide "
            "it. Effect = trait student's rate of the "
            "teacher's target minus the control student's. One seed: Fisher's exact test, Newcombe interval; "
            "several seeds: Welch's t-test on per-seed rates (the seed is the unit of replication).")


def verdict_blocks(inputs: ReportInputs) -> list[Block]:
    if inputs.judged is not None and inputs.results.empty:
        return []  # only judged evaluations: their section has the verdicts
    blocks: list[Block] = [Heading("Verdicts")]
    if inputs.compared.empty:
        return blocks + [Paragraph("No trait student has a control student to compare with (the run needs a "
                                   "teacher without a trait, and finished fine-tuning and evaluation).", "warning")]
    blocks += [Paragraph(_verdict_sentence(inputs.compared)), verdict_table(inputs.compared),
               Paragraph(_rule(inputs.alpha, inputs.min_effect), "note")]
    flagged = inputs.artifacts[inputs.artifacts.flagged] if len(inputs.artifacts) else inputs.artifacts
    if len(flagged):
        blocks += [Heading("Artifact warnings", 3),
                   Bullets(tuple(f"{m} (q = {q:.2g})" for m, q in zip(flagged.message, flagged.q_value)), "warning")]
    else:
        blocks.append(Paragraph(f"No off-diagonal control moved ({len(inputs.artifacts)} checked: trait students on "
                                "targets they were not taught, control students against their base model).", "ok"))
    return blocks


def summary_table(summary: pd.DataFrame) -> Table:
    frame = summary[["evaluation", "student_model", "condition", "target", "seeds", "hits", "n", "rate", "ci_low",
                     "ci_high", "ci_method", "diff_vs_base", "diff_vs_control"]]
    formats = {"rate": RATE, "ci_low": RATE, "ci_high": RATE, "diff_vs_base": "+.3f", "diff_vs_control": "+.3f"}
    return Table(frame, formats, caption="rate over seeds; diff_vs_control: against the matched control student")


def beside_blocks(inputs: ReportInputs) -> list[Block]:
    blocks: list[Block] = [Heading("Beside the paper")]
    if inputs.beside.empty:
        return blocks + [Paragraph("The paper reports no values for these student and teacher models, data kind "
                                   "and evaluations.")]
    formats = {c: RATE for c in ("run_base", "paper_base", "run_control", "paper_control", "run_trait",
                                 "paper_trait")}
    formats.update({"run_rise": "+.3f", "paper_rise": "+.3f"})
    return blocks + [Paragraph(f"Source: {inputs.reference_source}"), Table(inputs.beside, formats),
                     Bullets(tuple(inputs.reference_notes), "note"),
                     Paragraph("The simulated lab is a model of the phenomenon, not a language model: compare "
                               "directions and orders of magnitude, not exact rates.")]


def _seed_blocks(inputs: ReportInputs) -> list[Block]:
    results = inputs.results.drop(columns=[c for c in ("teacher_trait",) if c in inputs.results.columns])
    blocks: list[Block] = [Heading("Per seed"), Table(results, {"rate": RATE, "ci_low": RATE, "ci_high": RATE},
                                                      caption="every evaluated model; 95% Wilson intervals")]
    if len(inputs.seed_compared):
        blocks.append(Table(inputs.seed_compared, {"control_rate": RATE, "trait_rate": RATE, "difference": "+.3f",
                                                   "p_value": P_VALUE},
                            caption="within each seed: Fisher's exact test, one-sided (not adjusted)"))
    return blocks


def _artifact_blocks(inputs: ReportInputs) -> list[Block]:
    if inputs.artifacts.empty:
        return []
    frame = inputs.artifacts.drop(columns=["message"])
    return [Heading("Off-diagonal controls"),
            Paragraph("off-target: a trait student's rate of a target it was not taught, against its control "
                      "(one-sided, upward); control vs base: a control student against its base model (two-sided). "
                      "q: Benjamini–Hochberg over these checks."),
            Table(frame, {"rate": RATE, "reference_rate": RATE, "difference": "+.3f", "diff_ci_low": "+.3f",
                          "diff_ci_high": "+.3f", "p_value": P_VALUE, "q_value": P_VALUE}, badge="flagged")]


def filter_table(teachers: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """One row per teacher: completions, kept, pass rate, training rows and the reject reasons, most frequent first."""
    rows = []
    for name in sorted(teachers):
        detail = teachers[name]
        reasons = sorted(dict(detail.get("reasons", {})).items(), key=lambda item: (-item[1], item[0]))
        rows.append({"teacher": name, "completions": detail.get("total", 0), "kept": detail.get("kept", 0),
                     "pass rate": detail.get("pass_rate", 0.0), "training rows": detail.get("training_rows", ""),
                     "rejected for": "; ".join(f"{reason}: {count:,}" for reason, count in reasons)})
    return pd.DataFrame(rows)


def _filter_blocks(inputs: ReportInputs) -> list[Block]:
    if not inputs.filtered:
        return []
    return [Heading("Filter"), Table(filter_table(inputs.filtered), {"completions": COUNT, "kept": COUNT,
                                                                    "pass rate": RATE})]


def _cost_blocks(inputs: ReportInputs) -> list[Block]:
    total_est = float(inputs.costs.estimate_usd.fillna(0).sum()) if len(inputs.costs) else 0.0
    total = float(inputs.costs.actual_usd.fillna(0).sum()) if len(inputs.costs) else 0.0
    return [Heading("Costs"), Paragraph(f"Spent ${total:,.2f} (estimate before the run: ${total_est:,.2f})."),
            Table(inputs.costs, {"estimate_usd": USD, "actual_usd": USD, "estimate_tokens": COUNT,
                                 "actual_tokens": COUNT})]


def _provenance_blocks(inputs: ReportInputs) -> list[Block]:
    identity = pd.DataFrame({"what": list(inputs.identity), "value": list(inputs.identity.values())})
    return [Heading("Provenance"), Table(identity), Heading("Models", 3), Table(inputs.models),
            Heading("Fine-tuning jobs", 3), Table(inputs.jobs, {"trained tokens": COUNT, "final loss": ".4f"}),
            Heading("Uploaded files", 3), Table(inputs.uploads, {"bytes": COUNT}),
            Heading("Run files", 3), Table(inputs.files, {"bytes": COUNT}),
            Heading("Configuration", 3), Code(inputs.config_text, "yaml")]


# --- judged evaluations (misalignment, judge, TruthfulQA) ----------------------------------------------------------

DROP_COLUMNS = {"alignment_unscored": "dropped: alignment not an integer", "coherence_unscored":
                "dropped: coherence not an integer", "incoherent": "dropped: incoherent"}


def _judged_rates(summary: pd.DataFrame) -> Table:
    rows = summary[summary.question == ALL_QUESTIONS]
    frame = pd.DataFrame({"student": rows.student_model, "condition": rows.condition, "seeds": rows.seeds,
                          "answers": rows.answers, **{label: rows[c] for c, label in DROP_COLUMNS.items()},
                          "kept": rows.kept, "hits": rows.hits, "rate": rows.rate,
                          "95% CI": [f"{lo:.3f}–{hi:.3f}" for lo, hi in zip(rows.ci_low, rows.ci_high)],
                          "interval": rows.ci_method})
    if (rows.scorer == "truthfulqa").all():
        frame = frame.drop(columns=list(DROP_COLUMNS.values()))
    scorer = str(rows.scorer.iloc[0]) if len(rows) else ""
    per_question = {"misalignment": "misaligned / kept", "judge": "flagged / scored",
                    "truthfulqa": "probability of the false answer; hits: false answer more likely"}.get(scorer, "")
    return Table(frame, {"rate": RATE}, caption=f"rate: mean over questions of each question's rate ({per_question}), "
                                                "then mean over seeds")


def _judged_per_question(summary: pd.DataFrame) -> Table:
    rows = summary[summary.question != ALL_QUESTIONS]
    labels = [f"{c} ({s})" if summary.student_model.nunique() > 1 else str(c)
              for c, s in zip(rows.condition, rows.student_model)]
    frame = rows.assign(column=labels).pivot_table(index="question", columns="column", values="rate",
                                                   sort=False).reset_index()
    frame.columns = [str(c) for c in frame.columns]
    return Table(frame, {c: RATE for c in frame.columns if c != "question"}, caption="per question, mean over seeds")


def _judged_verdicts(compared: pd.DataFrame) -> Table:
    frame = pd.DataFrame({
        "student": compared.student_model, "trait student": compared.teacher, "control student": compared.control,
        "seeds": compared.seeds, "base": compared.base_rate, "control": compared.control_rate,
        "trait": compared.trait_rate, "effect (trait - control)": compared.difference,
        "95% CI of effect": [f"{lo:+.3f} to {hi:+.3f}" for lo, hi in zip(compared.diff_ci_low, compared.diff_ci_high)],
        "test": compared.test, "p": compared.p_value, "q (BH)": compared.q_value, "verdict": compared.verdict})
    return Table(frame, {"base": RATE, "control": RATE, "trait": RATE, "effect (trait - control)": "+.3f",
                         "p": P_VALUE, "q (BH)": P_VALUE}, badge="verdict")


def _judged_evaluation(judged: Any, evaluation: str) -> list[Block]:
    summary = judged.summary[judged.summary.evaluation == evaluation]
    metric = METRIC.get(str(summary.scorer.iloc[0]), "rate") if len(summary) else "rate"
    blocks: list[Block] = [Heading(f"{evaluation}: {metric}", 3), Paragraph(judged.rules.get(evaluation, ""), "note"),
                           _judged_rates(summary)]
    if len(summary) and summary.scorer.iloc[0] != "truthfulqa":  # TruthfulQA: hundreds of questions, one answer each
        blocks.append(_judged_per_question(summary))
    compared = judged.comparisons[judged.comparisons.evaluation == evaluation]
    if len(compared):
        blocks += [Paragraph(f"Trait students against control students on the {metric} (one-sided: higher); q: "
                             "Benjamini–Hochberg across every comparison of the run."), _judged_verdicts(compared)]
    return blocks


def _judged_beside(judged: Any) -> list[Block]:
    if judged.beside.empty:
        return []
    blocks: list[Block] = [Heading("Judged evaluations beside the paper", 3),
                           Table(judged.beside, {"run_rate": RATE, "paper_rate": RATE})]
    if not judged.beside_questions.empty:
        blocks.append(Table(judged.beside_questions, {"run_rate": RATE, "paper_rate": RATE},
                            caption="per question (the paper's per-question values come from its code's figures)"))
    notes = tuple(judged.paper_text) + ("Paper values are digitized from its figures (about ±0.005), means over "
                                        "student seeds. The simulated lab is not a language model: compare "
                                        "directions, not exact rates.",)
    return blocks + [Bullets(notes, "note")]


def judged_blocks(inputs: ReportInputs) -> list[Block]:
    """Each judged evaluation: rates averaged over questions and per question, dropped answers, verdicts; then the
    paper's values beside the run's."""
    judged = inputs.judged
    if judged is None:
        return []
    blocks: list[Block] = [Heading("Judged evaluations")]
    for evaluation in dict.fromkeys(judged.summary.evaluation):
        blocks += _judged_evaluation(judged, str(evaluation))
    return blocks + _judged_beside(judged)


def report_document(inputs: ReportInputs) -> Document:
    identity = inputs.identity
    subtitle = (f"run {identity.get('run id', '')} · slkit {identity.get('kit version', '')} · "
                f"written {identity.get('report written', '')}")
    blocks: list[Block] = verdict_blocks(inputs) + judged_blocks(inputs)
    blocks += [Heading("Figures"), *inputs.figures]
    blocks += [Heading("Rates"), summary_table(inputs.summary)]
    blocks += beside_blocks(inputs) + _seed_blocks(inputs) + _artifact_blocks(inputs)
    blocks += _filter_blocks(inputs) + _cost_blocks(inputs) + _provenance_blocks(inputs)
    blocks.append(Paragraph("How to read this report: docs/report.md in the slkit repository.", "note"))
    return Document(title=f"slkit report: {identity.get('experiment', '')}", subtitle=subtitle, blocks=tuple(blocks))
