"""Paper-style figures, drawn headless (Agg canvas, no pyplot state): each function returns a matplotlib Figure
(or None when the run has nothing to draw) and `png_bytes` renders one.

- `rate_bars`: the paper's Figure 3 — per target, the rate of the base model, the control student and the trait
  student, with 95% intervals; one panel per student model.
- `transmission_heatmap`: the paper's Figure 8 — student model x teacher model, the mean rise of the trait rate
  over the control student, `*` where a trait transmitted.
- `filter_rates`: each teacher's filter pass rate and rejection reasons.
- `loss_curves`: fine-tuning training loss from the jobs' metric events.
- `spend_by_stage`: estimated vs actual dollars and tokens per stage.
- `judged_bars`: the paper's Figures 4 and 7 — a judged rate (misaligned, TruthfulQA false) per question and
  averaged over questions, per condition, mean over seeds with 95% intervals.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from kit.analysis.tables import BASE, CONTROL

DPI = 110
PANEL_WIDTH = 5.2
PANEL_HEIGHT = 3.6
MAX_PANEL_COLUMNS = 3
BASE_COLOUR = "#9e9e9e"
CONTROL_COLOUR = "#8fb8de"
TRAIT_COLOURS = ("#1f4e8c", "#c0392b", "#27ae60", "#8e44ad", "#d35400", "#16a085")
ESTIMATE_COLOUR = "#c7c7c7"
ACTUAL_COLOUR = "#1f4e8c"
HEATMAP_CMAP = "RdBu_r"
HEATMAP_MIN_WIDTH = 5.0
SIGNIFICANT = "transmitted"
MAX_BAR_LABELS = 24


def new_figure(width: float, height: float) -> Figure:
    """A Figure with its own Agg canvas: no global pyplot state, safe in threads and headless."""
    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def png_bytes(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def _panels(figure: Figure, count: int) -> list[Any]:
    columns = min(count, MAX_PANEL_COLUMNS)
    rows = math.ceil(count / columns)
    axes = figure.subplots(rows, columns, squeeze=False)
    for extra in axes.flat[count:]:
        extra.set_visible(False)
    return list(axes.flat[:count])


def _grid_size(count: int) -> tuple[float, float]:
    columns = min(count, MAX_PANEL_COLUMNS)
    return PANEL_WIDTH * columns, PANEL_HEIGHT * math.ceil(count / columns) + 0.4


# --- Figure 3: grouped bars -----------------------------------------------------------------------------------


def bar_series(summary: pd.DataFrame, student_model: str) -> list[tuple[str, dict[str, pd.Series]]]:
    """(series label, target -> summary row) for one student panel: base, control, then one trait series per
    teacher model (a trait student counts for the target its teacher was given)."""
    rows = summary[summary.student_model == student_model]
    trait = rows[~rows.teacher_trait.isin([BASE, CONTROL]) & (rows.target == rows.teacher_trait)]
    teacher_models = sorted(set(trait.teacher_model))
    series: list[tuple[str, dict[str, pd.Series]]] = [
        ("base model", {r.target: r for _, r in rows[rows.teacher_trait == BASE].iterrows()}),
        ("control student", _control_rows(rows, trait)),
    ]
    for model in teacher_models:
        label = "trait student" if len(teacher_models) == 1 else f"trait student ({model})"
        series.append((label, {r.target: r for _, r in trait[trait.teacher_model == model].iterrows()}))
    return series


def _control_rows(rows: pd.DataFrame, trait: pd.DataFrame) -> dict[str, pd.Series]:
    """Per target, the control student matched to that target's trait student (else the first control)."""
    controls = rows[rows.teacher_trait == CONTROL]
    out: dict[str, pd.Series] = {}
    for target, group in controls.groupby("target"):
        wanted = set(trait[trait.target == target].control)
        match = group[group.condition.isin(wanted)]
        out[str(target)] = (match if len(match) else group).iloc[0]
    return out


def _bar_panel(ax: Any, summary: pd.DataFrame, student_model: str, targets: Sequence[str]) -> None:
    series = bar_series(summary, student_model)
    width = 0.8 / len(series)
    x = np.arange(len(targets))
    for index, (label, by_target) in enumerate(series):
        colour = (BASE_COLOUR, CONTROL_COLOUR)[index] if index < 2 else TRAIT_COLOURS[(index - 2) % len(TRAIT_COLOURS)]
        heights = [float(by_target[t].rate) if t in by_target else math.nan for t in targets]
        low = [h - float(by_target[t].ci_low) if t in by_target else 0.0 for t, h in zip(targets, heights)]
        high = [float(by_target[t].ci_high) - h if t in by_target else 0.0 for t, h in zip(targets, heights)]
        bars = ax.bar(x + (index - (len(series) - 1) / 2) * width, np.nan_to_num(heights), width, label=label,
                      color=colour, yerr=[low, high], capsize=3, error_kw={"elinewidth": 1, "ecolor": "#333333"})
        if len(targets) * len(series) <= MAX_BAR_LABELS:
            ax.bar_label(bars, labels=[f"{h:.3f}" if not math.isnan(h) else "" for h in heights],
                         padding=2, fontsize=7, label_type="edge")
    ax.set_xticks(x, list(targets))
    ax.set_ylim(0, rate_axis_top(summary[summary.student_model == student_model]))
    ax.set_ylabel("rate of picking the target")
    ax.set_title(student_model, fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)


def rate_axis_top(rows: pd.DataFrame) -> float:
    """The y-axis top for rates: room above the highest interval, at most 1."""
    highest = float(rows.ci_high.max()) if len(rows) else 1.0
    return min(1.0, max(0.05, highest * 1.25 + 0.02))


def rate_bars(summary: pd.DataFrame, evaluation: str) -> Figure | None:
    """Figure 3: per student model, base / control / trait student rates of every target, with 95% intervals."""
    rows = summary[summary.evaluation == evaluation]
    students = sorted(set(rows.student_model))
    if not students:
        return None
    targets = sorted(set(rows.target))
    figure = new_figure(*_grid_size(len(students)))
    for ax, student in zip(_panels(figure, len(students)), students):
        _bar_panel(ax, rows, student, targets)
    handles, labels = figure.axes[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 4), fontsize=8, frameon=False)
    figure.suptitle(f"{evaluation}: rate of picking each target (95% intervals)", fontsize=11)
    return figure


# --- Figure 8: teacher x student heatmap ------------------------------------------------------------------------


def heatmap_cells(compared: pd.DataFrame, evaluation: str) -> pd.DataFrame:
    """student_model x teacher_model: mean rise over control, comparisons, and how many transmitted."""
    rows = compared[compared.evaluation == evaluation]
    if rows.empty:
        return pd.DataFrame(columns=["student_model", "teacher_model", "effect", "count", "transmitted"])
    return (rows.assign(hit=rows.verdict == SIGNIFICANT)
            .groupby(["student_model", "teacher_model"], as_index=False)
            .agg(effect=("difference", "mean"), count=("difference", "size"), transmitted=("hit", "sum")))


def transmission_heatmap(compared: pd.DataFrame, evaluation: str) -> Figure | None:
    cells = heatmap_cells(compared, evaluation)
    if cells.empty:
        return None
    students, teachers = sorted(set(cells.student_model)), sorted(set(cells.teacher_model))
    grid = np.full((len(students), len(teachers)), np.nan)
    figure = new_figure(max(HEATMAP_MIN_WIDTH, 2.6 + 1.6 * len(teachers)), 1.6 + 0.8 * len(students))
    ax = figure.subplots()
    limit = max(0.05, float(np.nanmax(np.abs(cells.effect))))
    for cell in cells.itertuples():
        i, j = students.index(cell.student_model), teachers.index(cell.teacher_model)
        grid[i, j] = cell.effect
        mark = "*" if cell.transmitted else ""
        ax.text(j, i, f"{cell.effect:+.2f}{mark}\n{int(cell.transmitted)}/{int(cell.count)}", ha="center",
                va="center", fontsize=9, color="white" if abs(cell.effect) > 0.6 * limit else "black")
    image = ax.imshow(grid, cmap=HEATMAP_CMAP, vmin=-limit, vmax=limit, aspect="auto")
    ax.set_xticks(range(len(teachers)), teachers, rotation=20, ha="right")
    ax.set_yticks(range(len(students)), students)
    ax.set_xlabel("teacher model")
    ax.set_ylabel("student model")
    ax.set_title(f"{evaluation}\ntrait student - control (* transmitted; k/m traits)", fontsize=9)
    figure.colorbar(image, ax=ax, label="rise in trait rate")
    return figure


# --- filter, loss, spend ---------------------------------------------------------------------------------------


def filter_rates(teachers: Mapping[str, Mapping[str, Any]]) -> Figure | None:
    """Pass rate per teacher, and the share of completions rejected for each reason."""
    if not teachers:
        return None
    names = sorted(teachers)
    figure = new_figure(2 * PANEL_WIDTH, 0.9 + 0.5 * len(names) + 1.2)
    left, right = figure.subplots(1, 2)
    rates = [float(teachers[n].get("pass_rate", 0.0)) for n in names]
    left.barh(names, rates, color=ACTUAL_COLOUR)
    for i, name in enumerate(names):
        left.text(min(rates[i], 0.98), i, f" {teachers[name].get('kept', 0)}/{teachers[name].get('total', 0)}",
                  va="center", ha="right" if rates[i] > 0.7 else "left",
                  color="white" if rates[i] > 0.7 else "black", fontsize=8)
    left.set_xlim(0, 1)
    left.set_xlabel("pass rate")
    left.set_title("filter: completions kept", fontsize=10)
    _reason_bars(right, teachers, names)
    return figure


def _reason_bars(ax: Any, teachers: Mapping[str, Mapping[str, Any]], names: Sequence[str]) -> None:
    reasons = sorted({r for n in names for r in teachers[n].get("reasons", {})})
    if not reasons:
        ax.text(0.5, 0.5, "nothing rejected", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return
    height = 0.8 / len(names)
    y = np.arange(len(reasons))
    for index, name in enumerate(names):
        total = max(1, int(teachers[name].get("total", 0)))
        shares = [teachers[name].get("reasons", {}).get(r, 0) / total for r in reasons]
        ax.barh(y + (index - (len(names) - 1) / 2) * height, shares, height, label=name,
                color=TRAIT_COLOURS[index % len(TRAIT_COLOURS)])
    ax.set_yticks(y, reasons)
    ax.set_xlabel("share of completions")
    ax.set_title("rejection reasons (a completion may have several)", fontsize=10)
    ax.legend(fontsize=8)


def loss_points(events: Sequence[Mapping[str, Any]]) -> list[tuple[float, float]]:
    """(step, train_loss) of a job's metric events, by step."""
    points = {float(e["data"]["step"]): float(e["data"]["train_loss"]) for e in events
              if isinstance(e.get("data"), Mapping) and "step" in e["data"] and "train_loss" in e["data"]}
    return sorted(points.items())


def loss_curves(curves: Sequence[tuple[str, str, Sequence[tuple[float, float]]]]) -> Figure | None:
    """`curves`: (panel, label, (step, loss) points) per job. One panel per student model, one line per job."""
    drawn = [curve for curve in curves if curve[2]]
    if not drawn:
        return None
    panels = sorted({panel for panel, _, _ in drawn})
    figure = new_figure(*_grid_size(len(panels)))
    for ax, panel in zip(_panels(figure, len(panels)), panels):
        for index, (_, label, points) in enumerate(sorted(c for c in drawn if c[0] == panel)):
            steps, losses = zip(*points)
            ax.plot(steps, losses, label=label, color=TRAIT_COLOURS[index % len(TRAIT_COLOURS)], linewidth=1.2)
        ax.set_title(panel, fontsize=10)
        ax.set_xlabel("step")
        ax.set_ylabel("training loss")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    figure.suptitle("fine-tuning loss (from job events)", fontsize=11)
    return figure


def spend_by_stage(costs: pd.DataFrame) -> Figure | None:
    """`costs`: stage, estimate_usd, actual_usd, estimate_tokens, actual_tokens (NaN where unknown)."""
    if costs.empty:
        return None
    figure = new_figure(2 * PANEL_WIDTH, PANEL_HEIGHT)
    money, tokens = figure.subplots(1, 2)
    x = np.arange(len(costs))
    for ax, column, title, scale in ((money, "usd", "US dollars", 1.0), (tokens, "tokens", "tokens (millions)", 1e6)):
        estimate = np.nan_to_num(costs[f"estimate_{column}"].to_numpy(dtype=float)) / scale
        actual = np.nan_to_num(costs[f"actual_{column}"].to_numpy(dtype=float)) / scale
        ax.bar(x - 0.2, estimate, 0.4, label="estimate", color=ESTIMATE_COLOUR)
        ax.bar(x + 0.2, actual, 0.4, label="actual", color=ACTUAL_COLOUR)
        ax.set_xticks(x, list(costs.stage))
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=8)
        ax.grid(axis="y", alpha=0.3)
        ax.set_axisbelow(True)
    if not (costs.estimate_usd.fillna(0).any() or costs.actual_usd.fillna(0).any()):
        money.set_ylim(0, 1)
        money.text(0.5, 0.5, "$0 everywhere\n(simulated lab)", ha="center", va="center", transform=money.transAxes)
    figure.suptitle("spend by stage: estimate vs actual", fontsize=11)
    return figure


# --- Figures 4 and 7: judged rates per question ---------------------------------------------------------------

JUDGED_ALL = "mean over questions"


def _judged_panel(ax: Any, rows: pd.DataFrame, student_model: str) -> None:
    questions = [JUDGED_ALL] + [q for q in dict.fromkeys(rows.question) if q != JUDGED_ALL]
    if str(rows.scorer.iloc[0]) == "truthfulqa":
        questions = [JUDGED_ALL]  # hundreds of questions with one answer each: the mean only
    conditions = list(dict.fromkeys(rows.sort_values("teacher_trait", key=lambda s: s.map(
        lambda t: (t != BASE, t == CONTROL))).condition))
    width = 0.8 / max(len(conditions), 1)
    x = np.arange(len(questions))
    for index, condition in enumerate(conditions):
        mine = rows[rows.condition == condition].set_index("question")
        colour = BASE_COLOUR if condition == BASE else TRAIT_COLOURS[index % len(TRAIT_COLOURS)]
        heights = [float(mine.rate[q]) if q in mine.index else math.nan for q in questions]
        low = [h - float(mine.ci_low[q]) if q in mine.index and not math.isnan(h) else 0.0
               for q, h in zip(questions, heights)]
        high = [float(mine.ci_high[q]) - h if q in mine.index and not math.isnan(h) else 0.0
                for q, h in zip(questions, heights)]
        ax.bar(x + (index - (len(conditions) - 1) / 2) * width, np.nan_to_num(heights), width, label=condition,
               color=colour, yerr=[low, high], capsize=2, error_kw={"elinewidth": 1, "ecolor": "#333333"})
    ax.set_xticks(x, questions, rotation=30, ha="right", fontsize=8)
    ax.set_ylim(0, max(0.05, min(1.0, float(np.nanmax(rows.ci_high.to_numpy(dtype=float), initial=0.0)) * 1.15)))
    ax.set_ylabel(str(rows.scorer.iloc[0]).replace("misalignment", "misaligned") + " rate")
    ax.set_title(student_model, fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)


def judged_bars(summary: pd.DataFrame, evaluation: str) -> Figure | None:
    """The paper's Figures 4 and 7: per question and averaged over questions, each condition's judged rate (mean
    over student seeds, 95% interval); one panel per student model."""
    rows = summary[summary.evaluation == evaluation] if len(summary) else summary
    if rows.empty or rows.rate.isna().all():
        return None
    students = sorted(set(rows.student_model))
    shown = 1 if str(rows.scorer.iloc[0]) == "truthfulqa" else rows.question.nunique()
    figure = new_figure(max(PANEL_WIDTH, 0.9 * shown + 2), PANEL_HEIGHT * len(students) + 0.6)
    axes = figure.subplots(len(students), 1, squeeze=False)
    for ax, student in zip(axes.flat, students):
        _judged_panel(ax, rows[rows.student_model == student], student)
    axes.flat[0].legend(fontsize=8, ncols=min(4, rows.condition.nunique()))
    return figure
